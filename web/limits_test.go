package web

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/turbina-dialer/turbina/storage"
)

// serveLimited serves e's server from a real http.Server built by HTTPServer, as
// turbina serve does, and returns its address.
func serveLimited(t *testing.T, e *apiEnv) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := e.server.HTTPServer(nil)
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	return ln.Addr().String()
}

// rawRequest opens a connection and sends a request's head (and the start of its
// body); the caller sends the rest, if ever.
func rawRequest(t *testing.T, addr, method, path string, header map[string]string, body string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, path, addr)
	for k, v := range header {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	b.WriteString("\r\n" + body)
	if _, err := io.WriteString(conn, b.String()); err != nil {
		t.Fatal(err)
	}
	return conn
}

// readAnswer reads the response on conn, waiting at most wait, and reports
// whether the server then closed the connection.
func readAnswer(t *testing.T, conn net.Conn, wait time.Duration) (*http.Response, bool) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(wait))
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer within %s: %v", wait, err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err = br.ReadByte()
	// A reset is a close too: the kernel sends one when the server closes with
	// bytes the client kept sending still unread.
	return res, err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
}

// dribble sends a body of spaces (valid so far as JSON or a form) one byte every gap, at most n bytes, until the connection
// fails or the test ends.
func dribble(t *testing.T, conn net.Conn, gap time.Duration, n int) {
	t.Helper()
	stop := make(chan struct{})
	done := make(chan struct{})
	t.Cleanup(func() { close(stop); <-done })
	go func() {
		defer close(done)
		tick := time.NewTicker(gap)
		defer tick.Stop()
		for range n {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if _, err := conn.Write([]byte(" ")); err != nil {
				return
			}
		}
	}()
}

// TestSlowBodyIsCut sends bodies a byte at a time: the server answers 408 and
// closes the connection once the body timeout has been spent waiting, not before.
func TestSlowBodyIsCut(t *testing.T) {
	const bodyTimeout = time.Second
	e := newEnv(t, Config{Limits: Limits{BodyTimeout: bodyTimeout}})
	addr := serveLimited(t, e)
	for _, tc := range []struct {
		name, path string
		header     map[string]string
	}{
		{"sign-in form", "/login", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}},
		{"API JSON", "/api/v1/campaigns", map[string]string{"Content-Type": "application/json",
			"Authorization": "Bearer " + e.tokens[storage.RoleSales]}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.header["Content-Length"] = "2000"
			start := time.Now()
			conn := rawRequest(t, addr, "POST", tc.path, tc.header, "")
			dribble(t, conn, 100*time.Millisecond, 150)
			res, closed := readAnswer(t, conn, 10*time.Second)
			took := time.Since(start)
			if res.StatusCode != http.StatusRequestTimeout || !closed {
				t.Fatalf("answer %d, closed %v; want 408 and the connection closed", res.StatusCode, closed)
			}
			if took < bodyTimeout*9/10 || took > bodyTimeout+5*time.Second {
				t.Errorf("cut after %s, want about the body timeout %s", took, bodyTimeout)
			}
		})
	}
}

// TestIdleAndHeaderTimeouts: a kept-alive connection that sends no new request
// is closed after the idle timeout, not before; one that never finishes its
// request's headers is closed after the header timeout, unanswered.
func TestIdleAndHeaderTimeouts(t *testing.T) {
	const idle, header = 800 * time.Millisecond, 600 * time.Millisecond
	e := newEnv(t, Config{Limits: Limits{IdleTimeout: idle, ReadHeaderTimeout: header}})
	addr := serveLimited(t, e)
	t.Run("idle", func(t *testing.T) {
		conn := rawRequest(t, addr, "GET", "/healthz", nil, "")
		br := bufio.NewReader(conn)
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		answered := time.Now()
		if res.StatusCode != http.StatusOK || res.Close {
			t.Fatalf("healthz %d, close %t: want 200 on a kept-alive connection", res.StatusCode, res.Close)
		}
		conn.SetReadDeadline(time.Now().Add(idle + 5*time.Second))
		_, err = br.ReadByte()
		took := time.Since(answered)
		if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("the idle connection is still open %s after its answer (%v), want it closed after %s", took, err, idle)
		}
		if took < idle*9/10 || took > idle+3*time.Second {
			t.Errorf("idle connection closed %s after its answer, want about %s", took, idle)
		}
	})
	t.Run("headers never finished", func(t *testing.T) {
		start := time.Now()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n"); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(header + 5*time.Second))
		b, err := io.ReadAll(conn)
		took := time.Since(start)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("a request with unfinished headers is still held %s later, want it closed after %s", took, header)
		}
		if strings.Contains(string(b), "200 OK") {
			t.Errorf("a request with unfinished headers was answered: %q", b)
		}
		if took < header*9/10 || took > header+3*time.Second {
			t.Errorf("closed %s after the headers began, want about %s", took, header)
		}
	})
}

// TestDeclaredBodyThatNeverArrives declares huge bodies and sends 9 bytes: a
// declared length beyond a route's limit is refused at once, and an upload that
// stalls is cut after its rate window, its connection closed and nothing imported.
func TestDeclaredBodyThatNeverArrives(t *testing.T) {
	const window = time.Second
	e := newEnv(t, Config{Limits: Limits{UploadWindow: window, UploadMinRate: 1 << 10}})
	addr := serveLimited(t, e)
	c := e.createCampaign(t, "Stalled")
	sales := "Bearer " + e.tokens[storage.RoleSales]
	for _, tc := range []struct {
		name, path string
		header     map[string]string
		want       int
		within     time.Duration
	}{
		{"CSV import", "/api/v1/campaigns/" + c.ID + "/contacts",
			map[string]string{"Content-Type": "text/csv", "Authorization": sales}, http.StatusRequestTimeout, window + 5*time.Second},
		{"sign-in form", "/login",
			map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, http.StatusRequestEntityTooLarge, 5 * time.Second},
		{"API JSON", "/api/v1/campaigns",
			map[string]string{"Content-Type": "application/json", "Authorization": sales}, http.StatusRequestEntityTooLarge, 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.header["Content-Length"] = fmt.Sprint(1 << 30)
			start := time.Now()
			conn := rawRequest(t, addr, "POST", tc.path, tc.header, "phone\n+55")
			res, closed := readAnswer(t, conn, 15*time.Second)
			if res.StatusCode != tc.want || !closed {
				t.Fatalf("answer %d, closed %v; want %d and the connection closed", res.StatusCode, closed, tc.want)
			}
			if took := time.Since(start); took > tc.within {
				t.Errorf("answered after %s, want within %s", took, tc.within)
			}
		})
	}
	if list := e.contacts(t, c.ID, ""); list.Total != 0 {
		t.Errorf("a stalled upload imported %d contacts", list.Total)
	}
}

// pacedReader gives chunk bytes every gap.
type pacedReader struct {
	r     io.Reader
	chunk int
	gap   time.Duration
}

func (p *pacedReader) Read(b []byte) (int, error) {
	time.Sleep(p.gap)
	return p.r.Read(b[:min(len(b), p.chunk)])
}

// TestUploadKeepingPaceIsNotCut sends a CSV slowly but above the minimum rate,
// for several windows: it is imported whole.
func TestUploadKeepingPaceIsNotCut(t *testing.T) {
	e := newEnv(t, Config{Limits: Limits{UploadWindow: 500 * time.Millisecond, UploadMinRate: 1 << 10}})
	c := e.createCampaign(t, "Paced")
	var csv strings.Builder
	csv.WriteString("phone\n")
	const rows = 250
	for i := range rows {
		fmt.Fprintf(&csv, "+55119876%05d\n", i)
	}
	// About 2.4 KiB a second, twice the minimum, for about 1.6 s: three windows.
	r := e.do(t, request{method: "POST", path: "/api/v1/campaigns/" + c.ID + "/contacts", token: e.tokens[storage.RoleSales],
		body: &pacedReader{r: strings.NewReader(csv.String()), chunk: 120, gap: 50 * time.Millisecond}, contentType: "text/csv", chunked: true})
	rep := decode[importReport](t, r, http.StatusOK)
	if rep.Imported != rows {
		t.Fatalf("imported %d of %d rows: %+v", rep.Imported, rows, rep)
	}
}

// TestStreamsOutliveWriteTimeout holds an event stream and an agent's WebSocket
// open for several write timeouts: both keep delivering.
func TestStreamsOutliveWriteTimeout(t *testing.T) {
	const writeTimeout = 500 * time.Millisecond
	e := newEnv(t, Config{Limits: Limits{WriteTimeout: writeTimeout}})
	addr := serveLimited(t, e)
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()

	t.Run("server-sent events", func(t *testing.T) {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/api/v1/wallboard/stream", nil)
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("Authorization", "Bearer "+e.tokens[storage.RoleSupervisor])
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		start := time.Now()
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		late := 0
		for late < 2 && sc.Scan() {
			if sc.Text() == "event: snapshot" && time.Since(start) > 3*writeTimeout {
				late++
			}
		}
		if late < 2 {
			t.Fatalf("the stream ended after %s (%v), want snapshots after %s", time.Since(start), sc.Err(), 3*writeTimeout)
		}
	})

	t.Run("agent WebSocket", func(t *testing.T) {
		conn, _, err := websocket.Dial(ctx, "ws://"+addr+"/api/v1/agent/events?access_token="+e.tokens[storage.RoleAgent], nil)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.CloseNow()
		var first map[string]any
		if err := wsjson.Read(ctx, conn, &first); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * writeTimeout)
		if err := wsjson.Write(ctx, conn, map[string]string{"type": "hello"}); err != nil {
			t.Fatal(err)
		}
		var reply map[string]any
		if err := wsjson.Read(ctx, conn, &reply); err != nil || reply["code"] != "unknown_message" {
			t.Fatalf("after %s the socket answered %v, %v", 3*writeTimeout, reply, err)
		}
	})
}

// raiseFileLimit lifts the soft limit on open files towards want and returns how
// many this process may open.
func raiseFileLimit(t *testing.T, want uint64) uint64 {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur >= want {
		return lim.Cur
	}
	old := lim
	lim.Cur = min(want, lim.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
	return lim.Cur
}

// TestSlowStrangersDoNotStarveTheServer holds 1,000 unauthenticated sign-ins
// whose bodies never finish: beyond the cap they are answered 503 at once and
// their connections closed, while /healthz, /readyz and an authenticated API call
// answer promptly.
func TestSlowStrangersDoNotStarveTheServer(t *testing.T) {
	const maxAnonymous = 64
	clients := 1000
	// Each client holds a socket here and, while held, one in the server.
	if limit := raiseFileLimit(t, 2*uint64(clients)+512); limit < 2*uint64(clients)+512 {
		clients = int(limit-512) / 2
		t.Logf("the open-file limit is %d: %d clients", limit, clients)
	}
	e := newEnv(t, Config{Limits: Limits{MaxAnonymous: maxAnonymous, BodyTimeout: 30 * time.Second}})
	addr := serveLimited(t, e)

	type answer struct {
		status int
		after  time.Duration
	}
	answers := make(chan answer, clients)
	var wg sync.WaitGroup
	conns := make([]net.Conn, 0, clients)
	for range clients {
		start := time.Now()
		conn := rawRequest(t, addr, "POST", "/login", map[string]string{
			"Content-Type": "application/x-www-form-urlencoded", "Content-Length": "100"}, "u")
		conns = append(conns, conn)
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn.SetReadDeadline(time.Now().Add(20 * time.Second))
			res, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				return // held, until the test closes it
			}
			res.Body.Close()
			answers <- answer{res.StatusCode, time.Since(start)}
		}()
	}
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
		wg.Wait()
	})

	// While they are held, the server still answers those it must.
	token := e.tokens[storage.RoleSupervisor]
	for _, path := range []string{"/healthz", "/readyz", "/api/v1/me", "/api/v1/campaigns"} {
		for range 3 {
			req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
			req.Header.Set("Authorization", "Bearer "+token)
			var firstByte time.Duration
			start := time.Now()
			req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
				GotFirstResponseByte: func() { firstByte = time.Since(start) },
			}))
			c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			res, err := c.Do(req)
			if err != nil {
				t.Fatalf("GET %s with %d slow clients held: %v", path, clients, err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusOK || firstByte > 2*time.Second {
				t.Errorf("GET %s: %d after %s with %d slow clients held, want 200 within 2s", path, res.StatusCode, firstByte, clients)
			}
		}
	}

	// Every client beyond the cap was turned away at once.
	deadline := time.After(15 * time.Second)
	busy := 0
	var slowest time.Duration
	for busy < clients-maxAnonymous {
		select {
		case a := <-answers:
			if a.status != http.StatusServiceUnavailable {
				t.Fatalf("a slow stranger got %d after %s, want 503", a.status, a.after)
			}
			busy++
			slowest = max(slowest, a.after)
		case <-deadline:
			t.Fatalf("%d of %d slow strangers beyond the cap of %d were turned away", busy, clients-maxAnonymous, maxAnonymous)
		}
	}
	if got := metricValue(t, e.get(t, "/metrics", "").body, "turbina_http_busy_total", `class="anonymous"`); got < float64(busy) {
		t.Errorf("turbina_http_busy_total counted %v of %d turned away", got, busy)
	}
	if slowest > 5*time.Second {
		t.Errorf("the slowest 503 came %s after its request, want at once", slowest)
	}
}
