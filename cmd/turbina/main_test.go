package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/demo"
	"github.com/turbina-dialer/turbina/storage"
	"github.com/turbina-dialer/turbina/web"
)

// binary is the turbina command built once for the tests that run it as a process.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "turbina-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "turbina")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build turbina:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running turbina process.
type proc struct {
	cmd    *exec.Cmd
	url    string
	mu     sync.Mutex
	output strings.Builder
	done   chan struct{}
}

func (p *proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.output.String()
}

var listeningLine = regexp.MustCompile(`url=(http://127\.0\.0\.1:\d+)`)

// start runs turbina with args and env and waits until it listens.
func start(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), append([]string{"TURBINA_HTTP_ADDR=127.0.0.1:0"}, env...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = cmd.Stderr
	p := &proc{cmd: cmd, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.output.WriteString(line + "\n")
			p.mu.Unlock()
			if m := listeningLine.FindStringSubmatch(line); m != nil {
				select {
				case urls <- m[1]:
				default:
				}
			}
		}
		cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
	})
	select {
	case p.url = <-urls:
		return p
	case <-p.done:
		t.Fatalf("turbina exited before listening:\n%s", p.Output())
	case <-time.After(30 * time.Second):
		t.Fatalf("turbina did not listen within 30 s:\n%s", p.Output())
	}
	return nil
}

// stop sends SIGTERM and waits for a clean exit. A process still draining its
// calls 12 s later (engine.drain_timeout is 2 minutes unless a test sets it)
// gets the second signal, which stops it at once, the calls left ended and
// recorded interrupted, as an operator's second Ctrl-C does.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(12 * time.Second):
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			t.Fatalf("turbina did not stop within 15 s of a second SIGTERM:\n%s", tail(p.Output(), 30))
		}
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("turbina exited with %d:\n%s", code, p.Output())
	}
}

// call makes an API request and decodes the JSON answer into out (when not nil).
func call(t *testing.T, method, url, token, contentType string, body io.Reader, wantStatus int, out any) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantStatus {
		t.Fatalf("%s %s: status %d, want %d: %s", method, url, resp.StatusCode, wantStatus, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, url, b, err)
		}
	}
}

func TestVersion(t *testing.T) {
	out, err := exec.Command(binary, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "turbina ") {
		t.Fatalf("version: %q, %v", out, err)
	}
	if out, err := exec.Command(binary, "bogus").CombinedOutput(); err == nil || !strings.Contains(string(out), "unknown command") {
		t.Fatalf("unknown command accepted: %q", out)
	}
}

var firstStartToken = regexp.MustCompile(`admin API token.*\n\s*\n\s*(tb_[A-Za-z0-9_-]+)`)

func TestRestartKeepsEverything(t *testing.T) {
	dataDir := t.TempDir()
	env := []string{"TURBINA_DATA_DIR=" + dataDir, "TURBINA_ADMIN_TOKEN="}

	p := start(t, env, "serve")
	m := firstStartToken.FindStringSubmatch(p.Output())
	if m == nil {
		t.Fatalf("first start printed no admin token:\n%s", p.Output())
	}
	token := m[1]
	var c struct{ ID string }
	call(t, "POST", p.url+"/api/v1/campaigns", token, "application/json",
		strings.NewReader(`{"name":"Cobrança","default_country":"BR","caller_id":"+551130000000","ladder":[{"channel":"sip","max_attempts":2,"retry_delay":"1h"},{"channel":"whatsapp_template","max_attempts":1,"template":"cobranca","language":"pt_BR","params":["name"]}]}`), 201, &c)
	csv := "nome;telefone;plano\r\nJoão;(11) 98765-4321;Fibra\r\nMaria;011 98765-4322;Móvel\r\n"
	var rep struct{ Imported int }
	call(t, "POST", p.url+"/api/v1/campaigns/"+c.ID+"/contacts", token, "text/csv", strings.NewReader(csv), 200, &rep)
	if rep.Imported != 2 {
		t.Fatalf("imported %d, want 2", rep.Imported)
	}
	call(t, "POST", p.url+"/api/v1/dnc", token, "application/json", strings.NewReader(`{"phones":["+5521987654321"]}`), 200, nil)
	call(t, "POST", p.url+"/api/v1/campaigns/"+c.ID+"/start", token, "", nil, 200, nil)
	p.stop(t)

	p = start(t, env, "serve")
	if strings.Contains(p.Output(), "admin API token") {
		t.Errorf("second start printed a new admin token:\n%s", p.Output())
	}
	var got struct {
		State string
		Name  string
	}
	call(t, "GET", p.url+"/api/v1/campaigns/"+c.ID, token, "", nil, 200, &got)
	if got.State != "running" || got.Name != "Cobrança" {
		t.Errorf("campaign after restart: %+v", got)
	}
	var contacts struct {
		Total    int
		Contacts []struct{ Phone, Name string }
	}
	call(t, "GET", p.url+"/api/v1/campaigns/"+c.ID+"/contacts", token, "", nil, 200, &contacts)
	if contacts.Total != 2 || contacts.Contacts[0].Name != "João" || contacts.Contacts[1].Phone != "+5511987654322" {
		t.Errorf("contacts after restart: %+v", contacts)
	}
	var dnc struct{ Total int }
	call(t, "GET", p.url+"/api/v1/dnc", token, "", nil, 200, &dnc)
	if dnc.Total != 1 {
		t.Errorf("global do-not-call entries after restart: %d", dnc.Total)
	}
	p.stop(t)

	// An admin token from the environment works alongside, and replaces an earlier one.
	envToken := "env-admin-token-0123456789"
	p = start(t, []string{"TURBINA_DATA_DIR=" + dataDir, "TURBINA_ADMIN_TOKEN=" + envToken}, "serve")
	call(t, "GET", p.url+"/api/v1/campaigns/"+c.ID, envToken, "", nil, 200, nil)
	p.stop(t)
	p = start(t, []string{"TURBINA_DATA_DIR=" + dataDir, "TURBINA_ADMIN_TOKEN=another-env-token-987654321"}, "serve")
	call(t, "GET", p.url+"/api/v1/campaigns/"+c.ID, envToken, "", nil, 401, nil)
	call(t, "GET", p.url+"/api/v1/campaigns/"+c.ID, "another-env-token-987654321", "", nil, 200, nil)
}

func TestDemoLoadsSampleCampaign(t *testing.T) {
	p := start(t, []string{"TURBINA_DATA_DIR=" + t.TempDir()}, "demo", "--duration", "20s")
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(p.Output(), "supervisor") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	m := regexp.MustCompile(`(?m)^\s+supervisor\s+demo-supervisor\s+demo-\S{8}\s+(tb_\S+)`).FindStringSubmatch(p.Output())
	if m == nil {
		t.Fatalf("demo printed no supervisor login:\n%s", p.Output())
	}
	var list struct {
		Campaigns []struct{ ID, Name string }
	}
	call(t, "GET", p.url+"/api/v1/campaigns", m[1], "", nil, 200, &list)
	if len(list.Campaigns) != 1 || list.Campaigns[0].Name != demo.CampaignName {
		t.Fatalf("demo campaigns: %+v", list)
	}
	var contacts struct{ Total int }
	call(t, "GET", p.url+"/api/v1/campaigns/"+list.Campaigns[0].ID+"/contacts?limit=1", m[1], "", nil, 200, &contacts)
	if contacts.Total != 300 {
		t.Errorf("demo campaign has %d contacts, want 300", contacts.Total)
	}
	p.stop(t)
}

// TestKillDuringImport kills the server with SIGKILL while a large import streams in,
// then checks that the database is intact and holds only whole batches.
func TestKillDuringImport(t *testing.T) {
	dataDir := t.TempDir()
	token := "kill-test-admin-token-000000"
	env := []string{"TURBINA_DATA_DIR=" + dataDir, "TURBINA_ADMIN_TOKEN=" + token}
	p := start(t, env, "serve")
	var c struct{ ID string }
	call(t, "POST", p.url+"/api/v1/campaigns", token, "application/json",
		strings.NewReader(`{"name":"big","caller_id":"+551130000000"}`), 201, &c)

	pr, pw := io.Pipe()
	go func() {
		w := bufio.NewWriter(pw)
		fmt.Fprint(w, "name,phone\n")
		for i := range 2_000_000 {
			if _, err := fmt.Fprintf(w, "Cliente %d,+5511%d\n", i, 960000000+i); err != nil {
				return
			}
		}
		w.Flush()
		pw.Close()
	}()
	uploadDone := make(chan struct{})
	go func() {
		defer close(uploadDone)
		req, _ := http.NewRequest("POST", p.url+"/api/v1/campaigns/"+c.ID+"/contacts", pr)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "text/csv")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var page struct{ Total int }
		call(t, "GET", p.url+"/api/v1/campaigns/"+c.ID+"/contacts?limit=1", token, "", nil, 200, &page)
		if page.Total >= 20_000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("import reached only %d rows in 60 s", page.Total)
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.cmd.Process.Kill()
	<-p.done
	pr.CloseWithError(io.ErrClosedPipe)
	<-uploadDone

	checkImportConsistent(t, filepath.Join(dataDir, "turbina.db"))

	p = start(t, env, "serve")
	var im struct {
		State    string
		Imported int
		Error    string
	}
	call(t, "GET", p.url+"/api/v1/imports/1", token, "", nil, 200, &im)
	if im.State != "failed" || !strings.Contains(im.Error, "interrupted") || im.Imported < 20_000 {
		t.Errorf("import after restart: %+v", im)
	}
	var page struct{ Total int }
	call(t, "GET", p.url+"/api/v1/campaigns/"+c.ID+"/contacts?limit=1", token, "", nil, 200, &page)
	if page.Total != im.Imported {
		t.Errorf("%d contacts after restart, import record says %d", page.Total, im.Imported)
	}
	p.stop(t)
}

func checkImportConsistent(t *testing.T, dbPath string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := storage.Open(ctx, dbPath, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.IntegrityCheck(ctx); err != nil {
		t.Fatal(err)
	}
	im, err := db.GetImport(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if im.State != "running" {
		t.Fatalf("import state %q right after the kill, want running", im.State)
	}
	if im.Imported == 0 || im.Rejected != 0 {
		t.Fatalf("import record after the kill: %+v", im)
	}
	// Batches commit whole and in file order, each with the import's running count:
	// the rows stored are exactly the first Imported rows of the file.
	first, total, err := db.ListContacts(ctx, im.CampaignID, storage.ContactFilter{ImportID: im.ID, Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	last, _, err := db.ListContacts(ctx, im.CampaignID, storage.ContactFilter{ImportID: im.ID, Limit: 1, Offset: total - 1})
	if err != nil {
		t.Fatal(err)
	}
	if total != im.Imported || first[0].Line != 2 || last[0].Line != total+1 {
		t.Errorf("%d contacts stored (lines %d to %d), import record says %d", total, first[0].Line, last[0].Line, im.Imported)
	}
}

// TestExampleConfigLoads keeps docs/config.example.json a file turbina accepts.
func TestExampleConfigLoads(t *testing.T) {
	cfg, err := parseConfig("serve", defaultConfig(), []string{"--config", "../../docs/config.example.json"},
		func(string) string { return "" }, io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.SIP.Trunks) != 2 || cfg.SIP.Trunks[1].Transport != "tls" || cfg.SIP.TLSCertFile == "" || cfg.SIP.ListenTLS == "" || len(cfg.SIP.Trunks[0].Responses) != 1 ||
		cfg.SIP.Trunks[0].Responses[0].Action != "retry_later" || cfg.Engine.Patience.Std() != 2*time.Second ||
		cfg.Engine.MaxAbandon != 0.03 || len(cfg.HTTP.TrustedProxies) != 1 {
		t.Errorf("example config read as %+v", cfg)
	}
}

// TestConfigHTTPLimits: the http section becomes the server's limits; a wrong
// setting is refused naming it.
func TestConfigHTTPLimits(t *testing.T) {
	for _, tt := range []struct {
		name, section, env, wantErr string
		check                       func(web.Limits) bool
	}{
		{"defaults", `{}`, "", "", func(l web.Limits) bool { return len(l.TrustedProxies) == 0 && l.BodyTimeout == 0 }},
		{"settings", `{"trusted_proxies":["10.0.0.0/8","::1"],"client_ip_header":"Forwarded","body_timeout":"5s","upload_min_bytes_per_second":8192,"max_anonymous_requests":50,"login_per_user":5}`, "",
			"", func(l web.Limits) bool {
				return len(l.TrustedProxies) == 2 && l.TrustedProxies[1].String() == "::1/128" && l.ClientIPHeader == "Forwarded" &&
					l.BodyTimeout == 5*time.Second && l.UploadMinRate == 8192 && l.MaxAnonymous == 50 && l.LoginPerUser == 5
			}},
		{"proxies from the environment win", `{"trusted_proxies":["10.0.0.0/8"]}`, "192.0.2.1, 192.0.2.0/28", "", func(l web.Limits) bool {
			return len(l.TrustedProxies) == 2 && l.TrustedProxies[0].String() == "192.0.2.1/32"
		}},
		{"bad proxy", `{"trusted_proxies":["10.0.0.0/8","proxy.local"]}`, "", "http.trusted_proxies[1]", nil},
		{"bad header", `{"client_ip_header":"X-Real-IP"}`, "", "http.client_ip_header", nil},
		{"negative timeout", `{"body_timeout":"-1s"}`, "", "http.body_timeout", nil},
		{"negative count", `{"max_anonymous_requests":-1}`, "", "http.max_anonymous_requests", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, ok := parseSectionEnv(t, "http", tt.section, map[string]string{"TURBINA_TRUSTED_PROXIES": tt.env}, tt.wantErr)
			if !ok {
				return
			}
			l, err := cfg.HTTP.limits()
			if err != nil || !tt.check(l) {
				t.Errorf("limits %+v, %v", l, err)
			}
		})
	}
}

// TestConfigMaxAbandon: engine.max_abandon out of range is refused naming the key.
func TestConfigMaxAbandon(t *testing.T) {
	for _, tt := range []struct {
		value string
		ok    bool
	}{{"0.05", true}, {"0.2", true}, {"0.21", false}, {"-0.01", false}, {"1", false}} {
		t.Run(tt.value, func(t *testing.T) {
			wantErr := ""
			if !tt.ok {
				wantErr = "engine.max_abandon"
			}
			cfg, ok := parseSection(t, "engine", `{"max_abandon":`+tt.value+`}`, wantErr)
			if ok && fmt.Sprint(cfg.Engine.MaxAbandon) != tt.value {
				t.Errorf("max_abandon %s read as %v", tt.value, cfg.Engine.MaxAbandon)
			}
		})
	}
}

// TestConfigWhatsAppDurations: whatsapp.in_doubt_window (absent: 0, the
// engine's default of 1h; a negative one refused) and whatsapp.call_settle_wait
// (absent: 0, the client's default of 20s; within 1s and 5min) are read as
// durations, and a value out of bounds is refused naming its key.
func TestConfigWhatsAppDurations(t *testing.T) {
	inDoubt := func(c config) time.Duration { return c.WhatsApp.InDoubtWindow.Std() }
	settle := func(c config) time.Duration { return c.WhatsApp.CallSettleWait.Std() }
	for _, tt := range []struct {
		section string
		read    func(config) time.Duration
		want    time.Duration
		wantErr string
	}{
		{`{}`, inDoubt, 0, ""},
		{`{"in_doubt_window":"3s"}`, inDoubt, 3 * time.Second, ""},
		{`{"in_doubt_window":"2h"}`, inDoubt, 2 * time.Hour, ""},
		{`{"in_doubt_window":"-1s"}`, inDoubt, 0, "whatsapp.in_doubt_window"},
		{`{}`, settle, 0, ""},
		{`{"call_settle_wait":"1s"}`, settle, time.Second, ""},
		{`{"call_settle_wait":"45s"}`, settle, 45 * time.Second, ""},
		{`{"call_settle_wait":"5m"}`, settle, 5 * time.Minute, ""},
		{`{"call_settle_wait":"500ms"}`, settle, 0, "whatsapp.call_settle_wait"},
		{`{"call_settle_wait":"5m1s"}`, settle, 0, "whatsapp.call_settle_wait"},
		{`{"call_settle_wait":"-1s"}`, settle, 0, "whatsapp.call_settle_wait"},
	} {
		t.Run(tt.section, func(t *testing.T) {
			cfg, ok := parseSection(t, "whatsapp", tt.section, tt.wantErr)
			if ok && tt.read(cfg) != tt.want {
				t.Errorf("%s: read %v, want %v", tt.section, tt.read(cfg), tt.want)
			}
		})
	}
}

func TestConfigPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "turbina.json")
	if err := os.WriteFile(file, []byte(`{"http_addr":"127.0.0.1:1111","log_level":"warn","data_dir":"/from/file",
		"database_url":"postgres://file@db/turbina"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"TURBINA_CONFIG": file, "TURBINA_HTTP_ADDR": "127.0.0.1:2222", "TURBINA_ADMIN_TOKEN": "from-env",
		"TURBINA_DATABASE_URL": "postgres://env:secret@db/turbina", "TURBINA_TOKEN_KEY": strings.Repeat("k", storage.MinTokenKeyLen)}
	getenv := func(k string) string { return env[k] }
	cfg, err := parseConfig("serve", defaultConfig(), []string{"--http-addr", "127.0.0.1:3333"}, getenv, io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, got, want string }{
		{"flag over env", cfg.HTTPAddr, "127.0.0.1:3333"},
		{"file over default", cfg.LogLevel, "warn"},
		{"file", cfg.DataDir, "/from/file"},
		{"default", cfg.LogFormat, "text"},
		{"admin token from env", cfg.AdminToken, "from-env"},
		{"database URL: env over file", cfg.Database(), "postgres://env:secret@db/turbina"},
		{"database URL logged without its password", cfg.DatabaseForLog(), "postgres://env:xxxxx@db/turbina"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, tc.got, tc.want)
		}
	}
	for _, bad := range [][]string{{"--log-format", "xml"}, {"--max-body-bytes", "-1"}, {"extra-arg"}, {"--database-url", "mysql://db/turbina"}} {
		if _, err := parseConfig("serve", defaultConfig(), bad, getenv, io.Discard, nil); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	if err := os.WriteFile(file, []byte(`{"http_adr":"typo"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := parseConfig("serve", defaultConfig(), nil, getenv, io.Discard, nil); err == nil || !strings.Contains(err.Error(), "http_adr") {
		t.Errorf("misspelt config key: %v", err)
	}
}

// TestConfigTokenTTL: http.token_ttl out of its bounds is refused naming the
// key; absent, tokens take web.DefaultTokenTTL.
func TestConfigTokenTTL(t *testing.T) {
	for _, tt := range []struct {
		section string
		want    time.Duration // 0: refused
	}{
		{`{}`, web.DefaultTokenTTL},
		{`{"token_ttl":"48h"}`, 48 * time.Hour},
		{`{"token_ttl":"1h"}`, time.Hour},
		{`{"token_ttl":"8784h"}`, web.MaxTokenTTL},
		{`{"token_ttl":"90s"}`, 0},
		{`{"token_ttl":"8785h"}`, 0},
		{`{"token_ttl":"-24h"}`, 0},
	} {
		t.Run(tt.section, func(t *testing.T) {
			wantErr := ""
			if tt.want == 0 {
				wantErr = "http.token_ttl"
			}
			cfg, ok := parseSection(t, "http", tt.section, wantErr)
			if !ok {
				return
			}
			if got, err := cfg.HTTP.tokenTTL(); err != nil || got != tt.want {
				t.Errorf("token TTL %s, %v; want %s", got, err, tt.want)
			}
		})
	}
}

// TestConfigPasswordCost: http.password_cost takes web.DefaultPasswordCost
// for an absent field, and a cost below web.MinPasswordCost, or one the server
// could not verify, is refused naming the key.
func TestConfigPasswordCost(t *testing.T) {
	for _, tt := range []struct {
		name, section string
		want          web.PasswordCost
		wantErr       string
	}{
		{"absent", `{}`, web.PasswordCost{Time: 3, MemoryKiB: 65536, Threads: 2}, ""},
		{"memory only", `{"password_cost":{"memory_kib":131072}}`, web.PasswordCost{Time: 3, MemoryKiB: 131072, Threads: 2}, ""},
		{"the minimum", `{"password_cost":{"time":2,"memory_kib":19456,"threads":1}}`, web.MinPasswordCost(), ""},
		{"one pass", `{"password_cost":{"time":1}}`, web.PasswordCost{}, "http.password_cost.time 1: must be at least 2"},
		{"little memory", `{"password_cost":{"memory_kib":64}}`, web.PasswordCost{}, "http.password_cost.memory_kib"},
		{"more passes than verified", `{"password_cost":{"time":21}}`, web.PasswordCost{}, "http.password_cost.time"},
		{"more memory than verified", `{"password_cost":{"memory_kib":2097152}}`, web.PasswordCost{}, "http.password_cost.memory_kib"},
		{"misspelt", `{"password_cost":{"memory":65536}}`, web.PasswordCost{}, "memory"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, ok := parseSection(t, "http", tt.section, tt.wantErr)
			if !ok {
				return
			}
			if got, err := cfg.HTTP.passwordCost(); err != nil || got != tt.want {
				t.Errorf("password cost %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// TestConfigTokenKey: the API tokens' key comes from TURBINA_TOKEN_KEY or
// http.token_key_file, never both; a short one is refused naming where it came
// from; a PostgreSQL database without one is refused (its nodes must share it),
// a SQLite one makes its own (nil here).
func TestConfigTokenKey(t *testing.T) {
	dir := t.TempDir()
	key := strings.Repeat("a1", storage.MinTokenKeyLen/2)
	keyFile, shortFile := filepath.Join(dir, "token.key"), filepath.Join(dir, "short.key")
	for f, content := range map[string]string{keyFile: key + "\n", shortFile: "abc\n"} {
		if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	const pg = "postgres://turbina@db/turbina"
	for _, tt := range []struct {
		name          string
		env, file, db string
		want          string // the key, or "" for none
		wantErr       string
	}{
		{name: "SQLite, none: the server makes its own"},
		{name: "from the environment", env: key, db: pg, want: key},
		{name: "from a file, its newline not part of it", file: keyFile, db: pg, want: key},
		{name: "both", env: key, file: keyFile, wantErr: "not both"},
		{name: "short in the environment", env: "abc", wantErr: "TURBINA_TOKEN_KEY"},
		{name: "short in the file", file: shortFile, wantErr: "http.token_key_file"},
		{name: "missing file", file: filepath.Join(dir, "absent"), wantErr: "http.token_key_file"},
		{name: "PostgreSQL without one", db: pg, wantErr: "the same on every node"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"TURBINA_TOKEN_KEY": tt.env, "TURBINA_DATABASE_URL": tt.db}
			cfg := defaultConfig()
			cfg.HTTP.TokenKeyFile = tt.file
			cfg, err := parseConfig("serve", cfg, nil, func(k string) string { return env[k] }, io.Discard, nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one naming %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got, err := cfg.tokenKey(); err != nil || string(got) != tt.want {
				t.Errorf("key %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestServeKeepsTheTokenKeyOutsideTheDatabase: a SQLite server makes its
// tokens' key in a 0600 file of its data directory on the first start; the first
// start's admin token works after a restart; a start with another key is refused
// naming the key, rather than turning every token away.
func TestServeKeepsTheTokenKeyOutsideTheDatabase(t *testing.T) {
	dataDir := t.TempDir()
	env := []string{"TURBINA_DATA_DIR=" + dataDir}
	p := start(t, env, "serve")
	token := regexp.MustCompile(`\btb_[0-9a-f]+_\S+`).FindString(p.Output())
	if token == "" {
		t.Fatalf("no admin token printed at the first start:\n%s", p.Output())
	}
	p.stop(t)
	st, err := os.Stat(filepath.Join(dataDir, storage.TokenKeyFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v; want it made 0600", st, err)
	}
	p = start(t, env, "serve")
	call(t, "GET", p.url+"/api/v1/campaigns", token, "", nil, 200, nil)
	p.stop(t)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "serve")
	cmd.Env = append(os.Environ(), append(env, "TURBINA_HTTP_ADDR=127.0.0.1:0", "TURBINA_TOKEN_KEY="+strings.Repeat("b", 64))...)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "not the key this database's API tokens were made under") {
		t.Errorf("a start with another token key: %v\n%s", err, out)
	}
}

// TestTokenTTLFromConfig: a server started with http.token_ttl gives that expiry
// to a token made without one, and to the admin's token from the environment.
func TestTokenTTLFromConfig(t *testing.T) {
	const ttl = 48 * time.Hour
	file := filepath.Join(t.TempDir(), "turbina.json")
	if err := os.WriteFile(file, []byte(`{"http":{"token_ttl":"48h"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	admin := "env-admin-token-ttl-0123456789"
	before := time.Now()
	p := start(t, []string{"TURBINA_DATA_DIR=" + t.TempDir(), "TURBINA_CONFIG=" + file, "TURBINA_ADMIN_TOKEN=" + admin}, "serve")
	var me struct{ User struct{ ID string } }
	call(t, "GET", p.url+"/api/v1/me", admin, "", nil, 200, &me)
	var made struct {
		ExpiresAt time.Time `json:"expires_at"`
	}
	call(t, "POST", p.url+"/api/v1/users/"+me.User.ID+"/tokens", admin, "application/json",
		strings.NewReader(`{"name":"ci"}`), 201, &made)
	after := time.Now()
	inTTL := func(what string, at time.Time) {
		t.Helper()
		// The server's clock is this machine's; a second's margin covers rounding.
		if at.Before(before.Add(ttl).Add(-time.Second)) || at.After(after.Add(ttl).Add(time.Second)) {
			t.Errorf("%s expires at %s, want %s after its creation (between %s and %s)", what, at, ttl, before.Add(ttl), after.Add(ttl))
		}
	}
	inTTL("a new token", made.ExpiresAt)
	var list struct {
		Tokens []struct {
			Name      string
			ExpiresAt time.Time `json:"expires_at"`
		}
	}
	call(t, "GET", p.url+"/api/v1/users/"+me.User.ID+"/tokens", admin, "", nil, 200, &list)
	found := false
	for _, tok := range list.Tokens {
		if tok.Name == "TURBINA_ADMIN_TOKEN" {
			found = true
			inTTL("the admin's token", tok.ExpiresAt)
		}
	}
	if !found {
		t.Errorf("the admin's token is not listed: %+v", list.Tokens)
	}
	p.stop(t)
}

// parseSection parses the serve configuration from a file holding body as its
// section key. With wantErr set, parsing must fail naming it, and ok is false;
// otherwise an error fails the test.
func parseSection(t *testing.T, key, body, wantErr string) (cfg config, ok bool) {
	t.Helper()
	return parseSectionEnv(t, key, body, nil, wantErr)
}

// parseSectionEnv is parseSection with env's variables set as well.
func parseSectionEnv(t *testing.T, key, body string, env map[string]string, wantErr string) (cfg config, ok bool) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "turbina.json")
	if err := os.WriteFile(file, []byte(`{"`+key+`":`+body+`}`), 0o600); err != nil {
		t.Fatal(err)
	}
	getenv := func(k string) string {
		if k == "TURBINA_CONFIG" {
			return file
		}
		return env[k]
	}
	cfg, err := parseConfig("serve", defaultConfig(), nil, getenv, io.Discard, nil)
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("error %v, want one naming %s", err, wantErr)
		}
		return cfg, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return cfg, true
}

// TestConfigInbound: the inbound queue's settings reach the engine's config; a
// wrong one is refused naming its key.
func TestConfigInbound(t *testing.T) {
	for _, tt := range []struct {
		name, section, wantErr string
	}{
		{"settings", `{"inbound_campaign":7,"inbound_max_wait":"45s"}`, ""},
		{"negative campaign", `{"inbound_campaign":-1}`, "engine.inbound_campaign"},
		{"negative wait", `{"inbound_max_wait":"-1s"}`, "engine.inbound_max_wait"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, ok := parseSection(t, "engine", tt.section, tt.wantErr)
			if !ok {
				return
			}
			if cfg.Engine.InboundCampaign != 7 || cfg.Engine.InboundMaxWait.Std() != 45*time.Second {
				t.Errorf("engine %+v", cfg.Engine)
			}
		})
	}
}

// TestConfigDrainTimeout: engine.drain_timeout defaults to 2 minutes and is
// refused, naming the key, outside its bounds.
func TestConfigDrainTimeout(t *testing.T) {
	for _, tt := range []struct {
		name, section string
		want          time.Duration
		wantErr       string
	}{
		{"absent", `{}`, 2 * time.Minute, ""},
		{"set", `{"drain_timeout":"45s"}`, 45 * time.Second, ""},
		{"negative", `{"drain_timeout":"-1s"}`, 0, "engine.drain_timeout -1s: must be between 1s and 1h0m0s"},
		{"too short", `{"drain_timeout":"10ms"}`, 0, "engine.drain_timeout"},
		{"too long", `{"drain_timeout":"2h"}`, 0, "engine.drain_timeout"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, ok := parseSection(t, "engine", tt.section, tt.wantErr)
			if !ok {
				return
			}
			if got, err := cfg.Engine.drainTimeout(); err != nil || got != tt.want {
				t.Errorf("drain timeout %s, %v; want %s", got, err, tt.want)
			}
		})
	}
}

// TestConfigCluster: the cluster section's lease timings and advertised
// address are taken, and timings that cannot keep a lease are refused with the
// key named.
func TestConfigCluster(t *testing.T) {
	for _, tt := range []struct {
		name, section, wantErr string
	}{
		{"settings", `{"lease_ttl":"9s","renew_every":"3s","advertise_url":"http://10.0.0.7:8080"}`, ""},
		{"renew after expiry", `{"lease_ttl":"2s","renew_every":"2s"}`, "cluster.renew_every"},
		{"renew above the default ttl", `{"renew_every":"7s"}`, "cluster.lease_ttl"},
		{"negative ttl", `{"lease_ttl":"-1s"}`, "cluster.lease_ttl"},
		{"address without scheme", `{"advertise_url":"10.0.0.7:8080"}`, "cluster.advertise_url"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, ok := parseSection(t, "cluster", tt.section, tt.wantErr)
			if !ok {
				return
			}
			cl := cfg.dialerCluster()
			if cl.LeaseTTL != 9*time.Second || cl.RenewEvery != 3*time.Second || cl.Node.Addr != "http://10.0.0.7:8080" || cl.Shared {
				t.Errorf("cluster %+v from %+v", cl, cfg.Cluster)
			}
		})
	}
}
