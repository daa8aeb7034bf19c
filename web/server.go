// Package web serves Turbina's HTTP API (/api/v1), its health and metrics endpoints
// and its OpenAPI document. It authenticates callers, enforces roles and turns
// requests into calls on the campaigns and storage packages; it holds no engine logic.
package web

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer"
	"github.com/turbina-dialer/turbina/dialer/agentaudio"
	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/storage"
)

//go:embed openapi.json
var openAPIDocument []byte

// Config sets the server's limits.
type Config struct {
	// MaxBodyBytes limits JSON request bodies.
	MaxBodyBytes int64
	// MaxImportBytes limits CSV uploads (contacts and do-not-call lists).
	MaxImportBytes int64
	// ImportBatchRows is how many imported rows are committed at a time.
	ImportBatchRows int
	// Version is reported by /healthz.
	Version string
	// Engine is the dialing engine the API reports on and tells of changes; nil
	// when the server runs without one.
	Engine Engine
	// TrunkStatus describes every SIP trunk, ready to encode as JSON; nil when no
	// trunk is configured.
	TrunkStatus func() any
	// TrunkControl takes trunks out of service for supervisors; nil answers 501.
	TrunkControl TrunkControl
	// Webhooks receives Meta's WhatsApp webhooks at /webhooks/whatsapp (signed, so
	// no token); nil without a WhatsApp account.
	Webhooks http.Handler
	// Templates lists the WhatsApp account's approved templates for the sales UI
	// and the campaign start check; nil without a WhatsApp account.
	Templates TemplateLister
	// PhoneRealm is the digest realm of the registrar agents' SIP phones register
	// with: their secrets are stored as HA1 for it (default sip.DefaultRealm).
	PhoneRealm string
	// MaxAbandon caps every campaign's pacing.target_abandon (the engine's
	// max_abandon); 0 means campaigns.DefaultMaxAbandon.
	MaxAbandon float64
	// Limits bound what one client can hold: timeouts, requests without
	// credentials, sign-in attempts and password checks.
	Limits Limits
	// TokenTTL is how long a new API token works when its request names no
	// expiry; DefaultTokenTTL when zero.
	TokenTTL time.Duration
	// Cluster makes the server one node of several on one database; zero for
	// a server alone on its database.
	Cluster Cluster
	// PasswordCost is argon2id's cost for the password hashes the server makes;
	// a zero field takes DefaultPasswordCost's. New panics on a cost that fails
	// Validate: the caller checks its configuration first.
	PasswordCost PasswordCost
}

// phoneRealm is the digest realm phone secrets are hashed for.
func (s *Server) phoneRealm() string {
	if s.cfg.PhoneRealm == "" {
		return sip.DefaultRealm
	}
	return s.cfg.PhoneRealm
}

// Engine is what the API needs from the dialing engine.
type Engine interface {
	// CampaignChanged tells the engine a campaign's state or settings changed.
	CampaignChanged()
	// Agents is the live agent pool.
	Agents() *dialer.Agents
	// Hangup ends the call an agent is on.
	Hangup(ctx context.Context, agentID int64) error
	// Disposition ends an agent's wrap-up with a disposition (and a callback).
	Disposition(ctx context.Context, agentID int64, cl dialer.Close) error
	// Subscribe streams an agent's session events until the returned func is called.
	Subscribe(agentID int64) (<-chan dialer.AgentEvent, func())
	// AgentAudio is every agent's nailed-up audio: browsers' WebRTC offers are
	// answered and agents' SIP phones called through it.
	AgentAudio() *agentaudio.Hub
	// SendWhatsApp sends a contact a free-form text, or its campaign's template when
	// text is empty.
	SendWhatsApp(ctx context.Context, contactID int64, text, key string) (storage.WAMessage, error)
	// PacerViews is what the pacer of each campaign the engine runs sees on each call
	// channel of its ladder, for the wallboard.
	PacerViews() []dialer.PacerView
	// InboundQueues are the inbound queues (the persons' own WhatsApp calls to
	// the business), today's figures counted from midnight in loc.
	InboundQueues(ctx context.Context, loc *time.Location) ([]dialer.InboundQueue, error)
	// CheckPolicy is the policy gate's decision on an action on a contact at an
	// instant, as the engine would take it.
	CheckPolicy(ctx context.Context, contactID int64, action campaigns.ContactAction, at time.Time) (campaigns.Decision, error)
	// Preview is the contact offered to a preview agent, false when none is.
	Preview(agentID int64) (dialer.PreviewOffer, bool)
	// PreviewDial calls the contact offered to a preview agent, the agent reserved
	// for the call; a refusal of the policy gate is a *campaigns.RefusedError.
	PreviewDial(ctx context.Context, agentID, contactID int64) (int64, error)
	// SkipPreview records a preview agent's skip of the contact offered to it.
	SkipPreview(ctx context.Context, agentID, contactID int64, s dialer.PreviewSkip) error
	// StopRinging ends the calls still ringing to numbers just put on a
	// do-not-call list (campaignID 0: every campaign's).
	StopRinging(ctx context.Context, campaignID int64, numbers []string) int
	// Draining reports whether the engine drains before the server stops: it
	// places no new call, and /readyz says so.
	Draining() bool
	// Cluster is this node and the campaigns whose leases it holds, with why it
	// is not ready when it cannot renew them.
	Cluster() dialer.ClusterStatus
}

// Server is the HTTP front of Turbina.
type Server struct {
	store       storage.Store
	log         *slog.Logger
	cfg         Config
	mux         *http.ServeMux
	metrics     *metrics
	routes      []route
	ui          *uiState
	serveLimits Limits
	handler     http.Handler
	// forwarder and streamForwarder carry agents' requests and event streams
	// to their home node (Cluster), found from cluster.
	forwarder, streamForwarder http.RoundTripper
	cluster                    clusterView
	// anonymous and webhooks are the slots of requests in progress without valid
	// credentials: the sign-in form and pages' assets, and WhatsApp's webhooks.
	anonymous chan struct{}
	webhooks  chan struct{}
	// sockets counts the agents' WebSockets still open: http.Server.Shutdown
	// does not wait for a connection it handed over, so a stopping process
	// waits here (WaitSockets) for their closing handshakes.
	sockets sync.WaitGroup
}

// WaitSockets waits until every agent WebSocket has closed, or ctx ends. A
// stopping server calls it after http.Server.Shutdown (whose shutdown hooks end
// the sockets), so that a page hears why its socket closed (1012: reconnect)
// before the process exits.
func (s *Server) WaitSockets(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		s.sockets.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// route is one API operation; the table of them is the single source for the mux,
// the role checks and the test that keeps the OpenAPI document true.
type route struct {
	method string
	path   string // OpenAPI-style, which is also http.ServeMux's pattern syntax
	roles  []storage.Role
	handle func(w http.ResponseWriter, r *http.Request, p principal) error
}

// New builds a server over store.
func New(store storage.Store, log *slog.Logger, cfg Config) *Server {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.MaxImportBytes <= 0 {
		cfg.MaxImportBytes = 1 << 30
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = DefaultTokenTTL
	}
	cfg.PasswordCost = cfg.PasswordCost.WithDefaults()
	if err := cfg.PasswordCost.Validate(); err != nil {
		panic(fmt.Sprintf("web: password cost: %v", err))
	}
	s := &Server{store: store, log: log, cfg: cfg, mux: http.NewServeMux(), serveLimits: cfg.Limits.withDefaults()}
	// A forwarded answer may take as long as one served here (a SIP phone
	// nailed up at login rings first).
	s.forwarder = forwarder(s.serveLimits.WriteTimeout, s.serveLimits.IdleTimeout)
	s.streamForwarder = forwarder(streamHeaderWait, s.serveLimits.IdleTimeout)
	s.anonymous = make(chan struct{}, s.serveLimits.MaxAnonymous)
	s.webhooks = make(chan struct{}, s.serveLimits.MaxAnonymous)
	s.metrics = newMetrics(store)
	s.ui = newUIState(s)
	s.metrics.registry.MustRegister(liveCollector{s})
	s.routes = []route{
		{"GET", "/api/v1/openapi.json", allRoles, s.openAPI},
		{"GET", "/api/v1/me", allRoles, s.me},

		{"POST", "/api/v1/campaigns", salesRoles, s.createCampaign},
		{"GET", "/api/v1/campaigns", allRoles, s.listCampaigns},
		{"GET", "/api/v1/campaigns/{id}", allRoles, s.getCampaign},
		{"PATCH", "/api/v1/campaigns/{id}", staffRoles, s.updateCampaign},
		{"DELETE", "/api/v1/campaigns/{id}", supervisors, s.archiveCampaign},
		{"POST", "/api/v1/campaigns/{id}/start", supervisors, s.campaignAction},
		{"POST", "/api/v1/campaigns/{id}/pause", supervisors, s.campaignAction},
		{"POST", "/api/v1/campaigns/{id}/resume", supervisors, s.campaignAction},
		{"POST", "/api/v1/campaigns/{id}/finish", supervisors, s.campaignAction},
		{"GET", "/api/v1/campaigns/{id}/pacing", staffRoles, s.getPacing},
		{"PATCH", "/api/v1/campaigns/{id}/pacing", supervisors, s.updatePacing},
		{"GET", "/api/v1/campaigns/{id}/stats", staffRoles, s.campaignStats},
		{"POST", "/api/v1/campaigns/{id}/contacts", salesRoles, s.importContacts},
		{"GET", "/api/v1/campaigns/{id}/contacts", allRoles, s.listContacts},
		{"GET", "/api/v1/campaigns/{id}/agents", supervisors, s.listCampaignAgents},
		{"POST", "/api/v1/campaigns/{id}/agents", supervisors, s.assignAgent},
		{"DELETE", "/api/v1/campaigns/{id}/agents/{user_id}", supervisors, s.unassignAgent},
		{"GET", "/api/v1/contacts/{id}", allRoles, s.getContact},
		{"GET", "/api/v1/contacts/{id}/attempts", allRoles, s.contactAttempts},
		{"GET", "/api/v1/contacts/{id}/policy", supervisors, s.contactPolicy},
		{"GET", "/api/v1/imports/{id}", staffRoles, s.getImport},
		{"GET", "/api/v1/imports/{id}/rejections", staffRoles, s.importRejections},

		{"POST", "/api/v1/dnc", staffRoles, s.addDNC},
		{"GET", "/api/v1/dnc", staffRoles, s.listDNC},
		{"DELETE", "/api/v1/dnc/{phone}", supervisors, s.removeDNC},

		{"POST", "/api/v1/users", adminOnly, s.createUser},
		{"GET", "/api/v1/users", adminOnly, s.listUsers},
		{"GET", "/api/v1/users/{id}", allRoles, s.getUser},
		{"PATCH", "/api/v1/users/{id}", adminOnly, s.updateUser},
		{"POST", "/api/v1/users/{id}/tokens", allRoles, s.createToken},
		{"GET", "/api/v1/users/{id}/tokens", allRoles, s.listTokens},
		{"DELETE", "/api/v1/tokens/{id}", allRoles, s.revokeToken},

		{"GET", "/api/v1/audit", supervisors, s.listAudit},
		{"GET", "/api/v1/trunks", supervisors, s.listTrunks},
	}
	s.routes = append(s.routes, s.agentRoutes()...)
	s.routes = append(s.routes, s.previewRoutes()...)
	s.routes = append(s.routes, s.conversationRoutes()...)
	s.routes = append(s.routes, s.whatsappRoutes()...)
	s.routes = append(s.routes, s.uiRoutes()...)
	s.routes = append(s.routes, s.complianceRoutes()...)
	s.routes = append(s.routes, s.safeHarbourRoutes()...)
	for _, rt := range s.routes {
		s.mux.Handle(rt.method+" "+rt.path, s.metrics.instrument(rt.path, s.protect(rt)))
	}
	s.mux.Handle("GET /healthz", s.metrics.instrument("/healthz", http.HandlerFunc(s.healthz)))
	s.mux.Handle("GET /readyz", s.metrics.instrument("/readyz", http.HandlerFunc(s.readyz)))
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{}))
	if cfg.Webhooks != nil {
		s.mux.Handle("/webhooks/whatsapp", s.metrics.instrument("/webhooks/whatsapp", cfg.Webhooks))
	}
	s.mountUI()
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, notFound("no such endpoint: "+r.Method+" "+r.URL.Path))
	})
	s.handler = s.guard(s.mux)
	return s
}

// Registry is the server's Prometheus registry, for other parts to add collectors to.
func (s *Server) Registry() *prometheus.Registry { return s.metrics.registry }

// ServeHTTP makes Server an http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// protect authenticates, checks the role, and turns a handler's error into JSON.
func (s *Server) protect(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, aerr := s.principalOf(r)
		if aerr != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="turbina"`)
			writeError(w, aerr)
			return
		}
		if !p.is(rt.roles...) {
			writeError(w, forbidden(fmt.Sprintf("role %s may not %s %s", p.Role, rt.method, rt.path)))
			return
		}
		if err := rt.handle(w, r, p); err != nil {
			ae := toAPIError(err)
			if ae.Status >= 500 {
				s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			}
			writeError(w, ae)
		}
	})
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "version": s.cfg.Version})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	// A draining node finishes its calls and stops: a load balancer sends new
	// work (agents' pages, webhooks) to another node from now on.
	if s.cfg.Engine != nil && s.cfg.Engine.Draining() {
		writeError(w, errorf(http.StatusServiceUnavailable, "draining", "this node is draining before it stops: it takes no new calls"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	// Ready answers from the write probe's last result, not from a write of its
	// own: a probe must not queue behind a locked database.
	if err := s.store.Ready(ctx); err != nil {
		e := errorf(http.StatusServiceUnavailable, "not_ready", "database: "+err.Error())
		e.retryAfter = storageRetryAfter
		writeError(w, e)
		return
	}
	out := map[string]any{"status": "ready"}
	if s.cfg.Engine != nil {
		// A node that cannot renew its leases is losing its campaigns: the
		// load balancer sends its work elsewhere.
		st := s.cfg.Engine.Cluster()
		if st.Err != nil {
			writeError(w, errorf(http.StatusServiceUnavailable, "not_ready", "cluster: "+st.Err.Error()))
			return
		}
		out["node"], out["campaigns"] = st.Node, idStrings(st.Campaigns)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) openAPI(w http.ResponseWriter, r *http.Request, _ principal) error {
	w.Header().Set("Content-Type", "application/json")
	_, err := w.Write(openAPIDocument)
	return err
}

func (s *Server) listTrunks(w http.ResponseWriter, r *http.Request, _ principal) error {
	var trunks any = []any{}
	if s.cfg.TrunkStatus != nil {
		trunks = s.cfg.TrunkStatus()
	}
	writeJSON(w, http.StatusOK, map[string]any{"trunks": trunks})
	return nil
}

// campaignChanged tells the engine, if any, to re-read campaigns now.
func (s *Server) campaignChanged() {
	if s.cfg.Engine != nil {
		s.cfg.Engine.CampaignChanged()
	}
}

func (s *Server) me(w http.ResponseWriter, r *http.Request, p principal) error {
	out := map[string]any{"user": p.User}
	if p.Role == storage.RoleAgent {
		ids, err := s.store.AgentCampaigns(r.Context(), p.ID)
		if err != nil {
			return err
		}
		out["campaign_ids"] = idStrings(ids)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// decodeJSON reads a size-limited JSON body into v, refusing unknown fields so that
// a misspelt setting is an error rather than silently ignored.
func (s *Server) decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, _ := mime.ParseMediaType(ct); mt != "application/json" {
			msg := "body must be application/json, not " + strconv.Quote(ct)
			if mt == "application/x-www-form-urlencoded" {
				// What curl -d sends unless told otherwise.
				msg += ": send the header Content-Type: application/json (with curl: -H 'Content-Type: application/json')"
			}
			return errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", msg)
		}
	}
	if r.ContentLength > s.cfg.MaxBodyBytes {
		return errorf(http.StatusRequestEntityTooLarge, "body_too_large", "request body is larger than the limit of "+formatBytes(s.cfg.MaxBodyBytes))
	}
	body := http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if ae := bodyReadError(err); ae != nil {
			return ae
		}
		return badRequest("invalid JSON body: " + err.Error())
	}
	// Only white space may follow the value. dec.More would miss a stray ']' or '}',
	// and the limit applies to the whole body, not just the part before the value ends.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if ae := bodyReadError(err); err != nil && ae != nil {
			return ae
		}
		return badRequest("invalid JSON body: more than one value")
	}
	return nil
}

// bodyReadError is the answer to a body that could not be read whole: too large or
// too slow; nil for anything else (a syntax error is the caller's to word).
func bodyReadError(err error) *apiError {
	switch ae := toAPIError(err); ae.Status {
	case http.StatusRequestEntityTooLarge, http.StatusRequestTimeout:
		return ae
	}
	return nil
}

func pathID(r *http.Request, name string) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue(name), 10, 64)
	if err != nil || id <= 0 {
		return 0, notFound(fmt.Sprintf("%s %q is not a valid id", name, r.PathValue(name)))
	}
	return id, nil
}

// queryInt reads a non-negative integer query parameter.
func queryInt(r *http.Request, name string, def int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, badRequest(fmt.Sprintf("query parameter %s must be a non-negative integer", name))
	}
	return n, nil
}

func queryID(r *http.Request, name string) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, nil
	}
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id <= 0 {
		return 0, badRequest(fmt.Sprintf("query parameter %s must be an id", name))
	}
	return id, nil
}

func idStrings(ids []int64) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = strconv.FormatInt(id, 10)
	}
	return out
}

func formatBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return strings.TrimSpace(fmt.Sprintf("%d bytes", n))
}
