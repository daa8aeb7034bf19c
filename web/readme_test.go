package web

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// readmeHost is the address the README's examples are written for.
const readmeHost = "http://127.0.0.1:8080"

// readmeCurls is every curl command in the README's sh blocks, continuation lines
// joined, in order.
func readmeCurls(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, block := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(string(b), -1) {
		joined := strings.ReplaceAll(block[1], "\\\n", " ")
		for _, line := range strings.Split(joined, "\n") {
			if line = strings.TrimSpace(line); strings.HasPrefix(line, "curl ") {
				out = append(out, line)
			}
		}
	}
	return out
}

// runCurl runs cmd with sh in dir, with T the token and the README's address
// replaced by base, and returns the HTTP status and body.
func runCurl(t *testing.T, dir, base, token, cmd string) (int, string) {
	t.Helper()
	cmd = strings.ReplaceAll(cmd, readmeHost, base)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The status goes on a line of its own after the body.
	sh := exec.CommandContext(ctx, "sh", "-c", cmd+` -sS -w '\n%{http_code}'`)
	sh.Dir = dir
	sh.Env = append(os.Environ(), "T="+token)
	var stderr bytes.Buffer
	sh.Stderr = &stderr
	out, err := sh.Output()
	if err != nil {
		t.Fatalf("%s: %v: %s", cmd, err, stderr.String())
	}
	s := string(out)
	i := strings.LastIndexByte(s, '\n')
	status, err := strconv.Atoi(s[i+1:])
	if err != nil {
		t.Fatalf("%s: no status in %q", cmd, s)
	}
	return status, s[:i]
}

// TestReadmeExamplesRunAsWritten runs the README's curl examples, as written but for
// the server's address and the token, against a server: each must succeed.
func TestReadmeExamplesRunAsWritten(t *testing.T) {
	// A missing curl fails the test (in CI too): it is the README's tool.
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatalf("curl is needed to run the README's examples: %v", err)
	}
	e := newEnv(t, Config{})
	dir := t.TempDir()
	// The file the README uploads: Windows-1252, ';' and Brazilian numbers, as it says.
	if err := os.WriteFile(filepath.Join(dir, "contatos.csv"), []byte("nome;telefone\nJos\xe9;(11) 98765-4321\nMaria;011 98765-4322\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmds := readmeCurls(t)
	if len(cmds) < 2 {
		t.Fatalf("found %d curl examples in the README, want the campaign and the upload: %q", len(cmds), cmds)
	}
	for _, cmd := range cmds {
		status, body := runCurl(t, dir, e.srv.URL, testAdminToken, cmd)
		if status < 200 || status > 299 {
			t.Errorf("%s\n→ %d %s", cmd, status, body)
		}
	}
	ct := e.contacts(t, "1", "")
	if len(ct.Contacts) != 2 {
		t.Errorf("campaign 1 has %d contacts after the README's upload, want 2", len(ct.Contacts))
	}

	// Without the header, curl -d sends a form: refused, and the answer says how to fix it.
	status, body := runCurl(t, dir, e.srv.URL, testAdminToken,
		`curl -H "Authorization: Bearer $T" -d '{"name":"x","caller_id":"+551130000000"}' `+readmeHost+`/api/v1/campaigns`)
	if status != 415 || !strings.Contains(body, "unsupported_media_type") || !strings.Contains(body, "Content-Type: application/json") {
		t.Errorf("curl -d without a content type: %d %s, want 415 unsupported_media_type saying to send Content-Type: application/json", status, body)
	}
}
