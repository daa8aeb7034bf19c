package web

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Limits bound what one client can hold of the server: time on a connection, a
// share of the requests without credentials, and password checks. Zero fields take
// the defaults below (DefaultLimits).
type Limits struct {
	// ReadHeaderTimeout is how long a connection may take to send a request's headers.
	ReadHeaderTimeout time.Duration
	// BodyTimeout is how long the server waits, in all, for an ordinary request body
	// (JSON, the sign-in form, webhooks) to arrive; a body still incomplete then is
	// answered 408 and its connection closed.
	BodyTimeout time.Duration
	// UploadMinRate and UploadWindow bound uploads (CSV imports, audio): an upload
	// that delivers less than UploadMinRate bytes a second over an UploadWindow of
	// waiting is cut (408, connection closed). Only time spent waiting for the client
	// counts, not time the server spends importing.
	UploadMinRate int64
	UploadWindow  time.Duration
	// WriteTimeout is how long a response may take to be written in all; streams
	// (server-sent events, WebSockets, reports streamed as they are read) get
	// StreamWriteTimeout for each write instead.
	WriteTimeout       time.Duration
	StreamWriteTimeout time.Duration
	// IdleTimeout closes a kept-alive connection that sends no new request this long.
	IdleTimeout time.Duration
	// MaxAnonymous is how many requests without a valid token or session may be in
	// progress at once (the sign-in form, pages' assets); beyond it they are answered
	// 503 at once. Signed WhatsApp webhooks have a cap of the same size of their own,
	// and /healthz, /readyz and /metrics none.
	MaxAnonymous int
	// TrustedProxies are the reverse proxies whose ClientIPHeader names the client;
	// from any other address the header is ignored and the socket's address is the
	// client's.
	TrustedProxies []netip.Prefix
	// ClientIPHeader is X-Forwarded-For (default) or Forwarded (RFC 7239): the one
	// the trusted proxies append to.
	ClientIPHeader string
	// LoginPerUser attempts to sign in as one username are allowed at once, then one
	// every LoginWindow/LoginPerUser; LoginPerIP the same for one client address.
	// A successful sign-in gives its attempts back.
	LoginPerUser int
	LoginPerIP   int
	LoginWindow  time.Duration
	// PasswordChecks is how many password checks (argon2id, each holding
	// Config.PasswordCost's memory: 64 MiB by default) run at once,
	// and PasswordQueue how many more may wait for one; sign-ins beyond are answered
	// 503 at once, so memory stays bounded whatever the number of attempts.
	PasswordChecks int
	PasswordQueue  int
}

// DefaultLimits are the limits a zero field takes.
func DefaultLimits() Limits {
	checks := max(1, min(runtime.NumCPU(), 4))
	return Limits{
		ReadHeaderTimeout:  10 * time.Second,
		BodyTimeout:        15 * time.Second,
		UploadMinRate:      4 << 10,
		UploadWindow:       30 * time.Second,
		WriteTimeout:       60 * time.Second,
		StreamWriteTimeout: 15 * time.Second,
		IdleTimeout:        2 * time.Minute,
		MaxAnonymous:       128,
		ClientIPHeader:     "X-Forwarded-For",
		LoginPerUser:       10,
		LoginPerIP:         100,
		LoginWindow:        15 * time.Minute,
		PasswordChecks:     checks,
		PasswordQueue:      2 * checks,
	}
}

// withDefaults fills the zero fields from DefaultLimits.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	setDur := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	setInt := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	setDur(&l.ReadHeaderTimeout, d.ReadHeaderTimeout)
	setDur(&l.BodyTimeout, d.BodyTimeout)
	setDur(&l.UploadWindow, d.UploadWindow)
	setDur(&l.WriteTimeout, d.WriteTimeout)
	setDur(&l.StreamWriteTimeout, d.StreamWriteTimeout)
	setDur(&l.IdleTimeout, d.IdleTimeout)
	setDur(&l.LoginWindow, d.LoginWindow)
	setInt(&l.MaxAnonymous, d.MaxAnonymous)
	setInt(&l.LoginPerUser, d.LoginPerUser)
	setInt(&l.LoginPerIP, d.LoginPerIP)
	setInt(&l.PasswordChecks, d.PasswordChecks)
	setInt(&l.PasswordQueue, d.PasswordQueue)
	if l.UploadMinRate <= 0 {
		l.UploadMinRate = d.UploadMinRate
	}
	if l.ClientIPHeader == "" {
		l.ClientIPHeader = d.ClientIPHeader
	}
	return l
}

// Validate reports the first setting that cannot work, naming it.
func (l Limits) Validate() error {
	switch http.CanonicalHeaderKey(l.ClientIPHeader) {
	case "", "X-Forwarded-For", "Forwarded":
	default:
		return fmt.Errorf("client_ip_header: %q is neither X-Forwarded-For nor Forwarded", l.ClientIPHeader)
	}
	for i, p := range l.TrustedProxies {
		if !p.IsValid() {
			return fmt.Errorf("trusted_proxies[%d]: not a valid address or CIDR", i)
		}
	}
	return nil
}

// ParseTrustedProxies reads addresses and CIDRs ("10.0.0.0/8", "::1"), naming the
// entry that is neither.
func ParseTrustedProxies(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for i, s := range list {
		s = strings.TrimSpace(s)
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("trusted_proxies[%d]: %q is not an IP address or CIDR", i, s)
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// HTTPServer returns an http.Server serving h (s when h is nil) with the server's
// header and idle timeouts. Body and write deadlines are set per request by s, so
// that streams can live longer than an ordinary response.
func (s *Server) HTTPServer(h http.Handler) *http.Server {
	if h == nil {
		h = s
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: s.serveLimits.ReadHeaderTimeout,
		IdleTimeout:       s.serveLimits.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
	}
}

// errSlowBody is why a body read stopped: the client sent it too slowly.
var errSlowBody = errors.New("request body arrived too slowly")

// requestClass says which cap a request without credentials counts against.
type requestClass int

const (
	classAnonymous requestClass = iota
	classWebhook
	classExempt
)

func classify(r *http.Request) requestClass {
	switch r.URL.Path {
	case "/healthz", "/readyz", "/metrics":
		return classExempt
	}
	if strings.HasPrefix(r.URL.Path, "/webhooks/") {
		return classWebhook
	}
	return classAnonymous
}

// authResult is authenticate's answer, computed once per request by guard.
type authResult struct {
	p   principal
	err *apiError
}

type authKey struct{}

// principalOf is the request's caller, as guard found it (or found now when the
// request did not pass through guard).
func (s *Server) principalOf(r *http.Request) (principal, *apiError) {
	if a, ok := r.Context().Value(authKey{}).(authResult); ok {
		return a.p, a.err
	}
	return s.authenticate(r)
}

// hasCredentials reports whether r carries something that may authenticate it.
func hasCredentials(r *http.Request) bool {
	if r.Header.Get("Authorization") != "" || isWebSocket(r) && r.URL.Query().Get("access_token") != "" {
		return true
	}
	c, err := r.Cookie(sessionCookie)
	return err == nil && c.Value != ""
}

// guard puts every request under the server's limits: deadlines for its body and
// its response, and, for requests without valid credentials, a cap on how many may
// be in progress at once, so that slow strangers cannot take the connections and
// file descriptors that signed-in users and health checks need.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		now := time.Now()
		// Errors mean the writer has no connection under it (a recorder in tests).
		_ = rc.SetWriteDeadline(now.Add(s.serveLimits.WriteTimeout))
		lw := &limitedWriter{ResponseWriter: w, rc: rc, stream: s.serveLimits.StreamWriteTimeout}
		var body *timedBody
		if r.Body != nil && r.Body != http.NoBody {
			body = &timedBody{body: r.Body, rc: rc, header: w.Header(), left: s.serveLimits.BodyTimeout}
			// Set now so that a body the handler never reads is still discarded
			// within the deadline.
			_ = rc.SetReadDeadline(now.Add(s.serveLimits.BodyTimeout))
		}
		class := classify(r)
		var auth authResult
		if class != classExempt {
			if hasCredentials(r) {
				auth.p, auth.err = s.authenticate(r)
			} else {
				auth.err = errorf(http.StatusUnauthorized, "unauthorized", "missing bearer token")
			}
			if auth.err != nil {
				sem, name := s.anonymous, "anonymous"
				if class == classWebhook {
					sem, name = s.webhooks, "webhook"
				}
				select {
				case sem <- struct{}{}:
					defer func() { <-sem }()
				default:
					s.metrics.busy.WithLabelValues(name).Inc()
					w.Header().Set("Retry-After", "1")
					w.Header().Set("Connection", "close")
					// The body is not wanted: the connection closes as soon as the
					// answer is out, instead of waiting to discard it.
					_ = rc.SetReadDeadline(now)
					writeError(w, errorf(http.StatusServiceUnavailable, "too_busy",
						"too many requests without credentials in progress; try again in a moment"))
					return
				}
			}
		}
		ctx := context.WithValue(r.Context(), limitsKey{}, &requestLimits{w: lw, body: body, limits: s.serveLimits})
		if class != classExempt {
			ctx = context.WithValue(ctx, authKey{}, auth)
		}
		r = r.WithContext(ctx)
		if body != nil {
			r.Body = body
		}
		next.ServeHTTP(lw, r)
	})
}

type limitsKey struct{}

// requestLimits is what guard set on a request, for handlers that need other limits.
type requestLimits struct {
	w      *limitedWriter
	body   *timedBody
	limits Limits
}

// asUpload gives r the limits of an upload: its body must keep up a minimum rate
// instead of arriving within BodyTimeout, and its response is written as a stream.
func asUpload(r *http.Request) {
	rl, ok := r.Context().Value(limitsKey{}).(*requestLimits)
	if !ok {
		return
	}
	rl.w.streaming = true
	if b := rl.body; b != nil {
		b.window = rl.limits.UploadWindow
		b.rate = rl.limits.UploadMinRate
		b.need = int64(float64(b.rate) * b.window.Seconds())
		b.left = b.window
		_ = b.rc.SetReadDeadline(time.Now().Add(b.left))
	}
}

// timedBody is a request body with a budget of time the server may spend waiting
// for it. Only time blocked in Read counts, so a handler that pauses between reads
// (to commit a batch) does not use up the client's time.
type timedBody struct {
	body   io.ReadCloser
	rc     *http.ResponseController
	header http.Header
	// left is the waiting time left (in this window for an upload).
	left time.Duration
	// window, rate and need are set for uploads: need is the bytes still due in the
	// current window; once they have come a new window starts.
	window time.Duration
	rate   int64
	need   int64
	done   bool
}

// Read reads under the deadline and reports a slow client as errSlowBody.
func (b *timedBody) Read(p []byte) (int, error) {
	if b.done {
		return b.body.Read(p)
	}
	start := time.Now()
	_ = b.rc.SetReadDeadline(start.Add(b.left))
	n, err := b.body.Read(p)
	b.left -= time.Since(start)
	if b.window > 0 {
		b.need -= int64(n)
		if b.need <= 0 {
			b.need = int64(float64(b.rate) * b.window.Seconds())
			b.left = b.window
		}
	}
	switch {
	case err == nil:
		return n, nil
	case errors.Is(err, io.EOF):
		b.done = true
		// The whole body is in: the connection's read deadline must not cut a
		// handler that runs long after it (the server watches the connection for a
		// hang-up while the handler runs).
		_ = b.rc.SetReadDeadline(time.Time{})
	case errors.Is(err, os.ErrDeadlineExceeded):
		b.done = true
		// The client gets the error and the connection is dropped: what is left of
		// its body is not waited for. The read deadline stays in the past.
		b.header.Set("Connection", "close")
		if b.window > 0 {
			err = fmt.Errorf("%w: less than %s a second over %s", errSlowBody, formatBytes(b.rate), b.window)
		} else {
			err = fmt.Errorf("%w: not complete within the body timeout", errSlowBody)
		}
	}
	return n, err
}

// Close closes the body.
func (b *timedBody) Close() error { return b.body.Close() }

// limitedWriter gives a streamed response a fresh write deadline before every
// write, in place of the whole response's deadline guard set. A response becomes a
// stream when its handler flushes it, upgrades it to a WebSocket, or is an upload's.
type limitedWriter struct {
	http.ResponseWriter
	rc        *http.ResponseController
	stream    time.Duration
	streaming bool
}

func (w *limitedWriter) Write(p []byte) (int, error) {
	if w.streaming {
		_ = w.rc.SetWriteDeadline(time.Now().Add(w.stream))
	}
	return w.ResponseWriter.Write(p)
}

// Flush sends what is buffered, under a fresh write deadline.
func (w *limitedWriter) Flush() {
	w.streaming = true
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.stream))
	_ = w.rc.Flush()
}

// Hijack hands the connection over (WebSockets) without the request's deadlines:
// its new owner sets its own.
func (w *limitedWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := w.rc.Hijack()
	if err == nil {
		err = conn.SetDeadline(time.Time{})
	}
	return conn, brw, err
}

// Unwrap lets http.ResponseController reach the server's writer.
func (w *limitedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// clientIP is the address of the client: the socket's, or, when the socket is a
// trusted proxy, the last address in the proxies' header that is not one of them.
func (s *Server) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	addr = addr.Unmap()
	if !s.trustedProxy(addr) {
		return addr.String()
	}
	hops := forwardedHops(r, s.serveLimits.ClientIPHeader)
	for i := len(hops) - 1; i >= 0; i-- {
		hop, ok := parseHop(hops[i])
		if !ok {
			// A value no proxy of ours wrote: the nearest address we know is the
			// last proxy's.
			break
		}
		addr = hop
		if !s.trustedProxy(hop) {
			break
		}
	}
	return addr.String()
}

func (s *Server) trustedProxy(a netip.Addr) bool {
	for _, p := range s.serveLimits.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// forwardedHops lists the client addresses a chain of proxies recorded, nearest
// last, from every instance of the header.
func forwardedHops(r *http.Request, header string) []string {
	var hops []string
	if http.CanonicalHeaderKey(header) == "Forwarded" {
		for _, v := range r.Header.Values("Forwarded") {
			for elem := range strings.SplitSeq(v, ",") {
				hop := ""
				for pair := range strings.SplitSeq(elem, ";") {
					k, val, ok := strings.Cut(strings.TrimSpace(pair), "=")
					if ok && strings.EqualFold(k, "for") {
						hop = strings.Trim(val, `"`)
					}
				}
				hops = append(hops, hop)
			}
		}
		return hops
	}
	for _, v := range r.Header.Values("X-Forwarded-For") {
		for hop := range strings.SplitSeq(v, ",") {
			hops = append(hops, strings.TrimSpace(hop))
		}
	}
	return hops
}

// parseHop reads "192.0.2.1", "192.0.2.1:4711", "2001:db8::1" or "[2001:db8::1]:4711".
func parseHop(v string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(v); err == nil {
		return ap.Addr().Unmap(), true
	}
	a, err := netip.ParseAddr(strings.Trim(v, "[]"))
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// retryAfter is a Retry-After value: whole seconds, rounded up, at least one.
func retryAfter(d time.Duration) string {
	return strconv.Itoa(max(1, int((d+time.Second-1)/time.Second)))
}
