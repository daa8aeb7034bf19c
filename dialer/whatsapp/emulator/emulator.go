package emulator

import (
	"bytes"
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/turbina-dialer/turbina/dialer/whatsapp"
)

// Template is a message template the emulated WABA holds.
type Template struct {
	Name     string
	Language string
	// Status is APPROVED, PENDING, REJECTED or PAUSED; only APPROVED can be sent.
	Status   string
	Category string
	// Body is the body text with {{1}} or {{name}} placeholders.
	Body string
	// ParameterFormat is POSITIONAL (default) or NAMED; the listing writes it in
	// upper case as Meta does, whatever case it is given in.
	ParameterFormat string
	// CallPermissionRequest marks a template that carries a call permission
	// request: the user's answer comes back as for the interactive request.
	CallPermissionRequest bool
}

// Config configures [Start].
type Config struct {
	// Addr is the listen address; it must be on loopback. Default 127.0.0.1:0.
	Addr string
	// AccessToken is the bearer token requests must carry.
	AccessToken string
	// AppSecret signs webhooks (X-Hub-Signature-256).
	AppSecret string
	// CallbackURL receives the webhooks; it can also be set later with SetCallbackURL.
	CallbackURL string
	// PhoneNumberID, DisplayPhoneNumber and WABAID identify the business.
	PhoneNumberID      string
	DisplayPhoneNumber string
	WABAID             string
	// Templates are the WABA's templates.
	Templates []Template
	// StatusDelay is the default delay between message statuses (default 10 ms).
	StatusDelay time.Duration
	// FrameInterval is the user's audio packet interval (default 20 ms).
	FrameInterval time.Duration
	// Logger receives the emulator's logs; default discards.
	Logger *slog.Logger
	// RequireAppSecretProof is the app setting "Require App Secret": every call
	// must carry appsecret_proof, the HMAC-SHA256 of its access token keyed
	// with AppSecret, or is refused as Graph refuses it (code 100).
	RequireAppSecretProof bool
	// WebhookRetryFor is how long a webhook refused by the receiver is tried
	// again (default 7 days, as Meta retries), WebhookMaxBackoff the longest
	// wait between tries (default 1 s: Meta's waits grow to hours; a test
	// wants redelivery soon after the receiver is back).
	WebhookRetryFor   time.Duration
	WebhookMaxBackoff time.Duration
	// CallbackPermission is the number's call setting callback_permission_status
	// ENABLED: a user who calls the business gives it temporary permission (7
	// days) to call them, told by a call_permission_reply webhook whose
	// response_source is "automatic" (user-call-permissions, calling/reference).
	CallbackPermission bool
}

// CallAction is what the emulated user does with a business-initiated call.
type CallAction int

// Call actions.
const (
	CallAccept   CallAction = iota // picks up after AnswerAfter
	CallReject                     // declines after AnswerAfter
	CallNoAnswer                   // lets it ring (until RingTimeout or the business terminates)
)

// PermissionAction is how the emulated user answers a call permission request.
type PermissionAction int

// Permission actions.
const (
	PermissionIgnore PermissionAction = iota // no reply
	PermissionGrant
	PermissionDeny
)

// Behaviour scripts the emulated user behind one destination number and Meta's
// behaviour towards requests for it.
type Behaviour struct {
	// Call is what the user does with a call; AnswerAfter is the ringing time.
	Call        CallAction
	AnswerAfter time.Duration
	// RingTimeout ends an unanswered call from Meta's side (0: ring until the
	// business terminates).
	RingTimeout time.Duration
	// HangupAfter makes the user hang up that long after accepting (0: never).
	HangupAfter time.Duration
	// ErrorCode answers every call connect and message send with this Graph error
	// (138006 no permission, 131026 not on WhatsApp, 190 bad token, …).
	ErrorCode int
	// RequirePermission refuses connect with 138006 until the user granted permission
	// through a permission request reply.
	RequirePermission bool
	// Throttle answers the next N requests with code 130429 (HTTP 400, as
	// Meta's error codes table gives it).
	Throttle int
	// PairRateLimit answers the next N requests for this number (after
	// throttles) with 131056, too many messages to one user (HTTP 400).
	PairRateLimit int
	// ServerErrors answers the next N requests (after throttles) with HTTP 500.
	ServerErrors int
	// LostConnectAnswers places the next N calls (the phone rings, the webhooks
	// follow) but answers their connect with HTTP 500, as when Meta fails after
	// placing the call; DroppedConnectAnswers places the next N and closes the
	// connection instead of answering.
	LostConnectAnswers    int
	DroppedConnectAnswers int
	// AcceptedStatusDelay holds the ACCEPTED status back that long after the
	// connect webhook that answers the call (business-initiated-calls: it
	// "will typically arrive after the call has been established").
	AcceptedStatusDelay time.Duration
	// Slow delays every answer.
	Slow time.Duration
	// AnswerDelay makes a message send take effect at once (counted, its status
	// webhooks on their way) and its answer come that much later, as when Meta's
	// answer is slow to come back: a client that goes away meanwhile never
	// learns the wamid of a message that was sent.
	AnswerDelay time.Duration
	// DuplicateWebhooks sends each webhook twice.
	DuplicateWebhooks bool
	// ReorderWebhooks holds RINGING back until after the next call webhook, and sends
	// a call's last status after its terminate.
	ReorderWebhooks bool
	// FailCode makes template sends fail asynchronously: sent, then failed with it.
	FailCode int
	// AsyncErrorCode follows an accepted message send with an out-of-band
	// error of this code at the top of a messages change (no statuses), as
	// Meta reports an asynchronous 130429.
	AsyncErrorCode int
	// StatusDelay overrides Config.StatusDelay; NoRead stops at delivered.
	StatusDelay time.Duration
	NoRead      bool
	// Permission answers call permission requests after PermissionAfter; a grant
	// lasts PermissionExpiry (default 7 days) unless PermissionPermanent.
	Permission          PermissionAction
	PermissionAfter     time.Duration
	PermissionExpiry    time.Duration
	PermissionPermanent bool
}

// Request is one HTTP request the emulator received.
type Request struct {
	Time   time.Time
	Method string
	Path   string
	Query  string
	Body   []byte
	// Status is the HTTP status answered.
	Status int
	// To, Action, Type, CallID and Key are parsed from the body when present (Key is
	// biz_opaque_callback_data).
	To, Action, Type, CallID, Key string
	// ResultID is the wamid or wacid created by an accepted request.
	ResultID string
	// Truncated is set when the request's body did not arrive whole (its client
	// went away while writing it): it was not processed.
	Truncated bool
}

// Emulator is a running emulated Cloud API. Create it with [Start].
type Emulator struct {
	cfg   Config
	log   *slog.Logger
	media *whatsapp.Media
	srv   *http.Server
	ln    net.Listener
	hooks *webhookSender

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// statusScripts counts the message scripts that still have statuses to send.
	statusScripts atomic.Int64

	mu          sync.Mutex
	callbackURL string
	scripts     map[string]*script
	requests    []Request
	calls       map[string]*emuCall
	// perms is each person's call permission and request limits.
	perms map[string]*userPermission
	// lastInbound is when each user last wrote or called: it opens the 24 h
	// customer service window in which service messages may be sent to them.
	lastInbound map[string]time.Time
}

// script is a Behaviour with its remaining throttle and error budgets.
type script struct {
	b            Behaviour
	throttleLeft int
	pairLeft     int
	errorsLeft   int
	lostLeft     int
	droppedLeft  int
}

// Start starts the emulator on cfg.Addr (loopback only).
func Start(ctx context.Context, cfg Config) (*Emulator, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("emulator: addr: %w", err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("emulator: addr %q is not a loopback address", cfg.Addr)
	}
	if cfg.AccessToken == "" || cfg.AppSecret == "" {
		return nil, errors.New("emulator: access token and app secret are required")
	}
	if cfg.PhoneNumberID == "" {
		cfg.PhoneNumberID = "106540352242922"
	}
	if cfg.DisplayPhoneNumber == "" {
		cfg.DisplayPhoneNumber = "15550001234"
	}
	if cfg.WABAID == "" {
		cfg.WABAID = "102290129340398"
	}
	if cfg.StatusDelay <= 0 {
		cfg.StatusDelay = 10 * time.Millisecond
	}
	if cfg.FrameInterval <= 0 {
		cfg.FrameInterval = 20 * time.Millisecond
	}
	if cfg.WebhookRetryFor <= 0 {
		cfg.WebhookRetryFor = MetaWebhookRetryFor
	}
	if cfg.WebhookMaxBackoff <= 0 {
		cfg.WebhookMaxBackoff = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	media, err := whatsapp.NewMedia(whatsapp.MediaConfig{LoopbackOnly: true})
	if err != nil {
		return nil, fmt.Errorf("emulator: %w", err)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("emulator: listen: %w", err)
	}
	ectx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	e := &Emulator{
		cfg: cfg, log: cfg.Logger.With(slog.String("component", "wa-emulator")), media: media, ln: ln,
		ctx: ectx, cancel: cancel, callbackURL: cfg.CallbackURL,
		scripts: make(map[string]*script), calls: make(map[string]*emuCall), perms: make(map[string]*userPermission),
		lastInbound: make(map[string]time.Time),
	}
	e.hooks = newWebhookSender(e)
	e.srv = &http.Server{Handler: http.HandlerFunc(e.serveHTTP), ReadHeaderTimeout: 5 * time.Second}
	e.wg.Add(2)
	go func() {
		defer e.wg.Done()
		if err := e.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			e.log.Error("serve", slog.String("error", err.Error()))
		}
	}()
	go func() {
		defer e.wg.Done()
		e.hooks.run(ectx)
	}()
	return e, nil
}

// URL returns the base URL to give the client as Config.BaseURL.
func (e *Emulator) URL() string { return "http://" + e.ln.Addr().String() }

// PhoneNumberID returns the emulated business phone number ID.
func (e *Emulator) PhoneNumberID() string { return e.cfg.PhoneNumberID }

// WABAID returns the emulated WhatsApp Business Account ID.
func (e *Emulator) WABAID() string { return e.cfg.WABAID }

// SetCallbackURL sets where webhooks are POSTed.
func (e *Emulator) SetCallbackURL(u string) {
	e.mu.Lock()
	e.callbackURL = u
	e.mu.Unlock()
}

// Script sets the behaviour for a destination number (digits, "+" optional).
// Numbers without a script accept calls after 50 ms and deliver messages.
func (e *Emulator) Script(number string, b Behaviour) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.scripts[normalize(number)] = &script{b: b, throttleLeft: b.Throttle, pairLeft: b.PairRateLimit, errorsLeft: b.ServerErrors,
		lostLeft: b.LostConnectAnswers, droppedLeft: b.DroppedConnectAnswers}
}

// Requests returns a copy of every request received, in order.
func (e *Emulator) Requests() []Request {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Request, len(e.requests))
	copy(out, e.requests)
	return out
}

// Accepted counts requests answered 200 whose biz_opaque_callback_data is key: the
// number of times a send with that idempotency key took effect.
func (e *Emulator) Accepted(key string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, r := range e.requests {
		if r.Key == key && r.Status == http.StatusOK {
			n++
		}
	}
	return n
}

// MessageCounts returns how many messages the emulated WhatsApp accepted (each
// one a message the person gets), per recipient (digits) and per correlation
// id (the biz_opaque_callback_data the business attached; "" when none).
func (e *Emulator) MessageCounts() (byTo, byKey map[string]int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	byTo, byKey = map[string]int{}, map[string]int{}
	for _, r := range e.requests {
		if r.Status == http.StatusOK && r.Method == http.MethodPost && strings.HasSuffix(r.Path, "/messages") {
			byTo[r.To]++
			byKey[r.Key]++
		}
	}
	return byTo, byKey
}

// WebhooksDelivered returns how many webhook POSTs the callback answered 2xx.
func (e *Emulator) WebhooksDelivered() int { return e.hooks.delivered() }

// WebhooksPending returns how many webhooks are still to be delivered: queued, being
// posted (its retries included), or still to come from the statuses of messages
// sent. 0 means every webhook so far was delivered or given up.
func (e *Emulator) WebhooksPending() int {
	return e.hooks.pending() + int(e.statusScripts.Load())
}

// Close stops every call, the webhook sender and the server.
func (e *Emulator) Close() error {
	e.cancel()
	e.mu.Lock()
	calls := make([]*emuCall, 0, len(e.calls))
	for _, c := range e.calls {
		calls = append(calls, c)
	}
	e.mu.Unlock()
	for _, c := range calls {
		c.stop()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := e.srv.Shutdown(ctx)
	e.wg.Wait()
	return err
}

func normalize(n string) string { return strings.TrimPrefix(strings.TrimSpace(n), "+") }

// behaviour returns the script for number (nil: defaults).
func (e *Emulator) behaviour(number string) Behaviour {
	e.mu.Lock()
	defer e.mu.Unlock()
	if s := e.scripts[normalize(number)]; s != nil {
		return s.b
	}
	return Behaviour{AnswerAfter: 50 * time.Millisecond}
}

// newID returns a Graph-looking ID with prefix ("wacid", "wamid").
func newID(prefix string) string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return prefix + "." + base64.RawURLEncoding.EncodeToString(b)
}

func newTraceID() string {
	b := make([]byte, 9)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// graphError is an error answer in Graph's shape.
type graphError struct {
	status  int
	code    int
	subcode int
	typ     string
	message string
}

// errorFor is Meta's error answer for code. Statuses and titles are those of the
// Cloud API error codes reference (support/error-codes) and, for 138xxx, of the
// calling troubleshooting reference (calling/troubleshooting, "Calling error codes").
func errorFor(code int) graphError {
	switch code {
	case 190:
		return graphError{http.StatusUnauthorized, 190, 0, "OAuthException", "Invalid OAuth access token - Cannot parse access token"}
	case 130429:
		// The error codes table gives throughput errors HTTP 400, not 429.
		return graphError{http.StatusBadRequest, 130429, 0, "OAuthException", "(#130429) Rate limit hit"}
	case 131056:
		return graphError{http.StatusBadRequest, 131056, 0, "OAuthException", "(#131056) (Business Account, Consumer Account) pair rate limit hit"}
	case 1, 2, 131000, 131016:
		return graphError{http.StatusInternalServerError, code, 0, "OAuthException", "An unknown error has occurred."}
	case 138000:
		return graphError{http.StatusUnauthorized, 138000, 0, "OAuthException", "(#138000) Calling not enabled"}
	case 138006:
		return graphError{http.StatusUnauthorized, 138006, 0, "OAuthException", "(#138006) No approved call permission found"}
	case 131026:
		return graphError{http.StatusBadRequest, 131026, 0, "OAuthException", "(#131026) Message undeliverable"}
	case 132000:
		return graphError{http.StatusBadRequest, 132000, 0, "OAuthException", "(#132000) Number of parameters does not match the expected number of params"}
	case 132001:
		return graphError{http.StatusBadRequest, 132001, 0, "OAuthException", "(#132001) Template name does not exist in the translation"}
	case 131047:
		return graphError{http.StatusBadRequest, 131047, 0, "OAuthException", "(#131047) Re-engagement message"}
	}
	return graphError{http.StatusBadRequest, code, 0, "OAuthException", fmt.Sprintf("(#%d) Error", code)}
}

// title is the error's title: its message without the "(#code) " prefix, as the
// errors[] of a status webhook carry it.
func (g graphError) title() string {
	if _, t, ok := strings.Cut(g.message, ") "); ok && strings.HasPrefix(g.message, "(#") {
		return t
	}
	return g.message
}

// writeError answers g in Graph's error envelope. error_data carries
// messaging_product and details as in the Cloud API error codes reference's sample
// response; error_subcode is left out unless set, the reference calling it
// deprecated and absent from v16.0+ responses.
func (e *Emulator) writeError(w http.ResponseWriter, rec *Request, g graphError) {
	e.writeErrorDetails(w, rec, g, "")
}

// writeErrorDetails is writeError with error_data.details saying more than the
// error's title.
func (e *Emulator) writeErrorDetails(w http.ResponseWriter, rec *Request, g graphError, details string) {
	obj := map[string]any{
		"message": g.message, "type": g.typ, "code": g.code, "fbtrace_id": newTraceID(),
		"error_data": map[string]string{"messaging_product": "whatsapp", "details": cmp.Or(details, g.title())},
	}
	if g.subcode != 0 {
		obj["error_subcode"] = g.subcode
	}
	body, _ := json.Marshal(map[string]any{"error": obj})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(g.status)
	_, _ = w.Write(body)
	rec.Status = g.status
}

func writeJSON(w http.ResponseWriter, rec *Request, v any) {
	body, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
	rec.Status = http.StatusOK
}

// requestBody is the union of the fields the emulator reads from call and message
// requests.
type requestBody struct {
	MessagingProduct string `json:"messaging_product"`
	To               string `json:"to"`
	CallID           string `json:"call_id"`
	Action           string `json:"action"`
	Type             string `json:"type"`
	BizOpaque        string `json:"biz_opaque_callback_data"`
	Session          *struct {
		SDPType string `json:"sdp_type"`
		SDP     string `json:"sdp"`
	} `json:"session"`
	Template *struct {
		Name     string `json:"name"`
		Language struct {
			Code string `json:"code"`
		} `json:"language"`
		Components []struct {
			Type       string `json:"type"`
			Parameters []struct {
				Type          string `json:"type"`
				ParameterName string `json:"parameter_name"`
				Text          string `json:"text"`
			} `json:"parameters"`
		} `json:"components"`
	} `json:"template"`
	Interactive *struct {
		Type string `json:"type"`
	} `json:"interactive"`
}

func (e *Emulator) serveHTTP(w http.ResponseWriter, r *http.Request) {
	rec := Request{Time: time.Now(), Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery}
	defer func() {
		e.mu.Lock()
		e.requests = append(e.requests, rec)
		e.mu.Unlock()
	}()
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		// Cut short (the client went away mid-request): nothing of it is processed.
		rec.Truncated = true
		e.writeError(w, &rec, graphError{http.StatusBadRequest, 100, 0, "OAuthException", "Invalid request body"})
		return
	}
	rec.Body = body
	var rb requestBody
	bodyErr := error(nil)
	if r.Method == http.MethodPost {
		// Parsed before the auth check so refused requests are recorded with their key.
		bodyErr = json.Unmarshal(body, &rb)
		rec.To, rec.Action, rec.Type, rec.CallID, rec.Key = normalize(rb.To), rb.Action, rb.Type, rb.CallID, rb.BizOpaque
	}
	if r.Header.Get("Authorization") != "Bearer "+e.cfg.AccessToken {
		e.writeError(w, &rec, errorFor(190))
		return
	}
	if g, bad := e.checkProof(r); bad {
		e.writeError(w, &rec, g)
		return
	}
	// Paths are /{version}/{node}/{edge}.
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) != 3 || !strings.HasPrefix(parts[0], "v") {
		e.writeError(w, &rec, graphError{http.StatusBadRequest, 100, 33, "GraphMethodException", "Unsupported request - method type: " + strings.ToLower(r.Method)})
		return
	}
	node, edge := parts[1], parts[2]
	switch {
	case r.Method == http.MethodGet && node == e.cfg.WABAID && edge == "message_templates":
		e.listTemplates(w, r, &rec)
		return
	case r.Method == http.MethodGet && node == e.cfg.PhoneNumberID && edge == "call_permissions":
		e.callPermissions(w, r.URL.Query(), &rec)
		return
	case r.Method == http.MethodPost && node == e.cfg.PhoneNumberID && (edge == "calls" || edge == "messages"):
	default:
		e.writeError(w, &rec, graphError{http.StatusBadRequest, 100, 33, "GraphMethodException", fmt.Sprintf("Unsupported %s request. Object with ID '%s' does not exist", strings.ToLower(r.Method), node)})
		return
	}
	if bodyErr != nil {
		e.writeError(w, &rec, graphError{http.StatusBadRequest, 100, 0, "OAuthException", "(#100) Invalid JSON"})
		return
	}
	if rb.MessagingProduct != "whatsapp" {
		e.writeError(w, &rec, graphError{http.StatusBadRequest, 100, 0, "OAuthException", "(#100) The parameter messaging_product is required."})
		return
	}
	number := rec.To
	if number == "" && rb.CallID != "" {
		number = e.callNumber(rb.CallID)
	}
	b := e.behaviour(number)
	if b.Slow > 0 {
		select {
		case <-time.After(b.Slow):
		case <-r.Context().Done():
			rec.Status = 499
			return
		}
	}
	if code := e.takeFault(number); code != 0 {
		e.writeError(w, &rec, errorFor(code))
		return
	}
	if edge == "calls" {
		e.handleCall(w, &rec, rb, b)
		return
	}
	e.handleMessage(r.Context(), w, &rec, rb, b)
}

// takeFault spends one unit of the number's throttle or 5xx budget.
func (e *Emulator) takeFault(number string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.scripts[number]
	if s == nil {
		return 0
	}
	if s.throttleLeft > 0 {
		s.throttleLeft--
		return 130429
	}
	if s.pairLeft > 0 {
		s.pairLeft--
		return 131056
	}
	if s.errorsLeft > 0 {
		s.errorsLeft--
		return 131000
	}
	return 0
}

func (e *Emulator) handleMessage(ctx context.Context, w http.ResponseWriter, rec *Request, rb requestBody, b Behaviour) {
	if rec.To == "" {
		e.writeError(w, rec, graphError{http.StatusBadRequest, 100, 0, "OAuthException", "(#100) The parameter to is required."})
		return
	}
	if b.ErrorCode != 0 {
		e.writeError(w, rec, errorFor(b.ErrorCode))
		return
	}
	switch rb.Type {
	case "template":
		if rb.Template == nil {
			e.writeError(w, rec, graphError{http.StatusBadRequest, 100, 0, "OAuthException", "(#100) The parameter template is required."})
			return
		}
		t, ok := e.template(rb.Template.Name, rb.Template.Language.Code)
		if !ok || t.Status != "APPROVED" {
			e.writeError(w, rec, errorFor(132001))
			return
		}
		if details, bad := checkBodyParams(t, rb); bad {
			e.writeErrorDetails(w, rec, errorFor(132000), details)
			return
		}
	case "interactive", "text":
		if rb.Type == "interactive" && rb.Interactive == nil {
			e.writeError(w, rec, graphError{http.StatusBadRequest, 100, 0, "OAuthException", "(#100) The parameter interactive is required."})
			return
		}
		// Service messages (free-form text, interactive messages such as a call
		// permission request) go only inside the 24 h customer service window
		// that the user's last message or call opened.
		e.mu.Lock()
		last, wrote := e.lastInbound[rec.To]
		e.mu.Unlock()
		if !wrote || time.Since(last) > 24*time.Hour {
			e.writeError(w, rec, errorFor(131047))
			return
		}
	default:
		e.writeError(w, rec, graphError{http.StatusBadRequest, 131051, 0, "OAuthException", "(#131051) Unsupported message type"})
		return
	}
	if isPermissionRequest(rb, e) {
		if g, ok := e.admitPermissionRequest(rec.To, time.Now()); !ok {
			e.writeError(w, rec, g)
			return
		}
	}
	id := newID("wamid")
	rec.ResultID = id
	msg := map[string]string{"id": id}
	if rb.Type == "template" {
		// message_status reports template pacing; the free-form call permission
		// request's documented success response (user-call-permissions) has none.
		msg["message_status"] = "accepted"
	}
	answer := map[string]any{
		"messaging_product": "whatsapp",
		"contacts":          []map[string]string{{"input": rb.To, "wa_id": rec.To}},
		"messages":          []map[string]string{msg},
	}
	if b.AnswerDelay > 0 {
		// Sent before the answer leaves: a client gone meanwhile left it sent.
		rec.Status = http.StatusOK
		defer func() {
			if sleep(ctx, b.AnswerDelay) {
				writeJSON(w, rec, answer)
			}
		}()
	} else {
		writeJSON(w, rec, answer)
	}
	to, key := rec.To, rec.Key
	permission := rb.Type == "interactive" && rb.Interactive.Type == "call_permission_request"
	// Per-message pricing (status webhooks reference, pricing object): a template
	// is billed in its category; a service message answers inside the customer
	// service window and is free.
	pricing := map[string]any{"billable": false, "pricing_model": "PMP", "type": "free_customer_service", "category": "service"}
	if rb.Type == "template" {
		t, _ := e.template(rb.Template.Name, rb.Template.Language.Code)
		permission = t.CallPermissionRequest
		category := strings.ToLower(t.Category)
		if category == "" {
			category = "utility"
		}
		pricing = map[string]any{"billable": true, "pricing_model": "PMP", "type": "regular", "category": category}
	}
	e.statusScripts.Add(1)
	e.goScript(func(ctx context.Context) {
		defer e.statusScripts.Add(-1)
		e.messageScript(ctx, id, to, key, permission, pricing, b)
	})
}

func (e *Emulator) template(name, lang string) (Template, bool) {
	for _, t := range e.cfg.Templates {
		if t.Name == name && t.Language == lang {
			return t, true
		}
	}
	return Template{}, false
}

// goScript runs a per-request script goroutine that ends with the emulator.
func (e *Emulator) goScript(f func(ctx context.Context)) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		f(e.ctx)
	}()
}

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (e *Emulator) messageScript(ctx context.Context, id, to, key string, permission bool, pricing map[string]any, b Behaviour) {
	delay := b.StatusDelay
	if delay <= 0 {
		delay = e.cfg.StatusDelay
	}
	statuses := []string{"sent", "delivered", "read"}
	if b.NoRead {
		statuses = statuses[:2]
	}
	if b.FailCode != 0 {
		statuses = []string{"sent", "failed"}
	}
	if b.AsyncErrorCode != 0 {
		if !sleep(ctx, delay) {
			return
		}
		g := errorFor(b.AsyncErrorCode)
		e.sendWebhook("messages", map[string]any{"errors": []any{map[string]any{"code": b.AsyncErrorCode, "title": g.title(), "message": g.title(),
			"error_data": map[string]string{"details": g.title()}, "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"}}}, b)
	}
	for _, st := range statuses {
		if !sleep(ctx, delay) {
			return
		}
		s := map[string]any{"id": id, "status": st, "timestamp": unixNow(), "recipient_id": to}
		if key != "" {
			s["biz_opaque_callback_data"] = key
		}
		switch st {
		case "sent", "delivered":
			// Status webhooks reference: pricing comes with sent and with one of
			// delivered or read.
			s["pricing"] = pricing
		case "failed":
			g := errorFor(b.FailCode)
			s["errors"] = []map[string]any{{"code": b.FailCode, "title": g.title(), "message": g.title(),
				"error_data": map[string]string{"details": g.title()}, "href": "https://developers.facebook.com/documentation/business-messaging/whatsapp/support/error-codes"}}
		}
		e.sendWebhook("messages", map[string]any{"statuses": []any{s}}, b)
	}
	if !permission || b.Permission == PermissionIgnore {
		return
	}
	if !sleep(ctx, b.PermissionAfter) {
		return
	}
	if b.Permission == PermissionDeny {
		e.permissionReply(to, id, map[string]any{"response": "reject", "is_permanent": false, "response_source": whatsapp.PermissionSourceUserAction}, b)
		return
	}
	e.grantByReply(to, id, whatsapp.PermissionSourceUserAction, b.PermissionPermanent, cmp.Or(b.PermissionExpiry, 7*24*time.Hour), b)
}

// grantByReply records the user behind to granting the business permission
// (permanent, or for d) and sends its call_permission_reply webhook, in reply
// to the message or call contextID, from source (user_action, automatic).
func (e *Emulator) grantByReply(to, contextID, source string, permanent bool, d time.Duration, b Behaviour) {
	reply := map[string]any{"response": "accept", "is_permanent": permanent, "response_source": source}
	var exp time.Time
	if !permanent {
		exp = time.Now().Add(d)
		// A string of Unix seconds, as in the user-call-permissions page's
		// webhook sample (its table says Integer; the client reads both).
		reply["expiration_timestamp"] = fmt.Sprint(exp.Unix())
	}
	e.mu.Lock()
	e.grant(to, permanent, exp)
	e.mu.Unlock()
	e.permissionReply(to, contextID, reply, b)
}

// permissionReply sends the user's call_permission_reply webhook.
func (e *Emulator) permissionReply(to, contextID string, reply map[string]any, b Behaviour) {
	msg := map[string]any{
		"from": to, "id": newID("wamid"), "timestamp": unixNow(), "type": "interactive",
		"context":     map[string]string{"from": e.cfg.DisplayPhoneNumber, "id": contextID},
		"interactive": map[string]any{"type": "call_permission_reply", "call_permission_reply": reply},
	}
	e.sendWebhook("messages", map[string]any{
		"contacts": []map[string]any{{"wa_id": to, "profile": map[string]string{"name": "Emulated User"}}},
		"messages": []any{msg},
	}, b)
}

// UserMessage makes the emulated user behind from write a text message to the
// business (a webhook), opening the 24 h customer service window. It returns the
// message's wamid.
func (e *Emulator) UserMessage(from, text string) string {
	from = normalize(from)
	id := newID("wamid")
	e.mu.Lock()
	e.lastInbound[from] = time.Now()
	e.mu.Unlock()
	e.sendWebhook("messages", map[string]any{
		"contacts": []map[string]any{{"wa_id": from, "profile": map[string]string{"name": "Emulated User"}}},
		"messages": []any{map[string]any{"from": from, "id": id, "timestamp": unixNow(), "type": "text",
			"text": map[string]string{"body": text}}},
	}, e.behaviour(from))
	return id
}

func unixNow() string { return fmt.Sprint(time.Now().Unix()) }

// sendWebhook queues one change (field and value) in Meta's envelope.
func (e *Emulator) sendWebhook(field string, value map[string]any, b Behaviour) {
	e.enqueueBody(e.envelope(field, value), b)
}

// envelope wraps one change in Meta's webhook payload.
func (e *Emulator) envelope(field string, value map[string]any) []byte {
	value["messaging_product"] = "whatsapp"
	value["metadata"] = map[string]string{"display_phone_number": e.cfg.DisplayPhoneNumber, "phone_number_id": e.cfg.PhoneNumberID}
	payload := map[string]any{
		"object": "whatsapp_business_account",
		"entry": []any{map[string]any{
			"id":      e.cfg.WABAID,
			"changes": []any{map[string]any{"field": field, "value": value}},
		}},
	}
	body, err := json.Marshal(payload)
	if err != nil {
		panic(fmt.Sprintf("emulator: encode webhook: %v", err)) // only maps of strings and numbers
	}
	return body
}

// enqueueBody queues a signed delivery of body, twice with DuplicateWebhooks.
func (e *Emulator) enqueueBody(body []byte, b Behaviour) {
	e.hooks.enqueue(body)
	if b.DuplicateWebhooks {
		e.hooks.enqueue(bytes.Clone(body))
	}
}

type templateRow struct {
	ID              string              `json:"id"`
	Name            string              `json:"name"`
	Language        string              `json:"language"`
	Status          string              `json:"status"`
	Category        string              `json:"category"`
	ParameterFormat string              `json:"parameter_format"`
	Components      []map[string]string `json:"components"`
}

func (e *Emulator) listTemplates(w http.ResponseWriter, r *http.Request, rec *Request) {
	limit := 25
	if s := r.URL.Query().Get("limit"); s != "" {
		if _, err := fmt.Sscan(s, &limit); err != nil || limit <= 0 {
			e.writeError(w, rec, graphError{http.StatusBadRequest, 100, 0, "OAuthException", "(#100) Param limit must be a positive integer"})
			return
		}
	}
	limit = min(limit, 100)
	start := 0
	if a := r.URL.Query().Get("after"); a != "" {
		raw, err := base64.RawURLEncoding.DecodeString(a)
		if err == nil {
			_, err = fmt.Sscan(string(raw), &start)
		}
		if err != nil || start < 0 || start > len(e.cfg.Templates) {
			e.writeError(w, rec, graphError{http.StatusBadRequest, 100, 0, "OAuthException", "(#100) Invalid cursor"})
			return
		}
	}
	end := min(start+limit, len(e.cfg.Templates))
	rows := []templateRow{}
	for i, t := range e.cfg.Templates[start:end] {
		pf := strings.ToUpper(t.ParameterFormat)
		if pf == "" {
			pf = whatsapp.FormatPositional
		}
		rows = append(rows, templateRow{ID: fmt.Sprint(900000 + start + i), Name: t.Name, Language: t.Language, Status: t.Status,
			Category: t.Category, ParameterFormat: pf, Components: []map[string]string{{"type": "BODY", "text": t.Body}}})
	}
	cursor := func(i int) string { return base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprint(i))) }
	paging := map[string]any{"cursors": map[string]string{"before": cursor(start), "after": cursor(end)}}
	if end < len(e.cfg.Templates) {
		q := r.URL.Query()
		q.Set("after", cursor(end))
		paging["next"] = e.URL() + r.URL.Path + "?" + q.Encode()
	}
	writeJSON(w, rec, map[string]any{"data": rows, "paging": paging})
}

// checkBodyParams checks a template send's body parameters against t as Meta
// does: their count, and for a NAMED template that each carries the
// parameter_name of one of its placeholders, every placeholder once; a
// positional template's parameters carry none.
func checkBodyParams(t Template, rb requestBody) (string, bool) {
	want := whatsapp.BodyPlaceholders(t.Body)
	var names []string
	n := 0
	for _, c := range rb.Template.Components {
		if strings.EqualFold(c.Type, "body") {
			n += len(c.Parameters)
			for _, p := range c.Parameters {
				names = append(names, p.ParameterName)
			}
		}
	}
	if n != len(want) {
		return "", true
	}
	named := whatsapp.IsNamed(t.ParameterFormat)
	seen := map[string]bool{}
	for _, name := range names {
		switch {
		case !named && name != "":
			return fmt.Sprintf("parameter_name %q given for a POSITIONAL template", name), true
		case named && name == "":
			return "a NAMED template's parameter has no parameter_name", true
		case named && (!slices.Contains(want, name) || seen[name]):
			return fmt.Sprintf("parameter_name %q is not a placeholder of the template, or is repeated", name), true
		}
		seen[name] = true
	}
	return "", false
}

// checkProof refuses, when the app requires it, a call without a valid
// appsecret_proof, with Graph's answers for a missing and a wrong one.
func (e *Emulator) checkProof(r *http.Request) (graphError, bool) {
	if !e.cfg.RequireAppSecretProof {
		return graphError{}, false
	}
	got := r.URL.Query().Get("appsecret_proof")
	if got == "" {
		return graphError{http.StatusBadRequest, 100, 0, "GraphMethodException", "API calls from the server require an appsecret_proof argument"}, true
	}
	if !hmac.Equal([]byte(got), []byte(whatsapp.AppSecretProof(e.cfg.AppSecret, e.cfg.AccessToken))) {
		return graphError{http.StatusBadRequest, 100, 0, "GraphMethodException", "Invalid appsecret_proof provided in the API argument"}, true
	}
	return graphError{}, false
}
