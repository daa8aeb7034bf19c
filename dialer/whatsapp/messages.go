package whatsapp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// TemplateParam is one body parameter of a template message. Name is set only for
// templates created with parameter_format "named".
type TemplateParam struct {
	Name string
	Text string
}

// TextParams are positional body parameters with the given texts.
func TextParams(texts ...string) []TemplateParam {
	out := make([]TemplateParam, len(texts))
	for i, t := range texts {
		out[i] = TemplateParam{Text: t}
	}
	return out
}

// TemplateMessage is a template send to one WhatsApp user.
type TemplateMessage struct {
	// To is the user's phone number, digits with country code (E.164 without "+" is
	// what Meta documents; a leading "+" is accepted and stripped).
	To string
	// Name and Language identify an approved template ("order_update", "pt_BR").
	Name     string
	Language string
	// BodyParams fill the body's {{1}}… or {{name}} placeholders, in order.
	BodyParams []TemplateParam
}

// SendResult is Meta's answer to a message send.
type SendResult struct {
	// MessageID is the wamid that status webhooks will carry.
	MessageID string
	// Deduplicated is true when the idempotency key had already been sent and no
	// request was made.
	Deduplicated bool
}

type sendMessageResponse struct {
	Messages []struct {
		ID string `json:"id"`
	} `json:"messages"`
}

type templateParamJSON struct {
	Type          string `json:"type"`
	ParameterName string `json:"parameter_name,omitempty"`
	Text          string `json:"text"`
}

type templateComponentJSON struct {
	Type       string              `json:"type"`
	Parameters []templateParamJSON `json:"parameters"`
}

type templateJSON struct {
	Name     string `json:"name"`
	Language struct {
		Code string `json:"code"`
	} `json:"language"`
	Components []templateComponentJSON `json:"components,omitempty"`
}

type messageRequest struct {
	MessagingProduct string          `json:"messaging_product"`
	RecipientType    string          `json:"recipient_type"`
	To               string          `json:"to"`
	Type             string          `json:"type"`
	Template         *templateJSON   `json:"template,omitempty"`
	Interactive      *interactiveReq `json:"interactive,omitempty"`
	Text             *textJSON       `json:"text,omitempty"`
	BizOpaque        string          `json:"biz_opaque_callback_data,omitempty"`
}

type textJSON struct {
	Body string `json:"body"`
}

type interactiveReq struct {
	Type string `json:"type"`
	Body *struct {
		Text string `json:"text"`
	} `json:"body,omitempty"`
	Action struct {
		Name string `json:"name"`
	} `json:"action"`
}

// normalizeTo strips the "+" of an E.164 number; Meta wants digits only.
func normalizeTo(to string) (string, error) {
	to = strings.TrimPrefix(strings.TrimSpace(to), "+")
	if to == "" {
		return "", errors.New("whatsapp: recipient number is empty")
	}
	for _, r := range to {
		if r < '0' || r > '9' {
			return "", fmt.Errorf("whatsapp: recipient %q is not a phone number", to)
		}
	}
	return to, nil
}

// SendTemplate sends a template message. key is the caller's idempotency key (the
// outbox row); it is also sent as biz_opaque_callback_data so status webhooks carry it.
func (c *Client) SendTemplate(ctx context.Context, key string, m TemplateMessage) (SendResult, error) {
	to, err := normalizeTo(m.To)
	if err != nil {
		return SendResult{}, err
	}
	if m.Name == "" || m.Language == "" {
		return SendResult{}, errors.New("whatsapp: template name and language are required")
	}
	t := &templateJSON{Name: m.Name}
	t.Language.Code = m.Language
	if len(m.BodyParams) > 0 {
		comp := templateComponentJSON{Type: "body"}
		for _, p := range m.BodyParams {
			comp.Parameters = append(comp.Parameters, templateParamJSON{Type: "text", ParameterName: p.Name, Text: p.Text})
		}
		t.Components = []templateComponentJSON{comp}
	}
	body := messageRequest{MessagingProduct: "whatsapp", RecipientType: "individual", To: to, Type: "template", Template: t, BizOpaque: key}
	return c.sendMessage(ctx, "send template", key, body)
}

// RequestCallPermission sends an interactive call_permission_request message with the
// given body text. Meta accepts it only inside the 24 h customer service window
// (otherwise the error kind is [KindOutsideWindow]); outside it, send an approved
// template that carries a call permission request component with [Client.SendTemplate].
// The user's answer arrives as a [PermissionReply] event.
func (c *Client) RequestCallPermission(ctx context.Context, key, to, bodyText string) (SendResult, error) {
	to, err := normalizeTo(to)
	if err != nil {
		return SendResult{}, err
	}
	in := &interactiveReq{Type: "call_permission_request"}
	in.Action.Name = "call_permission_request"
	if bodyText != "" {
		in.Body = &struct {
			Text string `json:"text"`
		}{Text: bodyText}
	}
	body := messageRequest{MessagingProduct: "whatsapp", RecipientType: "individual", To: to, Type: "interactive", Interactive: in, BizOpaque: key}
	return c.sendMessage(ctx, "request call permission", key, body)
}

// SendText sends a free-form text message. Meta accepts it only inside the 24 h
// customer service window that the user's last message opened; outside it the
// error kind is [KindOutsideWindow] and only a template can be sent.
func (c *Client) SendText(ctx context.Context, key, to, text string) (SendResult, error) {
	to, err := normalizeTo(to)
	if err != nil {
		return SendResult{}, err
	}
	if strings.TrimSpace(text) == "" {
		return SendResult{}, errors.New("whatsapp: text message is empty")
	}
	body := messageRequest{MessagingProduct: "whatsapp", RecipientType: "individual", To: to, Type: "text", Text: &textJSON{Body: text}, BizOpaque: key}
	return c.sendMessage(ctx, "send text", key, body)
}

func (c *Client) sendMessage(ctx context.Context, op, key string, body messageRequest) (SendResult, error) {
	id, dedup, err := c.once(ctx, "message", key, func(ctx context.Context) (string, error) {
		var resp sendMessageResponse
		err := c.do(ctx, request{op: op, method: http.MethodPost, path: url.PathEscape(c.cfg.PhoneNumberID) + "/messages", body: body, limited: true}, &resp)
		if err != nil {
			return "", err
		}
		if len(resp.Messages) == 0 || resp.Messages[0].ID == "" {
			return "", &Error{Op: op, HTTPStatus: http.StatusOK, Message: "response has no message id"}
		}
		return resp.Messages[0].ID, nil
	})
	if err != nil {
		return SendResult{}, err
	}
	c.log.LogAttrs(ctx, slog.LevelDebug, "message sent", slog.String("op", op), slog.String("key", key), slog.String("wamid", id), slog.Bool("dedup", dedup))
	return SendResult{MessageID: id, Deduplicated: dedup}, nil
}

// Template is one message template of the WhatsApp Business Account.
type Template struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Language string `json:"language"`
	// Status is Meta's review status: APPROVED, PENDING, REJECTED, PAUSED, DISABLED…
	Status string `json:"status"`
	// Category is MARKETING, UTILITY or AUTHENTICATION.
	Category string `json:"category"`
	// ParameterFormat is "positional" ({{1}}) or "named" ({{first_name}}).
	ParameterFormat string `json:"parameter_format"`
	// Body is the body component's text with its placeholders.
	Body string `json:"body"`
	// BodyParams are the body placeholders in order of first appearance: "1", "2"… or
	// the names of a named template.
	BodyParams []string `json:"body_params"`
}

// Approved reports whether the template may be sent.
func (t Template) Approved() bool { return t.Status == "APPROVED" }

// BodyParamCount is the number of distinct body placeholders.
func (t Template) BodyParamCount() int { return len(t.BodyParams) }

var placeholderRE = regexp.MustCompile(`\{\{\s*([A-Za-z0-9_]+)\s*\}\}`)

// BodyPlaceholders returns the distinct placeholders of a template body in order of
// first appearance; positional ones are sorted by number, as Meta fills them.
func BodyPlaceholders(body string) []string {
	var names []string
	positional := true
	for _, m := range placeholderRE.FindAllStringSubmatch(body, -1) {
		if !slices.Contains(names, m[1]) {
			names = append(names, m[1])
			if _, err := strconv.Atoi(m[1]); err != nil {
				positional = false
			}
		}
	}
	if positional {
		slices.SortFunc(names, func(a, b string) int {
			x, _ := strconv.Atoi(a)
			y, _ := strconv.Atoi(b)
			return x - y
		})
	}
	return names
}

// ValidateTemplateParams checks that columns (the contact list's columns mapped to the
// body, in order) fit the template: same count, and for a named template the same
// names. It is what the sales UI calls before saving a campaign.
func ValidateTemplateParams(t Template, columns []string) error {
	if !t.Approved() {
		return fmt.Errorf("template %s/%s is %s, not APPROVED", t.Name, t.Language, t.Status)
	}
	if len(columns) != t.BodyParamCount() {
		return fmt.Errorf("template %s/%s has %d body parameter(s), %d column(s) given", t.Name, t.Language, t.BodyParamCount(), len(columns))
	}
	if t.ParameterFormat == "named" {
		for i, want := range t.BodyParams {
			if !strings.EqualFold(strings.TrimSpace(columns[i]), want) {
				return fmt.Errorf("template %s/%s parameter %d is {{%s}}, column is %q", t.Name, t.Language, i+1, want, columns[i])
			}
		}
	}
	return nil
}

// ApprovedTemplates returns the approved templates of ts, the only ones the sales UI
// offers.
func ApprovedTemplates(ts []Template) []Template {
	var out []Template
	for _, t := range ts {
		if t.Approved() {
			out = append(out, t)
		}
	}
	return out
}

type templateListResponse struct {
	Data []struct {
		ID              string `json:"id"`
		Name            string `json:"name"`
		Language        string `json:"language"`
		Status          string `json:"status"`
		Category        string `json:"category"`
		ParameterFormat string `json:"parameter_format"`
		Components      []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"components"`
	} `json:"data"`
	Paging struct {
		Cursors struct {
			After string `json:"after"`
		} `json:"cursors"`
		Next string `json:"next"`
	} `json:"paging"`
}

// maxTemplatePages bounds the paging loop against a server that never stops.
const maxTemplatePages = 200

// ListTemplates returns every template of the WABA, following the "after" cursor.
// The cursor (not the absolute "next" URL) is followed so that requests stay on the
// configured base URL and the token never travels elsewhere. pageSize 0 means 100.
func (c *Client) ListTemplates(ctx context.Context, pageSize int) ([]Template, error) {
	if c.cfg.WABAID == "" {
		return nil, errors.New("whatsapp: waba_id is required to list templates")
	}
	if pageSize <= 0 {
		pageSize = 100
	}
	var out []Template
	after := ""
	for range maxTemplatePages {
		q := url.Values{
			"fields": {"id,name,language,status,category,parameter_format,components"},
			"limit":  {strconv.Itoa(pageSize)},
		}
		if after != "" {
			q.Set("after", after)
		}
		var resp templateListResponse
		if err := c.do(ctx, request{op: "list templates", method: http.MethodGet, path: url.PathEscape(c.cfg.WABAID) + "/message_templates", query: q}, &resp); err != nil {
			return nil, err
		}
		for _, d := range resp.Data {
			t := Template{ID: d.ID, Name: d.Name, Language: d.Language, Status: d.Status, Category: d.Category, ParameterFormat: d.ParameterFormat}
			for _, comp := range d.Components {
				if strings.EqualFold(comp.Type, "BODY") {
					t.Body = comp.Text
				}
			}
			t.BodyParams = BodyPlaceholders(t.Body)
			if t.ParameterFormat == "" {
				t.ParameterFormat = "positional"
			}
			out = append(out, t)
		}
		if resp.Paging.Next == "" || resp.Paging.Cursors.After == "" || resp.Paging.Cursors.After == after {
			return out, nil
		}
		after = resp.Paging.Cursors.After
	}
	return nil, fmt.Errorf("whatsapp list templates: more than %d pages", maxTemplatePages)
}
