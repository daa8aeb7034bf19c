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
	"sync"
	"time"
)

// TemplateParam is one body parameter of a template message. Name is the
// placeholder a NAMED template fills; [Client.SendTemplate] fills it from the
// template's listing when the caller leaves it empty.
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

// Parameter formats of a template, as Meta's listing spells them.
const (
	FormatNamed      = "NAMED"
	FormatPositional = "POSITIONAL"
)

// IsNamed reports whether a listing's parameter_format is NAMED. Meta writes it in
// upper case; it is compared without regard to case.
func IsNamed(parameterFormat string) bool {
	return strings.EqualFold(strings.TrimSpace(parameterFormat), FormatNamed)
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
	params, err := c.namedParams(ctx, m)
	if err != nil {
		return SendResult{}, err
	}
	m.BodyParams = params
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
	// ParameterFormat is POSITIONAL ({{1}}) or NAMED ({{first_name}}), as Meta
	// writes it (see [IsNamed]).
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
	if IsNamed(t.ParameterFormat) {
		// A named template is filled by name: every placeholder needs its column.
		var missing []string
		for _, want := range t.BodyParams {
			if !slices.ContainsFunc(columns, func(c string) bool { return strings.EqualFold(strings.TrimSpace(c), want) }) {
				missing = append(missing, "{{"+want+"}}")
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("template %s/%s is NAMED: no column for %s (columns given: %s)", t.Name, t.Language,
				strings.Join(missing, ", "), strings.Join(columns, ","))
		}
	}
	if len(columns) != t.BodyParamCount() {
		return fmt.Errorf("template %s/%s has %d body parameter(s), %d column(s) given", t.Name, t.Language, t.BodyParamCount(), len(columns))
	}
	if IsNamed(t.ParameterFormat) {
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
			switch {
			case t.ParameterFormat == "":
				// Meta: a template created without parameter_format is positional.
				t.ParameterFormat = FormatPositional
			case IsNamed(t.ParameterFormat):
				t.ParameterFormat = FormatNamed
			default:
				t.ParameterFormat = strings.ToUpper(t.ParameterFormat)
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

// namedParams returns m's body parameters as Meta wants them: for a NAMED
// template each carries its placeholder's parameter_name (taken from the
// template's listing, in order, where the caller gave none); for a positional
// one none does. A template the listing does not hold, or a client with no
// WABA ID to list with, is sent as given.
func (c *Client) namedParams(ctx context.Context, m TemplateMessage) ([]TemplateParam, error) {
	if len(m.BodyParams) == 0 || c.cfg.WABAID == "" {
		return m.BodyParams, nil
	}
	t, ok, err := c.templates.lookup(ctx, c, m.Name, m.Language)
	if err != nil {
		// Sent as given: Meta's answer (132000) then says what is wrong.
		c.log.LogAttrs(ctx, slog.LevelWarn, "template listing unavailable: parameters sent as given",
			slog.String("template", m.Name), slog.String("error", err.Error()))
		return m.BodyParams, nil
	}
	if !ok {
		return m.BodyParams, nil
	}
	out := slices.Clone(m.BodyParams)
	if !IsNamed(t.ParameterFormat) {
		for i := range out {
			out[i].Name = ""
		}
		return out, nil
	}
	if len(out) != len(t.BodyParams) {
		return nil, fmt.Errorf("whatsapp: template %s/%s is NAMED with %d parameter(s) (%s), %d given",
			m.Name, m.Language, len(t.BodyParams), strings.Join(t.BodyParams, ","), len(out))
	}
	for i := range out {
		if out[i].Name == "" {
			out[i].Name = t.BodyParams[i]
		}
	}
	return out, nil
}

// templateCacheTTL is how long a listing of the WABA's templates is used to
// name parameters before it is asked again.
const templateCacheTTL = 5 * time.Minute

// templateCache holds the WABA's template listing for naming parameters.
type templateCache struct {
	mu      sync.Mutex
	list    []Template
	fetched time.Time
}

// lookup returns the template name/lang of the listing, fetching it when it is
// older than templateCacheTTL.
func (tc *templateCache) lookup(ctx context.Context, c *Client, name, lang string) (Template, bool, error) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if tc.fetched.IsZero() || time.Since(tc.fetched) > templateCacheTTL {
		// The listing is not the send: it takes none of the send's admission.
		list, err := c.ListTemplates(context.WithValue(ctx, admitKey{}, (*admission)(nil)), 0)
		if err != nil {
			return Template{}, false, err
		}
		tc.list, tc.fetched = list, time.Now()
	}
	i := slices.IndexFunc(tc.list, func(t Template) bool { return t.Name == name && t.Language == lang })
	if i < 0 {
		return Template{}, false, nil
	}
	return tc.list[i], true, nil
}
