package emulator

import (
	"net/http"
	"net/url"
	"time"
)

// Meta's limits on call permission requests to one person (user-call-permissions,
// "Limits"): one in 24 hours, two in 7 days, both reset by a connected call; and
// at most 100 connected calls in 24 hours.
var permissionRequestLimits = []struct {
	period string
	d      time.Duration
	max    int
}{{"PT24H", 24 * time.Hour, 1}, {"P7D", 7 * 24 * time.Hour, 2}}

const connectedCallsPerDay = 100

// userPermission is what Meta knows of one person's call permission for the
// business number.
type userPermission struct {
	granted   bool
	permanent bool
	expires   time.Time
	// requests are the permission requests sent since the last connected call.
	requests []time.Time
	// connected are the starts of connected calls.
	connected []time.Time
}

// perm returns the person's record, creating it. e.mu is held.
func (e *Emulator) perm(number string) *userPermission {
	p := e.perms[number]
	if p == nil {
		p = &userPermission{}
		e.perms[number] = p
	}
	return p
}

// grantedNow reports whether p lets the business call at now.
func (p *userPermission) grantedNow(now time.Time) bool {
	return p != nil && p.granted && (p.permanent || p.expires.IsZero() || now.Before(p.expires))
}

// GrantPermission makes the person behind number grant the business permission
// to call outside any request (in the business profile, say), with no webhook:
// only the call_permissions endpoint tells. A zero expiry is permanent.
func (e *Emulator) GrantPermission(number string, expires time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	p := e.perm(normalize(number))
	p.granted, p.permanent, p.expires = true, expires.IsZero(), expires
}

// grant records a reply to a permission request. e.mu is held.
func (e *Emulator) grant(number string, permanent bool, expires time.Time) {
	p := e.perm(number)
	p.granted, p.permanent, p.expires = true, permanent, expires
}

// connected records a connected call, which resets the request limits. e.mu is held.
func (e *Emulator) connected(number string, at time.Time) {
	p := e.perm(number)
	p.requests = nil
	p.connected = append(p.connected, at)
}

// admitPermissionRequest rules on a permission request to number at now, as Meta
// does: refused with 138017 when the person already gave permanent permission,
// with 138009 over the request limits; counted when admitted.
func (e *Emulator) admitPermissionRequest(number string, now time.Time) (graphError, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	p := e.perm(number)
	if p.granted && p.permanent {
		return graphError{http.StatusBadRequest, 138017, 0, "OAuthException", "(#138017) Permanent call permission already exists"}, false
	}
	for _, l := range permissionRequestLimits {
		if usage(p.requests, l.d, now) >= l.max {
			return graphError{http.StatusBadRequest, 138009, 0, "OAuthException", "(#138009) Call permission request limit reached"}, false
		}
	}
	p.requests = append(p.requests, now)
	return graphError{}, true
}

// usage counts the times within d before now.
func usage(times []time.Time, d time.Duration, now time.Time) int {
	n := 0
	for _, t := range times {
		if now.Sub(t) < d {
			n++
		}
	}
	return n
}

// freesAt is when the oldest of the times within d before now leaves the period.
func freesAt(times []time.Time, d time.Duration, now time.Time) time.Time {
	var oldest time.Time
	for _, t := range times {
		if now.Sub(t) < d && (oldest.IsZero() || t.Before(oldest)) {
			oldest = t
		}
	}
	return oldest.Add(d)
}

// callPermissions serves GET /{phone-number-id}/call_permissions?user_wa_id=…
// in the shape of user-call-permissions, "Get current call permission state".
func (e *Emulator) callPermissions(w http.ResponseWriter, q url.Values, rec *Request) {
	user := normalize(q.Get("user_wa_id"))
	if user == "" {
		e.writeError(w, rec, graphError{http.StatusBadRequest, 100, 0, "OAuthException", "(#100) The parameter user_wa_id is required."})
		return
	}
	rec.To = user
	now := time.Now()
	e.mu.Lock()
	p := *e.perm(user)
	e.mu.Unlock()
	permission := map[string]any{"status": "no_permission"}
	switch {
	case p.grantedNow(now) && p.permanent:
		permission["status"] = "permanent"
	case p.grantedNow(now):
		permission["status"] = "temporary"
		permission["expiration_time"] = p.expires.Unix()
	}
	canRequest := !(p.granted && p.permanent)
	var reqLimits []map[string]any
	for _, l := range permissionRequestLimits {
		n := usage(p.requests, l.d, now)
		lim := map[string]any{"time_period": l.period, "max_allowed": l.max, "current_usage": n}
		if n >= l.max {
			canRequest = false
			lim["limit_expiration_time"] = freesAt(p.requests, l.d, now).Unix()
		}
		reqLimits = append(reqLimits, lim)
	}
	calls := usage(p.connected, 24*time.Hour, now)
	callLimit := map[string]any{"time_period": "PT24H", "max_allowed": connectedCallsPerDay, "current_usage": calls}
	if calls >= connectedCallsPerDay {
		callLimit["limit_expiration_time"] = freesAt(p.connected, 24*time.Hour, now).Unix()
	}
	writeJSON(w, rec, map[string]any{
		"messaging_product": "whatsapp",
		"permission":        permission,
		"actions": []map[string]any{
			{"action_name": "send_call_permission_request", "can_perform_action": canRequest, "limits": reqLimits},
			{"action_name": "start_call", "can_perform_action": p.grantedNow(now) && calls < connectedCallsPerDay, "limits": []map[string]any{callLimit}},
		},
	})
}

// isPermissionRequest reports whether a message request asks for call
// permission: the interactive call_permission_request, or a template that
// carries one.
func isPermissionRequest(rb requestBody, e *Emulator) bool {
	switch {
	case rb.Type == "interactive" && rb.Interactive != nil:
		return rb.Interactive.Type == "call_permission_request"
	case rb.Type == "template" && rb.Template != nil:
		t, _ := e.template(rb.Template.Name, rb.Template.Language.Code)
		return t.CallPermissionRequest
	}
	return false
}
