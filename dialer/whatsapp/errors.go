package whatsapp

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Kind classifies a failure by what the engine should do about it.
type Kind string

// The kinds of failure. Each names an outcome the engine records or acts upon.
const (
	// KindNoPermission: the user has not granted call permission (138006); ask for it.
	KindNoPermission Kind = "no_permission"
	// KindNotOnWhatsApp: the number cannot receive WhatsApp messages or calls (131026,
	// 138001); escalate to another channel, do not retry.
	KindNotOnWhatsApp Kind = "not_on_whatsapp"
	// KindOutsideWindow: a free-form message outside the 24 h customer service window
	// (131047); send a template instead.
	KindOutsideWindow Kind = "outside_window"
	// KindBadTemplate: the template does not exist, is paused or its parameters do not
	// fit (132xxx); a configuration error of the campaign.
	KindBadTemplate Kind = "bad_template"
	// KindAuth: the token is invalid or lacks permissions (190, 10, 200–299); stop the
	// channel and alert an administrator.
	KindAuth Kind = "auth"
	// KindThrottled: Meta refused for throughput (HTTP 429, 130429, 131056, 4, 80007,
	// 613, 131048, 138002 concurrent calls, 138005 call rate); the request was not
	// processed.
	KindThrottled Kind = "throttled"
	// KindServer: Meta failed (5xx, 1, 2, 131000, 131016, 138004, 138007) or the call
	// failed on WhatsApp's side (138019–138023 in a terminate webhook); transient.
	KindServer Kind = "server"
	// KindCallingUnavailable: calling is not possible for reasons other than permission
	// (138000 not enabled, 138003 duplicate call, 138009 permission request limit,
	// 138012 daily call limit, 138013 not available, 138014 disabled for quality,
	// 138015/138018 cannot be enabled, 131055 SIP-enabled number).
	KindCallingUnavailable Kind = "calling_unavailable"
	// KindInvalidRequest: the request itself is wrong (100, 131008, 131009, other 4xx).
	KindInvalidRequest Kind = "invalid_request"
	// KindNetwork: no answer from Meta (connection refused, timeout); transient.
	KindNetwork Kind = "network"
	// KindUnknown: anything not classified above.
	KindUnknown Kind = "unknown"
)

// Error is a Graph API failure: the HTTP status and Meta's error object.
type Error struct {
	// HTTPStatus is the response status code, 0 for a transport failure.
	HTTPStatus int
	// Code, Subcode, Type and Message are Meta's error.code, error.error_subcode,
	// error.type and error.message.
	Code    int
	Subcode int
	Type    string
	Message string
	// Details is error.error_data.details when Meta sends it.
	Details string
	// FBTraceID identifies the request for Meta support.
	FBTraceID string
	// Op names the client operation ("send template", "connect call", …).
	Op string
	// Attempts is how many HTTP attempts were made.
	Attempts int
	// Err is the underlying transport error for KindNetwork.
	Err error
}

// Error formats the failure without any request data beyond the operation.
func (e *Error) Error() string {
	if e.Err != nil && e.Code == 0 {
		return fmt.Sprintf("whatsapp %s: %s after %d attempt(s): %v", e.Op, e.Kind(), e.Attempts, e.Err)
	}
	s := fmt.Sprintf("whatsapp %s: %s: HTTP %d code %d", e.Op, e.Kind(), e.HTTPStatus, e.Code)
	if e.Subcode != 0 {
		s += fmt.Sprintf("/%d", e.Subcode)
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.FBTraceID != "" {
		s += " (fbtrace_id " + e.FBTraceID + ")"
	}
	return s
}

// Unwrap returns the transport error, if any.
func (e *Error) Unwrap() error { return e.Err }

// Kind classifies the failure; see [ClassifyCode].
func (e *Error) Kind() Kind {
	if e.Code == 0 && e.Err != nil {
		return KindNetwork
	}
	return ClassifyCode(e.HTTPStatus, e.Code)
}

// Outcome is the snake_case name of the kind, for storing as an attempt outcome.
func (e *Error) Outcome() string { return string(e.Kind()) }

// Temporary reports whether retrying the same request later may succeed.
func (e *Error) Temporary() bool {
	switch e.Kind() {
	case KindThrottled, KindServer, KindNetwork:
		return true
	}
	return false
}

// retryable reports whether the client retries the request itself: a transient
// failure or a throughput refusal, after which Meta has not processed the request.
// The code decides before the HTTP status, since Meta documents some throttling codes
// with HTTP 400 and some non-throttling ones with 429. Throughput codes that mean
// "slow down for this user or number for a long time" (131048 spam, 138002 concurrent
// calls, 138005 call rate) are temporary but not retried in place: the engine
// reschedules them. 138007 (the SDP was not applied in time) is not retried either:
// the call it refers to is gone.
func (e *Error) retryable() bool {
	switch e.Code {
	case 131048, 138002, 138005, 138007:
		return false
	}
	switch e.Kind() {
	case KindNetwork, KindServer, KindThrottled:
		return true
	}
	return false
}

// ErrNotSent marks a failure that came before the request could leave: no
// connection to Meta was made, or the caller's hook before the write refused.
// Sending again cannot send twice.
var ErrNotSent = errors.New("the request never left")

// MayHaveLeft reports whether a failed send may have reached Meta all the same:
// false when Meta answered (with an error, so it did not accept the message) or
// when the failure came before the request could leave (ErrNotSent); true for a
// request that broke off after its connection was made, which only evidence
// (the message's status webhook) can settle.
func MayHaveLeft(err error) bool {
	if err == nil || errors.Is(err, ErrNotSent) {
		return false
	}
	var e *Error
	if errors.As(err, &e) && e.HTTPStatus != 0 {
		return false
	}
	return true
}

// RetryDelay says whether a failed request may be made again at once under
// the same key, and after how long: true when Meta refused it for throughput or
// failed without processing it, or it never left, and fewer than MaxAttempts
// tries (attempt counts them) were made. A request that may have left is never
// retried: only evidence settles it.
func (c *Client) RetryDelay(attempt int, err error) (time.Duration, bool) {
	if attempt >= c.cfg.MaxAttempts || MayHaveLeft(err) {
		return 0, false
	}
	var e *Error
	if !errors.As(err, &e) || !e.retryable() {
		return 0, false
	}
	if e.Code == codePairRateLimit {
		return max(c.backoff(attempt, nil), PairRateLimitWait), true
	}
	return c.backoff(attempt, nil), true
}

// ErrorKind returns the kind of err if it is (or wraps) an [*Error], KindUnknown otherwise.
func ErrorKind(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind()
	}
	return KindUnknown
}

// ClassifyCode maps an HTTP status and a Graph error code to a [Kind]. The code wins
// over the status because Meta sends most errors as HTTP 400 and advises building
// error handling on the code. The calling codes are those of Meta's "Troubleshoot
// WhatsApp Calling Errors" reference (calling/troubleshooting, "Calling error codes").
func ClassifyCode(httpStatus, code int) Kind {
	switch code {
	case 138006:
		return KindNoPermission
	case 131026, 138001:
		return KindNotOnWhatsApp
	case 131047:
		return KindOutsideWindow
	case 190, 10, 131005:
		return KindAuth
	case 130429, 131056, 4, 80007, 613, 131048, 138002, 138005:
		return KindThrottled
	case 1, 2, 131000, 131016, 138004, 138007, 138019, 138020, 138021, 138022, 138023:
		return KindServer
	case 138000, 138003, 138009, 138012, 138013, 138014, 138015, 138018, 131055:
		return KindCallingUnavailable
	case 100, 131008, 131009, 131051, 131021:
		return KindInvalidRequest
	}
	switch {
	case code >= 132000 && code <= 132999:
		return KindBadTemplate
	case code >= 200 && code <= 299:
		return KindAuth
	}
	switch {
	case httpStatus == http.StatusTooManyRequests:
		return KindThrottled
	case httpStatus == http.StatusUnauthorized || httpStatus == http.StatusForbidden:
		return KindAuth
	case httpStatus >= 500:
		return KindServer
	case httpStatus >= 400:
		return KindInvalidRequest
	}
	return KindUnknown
}

// graphErrorBody is Meta's error JSON shape.
type graphErrorBody struct {
	Error *struct {
		Message      string `json:"message"`
		Type         string `json:"type"`
		Code         int    `json:"code"`
		ErrorSubcode int    `json:"error_subcode"`
		FBTraceID    string `json:"fbtrace_id"`
		ErrorData    *struct {
			Details string `json:"details"`
		} `json:"error_data"`
	} `json:"error"`
}

// parseGraphError builds an [*Error] from a non-2xx response body. A body that is not
// Graph's shape still gives an error carrying the HTTP status.
func parseGraphError(op string, status int, body []byte) *Error {
	e := &Error{Op: op, HTTPStatus: status}
	var g graphErrorBody
	if json.Unmarshal(body, &g) == nil && g.Error != nil {
		e.Code = g.Error.Code
		e.Subcode = g.Error.ErrorSubcode
		e.Type = g.Error.Type
		e.Message = g.Error.Message
		e.FBTraceID = g.Error.FBTraceID
		if g.Error.ErrorData != nil {
			e.Details = g.Error.ErrorData.Details
		}
	} else {
		e.Message = http.StatusText(status)
	}
	return e
}
