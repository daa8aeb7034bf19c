// Package pgtest runs a throwaway PostgreSQL server (Debian's postgresql
// package) for tests: initdb into a temporary directory, the server listening
// only on a Unix socket there, run as the unprivileged postgres user when the
// tests run as root, killed with the test binary, and a fresh database for each
// test that asks.
package pgtest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the pgx driver, to create and drop databases

	"github.com/turbina-dialer/turbina/internal/testenv"
)

// startWait bounds initdb and the server's start.
const startWait = 60 * time.Second

// ErrNotInstalled is a machine without PostgreSQL's server programs.
var ErrNotInstalled = errors.New("PostgreSQL server not found: install the Debian package postgresql (make test does)")

// Server is one running PostgreSQL server.
type Server struct {
	dir, bin string
	cred     *syscall.Credential
	cmd      *exec.Cmd
	out      *testenv.Output
	done     chan struct{}
	admin    *sql.DB
	n        atomic.Int64
}

// Shared starts one server for a whole test binary, the first time a test asks
// for it; TestMain stops it.
type Shared struct {
	once sync.Once
	srv  *Server
	err  error
	// templates are the template databases made so far, by name.
	mu        sync.Mutex
	templates map[string]error
}

// Database returns the URL of a new, empty database on the shared server,
// dropped when t ends. Without PostgreSQL the test is skipped, or fails in CI.
func (s *Shared) Database(t testing.TB) string {
	t.Helper()
	s.server(t)
	return s.srv.Database(t, "")
}

// server starts the shared server unless it runs, or ends t.
func (s *Shared) server(t testing.TB) {
	t.Helper()
	s.once.Do(func() { s.srv, s.err = Start() })
	if errors.Is(s.err, ErrNotInstalled) && !testenv.InCI() {
		t.Skip(s.err)
	}
	if s.err != nil {
		t.Fatal(s.err)
	}
}

// DatabaseFrom returns the URL of a new database on the shared server copied
// from the template database name, which prepare fills the first time it is
// asked for (given its URL; it must close its connections). Copying a prepared
// schema is quicker than preparing it again for each test.
func (s *Shared) DatabaseFrom(t testing.TB, name string, prepare func(url string) error) string {
	t.Helper()
	s.server(t)
	s.mu.Lock()
	err, done := s.templates[name]
	if !done {
		err = s.srv.createTemplate(name, prepare)
		if s.templates == nil {
			s.templates = map[string]error{}
		}
		s.templates[name] = err
	}
	s.mu.Unlock()
	if err != nil {
		t.Fatalf("template database %s: %v", name, err)
	}
	return s.srv.Database(t, name)
}

// Own starts a server for t alone (one that t stops and starts again), stopped
// when t ends. Without PostgreSQL the test is skipped, or fails in CI.
func Own(t testing.TB) *Server {
	t.Helper()
	s, err := Start()
	if errors.Is(err, ErrNotInstalled) && !testenv.InCI() {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Stop stops the shared server if it was started.
func (s *Shared) Stop() {
	s.once.Do(func() {})
	if s.srv != nil {
		s.srv.Stop()
	}
}

// binDir finds the newest installed PostgreSQL's programs.
func binDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi < vj
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "postgres")); err == nil {
			return dirs[i], nil
		}
	}
	if p, err := exec.LookPath("postgres"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", ErrNotInstalled
}

// Start initialises a cluster in a new temporary directory and starts its
// server on a Unix socket there, tuned for tests (no fsync).
func Start() (*Server, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	// Short: a Unix socket's path has room for about 100 bytes.
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, bin: bin, out: &testenv.Output{}}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root.
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("PostgreSQL runs as an unprivileged user; no postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	s.cred = cred
	ctx, cancel := context.WithTimeout(context.Background(), startWait)
	defer cancel()
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", filepath.Join(dir, "data"), "-U", "postgres", "--auth=trust",
		"--encoding=UTF8", "--locale=C.UTF-8", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	if s.admin, err = sql.Open("pgx", s.URL("postgres")); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := s.run(ctx); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// run starts the server on its directory and waits until it answers.
func (s *Server) run(ctx context.Context) error {
	s.cmd = exec.Command(filepath.Join(s.bin, "postgres"), "-D", filepath.Join(s.dir, "data"), "-k", s.dir, "-c", "listen_addresses=",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=200")
	// The server dies with the test binary, however that ends.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGKILL}
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	s.done = make(chan struct{})
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	go func() { s.cmd.Wait(); close(s.done) }()
	if err := s.waitReady(ctx); err != nil {
		return fmt.Errorf("postgres did not start: %w\n%s", err, s.out.String())
	}
	return nil
}

// Kill stops the server at once, as a crash or a lost host would; Restart
// starts it again with its databases.
func (s *Server) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.done
}

// Restart starts a killed server again. Its children outlive a killed
// postmaster for a moment, holding its shared memory, and a start meanwhile is
// refused: it is tried again until the bound.
func (s *Server) Restart() error {
	ctx, cancel := context.WithTimeout(context.Background(), startWait)
	defer cancel()
	for {
		err := s.run(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitReady polls until the server answers, it exits or ctx ends.
func (s *Server) waitReady(ctx context.Context) error {
	for {
		err := s.admin.PingContext(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-s.done:
			return errors.New("postgres exited")
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %w)", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// URL is the connection URL of database name on the server.
func (s *Server) URL(name string) string {
	return "postgres://postgres@/" + name + "?host=" + url.QueryEscape(s.dir) + "&sslmode=disable"
}

// createTemplate makes the template database name and fills it with prepare.
func (s *Server) createTemplate(name string, prepare func(url string) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		return err
	}
	return prepare(s.URL(name))
}

// Database creates a new database, a copy of template when it is not empty,
// and returns its URL; it is dropped when t ends.
func (s *Server) Database(t testing.TB, template string) string {
	t.Helper()
	name := fmt.Sprintf("t_%d", s.n.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	create := "CREATE DATABASE " + name
	if template != "" {
		// FILE_COPY: a copy of the template's files after a checkpoint, which
		// (without fsync) is quicker than logging each page as WAL_LOG does.
		create += " TEMPLATE " + template + " STRATEGY FILE_COPY"
	}
	if _, err := s.admin.ExecContext(ctx, create); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := s.admin.ExecContext(ctx, "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	return s.URL(name)
}

// Stop kills the server and removes its directory.
func (s *Server) Stop() {
	if s.admin != nil {
		s.admin.Close()
	}
	if s.cmd != nil && s.cmd.Process != nil {
		// SIGQUIT: PostgreSQL's immediate shutdown; the data is thrown away anyway.
		s.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			s.cmd.Process.Kill()
			<-s.done
		}
	}
	os.RemoveAll(s.dir)
}
