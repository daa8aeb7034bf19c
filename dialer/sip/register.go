package sip

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/google/uuid"
)

// Registration states, in [RegistrationStatus.State].
const (
	// RegistrationRegistering: the first REGISTER is under way.
	RegistrationRegistering = "registering"
	// RegistrationRegistered: the registrar accepted the last REGISTER and
	// the binding has not expired.
	RegistrationRegistered = "registered"
	// RegistrationFailing: the last REGISTER failed; another is tried at NextTryAt.
	RegistrationFailing = "failing"
	// RegistrationUnregistered: the binding was removed at shutdown.
	RegistrationUnregistered = "unregistered"
)

// Registration timings: the lifetime asked for by default, how long one
// REGISTER (with its challenge) may take, how long the binding is refreshed
// before it expires at most, and the back-off after failures (doubling from
// the first to the cap).
const (
	defaultRegisterExpires = 600
	registerTimeout        = 8 * time.Second
	unregisterTimeout      = 2 * time.Second
	refreshMargin          = time.Minute
	registerBackoffFirst   = time.Second
	registerBackoffMax     = 5 * time.Minute
)

// RegistrationStatus is a trunk's outbound registration (RFC 3261 10), in
// [TrunkStatus] for the API and the wallboard.
type RegistrationStatus struct {
	State string `json:"state"`
	// AOR is the address of record registered, sip:user@domain.
	AOR string `json:"aor"`
	// RegisteredAt is when the registrar last accepted; ExpiresAt is when the
	// binding it granted runs out.
	RegisteredAt time.Time `json:"registered_at,omitzero"`
	ExpiresAt    time.Time `json:"expires_at,omitzero"`
	// LastError is why the last REGISTER failed; Failures counts the failures
	// in a row.
	LastError string `json:"last_error,omitempty"`
	Failures  int    `json:"consecutive_failures,omitempty"`
	// NextTryAt is when the next REGISTER goes: the refresh, or the retry.
	NextTryAt time.Time `json:"next_try_at,omitzero"`
}

// registration is one trunk's registration: the dialog-like identity that
// every REGISTER to the registrar shares (RFC 3261 10.2: one Call-ID, CSeq
// rising) and its status.
type registration struct {
	callID  string
	fromTag string

	mu   sync.Mutex
	cseq uint32
	st   RegistrationStatus
}

func newRegistration(tc TrunkConfig) *registration {
	aor := registerAOR(tc)
	return &registration{
		callID:  uuid.NewString(),
		fromTag: sip.GenerateTagN(16),
		st:      RegistrationStatus{State: RegistrationRegistering, AOR: aor.String()},
	}
}

func (r *registration) status() *RegistrationStatus {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.st
	return &st
}

// registerAOR is the address of record: register_user (default the digest
// username, else the caller ID without its "+") at register_domain (default
// the trunk's domain).
func registerAOR(tc TrunkConfig) sip.Uri {
	user := tc.RegisterUser
	if user == "" {
		user = tc.Username
	}
	if user == "" {
		user, _ = formatNumber(tc.CallerID, FormatE164NoPlus, "")
	}
	domain := tc.RegisterDomain
	if domain == "" {
		domain = tc.Domain
	}
	return sip.Uri{Scheme: "sip", User: user, Host: domain}
}

// refreshAfter is when a binding granted for d is refreshed: at half its
// life, or a minute before it ends when that is later.
func refreshAfter(d time.Duration) time.Duration {
	return max(d/2, d-refreshMargin)
}

// registerBackoff is the wait after n failures in a row.
func registerBackoff(n int) time.Duration {
	d := registerBackoffFirst
	for i := 1; i < n && d < registerBackoffMax; i++ {
		d *= 2
	}
	return min(d, registerBackoffMax)
}

// registerLoop keeps trunk t registered until the originator closes, and then
// removes the binding.
func (o *Originator) registerLoop(t *trunk) {
	defer o.wg.Done()
	r := t.reg
	gauge := o.metrics.registered.WithLabelValues(t.cfg.Name)
	gauge.Set(0)
	defer gauge.Set(0)
	timer := time.NewTimer(0)
	defer timer.Stop()
	failures := 0
	for {
		select {
		case <-o.rootCtx.Done():
			o.unregisterTrunk(t)
			return
		case <-timer.C:
		}
		granted, err := o.sendRegister(o.rootCtx, t, time.Duration(t.cfg.RegisterExpires)*time.Second)
		if o.rootCtx.Err() != nil {
			o.unregisterTrunk(t)
			return
		}
		now := o.now()
		r.mu.Lock()
		if err != nil {
			failures++
			wait := registerBackoff(failures)
			r.st.LastError, r.st.Failures, r.st.NextTryAt = err.Error(), failures, now.Add(wait)
			if r.st.State != RegistrationRegistered || !now.Before(r.st.ExpiresAt) {
				r.st.State = RegistrationFailing
				gauge.Set(0)
			}
			// While an earlier binding lasts the retry keeps to its life: the
			// registration only fails once the binding is gone.
			if r.st.State == RegistrationRegistered {
				wait = min(wait, max(r.st.ExpiresAt.Sub(now)/2, 100*time.Millisecond))
				r.st.NextTryAt = now.Add(wait)
			}
			r.mu.Unlock()
			o.log.Warn("sip trunk registration failed", "trunk", t.cfg.Name, "err", err, "retry_in", wait, "failures", failures)
			timer.Reset(wait)
			continue
		}
		failures = 0
		wait := refreshAfter(granted)
		prev := r.st.State
		r.st = RegistrationStatus{State: RegistrationRegistered, AOR: r.st.AOR, RegisteredAt: now,
			ExpiresAt: now.Add(granted), NextTryAt: now.Add(wait)}
		r.mu.Unlock()
		gauge.Set(1)
		if prev != RegistrationRegistered {
			o.log.Info("sip trunk registered", "trunk", t.cfg.Name, "aor", r.st.AOR, "expires", granted)
		}
		timer.Reset(wait)
	}
}

// unregisterTrunk removes the binding at shutdown (Expires: 0), best effort
// and briefly: the originator is closing.
func (o *Originator) unregisterTrunk(t *trunk) {
	r := t.reg
	r.mu.Lock()
	bound := r.st.State == RegistrationRegistered
	r.mu.Unlock()
	if !bound {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(o.rootCtx), unregisterTimeout)
	defer cancel()
	_, err := o.sendRegister(ctx, t, 0)
	r.mu.Lock()
	if err != nil {
		r.st.LastError = "unregister: " + err.Error()
	} else {
		r.st.State, r.st.ExpiresAt, r.st.NextTryAt = RegistrationUnregistered, time.Time{}, time.Time{}
	}
	r.mu.Unlock()
	if err != nil {
		o.log.Warn("sip trunk unregister failed", "trunk", t.cfg.Name, "err", err)
	}
}

// errRegisterAuth means the registrar refused the credentials.
var errRegisterAuth = errors.New("credentials refused")

// sendRegister sends one REGISTER asking for expires (0 removes the binding),
// answers one digest challenge, and returns the lifetime granted.
func (o *Originator) sendRegister(ctx context.Context, t *trunk, expires time.Duration) (time.Duration, error) {
	if err := t.unresolved(); err != nil {
		return 0, fmt.Errorf("register: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, registerTimeout)
	defer cancel()
	client := t.dialogUA.Client
	req := o.buildRegister(t, expires)
	res, err := client.Do(ctx, req)
	if err == nil && res != nil && res.StatusCode == sip.StatusIntervalToBrief {
		// 423: the registrar wants a longer life (RFC 3261 10.2.8); ask for its minimum once.
		if h := res.GetHeader("Min-Expires"); h != nil {
			if least, perr := strconv.Atoi(h.Value()); perr == nil && least > 0 {
				expires = time.Duration(least) * time.Second
				req = o.buildRegister(t, expires)
				res, err = client.Do(ctx, req)
			}
		}
	}
	if err == nil && res != nil && (res.StatusCode == sip.StatusUnauthorized || res.StatusCode == sip.StatusProxyAuthRequired) {
		if t.cfg.Password == "" {
			return 0, fmt.Errorf("register %s: %d %s and no password configured", t.cfg.Name, res.StatusCode, res.Reason)
		}
		res, err = client.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: cmp.Or(t.cfg.Username, registerAOR(t.cfg).User), Password: t.cfg.Password})
		if cseq := req.CSeq(); cseq != nil {
			t.reg.mu.Lock()
			t.reg.cseq = max(t.reg.cseq, cseq.SeqNo)
			t.reg.mu.Unlock()
		}
		if err == nil && res != nil && (res.StatusCode == sip.StatusUnauthorized || res.StatusCode == sip.StatusProxyAuthRequired) {
			return 0, fmt.Errorf("register %s: %w: %d %s", t.cfg.Name, errRegisterAuth, res.StatusCode, res.Reason)
		}
	}
	if err == nil && res == nil {
		err = errors.New("no response") // sipgo's transaction ended without one
	}
	if err != nil {
		t.resolved.skip(req.Destination()) // the next SRV target, if any, is tried next time
		return 0, fmt.Errorf("register %s: %w", t.cfg.Name, err)
	}
	if !res.IsSuccess() {
		return 0, fmt.Errorf("register %s: %d %s", t.cfg.Name, res.StatusCode, res.Reason)
	}
	// A registrar that grants nothing is asked again in a second, not in a loop.
	return max(grantedExpires(res, t.dialogUA.ContactHDR.Address, expires), time.Second), nil
}

// buildRegister is the next REGISTER of trunk t: same Call-ID and From tag,
// the next CSeq, our Contact and the lifetime asked for.
func (o *Originator) buildRegister(t *trunk, expires time.Duration) *sip.Request {
	r := t.reg
	aor := registerAOR(t.cfg)
	uri := o.trunkURI(t, "")
	if t.cfg.RegisterDomain != "" {
		uri = sip.Uri{Scheme: "sip", Host: t.cfg.RegisterDomain, UriParams: uri.UriParams}
	}
	req := sip.NewRequest(sip.REGISTER, uri)
	// The registrar is the trunk's address, whatever domain the Request-URI names.
	if dest := t.destination(); dest != "" {
		req.SetDestination(dest)
	} else if t.resolved == nil {
		req.SetDestination(net.JoinHostPort(t.host, strconv.Itoa(t.port)))
	}
	from := &sip.FromHeader{Address: aor, Params: sip.NewParams()}
	from.Params.Add("tag", r.fromTag)
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: aor})
	cid := sip.CallIDHeader(r.callID)
	req.AppendHeader(&cid)
	r.mu.Lock()
	r.cseq++
	seq := r.cseq
	r.mu.Unlock()
	req.AppendHeader(&sip.CSeqHeader{SeqNo: seq, MethodName: sip.REGISTER})
	req.AppendHeader(sip.HeaderClone(&t.dialogUA.ContactHDR))
	req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(int(expires/time.Second))))
	req.AppendHeader(sip.NewHeader("User-Agent", o.cfg.UserAgent))
	req.AppendHeader(sip.NewHeader("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS"))
	return req
}

// grantedExpires reads the lifetime a 2xx to REGISTER granted our Contact:
// its expires parameter, else the Expires header, else what was asked
// (RFC 3261 10.2.4).
func grantedExpires(res *sip.Response, ours sip.Uri, asked time.Duration) time.Duration {
	for _, h := range res.GetHeaders("Contact") {
		c, ok := h.(*sip.ContactHeader)
		if !ok || c.Address.Host != ours.Host || c.Address.Port != ours.Port || c.Address.User != ours.User {
			continue
		}
		if v, ok := c.Params.Get("expires"); ok {
			if n, err := strconv.Atoi(v); err == nil {
				return time.Duration(n) * time.Second
			}
		}
	}
	if h := res.GetHeader("Expires"); h != nil {
		if n, err := strconv.Atoi(h.Value()); err == nil {
			return time.Duration(n) * time.Second
		}
	}
	return asked
}
