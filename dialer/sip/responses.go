package sip

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// ResponseAction is what a carrier's final response to an INVITE means: the
// person's answer, or something about the trunk. Each row of the response table
// names one.
type ResponseAction string

// Response actions.
const (
	// ActionPerson: the person's answer (busy, no answer, no such number,
	// declined, no common media); the row's Outcome is recorded, the trunk
	// worked, and the call is not tried elsewhere.
	ActionPerson ResponseAction = "person"
	// ActionTrunkFault: the trunk refused service (credit gone, forbidden,
	// credentials refused, a request it cannot take, a server error): the fault
	// counts against its circuit, raises its alarm, and the call moves to the
	// next trunk while the person has not been alerted.
	ActionTrunkFault ResponseAction = "trunk_fault"
	// ActionRetryElsewhere: the trunk could not carry this call now (no circuit,
	// congestion): the fault counts against its circuit and the call moves to
	// the next trunk while the person has not been alerted; no alarm.
	ActionRetryElsewhere ResponseAction = "retry_elsewhere"
	// ActionRetryLater: the trunk asks to be left alone for a while (503 with
	// Retry-After): it is held, no INVITE goes to it until the hold ends
	// (probes do not end it early), and the call moves to the next trunk while
	// the person has not been alerted. Without Retry-After and without the
	// row's Hold, the response is taken as a server error (RFC 3261 21.5.4):
	// the row acts as trunk_fault.
	ActionRetryLater ResponseAction = "retry_later"
	// ActionRedirect: 301/302: the call is placed again at the response's
	// Contact, when that names a configured trunk (host and port), at most
	// maxRedirects times in one Dial; any other target is not followed.
	ActionRedirect ResponseAction = "redirect"
)

// maxRedirects bounds the redirects one Dial follows, so two trunks that send
// each other the call do not loop.
const maxRedirects = 3

// maxHold caps a hold: a carrier's Retry-After of days is a mistake, not a plan.
const maxHold = time.Hour

// ResponseCode is a SIP status code, or a class of them: 503, or "5xx".
type ResponseCode struct {
	// Code is the exact status, 0 for a class.
	Code int
	// Class is the hundreds digit of a class ("5xx" is 5), 0 for an exact code.
	Class int
}

// String writes 503 or 5xx.
func (c ResponseCode) String() string {
	if c.Class != 0 {
		return strconv.Itoa(c.Class) + "xx"
	}
	return strconv.Itoa(c.Code)
}

// ParseResponseCode reads "503" or "5xx" (classes 3xx to 6xx).
func ParseResponseCode(s string) (ResponseCode, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if len(s) == 3 && strings.HasSuffix(s, "xx") && s[0] >= '3' && s[0] <= '6' {
		return ResponseCode{Class: int(s[0] - '0')}, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 300 || n > 699 {
		return ResponseCode{}, fmt.Errorf("%q: want a final non-2xx status (300 to 699) or a class such as \"5xx\"", s)
	}
	return ResponseCode{Code: n}, nil
}

// MarshalJSON writes 503 as a number and a class as "5xx".
func (c ResponseCode) MarshalJSON() ([]byte, error) {
	if c.Class != 0 {
		return json.Marshal(c.String())
	}
	return json.Marshal(c.Code)
}

// UnmarshalJSON reads 503, "503" or "5xx".
func (c *ResponseCode) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("code %s: want a status such as 503 or a class such as \"5xx\"", b)
		}
		s = strconv.Itoa(n)
	}
	v, err := ParseResponseCode(s)
	if err != nil {
		return fmt.Errorf("code %w", err)
	}
	*c = v
	return nil
}

func (c ResponseCode) matches(status int) bool {
	if c.Class != 0 {
		return status/100 == c.Class
	}
	return status == c.Code
}

// ResponseRule is one row of the response table: a final response (its code,
// and optionally its reason phrase or the Q.850 cause of its Reason header)
// and what it means. A trunk's rules (TrunkConfig.Responses) are read before
// the defaults; within each, the most specific row that matches wins: an exact
// code before a class, and a cause or reason phrase before none.
type ResponseRule struct {
	Code ResponseCode `json:"code"`
	// Reason matches the reason phrase, ignoring case ("Payment Required").
	Reason string `json:"reason,omitempty"`
	// Cause matches the Q.850 cause of the Reason header (RFC 3326):
	// "Reason: Q.850;cause=34".
	Cause  int            `json:"cause,omitempty"`
	Action ResponseAction `json:"action"`
	// Outcome is the person's outcome, for the person action: busy, no_answer,
	// invalid_number, rejected or media_failed.
	Outcome Outcome `json:"outcome,omitempty"`
	// Hold keeps the trunk from new calls this long: for retry_later when the
	// response has no Retry-After, and for trunk_fault (402: credit is not
	// topped up in seconds). Capped at an hour.
	Hold Duration `json:"hold,omitempty"`
}

// personOutcomes are the outcomes a person action may record.
func personOutcomes() []Outcome {
	return []Outcome{OutcomeBusy, OutcomeNoAnswer, OutcomeInvalidNumber, OutcomeRejected, OutcomeMediaFailed}
}

func (r ResponseRule) validate() error {
	if r.Code == (ResponseCode{}) {
		return fmt.Errorf("code: required (a status such as 503 or a class such as \"5xx\")")
	}
	switch r.Action {
	case ActionPerson:
		if !slices.Contains(personOutcomes(), r.Outcome) {
			return fmt.Errorf("outcome %q: the person action wants one of %v", r.Outcome, personOutcomes())
		}
	case ActionTrunkFault, ActionRetryElsewhere, ActionRetryLater, ActionRedirect:
		if r.Outcome != "" {
			return fmt.Errorf("outcome %q: only the person action names an outcome", r.Outcome)
		}
	default:
		return fmt.Errorf("action %q: want person, trunk_fault, retry_elsewhere, retry_later or redirect", r.Action)
	}
	if r.Cause < 0 || r.Cause > 127 {
		return fmt.Errorf("cause %d: a Q.850 cause is 1 to 127", r.Cause)
	}
	if r.Hold < 0 {
		return fmt.Errorf("hold %s: must not be negative", r.Hold.Std())
	}
	return nil
}

// specificity ranks matching rows: exact code over class, then a cause or
// reason phrase over none.
func (r ResponseRule) specificity() int {
	s := 0
	if r.Code.Code != 0 {
		s += 4
	}
	if r.Cause != 0 {
		s += 2
	}
	if r.Reason != "" {
		s++
	}
	return s
}

func (r ResponseRule) matches(code int, phrase string, cause int) bool {
	return r.Code.matches(code) &&
		(r.Cause == 0 || r.Cause == cause) &&
		(r.Reason == "" || strings.EqualFold(strings.TrimSpace(r.Reason), strings.TrimSpace(phrase)))
}

// DefaultResponses is the response table used for rows a trunk does not
// override, after common carrier practice (RFC 3261 21, RFC 3398 for Q.850).
func DefaultResponses() []ResponseRule {
	code := func(n int) ResponseCode { return ResponseCode{Code: n} }
	class := func(n int) ResponseCode { return ResponseCode{Class: n} }
	person := func(c ResponseCode, o Outcome) ResponseRule {
		return ResponseRule{Code: c, Action: ActionPerson, Outcome: o}
	}
	rows := []ResponseRule{
		person(code(486), OutcomeBusy), person(code(600), OutcomeBusy),
		person(code(408), OutcomeNoAnswer), person(code(480), OutcomeNoAnswer), person(code(487), OutcomeNoAnswer),
		person(code(404), OutcomeInvalidNumber), person(code(410), OutcomeInvalidNumber),
		person(code(484), OutcomeInvalidNumber), person(code(604), OutcomeInvalidNumber),
		person(code(603), OutcomeRejected), person(class(6), OutcomeRejected),
		person(code(488), OutcomeMediaFailed), person(code(606), OutcomeMediaFailed),
		{Code: code(301), Action: ActionRedirect}, {Code: code(302), Action: ActionRedirect},
		{Code: class(3), Action: ActionTrunkFault},
		// Credentials refused (a second challenge that is not stale), payment
		// (prepaid credit gone: held, as every call would fail the same way),
		// forbidden, and every 4xx not named above: the trunk's, never the person's.
		{Code: code(401), Action: ActionTrunkFault}, {Code: code(407), Action: ActionTrunkFault},
		{Code: code(402), Action: ActionTrunkFault, Hold: Duration(5 * time.Minute)},
		{Code: code(403), Action: ActionTrunkFault},
		{Code: class(4), Action: ActionTrunkFault},
		{Code: code(503), Action: ActionRetryLater},
		{Code: class(5), Action: ActionTrunkFault},
	}
	// A busy or unavailable answer with a congestion cause is the network's,
	// not the person's: some carriers send 480 or 486 for "no circuit". The
	// causes: no circuit/channel available (34), network out of order (38),
	// temporary failure (41), switching equipment congestion (42), resource
	// unavailable (47); RFC 3398 maps them to 503.
	for _, c := range []int{480, 486} {
		for _, cause := range []int{34, 38, 41, 42, 47} {
			rows = append(rows, ResponseRule{Code: code(c), Cause: cause, Action: ActionRetryElsewhere})
		}
	}
	return rows
}

// responseTable is a trunk's rules, read before the defaults.
type responseTable struct {
	trunk    []ResponseRule
	defaults []ResponseRule
}

func newResponseTable(trunk []ResponseRule) responseTable {
	return responseTable{trunk: trunk, defaults: DefaultResponses()}
}

// verdict is what the table says of one final response.
type verdict struct {
	rule ResponseRule
	// hold is how long the trunk is held; 0 for none.
	hold time.Duration
}

// classify finds the response's row; a response no row matches (a 2xx, or a
// status outside 300-699) is a trunk fault.
func (tb responseTable) classify(res *sip.Response) verdict {
	code, phrase, cause := res.StatusCode, res.Reason, q850Cause(res)
	rule, ok := bestRule(tb.trunk, code, phrase, cause)
	if !ok {
		rule, ok = bestRule(tb.defaults, code, phrase, cause)
	}
	if !ok {
		rule = ResponseRule{Code: ResponseCode{Code: code}, Action: ActionTrunkFault}
	}
	v := verdict{rule: rule, hold: rule.Hold.Std()}
	if rule.Action == ActionRetryLater {
		if after, ok := retryAfter(res); ok {
			v.hold = after
		}
		if v.hold <= 0 {
			// RFC 3261 21.5.4: a 503 without Retry-After is treated as a 500.
			v.rule.Action = ActionTrunkFault
		}
	}
	v.hold = min(v.hold, maxHold)
	return v
}

func bestRule(rules []ResponseRule, code int, phrase string, cause int) (ResponseRule, bool) {
	best, found := ResponseRule{}, false
	for _, r := range rules {
		if r.matches(code, phrase, cause) && (!found || r.specificity() > best.specificity()) {
			best, found = r, true
		}
	}
	return best, found
}

// outcome is what the call records when this response ends it.
func (v verdict) outcome() Outcome {
	if v.rule.Action == ActionPerson {
		return v.rule.Outcome
	}
	return OutcomeTrunkFault
}

// fault says whether the response counts against the trunk's circuit.
func (v verdict) fault() bool {
	return v.rule.Action == ActionTrunkFault || v.rule.Action == ActionRetryElsewhere
}

// failover says whether the call may move to another trunk, before the person
// was alerted.
func (v verdict) failover() bool {
	switch v.rule.Action {
	case ActionTrunkFault, ActionRetryElsewhere, ActionRetryLater:
		return true
	}
	return false
}

// alarm says whether the response raises the trunk's alarm.
func (v verdict) alarm() bool { return v.rule.Action == ActionTrunkFault }

// q850Cause is the Q.850 cause of the response's Reason header (RFC 3326),
// 0 when it carries none.
func q850Cause(res *sip.Response) int {
	for _, h := range res.GetHeaders("Reason") {
		for v := range strings.SplitSeq(h.Value(), ",") {
			parts := strings.Split(v, ";")
			if !strings.EqualFold(strings.TrimSpace(parts[0]), "Q.850") {
				continue
			}
			for _, p := range parts[1:] {
				k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
				if strings.EqualFold(strings.TrimSpace(k), "cause") {
					if n, err := strconv.Atoi(strings.Trim(strings.TrimSpace(val), `"`)); err == nil {
						return n
					}
				}
			}
		}
	}
	return 0
}

// retryAfter reads the Retry-After header's delta-seconds (RFC 3261 20.33),
// ignoring its comment and parameters.
func retryAfter(res *sip.Response) (time.Duration, bool) {
	h := res.GetHeader("Retry-After")
	if h == nil {
		return 0, false
	}
	v := strings.TrimSpace(h.Value())
	end := strings.IndexFunc(v, func(r rune) bool { return r < '0' || r > '9' })
	if end >= 0 {
		v = v[:end]
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, false
	}
	return time.Duration(n) * time.Second, true
}

// staleRe finds stale=true in a digest challenge (RFC 2617 3.2.1), quoted or not.
var staleRe = regexp.MustCompile(`(?i)(^|[\s,])stale\s*=\s*"?true"?`)

// staleChallenge reports whether a 401/407 says only that our nonce was stale,
// so that the same credentials are worth one more try.
func staleChallenge(res *sip.Response) bool {
	for _, name := range []string{"WWW-Authenticate", "Proxy-Authenticate"} {
		for _, h := range res.GetHeaders(name) {
			if staleRe.MatchString(h.Value()) {
				return true
			}
		}
	}
	return false
}
