// Package testenv lets tests that drive real external programs (sipp, baresip,
// chromium, sqlite3) find them, and decides what happens when one is missing: a
// skip on a developer's machine, a failure in CI, where `make test` installs them.
package testenv

import (
	"os"
	"os/exec"
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
