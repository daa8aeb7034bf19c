package web

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/storage"
)

// apiError is an error with the HTTP status and code the client sees.
type apiError struct {
	Status  int               `json:"-"`
	Code    string            `json:"code"`
	Message string            `json:"message"`
	Fields  map[string]string `json:"fields,omitempty"`
	// Reason says which problem exactly, as a stable code pages translate
	// (Message is English, for people reading the API).
	Reason string `json:"reason,omitempty"`
	// refusal is the policy gate's decision when it refused the action.
	refusal *campaigns.Decision
	// retryAfter is the Retry-After header's value, when the client should.
	retryAfter string
}

func (e *apiError) Error() string { return e.Message }

func errorf(status int, code, message string) *apiError {
	return &apiError{Status: status, Code: code, Message: message}
}

func badRequest(msg string) *apiError { return errorf(http.StatusBadRequest, "bad_request", msg) }
func forbidden(msg string) *apiError  { return errorf(http.StatusForbidden, "forbidden", msg) }
func notFound(msg string) *apiError   { return errorf(http.StatusNotFound, "not_found", msg) }
func conflict(msg string) *apiError   { return errorf(http.StatusConflict, "conflict", msg) }
func unprocessable(msg string) *apiError {
	return errorf(http.StatusUnprocessableEntity, "validation_failed", msg)
}

// storageRetryAfter is the Retry-After of a write the database refused: a few
// seconds, the write probe's interval, after which /readyz knows better.
const storageRetryAfter = "5"

// toAPIError maps errors from the layers below to what the client sees; anything
// unknown is a 500 whose detail stays in the log.
func toAPIError(err error) *apiError {
	var ae *apiError
	var ve *campaigns.ValidationError
	var mbe *http.MaxBytesError
	var refused *campaigns.RefusedError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &refused):
		e := errorf(refusalStatus(refused.Decision), "policy_refused", refused.Error())
		e.refusal = &refused.Decision
		return e
	case errors.As(err, &ve):
		e := unprocessable(ve.Error())
		e.Fields = ve.Fields
		return e
	case errors.As(err, &mbe):
		return errorf(http.StatusRequestEntityTooLarge, "body_too_large", "request body is larger than the limit of "+formatBytes(mbe.Limit))
	case errors.Is(err, errSlowBody):
		return errorf(http.StatusRequestTimeout, "body_timeout", err.Error())
	case errors.Is(err, errHasherBusy):
		return errorf(http.StatusServiceUnavailable, "too_busy", "the server is checking many passwords right now; try again in a moment")
	case errors.Is(err, storage.ErrNotFound):
		return notFound(err.Error())
	case errors.Is(err, storage.ErrConflict), errors.Is(err, campaigns.ErrInvalidTransition):
		return conflict(err.Error())
	case storage.IsUnavailable(err):
		e := errorf(http.StatusServiceUnavailable, "storage_unavailable",
			"the database is busy or full: nothing was saved, try again in a moment")
		e.retryAfter = storageRetryAfter
		return e
	}
	return errorf(http.StatusInternalServerError, "internal", "internal error")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, e *apiError) {
	if e.retryAfter != "" {
		w.Header().Set("Retry-After", e.retryAfter)
	}
	if e.refusal != nil {
		// The reasons and the next allowed instant beside the error, as the policy
		// endpoint gives them, so a client offers the time that would be allowed.
		// Inside the error as well, as a preview dial's refusal gives them.
		inner := map[string]any{"code": e.Code, "message": e.Message, "reasons": e.refusal.Reasons, "next_allowed_at": e.refusal.NextAllowedAt}
		writeJSON(w, e.Status, map[string]any{"error": inner, "reasons": e.refusal.Reasons, "next_allowed_at": e.refusal.NextAllowedAt})
		return
	}
	writeJSON(w, e.Status, map[string]*apiError{"error": e})
}
