// Package testenv lets tests that drive real external programs (sipp, baresip,
// chromium, sqlite3) find them, and decides what happens when one is missing: a
// skip on a developer's machine, a failure in CI, where `make test` installs them.
// Output collects what such a program prints while the test reads it.
package testenv

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"sync"
	"testing"
)

// InCI reports whether the tests run under CI (CI=true), where nothing may be skipped.
func InCI() bool { return os.Getenv("CI") == "true" }

// RequireTool returns the path of the named program, or ends the test: a failure in
// CI, a skip elsewhere, with the package that provides it named in the message.
func RequireTool(t testing.TB, name, debianPackage string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	msg := name + " not found: install the Debian package " + debianPackage + " (make test does)"
	if InCI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// Output collects what a program under test prints: its process writes while
// the test reads, so every access holds the lock.
type Output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p; it is the program's stdout and stderr.
func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

// String is everything written so far.
func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// LogWriter returns a writer for a test's slog handler that sends each line to
// t.Log until the test's cleanup, then drops it: a SIP stack's goroutines may
// still log after Close returns, and t.Log after the test has ended is a data
// race. Make it before starting what logs to it, so that its cleanup runs after
// that one's Close.
func LogWriter(t testing.TB) io.Writer {
	w := &logWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return w
}

type logWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(string(bytes.TrimRight(p, "\n")))
	}
	return len(p), nil
}
