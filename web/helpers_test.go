package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/turbina-dialer/turbina/dialer"
	"github.com/turbina-dialer/turbina/dialer/whatsapp"
	"github.com/turbina-dialer/turbina/dialer/whatsapp/emulator"
	"github.com/turbina-dialer/turbina/internal/pgtest"
	"github.com/turbina-dialer/turbina/storage"
)

// testAdminToken plays TURBINA_ADMIN_TOKEN in the tests.
const testAdminToken = "test-admin-token-0123456789"

// apiEnv is a real server on loopback over a real SQLite file, with one user and
// token per role.
type apiEnv struct {
	srv    *httptest.Server
	server *Server
	db     *storage.DB
	dbPath string // the database's DSN: a SQLite file or a PostgreSQL URL
	users  map[storage.Role]storage.User
	tokens map[storage.Role]string
}

// newEnv starts a server with cfg (zero fields take New's defaults) and signs up a
// supervisor, a sales user and an agent through the API itself.
func newEnv(t *testing.T, cfg Config) *apiEnv {
	t.Helper()
	return newEnvOver(t, cfg, nil)
}

// newEnvWithEngine is newEnv with the engine built over the test's database.
func newEnvWithEngine(t *testing.T, engine func(*storage.DB) Engine) *apiEnv {
	t.Helper()
	return newEnvOver(t, Config{}, engine)
}

func newEnvOver(t *testing.T, cfg Config, engine func(*storage.DB) Engine) *apiEnv {
	t.Helper()
	return newEnvAt(t, filepath.Join(t.TempDir(), "turbina.db"), cfg, engine)
}

// newEnvAt is newEnvOver on the database dsn (a SQLite file or a PostgreSQL URL).
func newEnvAt(t *testing.T, dsn string, cfg Config, engine func(*storage.DB) Engine) *apiEnv {
	t.Helper()
	e := serverAt(t, dsn, cfg, engine)
	e.users, e.tokens = map[storage.Role]storage.User{}, map[storage.Role]string{storage.RoleAdmin: testAdminToken}
	me := decode[struct{ User storage.User }](t, e.get(t, "/api/v1/me", testAdminToken), http.StatusOK)
	e.users[storage.RoleAdmin] = me.User
	for _, role := range []storage.Role{storage.RoleSupervisor, storage.RoleSales, storage.RoleAgent} {
		u, tok := e.createUser(t, string(role)+"1", role)
		e.users[role], e.tokens[role] = u, tok
	}
	return e
}

// otherNode is another server on e's database, with its own connections, as a
// second `turbina serve` would be: e's users and tokens work on it.
func (e *apiEnv) otherNode(t *testing.T, cfg Config, engine func(*storage.DB) Engine) *apiEnv {
	t.Helper()
	o := serverAt(t, e.dbPath, cfg, engine)
	o.users, o.tokens = e.users, e.tokens
	return o
}

// testClusterTokenKey is the API tokens' key of the test nodes on one
// PostgreSQL database.
const testClusterTokenKey = "token key shared by the test's nodes"

// pg is the PostgreSQL server the package's multi-node tests share, started by
// the first of them; TestMain stops it. Each test gets a database of its own.
var pg pgtest.Shared

// clusterDatabase returns the URL of a new PostgreSQL database at the latest
// schema, for the nodes of one test: a copy of one migrated once, which is
// quicker than a server of the test's own and every migration applied again.
func clusterDatabase(t *testing.T) string {
	t.Helper()
	return pg.DatabaseFrom(t, "web_migrated", func(url string) error {
		db, err := storage.Open(context.Background(), url, storage.Options{TokenKey: []byte(testClusterTokenKey)})
		if err != nil {
			return err
		}
		return db.Close()
	})
}

// serverAt opens the database dsn and serves it with cfg, without users.
func serverAt(t *testing.T, dsn string, cfg Config, engine func(*storage.DB) Engine) *apiEnv {
	t.Helper()
	ctx := context.Background()
	// Every node of one PostgreSQL database shares its token key (a SQLite
	// file makes its own beside it).
	var opts storage.Options
	if strings.HasPrefix(dsn, "postgres") {
		opts.TokenKey = []byte(testClusterTokenKey)
	}
	db, err := storage.Open(ctx, dsn, opts)
	if err != nil {
		t.Fatalf("open database: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := EnsureAdmin(ctx, db, testAdminToken); err != nil {
		t.Fatalf("ensure admin: %v", err)
	}
	if cfg.Version == "" {
		cfg.Version = "test"
	}
	// Warnings and errors go to the test's output, which is shown when it fails.
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	if engine != nil {
		cfg.Engine = engine(db)
	}
	if cfg.Engine == nil {
		// A real engine with no channels: its agent pool and controls work; nothing dials.
		cfg.Engine = dialer.New(db, nil, dialer.NewAgents(), dialer.Config{}, log)
	}
	s := New(db, log, cfg)
	srv := httptest.NewServer(s)
	// Registered after the database's cleanup, so it runs first: no handler is
	// left using a closed database or logging after the test.
	t.Cleanup(srv.Close)

	return &apiEnv{srv: srv, server: s, db: db, dbPath: dsn}
}

// createUser makes a user through the API and returns it with a token of its own.
func (e *apiEnv) createUser(t *testing.T, username string, role storage.Role) (storage.User, string) {
	t.Helper()
	u := decode[storage.User](t, e.send(t, "POST", "/api/v1/users", testAdminToken,
		map[string]any{"username": username, "display_name": "User " + username, "role": role}), http.StatusCreated)
	return u, e.newToken(t, u.ID, testAdminToken)
}

// newToken creates an API token for user id, asked by the holder of as.
func (e *apiEnv) newToken(t *testing.T, id int64, as string) string {
	t.Helper()
	tok := decode[struct {
		storage.Token
		Secret string `json:"token"`
	}](t, e.send(t, "POST", fmt.Sprintf("/api/v1/users/%d/tokens", id), as, map[string]string{"name": "test"}), http.StatusCreated)
	if !strings.HasPrefix(tok.Secret, tokenPrefix) {
		t.Fatalf("token secret %q lacks the %q prefix", tok.Secret, tokenPrefix)
	}
	return tok.Secret
}

// apiResponse is a response read whole.
type apiResponse struct {
	method, path string
	status       int
	header       http.Header
	body         []byte
}

func (r apiResponse) String() string {
	return fmt.Sprintf("%s %s → %d %s", r.method, r.path, r.status, bytes.TrimSpace(r.body))
}

// request is one call to make.
type request struct {
	method, path, token string
	body                io.Reader
	contentType         string
	// chunked hides the body's length, so the client sends it chunked.
	chunked bool
	// header holds more request headers.
	header http.Header
}

// onlyReader hides every method of a reader but Read, so net/http cannot learn
// its length.
type onlyReader struct{ io.Reader }

func (e *apiEnv) do(t *testing.T, rq request) apiResponse {
	t.Helper()
	body := rq.body
	if rq.chunked && body != nil {
		body = onlyReader{body}
	}
	req, err := http.NewRequest(rq.method, e.srv.URL+rq.path, body)
	if err != nil {
		t.Fatalf("%s %s: %v", rq.method, rq.path, err)
	}
	if rq.chunked {
		req.ContentLength = -1
	}
	for k, v := range rq.header {
		req.Header[k] = v
	}
	if rq.token != "" {
		req.Header.Set("Authorization", "Bearer "+rq.token)
	}
	if rq.contentType != "" {
		req.Header.Set("Content-Type", rq.contentType)
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", rq.method, rq.path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", rq.method, rq.path, err)
	}
	return apiResponse{method: rq.method, path: rq.path, status: res.StatusCode, header: res.Header, body: b}
}

func (e *apiEnv) get(t *testing.T, path, token string) apiResponse {
	t.Helper()
	return e.do(t, request{method: "GET", path: path, token: token})
}

// send makes a call with v as its JSON body; a nil v sends no body, and a string
// or []byte is sent as it is, still labelled JSON.
func (e *apiEnv) send(t *testing.T, method, path, token string, v any) apiResponse {
	t.Helper()
	rq := request{method: method, path: path, token: token}
	switch v := v.(type) {
	case nil:
	case string:
		rq.body, rq.contentType = strings.NewReader(v), "application/json"
	case []byte:
		rq.body, rq.contentType = bytes.NewReader(v), "application/json"
	default:
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		rq.body, rq.contentType = bytes.NewReader(b), "application/json"
	}
	return e.do(t, rq)
}

// upload posts a CSV file.
func (e *apiEnv) upload(t *testing.T, path, token, csv string) apiResponse {
	t.Helper()
	return e.do(t, request{method: "POST", path: path, token: token, body: strings.NewReader(csv), contentType: "text/csv"})
}

// decode checks the status and content type of r and decodes its JSON body.
func decode[T any](t *testing.T, r apiResponse, status int) T {
	t.Helper()
	var v T
	if r.status != status {
		t.Fatalf("%v: want status %d", r, status)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%v: Content-Type %q, want application/json", r, ct)
	}
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("%v: decode: %v", r, err)
	}
	return v
}

// apiErrorBody is the error shape every failure must have.
type apiErrorBody struct {
	Code    string            `json:"code"`
	Message string            `json:"message"`
	Fields  map[string]string `json:"fields"`
	Reason  string            `json:"reason"`
}

// wantError checks that r is the JSON error {"error":{"code","message"}} with the
// status and code given, and returns it.
func wantError(t *testing.T, r apiResponse, status int, code string) apiErrorBody {
	t.Helper()
	if r.status != status {
		t.Fatalf("%v: want status %d", r, status)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%v: Content-Type %q, want application/json", r, ct)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(r.body, &top); err != nil {
		t.Fatalf("%v: not JSON: %v", r, err)
	}
	if len(top) != 1 || top["error"] == nil {
		t.Fatalf("%v: want an object with the single key \"error\"", r)
	}
	var e apiErrorBody
	dec := json.NewDecoder(bytes.NewReader(top["error"]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("%v: error object: %v", r, err)
	}
	if e.Code != code {
		t.Fatalf("%v: code %q, want %q", r, e.Code, code)
	}
	if e.Message == "" {
		t.Fatalf("%v: empty message", r)
	}
	return e
}

// campaignView is a campaign as the API returns it.
type campaignView struct {
	ID             string `json:"id"`
	Name           string `json:"name"`
	CallerID       string `json:"caller_id"`
	DefaultCountry string `json:"default_country"`
	State          string `json:"state"`
	Schedule       struct {
		Open, Close, Timezone string
	} `json:"schedule"`
	Window struct {
		Start string `json:"start"`
		End   string `json:"end"`
	} `json:"calling_window"`
	Ladder []struct {
		Channel     string `json:"channel"`
		MaxAttempts int    `json:"max_attempts"`
		RetryDelay  string `json:"retry_delay"`
		Template    string `json:"template"`
		Language    string `json:"language"`
	} `json:"ladder"`
	Pacing pacingView `json:"pacing"`
}

type pacingView struct {
	Mode          string  `json:"mode"`
	TargetAbandon float64 `json:"target_abandon"`
	MaxRatio      float64 `json:"max_ratio"`
	MaxInFlight   int     `json:"max_in_flight"`
	// RingTimeout and MinRingTimeout are duration text as the API writes it.
	RingTimeout    string `json:"ring_timeout"`
	MinRingTimeout string `json:"min_ring_timeout"`
}

// startableLadder names the template a campaign needs before it may start.
var startableLadder = []map[string]any{
	{"channel": "sip", "max_attempts": 2, "retry_delay": "10m"},
	{"channel": "whatsapp_call", "max_attempts": 1, "retry_delay": "1h"},
	{"channel": "whatsapp_template", "max_attempts": 1, "template": "follow_up", "language": "pt_BR"},
}

// createCampaign makes a startable campaign as the sales user.
func (e *apiEnv) createCampaign(t *testing.T, name string) campaignView {
	t.Helper()
	return decode[campaignView](t, e.send(t, "POST", "/api/v1/campaigns", e.tokens[storage.RoleSales], map[string]any{
		"name": name, "default_country": "BR", "caller_id": "+551130000000", "ladder": startableLadder,
	}), http.StatusCreated)
}

// action posts a lifecycle action and returns the response.
func (e *apiEnv) action(t *testing.T, id, action string, role storage.Role) apiResponse {
	t.Helper()
	return e.do(t, request{method: "POST", path: "/api/v1/campaigns/" + id + "/" + action, token: e.tokens[role]})
}

// importReport is the answer to a contact import.
type importReport struct {
	ImportID      string `json:"import_id"`
	State         string `json:"state"`
	Imported      int    `json:"imported"`
	RejectedCount int    `json:"rejected_count"`
	Rejected      []struct {
		Line   int    `json:"line"`
		Reason string `json:"reason"`
	} `json:"rejected"`
}

// rejections renders the rejected rows as "line:reason" for comparison.
func (r importReport) rejections() []string {
	out := []string{}
	for _, rej := range r.Rejected {
		out = append(out, fmt.Sprintf("%d:%s", rej.Line, rej.Reason))
	}
	return out
}

func (e *apiEnv) importCSV(t *testing.T, campaignID, csv string) importReport {
	t.Helper()
	return decode[importReport](t, e.upload(t, "/api/v1/campaigns/"+campaignID+"/contacts", e.tokens[storage.RoleSales], csv), http.StatusOK)
}

type contactView struct {
	ID         string            `json:"id"`
	CampaignID string            `json:"campaign_id"`
	Phone      string            `json:"phone"`
	WhatsApp   string            `json:"whatsapp"`
	Name       string            `json:"name"`
	Status     string            `json:"status"`
	Line       int               `json:"line"`
	Attributes map[string]string `json:"attributes"`
}

type contactList struct {
	Contacts []contactView `json:"contacts"`
	Total    int           `json:"total"`
}

func (e *apiEnv) contacts(t *testing.T, campaignID, query string) contactList {
	t.Helper()
	return decode[contactList](t, e.get(t, "/api/v1/campaigns/"+campaignID+"/contacts"+query, e.tokens[storage.RoleSales]), http.StatusOK)
}

// phones lists the contacts' numbers in order.
func (l contactList) phones() []string {
	out := []string{}
	for _, c := range l.Contacts {
		out = append(out, c.Phone)
	}
	return out
}

// startWhatsApp starts the WhatsApp Cloud API emulator (app secret "secret") with
// templates, and a client of it built with opts (media for calls, a logger).
func startWhatsApp(t *testing.T, log *slog.Logger, templates []emulator.Template, opts ...whatsapp.Option) (*emulator.Emulator, *whatsapp.Client) {
	t.Helper()
	emu, err := emulator.Start(context.Background(), emulator.Config{AccessToken: "tok", AppSecret: "secret", PhoneNumberID: "1", WABAID: "2",
		Templates: templates, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	client, err := whatsapp.NewClient(whatsapp.Config{BaseURL: emu.URL(), AccessToken: "tok", PhoneNumberID: "1", WABAID: "2"}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return emu, client
}
