package whatsapp

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// EventType names what an [Event] reports.
type EventType string

// The event types parsed from the "calls" and "messages" webhook fields.
const (
	// EventCallConnect carries an SDP: the answer to a business-initiated call, or the
	// offer of a user-initiated one.
	EventCallConnect EventType = "call.connect"
	// EventCallStatus is RINGING, ACCEPTED or REJECTED of a business-initiated call.
	EventCallStatus EventType = "call.status"
	// EventCallTerminate ends a call, with its status and duration.
	EventCallTerminate EventType = "call.terminate"
	// EventMessageStatus is sent, delivered, read or failed of a sent message.
	EventMessageStatus EventType = "message.status"
	// EventMessage is a message from a user (other than a permission reply).
	EventMessage EventType = "message.inbound"
	// EventPermissionReply is the user's answer to a call permission request.
	EventPermissionReply EventType = "call_permission.reply"
	// EventMessagesError carries errors at the top of a messages change, about
	// no one message (an asynchronous 130429 throughput error, for one): Meta's
	// webhooks reference calls them out-of-band errors.
	EventMessagesError EventType = "messages.error"
)

// Event is one typed fact from a webhook. Exactly one of Call, Status, Message,
// Permission and Errors is set, according to Type. It marshals to JSON so a durable [Sink] can
// store it as is.
type Event struct {
	Type EventType `json:"type"`
	// Key identifies the event for deduplication: call ID + event/status + timestamp,
	// or message ID + status.
	Key string `json:"key"`
	// Time is the event's own timestamp (Meta sends unix seconds).
	Time time.Time `json:"time"`
	// WABAID and PhoneNumberID say which account and number the event is for.
	WABAID        string `json:"waba_id,omitempty"`
	PhoneNumberID string `json:"phone_number_id,omitempty"`

	Call       *CallEvent       `json:"call,omitempty"`
	Status     *MessageStatus   `json:"status,omitempty"`
	Message    *InboundMessage  `json:"message,omitempty"`
	Permission *PermissionReply `json:"permission,omitempty"`
	// Errors are set on EventMessagesError.
	Errors []WebhookError `json:"errors,omitempty"`
}

// CallID returns the call ID of a call event, "" otherwise.
func (e Event) CallID() string {
	if e.Call != nil {
		return e.Call.ID
	}
	return ""
}

// CallEvent is a connect, status or terminate of one call.
type CallEvent struct {
	// ID is the call ID (wacid.…).
	ID        string `json:"id"`
	From      string `json:"from,omitempty"`
	To        string `json:"to,omitempty"`
	Direction string `json:"direction,omitempty"` // BUSINESS_INITIATED or USER_INITIATED
	// Status is RINGING, ACCEPTED or REJECTED for EventCallStatus and COMPLETED or
	// FAILED for EventCallTerminate, always upper case (Meta's examples spell the
	// terminate status both "COMPLETED" and "Completed").
	Status string `json:"status,omitempty"`
	// SDPType ("offer" or "answer") and SDP are set on EventCallConnect.
	SDPType string `json:"sdp_type,omitempty"`
	SDP     string `json:"sdp,omitempty"`
	// BizOpaque is the biz_opaque_callback_data given at connect (the idempotency key).
	BizOpaque string `json:"biz_opaque,omitempty"`
	// StartTime, EndTime and Duration are set on terminate of a connected call.
	StartTime time.Time     `json:"start_time,omitzero"`
	EndTime   time.Time     `json:"end_time,omitzero"`
	Duration  time.Duration `json:"duration,omitempty"`
	// Errors explain a FAILED terminate. Meta's terminate example carries them
	// beside calls[] in the change's value; the parser also accepts them inside
	// the call object.
	Errors []WebhookError `json:"errors,omitempty"`
}

// MessageStatus is a delivery status of a sent message.
type MessageStatus struct {
	// ID is the message's wamid.
	ID string `json:"id"`
	// Status is sent, delivered, read or failed.
	Status      string `json:"status"`
	RecipientID string `json:"recipient_id,omitempty"`
	// BizOpaque echoes the send's biz_opaque_callback_data (the idempotency key).
	BizOpaque string         `json:"biz_opaque,omitempty"`
	Errors    []WebhookError `json:"errors,omitempty"`
}

// InboundMessage is a message a user sent to the business.
type InboundMessage struct {
	ID   string `json:"id"`
	From string `json:"from"`
	// Name is the sender's WhatsApp profile name, from the webhook's contacts[].
	Name string `json:"name,omitempty"`
	Type string `json:"type"`
	// Text is the body of a text message.
	Text string `json:"text,omitempty"`
	// ContextID is the wamid of the business message this one replies to.
	ContextID string `json:"context_id,omitempty"`
}

// PermissionReply is a user's answer to a call permission request.
type PermissionReply struct {
	// MessageID is the wamid of the reply; ContextID that of the request.
	MessageID string `json:"message_id"`
	ContextID string `json:"context_id,omitempty"`
	From      string `json:"from"`
	Granted   bool   `json:"granted"`
	Permanent bool   `json:"permanent,omitempty"`
	// Expires is when a temporary grant lapses (zero when permanent or denied).
	Expires time.Time `json:"expires,omitzero"`
	// Source is PermissionSourceUserAction or PermissionSourceAutomatic.
	Source string `json:"source,omitempty"`
}

// Sources of a permission reply (response_source): the person's answer to a
// request, or the permission their own call to the business gave (the
// number's callback permission).
const (
	PermissionSourceUserAction = "user_action"
	PermissionSourceAutomatic  = "automatic"
)

// WebhookError is an error object inside a status or terminate webhook.
type WebhookError struct {
	Code    int    `json:"code"`
	Title   string `json:"title,omitempty"`
	Message string `json:"message,omitempty"`
	Details string `json:"details,omitempty"`
}

// Kind classifies the error like a synchronous Graph error.
func (e WebhookError) Kind() Kind { return ClassifyCode(0, e.Code) }

// ErrMalformedWebhook is wrapped by every parse failure.
var ErrMalformedWebhook = errors.New("malformed webhook")

// flexInt decodes a JSON number or a string of digits (Meta uses both for times).
type flexInt int64

func (f *flexInt) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if s == "" {
			*f = 0
			return nil
		}
		b = []byte(s)
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		// Some fields arrive as decimals ("duration": 33.0).
		x, ferr := strconv.ParseFloat(string(b), 64)
		if ferr != nil {
			return fmt.Errorf("not an integer: %q", b)
		}
		n = int64(x)
	}
	*f = flexInt(n)
	return nil
}

func unixTime(f flexInt) time.Time {
	if f <= 0 {
		return time.Time{}
	}
	// Meta sends seconds; a few APIs send milliseconds. Anything past year 5000 in
	// seconds is taken as milliseconds.
	if f > 95_000_000_000 {
		return time.UnixMilli(int64(f)).UTC()
	}
	return time.Unix(int64(f), 0).UTC()
}

type wireError struct {
	Code      int    `json:"code"`
	Title     string `json:"title"`
	Message   string `json:"message"`
	ErrorData *struct {
		Details string `json:"details"`
	} `json:"error_data"`
}

func convertErrors(ws []wireError) []WebhookError {
	if len(ws) == 0 {
		return nil
	}
	out := make([]WebhookError, len(ws))
	for i, w := range ws {
		out[i] = WebhookError{Code: w.Code, Title: w.Title, Message: w.Message}
		if w.ErrorData != nil {
			out[i].Details = w.ErrorData.Details
		}
	}
	return out
}

// wireEnvelope is a webhook body with its changes left raw, so that each is
// parsed on its own and one that does not parse sinks no other.
type wireEnvelope struct {
	Object string `json:"object"`
	Entry  []struct {
		ID      string            `json:"id"`
		Changes []json.RawMessage `json:"changes"`
	} `json:"entry"`
}

type wireChange struct {
	Field string    `json:"field"`
	Value wireValue `json:"value"`
}

type wireValue struct {
	Metadata struct {
		PhoneNumberID string `json:"phone_number_id"`
	} `json:"metadata"`
	Contacts []struct {
		WaID    string `json:"wa_id"`
		Profile struct {
			Name string `json:"name"`
		} `json:"profile"`
	} `json:"contacts"`
	// Errors at the value level: in a calls change they explain a FAILED
	// terminate (business-initiated-calls, "Call terminate webhook"); in a
	// messages change they are out-of-band errors (EventMessagesError).
	Errors []wireError `json:"errors"`
	Calls  []struct {
		ID        string  `json:"id"`
		From      string  `json:"from"`
		To        string  `json:"to"`
		Event     string  `json:"event"`
		Direction string  `json:"direction"`
		Timestamp flexInt `json:"timestamp"`
		Status    string  `json:"status"`
		Session   *struct {
			SDPType string `json:"sdp_type"`
			SDP     string `json:"sdp"`
		} `json:"session"`
		BizOpaque string      `json:"biz_opaque_callback_data"`
		StartTime flexInt     `json:"start_time"`
		EndTime   flexInt     `json:"end_time"`
		Duration  flexInt     `json:"duration"`
		Errors    []wireError `json:"errors"`
	} `json:"calls"`
	Statuses []struct {
		ID          string      `json:"id"`
		Type        string      `json:"type"`
		Status      string      `json:"status"`
		Timestamp   flexInt     `json:"timestamp"`
		RecipientID string      `json:"recipient_id"`
		BizOpaque   string      `json:"biz_opaque_callback_data"`
		Errors      []wireError `json:"errors"`
	} `json:"statuses"`
	Messages []struct {
		ID        string  `json:"id"`
		From      string  `json:"from"`
		Type      string  `json:"type"`
		Timestamp flexInt `json:"timestamp"`
		Text      *struct {
			Body string `json:"body"`
		} `json:"text"`
		Context *struct {
			ID string `json:"id"`
		} `json:"context"`
		Interactive *struct {
			Type                string `json:"type"`
			CallPermissionReply *struct {
				Response            string  `json:"response"`
				IsPermanent         bool    `json:"is_permanent"`
				ExpirationTimestamp flexInt `json:"expiration_timestamp"`
				ResponseSource      string  `json:"response_source"`
			} `json:"call_permission_reply"`
		} `json:"interactive"`
	} `json:"messages"`
}

// profileName returns the profile name contacts[] gives for waID.
func (v *wireValue) profileName(waID string) string {
	for _, c := range v.Contacts {
		if c.WaID == waID {
			return c.Profile.Name
		}
	}
	return ""
}

// BadChange is one entry[].changes[] item of a webhook that could not be
// parsed; the batch's other changes were.
type BadChange struct {
	// WABAID is the entry's id.
	WABAID string
	// Raw is the change as it came.
	Raw json.RawMessage
	// Err says why it could not be parsed; it wraps [ErrMalformedWebhook].
	Err error
}

// ParseWebhook parses the body of a webhook POST into events, in the order they
// appear. Unknown fields and unknown change fields are ignored; items without an
// ID are skipped. A body that is not JSON of Meta's shape, or any change that is
// not, gives an error wrapping [ErrMalformedWebhook]; [ParseWebhookChanges]
// keeps the changes that parse.
func ParseWebhook(body []byte) ([]Event, error) {
	events, bad, err := ParseWebhookChanges(body)
	if err != nil {
		return nil, err
	}
	if len(bad) > 0 {
		return nil, bad[0].Err
	}
	return events, nil
}

// ParseWebhookChanges parses a webhook body change by change: err (wrapping
// [ErrMalformedWebhook]) when the envelope itself is not Meta's (not JSON, an
// object other than whatsapp_business_account, entries of the wrong shape),
// otherwise the events of the changes that parse and the changes that do not.
func ParseWebhookChanges(body []byte) (events []Event, bad []BadChange, err error) {
	var p wireEnvelope
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrMalformedWebhook, err)
	}
	if p.Object != "whatsapp_business_account" {
		return nil, nil, fmt.Errorf("%w: object %q is not whatsapp_business_account", ErrMalformedWebhook, p.Object)
	}
	for _, entry := range p.Entry {
		for _, raw := range entry.Changes {
			evs, err := parseChange(entry.ID, raw)
			if err != nil {
				bad = append(bad, BadChange{WABAID: entry.ID, Raw: raw, Err: fmt.Errorf("%w: entry %s: %w", ErrMalformedWebhook, entry.ID, err)})
				continue
			}
			events = append(events, evs...)
		}
	}
	return events, bad, nil
}

// parseChange parses one entry[].changes[] item of the entry wabaID.
func parseChange(wabaID string, raw json.RawMessage) (events []Event, err error) {
	var ch wireChange
	if err := json.Unmarshal(raw, &ch); err != nil {
		return nil, err
	}
	v := &ch.Value
	base := Event{WABAID: wabaID, PhoneNumberID: v.Metadata.PhoneNumberID}
	if ch.Field == "messages" && len(v.Errors) > 0 {
		// Errors at the top of a messages value are not about one message
		// (async throughput 130429 and the like): kept as their own event.
		sum := sha256.Sum256(raw)
		ev := base
		ev.Type = EventMessagesError
		ev.Errors = convertErrors(v.Errors)
		ev.Key = "errors|" + v.Metadata.PhoneNumberID + "|" + hex.EncodeToString(sum[:16])
		events = append(events, ev)
	}
	for _, c := range v.Calls {
		if c.ID == "" {
			continue
		}
		ev := base
		ev.Time = unixTime(c.Timestamp)
		ce := &CallEvent{ID: c.ID, From: c.From, To: c.To, Direction: c.Direction, Status: strings.ToUpper(c.Status),
			BizOpaque: c.BizOpaque, Errors: convertErrors(c.Errors)}
		switch c.Event {
		case "connect":
			ev.Type = EventCallConnect
			if c.Session != nil {
				ce.SDPType, ce.SDP = c.Session.SDPType, c.Session.SDP
			}
		case "terminate":
			ev.Type = EventCallTerminate
			ce.StartTime, ce.EndTime = unixTime(c.StartTime), unixTime(c.EndTime)
			ce.Duration = time.Duration(c.Duration) * time.Second
			if len(ce.Errors) == 0 {
				ce.Errors = convertErrors(v.Errors)
			}
		default:
			continue // unknown call events are ignored, as unknown fields are
		}
		ev.Call = ce
		ev.Key = "call|" + c.ID + "|" + c.Event + "|" + strconv.FormatInt(int64(c.Timestamp), 10)
		events = append(events, ev)
	}
	for _, s := range v.Statuses {
		if s.ID == "" || s.Status == "" {
			continue
		}
		ev := base
		ev.Time = unixTime(s.Timestamp)
		if s.Type == "call" || ch.Field == "calls" {
			ev.Type = EventCallStatus
			status := strings.ToUpper(s.Status)
			ev.Call = &CallEvent{ID: s.ID, To: s.RecipientID, Status: status, BizOpaque: s.BizOpaque, Errors: convertErrors(s.Errors)}
			ev.Key = "call|" + s.ID + "|status:" + status + "|" + strconv.FormatInt(int64(s.Timestamp), 10)
		} else {
			ev.Type = EventMessageStatus
			ev.Status = &MessageStatus{ID: s.ID, Status: s.Status, RecipientID: s.RecipientID, BizOpaque: s.BizOpaque, Errors: convertErrors(s.Errors)}
			ev.Key = "msg|" + s.ID + "|" + s.Status
		}
		events = append(events, ev)
	}
	for _, m := range v.Messages {
		if m.ID == "" {
			continue
		}
		ev := base
		ev.Time = unixTime(m.Timestamp)
		ev.Key = "in|" + m.ID
		ctxID := ""
		if m.Context != nil {
			ctxID = m.Context.ID
		}
		if m.Interactive != nil && m.Interactive.Type == "call_permission_reply" && m.Interactive.CallPermissionReply != nil {
			r := m.Interactive.CallPermissionReply
			ev.Type = EventPermissionReply
			ev.Permission = &PermissionReply{MessageID: m.ID, ContextID: ctxID, From: m.From,
				Granted: r.Response == "accept", Permanent: r.IsPermanent, Source: r.ResponseSource}
			if ev.Permission.Granted && !r.IsPermanent {
				ev.Permission.Expires = unixTime(r.ExpirationTimestamp)
			}
		} else {
			ev.Type = EventMessage
			ev.Message = &InboundMessage{ID: m.ID, From: m.From, Name: v.profileName(m.From), Type: m.Type, ContextID: ctxID}
			if m.Text != nil {
				ev.Message.Text = m.Text.Body
			}
		}
		events = append(events, ev)
	}
	return events, nil
}
