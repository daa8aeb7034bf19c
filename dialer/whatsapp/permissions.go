package whatsapp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"
)

// Meta's call permission statuses (user-call-permissions, "Get current call
// permission state").
const (
	MetaPermissionTemporary = "temporary"
	MetaPermissionPermanent = "permanent"
	MetaPermissionNone      = "no_permission"
)

// Actions of a call permission state.
const (
	ActionSendPermissionRequest = "send_call_permission_request"
	ActionStartCall             = "start_call"
)

// CodePermissionExists is Meta's answer to a call permission request sent to a
// person who already gave the business permanent permission.
const CodePermissionExists = 138017

// PermissionLimit is one of Meta's limits on an action towards one person.
type PermissionLimit struct {
	// Period is the ISO 8601 duration the limit counts over ("PT24H", "P7D").
	Period       string
	MaxAllowed   int
	CurrentUsage int
	// Expires is when a limit that is used up frees again (zero: not given).
	Expires time.Time
}

// PermissionAction is what Meta says of one action towards the person.
type PermissionAction struct {
	CanPerform bool
	Limits     []PermissionLimit
}

// CallPermissionState is Meta's view of the business calling one person.
type CallPermissionState struct {
	// Status is temporary, permanent or no_permission.
	Status string
	// Expires is when a temporary permission lapses.
	Expires time.Time
	// Actions are keyed by action name (send_call_permission_request, start_call).
	Actions map[string]PermissionAction
}

// Granted reports whether the person lets the business call them at now.
func (s CallPermissionState) Granted(now time.Time) bool {
	switch s.Status {
	case MetaPermissionPermanent:
		return true
	case MetaPermissionTemporary:
		return s.Expires.IsZero() || now.Before(s.Expires)
	}
	return false
}

// CanRequest reports whether a call permission request may be sent now, and when
// not, the first instant Meta says one may (zero when it gives none). An action
// Meta does not list is not refused.
func (s CallPermissionState) CanRequest() (bool, time.Time) {
	a, ok := s.Actions[ActionSendPermissionRequest]
	if !ok || a.CanPerform {
		return true, time.Time{}
	}
	var next time.Time
	for _, l := range a.Limits {
		if l.CurrentUsage >= l.MaxAllowed && l.Expires.After(next) {
			next = l.Expires
		}
	}
	return false, next
}

// callPermissionsResponse is the body of GET /{phone-number-id}/call_permissions.
type callPermissionsResponse struct {
	MessagingProduct string `json:"messaging_product"`
	Permission       *struct {
		Status         string    `json:"status"`
		ExpirationTime *unixFlex `json:"expiration_time"`
	} `json:"permission"`
	Actions []struct {
		ActionName       string `json:"action_name"`
		CanPerformAction *bool  `json:"can_perform_action"`
		Limits           []struct {
			TimePeriod          string    `json:"time_period"`
			MaxAllowed          int       `json:"max_allowed"`
			CurrentUsage        int       `json:"current_usage"`
			LimitExpirationTime *unixFlex `json:"limit_expiration_time"`
		} `json:"limits"`
	} `json:"actions"`
}

// unixFlex is Unix seconds as a JSON number or a string of digits.
type unixFlex int64

// UnmarshalJSON accepts 1745343479 and "1745343479".
func (u *unixFlex) UnmarshalJSON(b []byte) error {
	s := string(b)
	if len(s) >= 2 && s[0] == '"' {
		s = s[1 : len(s)-1]
	}
	var n int64
	if _, err := fmt.Sscan(s, &n); err != nil {
		return fmt.Errorf("unix time %s: %w", b, err)
	}
	*u = unixFlex(n)
	return nil
}

func (u *unixFlex) time() time.Time {
	if u == nil || *u == 0 {
		return time.Time{}
	}
	return time.Unix(int64(*u), 0).UTC()
}

// CallPermission reads from Meta whether the business may call the user to, and
// whether (or from when) it may ask them for permission: GET
// /{phone-number-id}/call_permissions?user_wa_id=to.
func (c *Client) CallPermission(ctx context.Context, to string) (CallPermissionState, error) {
	to, err := normalizeTo(to)
	if err != nil {
		return CallPermissionState{}, err
	}
	var resp callPermissionsResponse
	if err := c.do(ctx, request{op: "read call permission", method: http.MethodGet,
		path: url.PathEscape(c.cfg.PhoneNumberID) + "/call_permissions", query: url.Values{"user_wa_id": {to}}}, &resp); err != nil {
		return CallPermissionState{}, err
	}
	return resp.state()
}

// state checks and converts Meta's answer: a status Meta does not document is an
// error naming it, never taken for a grant.
func (r callPermissionsResponse) state() (CallPermissionState, error) {
	bad := func(msg string) (CallPermissionState, error) {
		return CallPermissionState{}, &Error{Op: "read call permission", HTTPStatus: http.StatusOK, Message: "malformed response: " + msg}
	}
	if r.Permission == nil {
		return bad("no permission")
	}
	s := CallPermissionState{Status: r.Permission.Status, Expires: r.Permission.ExpirationTime.time(), Actions: make(map[string]PermissionAction)}
	switch s.Status {
	case MetaPermissionTemporary, MetaPermissionPermanent, MetaPermissionNone:
	default:
		return bad(fmt.Sprintf("permission.status %q", s.Status))
	}
	for i, a := range r.Actions {
		if a.ActionName == "" || a.CanPerformAction == nil {
			return bad(fmt.Sprintf("actions[%d] lacks action_name or can_perform_action", i))
		}
		pa := PermissionAction{CanPerform: *a.CanPerformAction}
		for _, l := range a.Limits {
			pa.Limits = append(pa.Limits, PermissionLimit{Period: l.TimePeriod, MaxAllowed: l.MaxAllowed, CurrentUsage: l.CurrentUsage, Expires: l.LimitExpirationTime.time()})
		}
		s.Actions[a.ActionName] = pa
	}
	return s, nil
}

// PermissionExists reports whether err is Meta's refusal of a call permission
// request because the person already gave permanent permission (138017): the
// business may call them.
func PermissionExists(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == CodePermissionExists
}

// Logger returns the client's logger, for the channels built on it.
func (c *Client) Logger() *slog.Logger { return c.log }
