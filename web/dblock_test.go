package web

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/dialer"
	"github.com/turbina-dialer/turbina/storage"
)

// lockedLog is a log sink safe for the server's goroutines.
type lockedLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// count is how many lines hold s.
func (l *lockedLog) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.buf.String(), s)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// holdWriteLock starts the sqlite3 shell as another process that takes the
// database's write lock (BEGIN EXCLUSIVE and a write) and keeps it until the
// returned func is called.
func holdWriteLock(t *testing.T, path string) (release func()) {
	t.Helper()
	shell, err := exec.LookPath("sqlite3")
	if err != nil {
		t.Fatalf("the sqlite3 shell (Debian package sqlite3) plays the other process: %v", err)
	}
	cmd := exec.Command(shell, path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = t.Output()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Our own writer may hold the lock for a moment: the shell waits for it.
	fmt.Fprintln(stdin, ".timeout 10000\nBEGIN EXCLUSIVE;\nUPDATE heartbeat SET at = at + 1;\nSELECT 'locked';")
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "locked" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("the shell did not take the lock: %q %v", line, err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			fmt.Fprintln(stdin, "ROLLBACK;\n.quit")
			stdin.Close()
			if err := cmd.Wait(); err != nil {
				t.Errorf("sqlite3 shell: %v", err)
			}
		})
	}
	t.Cleanup(release)
	return release
}

// lockDrillHold is how long the drill holds the lock: the 60 s when
// TURBINA_LOCK_DRILL says so (BENCHMARKS.md), a few seconds otherwise.
func lockDrillHold(t *testing.T) time.Duration {
	if v := os.Getenv("TURBINA_LOCK_DRILL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("TURBINA_LOCK_DRILL=%q: %v", v, err)
		}
		return d
	}
	return 6 * time.Second
}

// TestLockedDatabaseDegrades: another process holds SQLite's write lock. Reads
// (authenticated by token and by session, whose last use is bookkeeping) go on
// answering quickly; every write answers 503 storage_unavailable with Retry-After
// within the bounded wait; /readyz says not ready, then ready once the lock is
// gone; the log has one line for the start of the outage and one for its end.
func TestLockedDatabaseDegrades(t *testing.T) {
	const bound = time.Second
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "turbina.db")
	logs := &lockedLog{}
	log := slog.New(slog.NewTextHandler(io.MultiWriter(logs, t.Output()), &slog.HandlerOptions{Level: slog.LevelInfo}))
	db, err := storage.Open(ctx, path, storage.Options{BusyTimeout: bound, ProbeEvery: 200 * time.Millisecond,
		FlushEvery: 200 * time.Millisecond, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := EnsureAdmin(ctx, db, testAdminToken); err != nil {
		t.Fatal(err)
	}
	s := New(db, log, Config{Version: "test", Engine: dialer.New(db, nil, dialer.NewAgents(), dialer.Config{}, log), PasswordCost: cheapPasswordCost()})
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	e := &apiEnv{srv: srv, server: s, db: db, dbPath: path}
	decode[map[string]any](t, e.send(t, "POST", "/api/v1/campaigns", testAdminToken,
		`{"name":"before","caller_id":"+551130000000"}`), http.StatusCreated)
	// A supervisor signed in through the pages: the session half of the readers.
	sup, _ := e.createUser(t, "supervisor1", storage.RoleSupervisor)
	e.setPassword(t, sup.ID, testPassword)
	cookie := &http.Cookie{Name: sessionCookie, Value: e.browser(t).login(sup.Username).cookie(sessionCookie)}

	call := func(method, path, body string, auth func(*http.Request)) (int, http.Header, []byte, time.Duration, error) {
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, err := http.NewRequest(method, srv.URL+path, rd)
		if err != nil {
			return 0, nil, nil, 0, err
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if auth != nil {
			auth(req)
		}
		start := time.Now()
		res, err := srv.Client().Do(req)
		if err != nil {
			return 0, nil, nil, 0, err
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		return res.StatusCode, res.Header, b, time.Since(start), err
	}
	byToken := func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+testAdminToken) }
	bySession := func(r *http.Request) { r.AddCookie(cookie) }
	waitReady := func(want int, within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		for {
			status, _, body, _, err := call("GET", "/readyz", "", nil)
			if err == nil && status == want {
				return time.Since(start)
			}
			if time.Since(start) > within {
				t.Fatalf("/readyz %d %s %v, want %d within %s", status, body, err, want, within)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitReady(http.StatusOK, 5*time.Second)

	hold := lockDrillHold(t)
	release := holdWriteLock(t, path)
	locked := time.Now()
	// The probe fails within its interval plus the bounded wait.
	if took := waitReady(http.StatusServiceUnavailable, 5*time.Second); took > 200*time.Millisecond+bound+2*time.Second {
		t.Errorf("/readyz took %s to say not ready", took)
	}

	var (
		mu     sync.Mutex
		reads  []time.Duration
		writes []time.Duration
		fails  []string
	)
	fail := func(f string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(fails) < 10 {
			fails = append(fails, fmt.Sprintf(f, args...))
		}
	}
	until := locked.Add(hold)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			auth := byToken
			if i%2 == 1 {
				auth = bySession
			}
			for n := 0; n < 100_000 && time.Now().Before(until); n++ {
				path := []string{"/api/v1/campaigns", "/api/v1/me"}[n%2]
				status, _, body, took, err := call("GET", path, "", auth)
				if err != nil || status != http.StatusOK {
					fail("GET %s: %d %s %v", path, status, body, err)
					return
				}
				mu.Lock()
				reads = append(reads, took)
				mu.Unlock()
			}
		})
	}
	wg.Go(func() {
		for n := 0; n < 1000 && time.Now().Before(until.Add(-bound)); n++ {
			status, h, body, took, err := call("POST", "/api/v1/campaigns", `{"name":"during","caller_id":"+551130000000"}`, byToken)
			var eb struct{ Error apiErrorBody }
			json.Unmarshal(body, &eb)
			if err != nil || status != http.StatusServiceUnavailable || eb.Error.Code != "storage_unavailable" || h.Get("Retry-After") == "" {
				fail("POST during the lock: %d %s Retry-After %q %v, want 503 storage_unavailable with Retry-After", status, body, h.Get("Retry-After"), err)
				return
			}
			mu.Lock()
			writes = append(writes, took)
			mu.Unlock()
		}
	})
	wg.Wait()
	for _, f := range fails {
		t.Error(f)
	}
	if status, _, body, _, _ := call("GET", "/readyz", "", nil); status != http.StatusServiceUnavailable {
		t.Errorf("/readyz at the end of the lock: %d %s, want 503", status, body)
	}
	release()
	waitReady(http.StatusOK, 5*time.Second)
	if status, _, body, _, err := call("POST", "/api/v1/campaigns", `{"name":"after","caller_id":"+551130000000"}`, byToken); status != http.StatusCreated {
		t.Fatalf("POST after the lock: %d %s %v", status, body, err)
	}

	if len(reads) < 100 || len(writes) < 2 {
		t.Fatalf("%d reads and %d writes during the lock: too few to judge", len(reads), len(writes))
	}
	slices.Sort(reads)
	slices.Sort(writes)
	p99 := reads[len(reads)*99/100]
	t.Logf("BENCH locked database for %s: %d reads p50 %s p99 %s max %s; %d writes refused, slowest %s (bound %s)",
		hold, len(reads), reads[len(reads)/2], p99, reads[len(reads)-1], len(writes), writes[len(writes)-1], bound)
	if p99 > 100*time.Millisecond {
		t.Errorf("p99 of reads during the lock %s, want ≤ 100 ms", p99)
	}
	// The bound, plus a generous margin for a loaded machine.
	if slow := writes[len(writes)-1]; slow > bound+2*time.Second {
		t.Errorf("a refused write took %s, want about the bound of %s", slow, bound)
	}
	// Last use of the token and session is written once the lock is gone: a few
	// flushes later, both are there.
	deadline := time.Now().Add(5 * time.Second)
	for {
		toks, err := db.ListTokens(ctx, 1)
		if err == nil && len(toks) > 0 && toks[0].LastUsedAt != nil && toks[0].LastUsedAt.After(locked) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the admin token's last use was not written after the lock: %+v %v", toks, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := logs.count("refuses writes"); n != 1 {
		t.Errorf("%d log lines for the start of the outage, want 1:\n%s", n, logs)
	}
	if n := logs.count("takes writes again"); n != 1 {
		t.Errorf("%d log lines for its end, want 1:\n%s", n, logs)
	}
}
