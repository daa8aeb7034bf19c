package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
)

// Attempt is one try at reaching a contact on one channel.
type Attempt struct {
	ID          int64             `json:"id,string"`
	ContactID   int64             `json:"contact_id,string"`
	CampaignID  int64             `json:"campaign_id,string"`
	Channel     campaigns.Channel `json:"channel"`
	Rung        int               `json:"rung"`
	State       string            `json:"state"` // dialing, ringing, answered, connected, ended
	Outcome     string            `json:"outcome,omitempty"`
	SIPStatus   int               `json:"sip_status,omitempty"`
	Trunk       string            `json:"trunk,omitempty"`
	HangupBy    string            `json:"hangup_by,omitempty"` // local, remote, agent
	AgentID     int64             `json:"agent_id,string,omitempty"`
	Disposition string            `json:"disposition,omitempty"`
	// Notes are the agent's words on the call, written with the disposition.
	Notes string `json:"notes,omitempty"`
	// ExternalID is the id Meta gave a WhatsApp attempt (wacid, wamid).
	ExternalID string          `json:"external_id,omitempty"`
	Detail     json.RawMessage `json:"detail,omitempty"`
	CreatedAt  time.Time       `json:"created_at"`
	SetupAt    *time.Time      `json:"setup_at,omitempty"`
	RingAt     *time.Time      `json:"ring_at,omitempty"`
	AnswerAt   *time.Time      `json:"answer_at,omitempty"`
	ConnectAt  *time.Time      `json:"connect_at,omitempty"`
	EndAt      *time.Time      `json:"end_at,omitempty"`

	// SafeHarbour is the safe-harbour message an abandoned attempt's person heard:
	// SafeHarbourBuiltin or SafeHarbourCampaign; empty when none played.
	SafeHarbour string `json:"safe_harbour,omitempty"`
	// ResumedFrom is, on a WhatsApp call that took up a conversation whose SIP call
	// the trunk dropped, that SIP attempt.
	ResumedFrom int64 `json:"resumed_from,string,omitempty"`
	// Direction is DirectionOutbound for a call or message the engine placed,
	// DirectionInbound for a person's own call to the business it took.
	Direction string `json:"direction"`
}

// Attempt directions.
const (
	DirectionOutbound = "outbound"
	DirectionInbound  = "inbound"
)

// Open attempt states: an attempt in one of these when the server starts was cut
// short by a crash.
var openAttemptStates = []string{"dialing", "ringing", "answered", "connected"}

// DueContact is a contact whose next attempt is due, with its place on the ladder.
type DueContact struct {
	Contact       campaigns.Contact
	Rung          int
	RungAttempts  int
	NextAttemptAt time.Time
	// CallbackAgentID is the agent who asked to call the contact back, if any.
	CallbackAgentID int64
}

// Callback schedules a contact to be called again at a time, by an agent if set.
type Callback struct {
	At      time.Time
	AgentID int64
}

// MoveFunc is given a contact and its place in its journey as stored, and returns
// where it goes: campaigns.Apply decides, the storage writes the answer as it is.
type MoveFunc func(c campaigns.Contact, pos campaigns.Position) (campaigns.Position, error)

// AttemptStore keeps attempts and moves contacts along their ladder.
type AttemptStore interface {
	// DueContacts returns up to limit pending contacts of a campaign on one of rungs
	// whose next attempt is due at now, the longest-due first.
	DueContacts(ctx context.Context, campaignID int64, rungs []int, now time.Time, limit int) ([]DueContact, error)
	// MoveContact reads a contact's place in its journey, asks move where it goes
	// and writes the answer, in one transaction.
	MoveContact(ctx context.Context, contactID int64, move MoveFunc) error
	// StartAttempt claims a pending contact and records a new attempt in one
	// transaction. It is ErrConflict when the contact is no longer pending.
	StartAttempt(ctx context.Context, contactID int64, channel campaigns.Channel, rung int) (Attempt, error)
	// StartResumeAttempt records a new attempt on channel and rung that takes up
	// the conversation of the ended attempt from, on the same contact. It claims
	// nothing: the conversation already moved the contact (it was connected).
	StartResumeAttempt(ctx context.Context, from Attempt, channel campaigns.Channel, rung int) (Attempt, error)
	// UpdateAttempt records an open attempt's progress (state, timings, trunk, …).
	UpdateAttempt(ctx context.Context, a Attempt) error
	// FinishAttempt records how an attempt ended and moves its contact as move says
	// (nil: it stays), in one transaction, so a crash never separates the two and
	// move sees what happened to the contact meanwhile (a do-not-call list).
	FinishAttempt(ctx context.Context, a Attempt, move MoveFunc) error
	// Dispose records the agent's disposition of a connected attempt, with the
	// agent's notes, and, for a callback, moves the contact through the
	// journey's callback event on the attempt's rung. An attempt that has a
	// disposition already keeps it: ErrDisposed.
	Dispose(ctx context.Context, attemptID int64, disposition, notes string, callback *Callback) error
	GetAttempt(ctx context.Context, id int64) (Attempt, error)
	ListAttempts(ctx context.Context, contactID int64) ([]Attempt, error)
	// AgentCallbacks lists the callbacks still to be made that an agent asked
	// for or is routed, soonest first.
	AgentCallbacks(ctx context.Context, agentID int64, limit int) ([]AgentCallback, error)
	// OpenWrapUps lists the campaign's calls that ended connected to an agent
	// since since and have no disposition yet: wrap-ups a run that ended (its
	// campaign moved to another node, or its process stopped) left open, for
	// the next run to give back to their agents.
	OpenWrapUps(ctx context.Context, campaignID int64, since time.Time) ([]Attempt, error)
	// OpenAttempts lists attempts that have not ended, with their contacts' ladder
	// positions: after a crash, the engine closes them as interrupted.
	OpenAttempts(ctx context.Context) ([]Attempt, error)
	// ContactPosition returns a contact and its place on the ladder.
	ContactPosition(ctx context.Context, contactID int64) (DueContact, error)
	// AttemptOrdinal numbers an attempt among its contact's: how many came before it,
	// not counting interrupted template sends (they are tried again as the same one).
	AttemptOrdinal(ctx context.Context, a Attempt) (int, error)
}

// DueContacts selects due contacts in (next_attempt_at, id) order, a page of
// each rung through the contacts_due_rung index, merged.
func (d *DB) DueContacts(ctx context.Context, campaignID int64, rungs []int, now time.Time, limit int) ([]DueContact, error) {
	if len(rungs) == 0 || limit <= 0 {
		return nil, nil
	}
	q, args := dueQuery(campaignID, rungs, now, limit)
	rows, err := d.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("due contacts: %w", err)
	}
	defer rows.Close()
	var out []DueContact
	for rows.Next() {
		dc, err := scanDueContact(rows)
		if err != nil {
			return nil, fmt.Errorf("due contacts: %w", err)
		}
		out = append(out, dc)
	}
	return out, rows.Err()
}

// dueQuery is DueContacts' SELECT and its arguments. One page per rung: each is
// the first rows of the index's range for its rung, merged. rung IN (…) over
// several rungs has no single range in that order, and PostgreSQL would read
// every pending contact of those rungs to sort them.
func dueQuery(campaignID int64, rungs []int, now time.Time, limit int) (string, []any) {
	rungs = slices.Compact(slices.Sorted(slices.Values(rungs)))
	pages := make([]string, len(rungs))
	var args []any
	for i, r := range rungs {
		pages[i] = fmt.Sprintf(`SELECT * FROM (SELECT %s FROM contacts
			WHERE campaign_id = ? AND status = 'pending' AND next_attempt_at <= ? AND rung = ?
			ORDER BY next_attempt_at, id LIMIT ?) AS rung%d`, dueColumns, i)
		args = append(args, campaignID, now.UnixMilli(), r, limit)
	}
	if len(pages) == 1 {
		return pages[0], args
	}
	return strings.Join(pages, " UNION ALL ") + " ORDER BY next_attempt_at, id LIMIT ?", append(args, limit)
}

func scanDueContact(r rowScanner, extra ...any) (DueContact, error) {
	var dc DueContact
	var attrs sql.NullString
	var next int64
	var zones string
	c := &dc.Contact
	dest := append([]any{&c.ID, &c.CampaignID, &c.Phone, &c.WhatsApp, &c.Name, &c.Timezone, &attrs, &c.Status, &c.Line,
		&dc.Rung, &dc.RungAttempts, &next, &dc.CallbackAgentID, &zones}, extra...)
	if err := r.Scan(dest...); err != nil {
		return dc, err
	}
	dc.NextAttemptAt = msToTime(next)
	c.Zones = strings.Fields(zones)
	c.Attributes = map[string]string{}
	if attrs.Valid {
		if err := json.Unmarshal([]byte(attrs.String), &c.Attributes); err != nil {
			return dc, fmt.Errorf("decode contact %d attributes: %w", c.ID, err)
		}
	}
	return dc, nil
}

// ContactPosition returns one contact with its ladder position.
func (d *DB) ContactPosition(ctx context.Context, contactID int64) (DueContact, error) {
	dc, err := scanDueContact(d.db.QueryRowContext(ctx, "SELECT "+dueColumns+" FROM contacts WHERE id = ?", contactID))
	if err != nil {
		return dc, notFoundIfNoRows(err, fmt.Sprintf("contact %d", contactID))
	}
	return dc, nil
}

// MoveContact moves one contact as move says.
func (d *DB) MoveContact(ctx context.Context, contactID int64, move MoveFunc) error {
	return d.inTx(ctx, func(tx *sql.Tx) error { return d.moveContact(ctx, tx, contactID, move) })
}

// moveContact is MoveContact inside tx: it writes nothing when the position does
// not change.
func (d *DB) moveContact(ctx context.Context, tx *sql.Tx, contactID int64, move MoveFunc) error {
	var callbackAt int64
	// Locked until tx ends: two processes that move one contact (two nodes claiming
	// it) move it one after the other, the second from where the first left it.
	dc, err := scanDueContact(tx.QueryRowContext(ctx, "SELECT "+dueColumns+`, coalesce(callback_at,0) FROM contacts WHERE id = ?`+d.dialect.lockRow, contactID), &callbackAt)
	if err != nil {
		return notFoundIfNoRows(err, fmt.Sprintf("contact %d", contactID))
	}
	cur := campaigns.Position{Status: dc.Contact.Status, Rung: dc.Rung, Attempts: dc.RungAttempts, NextAt: dc.NextAttemptAt,
		CallbackAgent: dc.CallbackAgentID}
	if callbackAt != 0 {
		cur.CallbackAt = msToTime(callbackAt)
	}
	to, err := move(dc.Contact, cur)
	if err != nil {
		return fmt.Errorf("move contact %d: %w", contactID, err)
	}
	if to == cur {
		return nil
	}
	var agent, cbAt sql.NullInt64
	if to.CallbackAgent != 0 {
		agent = sql.NullInt64{Int64: to.CallbackAgent, Valid: true}
	}
	if !to.CallbackAt.IsZero() {
		cbAt = sql.NullInt64{Int64: to.CallbackAt.UnixMilli(), Valid: true}
	}
	_, err = tx.ExecContext(ctx, `UPDATE contacts SET status=?, rung=?, rung_attempts=?, next_attempt_at=?,
		callback_agent_id=?, callback_at=?, updated_at=? WHERE id=?`,
		string(to.Status), to.Rung, to.Attempts, to.NextAt.UnixMilli(), agent, cbAt, d.nowMs(), contactID)
	if err != nil {
		return fmt.Errorf("move contact %d: %w", contactID, err)
	}
	return nil
}

// StartAttempt claims a contact for a new attempt.
func (d *DB) StartAttempt(ctx context.Context, contactID int64, channel campaigns.Channel, rung int) (Attempt, error) {
	return d.startAttempt(ctx, contactID, channel, rung, campaigns.Event{Kind: campaigns.EventDue}, DirectionOutbound)
}

// startAttempt claims a contact by ev and records a new attempt going direction.
func (d *DB) startAttempt(ctx context.Context, contactID int64, channel campaigns.Channel, rung int, ev campaigns.Event, direction string) (Attempt, error) {
	a := Attempt{ContactID: contactID, Channel: channel, Rung: rung, State: "dialing", CreatedAt: msToTime(d.nowMs()), Direction: direction}
	err := d.inTx(ctx, func(tx *sql.Tx) error {
		// The journey's "due" event claims the contact; the table refuses it for a
		// contact that is not pending any more.
		err := d.moveContact(ctx, tx, contactID, func(c campaigns.Contact, pos campaigns.Position) (campaigns.Position, error) {
			return campaigns.Apply(nil, c, pos, ev, a.CreatedAt)
		})
		if errors.Is(err, campaigns.ErrNoTransition) || errors.Is(err, ErrNotFound) {
			return fmt.Errorf("contact %d cannot be claimed by %s: %w", contactID, ev.Name(), ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("claim contact: %w", err)
		}
		if err := tx.QueryRowContext(ctx, "SELECT campaign_id FROM contacts WHERE id=?", contactID).Scan(&a.CampaignID); err != nil {
			return fmt.Errorf("claim contact: %w", err)
		}
		// The number called is kept with the attempt: the per-number limits count it.
		a.ID, err = insertID(ctx, tx, `INSERT INTO attempts(contact_id, campaign_id, channel, rung, state, created_at, number, direction)
			SELECT ?1, ?2, ?3, ?4, ?5, ?6, CASE WHEN ?3 = 'sip' THEN phone ELSE coalesce(nullif(whatsapp,''), phone) END, ?7 FROM contacts WHERE id = ?1`,
			contactID, a.CampaignID, string(channel), rung, a.State, a.CreatedAt.UnixMilli(), direction)
		if err != nil {
			return fmt.Errorf("record attempt: %w", err)
		}
		return nil
	})
	return a, err
}

// StartResumeAttempt records an attempt resuming from's conversation.
func (d *DB) StartResumeAttempt(ctx context.Context, from Attempt, channel campaigns.Channel, rung int) (Attempt, error) {
	a := Attempt{ContactID: from.ContactID, CampaignID: from.CampaignID, Channel: channel, Rung: rung, State: "dialing",
		CreatedAt: msToTime(d.nowMs()), ResumedFrom: from.ID, Direction: DirectionOutbound}
	var err error
	a.ID, err = d.execID(ctx, `INSERT INTO attempts(contact_id, campaign_id, channel, rung, state, created_at, resumed_from, number)
		SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, CASE WHEN ?3 = 'sip' THEN phone ELSE coalesce(nullif(whatsapp,''), phone) END FROM contacts WHERE id = ?1`,
		a.ContactID, a.CampaignID, string(channel), rung, a.State, a.CreatedAt.UnixMilli(), from.ID)
	if errors.Is(err, sql.ErrNoRows) {
		return a, fmt.Errorf("record resume of attempt %d: contact %d: %w", from.ID, from.ContactID, ErrNotFound)
	}
	if err != nil {
		return a, fmt.Errorf("record resume of attempt %d: %w", from.ID, err)
	}
	return a, nil
}

func msOrNull(t *time.Time) sql.NullInt64 {
	if t == nil || t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMilli(), Valid: true}
}

func attemptArgs(a Attempt) []any {
	var detail sql.NullString
	if len(a.Detail) > 0 {
		detail = sql.NullString{String: string(a.Detail), Valid: true}
	}
	var agent sql.NullInt64
	if a.AgentID != 0 {
		agent = sql.NullInt64{Int64: a.AgentID, Valid: true}
	}
	var status sql.NullInt64
	if a.SIPStatus != 0 {
		status = sql.NullInt64{Int64: int64(a.SIPStatus), Valid: true}
	}
	return []any{a.State, nullString(a.Outcome), status, nullString(a.Trunk), nullString(a.HangupBy), agent,
		nullString(a.ExternalID), detail, msOrNull(a.SetupAt), msOrNull(a.RingAt), msOrNull(a.AnswerAt),
		msOrNull(a.ConnectAt), msOrNull(a.EndAt), a.ID}
}

// updateAttemptSQL writes what the engine follows of a call, and not its
// disposition and notes, which are the agent's (Dispose): an agent in wrap-up may
// dispose before the engine has written the call's end, which would undo them.
const updateAttemptSQL = `UPDATE attempts SET state=?, outcome=?, sip_status=?, trunk=?, hangup_by=?, agent_id=?,
	external_id=?, detail=?, setup_at=?, ring_at=?, answer_at=?, connect_at=?, end_at=? WHERE id=?`

// UpdateAttempt writes an attempt's progress.
func (d *DB) UpdateAttempt(ctx context.Context, a Attempt) error {
	return d.execOne(ctx, updateAttemptSQL, attemptArgs(a)...)
}

// FinishAttempt closes an attempt and moves its contact.
func (d *DB) FinishAttempt(ctx context.Context, a Attempt, move MoveFunc) error {
	return d.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, updateAttemptSQL, attemptArgs(a)...); err != nil {
			return fmt.Errorf("finish attempt: %w", err)
		}
		if move == nil {
			return nil
		}
		return d.moveContact(ctx, tx, a.ContactID, move)
	})
}

// Dispose records an agent's disposition and notes, and a callback if asked for.
func (d *DB) Dispose(ctx context.Context, attemptID int64, disposition, notes string, callback *Callback) error {
	return d.inTx(ctx, func(tx *sql.Tx) error {
		var contactID int64
		var rung int
		if err := tx.QueryRowContext(ctx, "SELECT contact_id, rung FROM attempts WHERE id=?", attemptID).Scan(&contactID, &rung); err != nil {
			return notFoundIfNoRows(err, fmt.Sprintf("attempt %d", attemptID))
		}
		// Once: an agent's wrap-up left open by a run that moved to another
		// node may be closed on either (the agent's, or the wrap-up timeout).
		res, err := tx.ExecContext(ctx, "UPDATE attempts SET disposition=?, notes=? WHERE id=? AND disposition IS NULL", disposition, nullString(notes), attemptID)
		if err != nil {
			return fmt.Errorf("record disposition: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("record disposition: %w", err)
		} else if n == 0 {
			return fmt.Errorf("attempt %d: %w", attemptID, ErrDisposed)
		}
		if callback == nil {
			return nil
		}
		// The journey's table decides (a do-not-call number is not called back); the
		// callback event needs no ladder.
		ev := campaigns.Event{Kind: campaigns.EventCallbackSet, At: callback.At, Rung: rung, AgentID: callback.AgentID}
		now := msToTime(d.nowMs())
		err = d.moveContact(ctx, tx, contactID, func(c campaigns.Contact, pos campaigns.Position) (campaigns.Position, error) {
			return campaigns.Apply(nil, c, pos, ev, now)
		})
		if err != nil {
			return fmt.Errorf("schedule callback: %w", err)
		}
		return nil
	})
}

// GetAttempt returns one attempt.
func (d *DB) GetAttempt(ctx context.Context, id int64) (Attempt, error) {
	a, err := scanAttempt(d.db.QueryRowContext(ctx, "SELECT "+attemptColumns+" FROM attempts WHERE id = ?", id))
	if err != nil {
		return a, notFoundIfNoRows(err, fmt.Sprintf("attempt %d", id))
	}
	return a, nil
}

const attemptColumns = `id, contact_id, campaign_id, channel, rung, state, coalesce(outcome,''), coalesce(sip_status,0),
	coalesce(trunk,''), coalesce(hangup_by,''), coalesce(agent_id,0), coalesce(disposition,''), coalesce(external_id,''), detail, created_at,
	setup_at, ring_at, answer_at, connect_at, end_at, coalesce(safe_harbour,''), coalesce(resumed_from,0), direction, coalesce(notes,'')`

func scanAttempt(r rowScanner) (Attempt, error) {
	var a Attempt
	var detail sql.NullString
	var created int64
	var setup, ring, answer, connect, end sql.NullInt64
	if err := r.Scan(&a.ID, &a.ContactID, &a.CampaignID, &a.Channel, &a.Rung, &a.State, &a.Outcome, &a.SIPStatus,
		&a.Trunk, &a.HangupBy, &a.AgentID, &a.Disposition, &a.ExternalID, &detail, &created, &setup, &ring, &answer, &connect, &end, &a.SafeHarbour, &a.ResumedFrom, &a.Direction, &a.Notes); err != nil {
		return a, err
	}
	if detail.Valid {
		a.Detail = json.RawMessage(detail.String)
	}
	a.CreatedAt = msToTime(created)
	a.SetupAt, a.RingAt, a.AnswerAt = nullMsToTime(setup), nullMsToTime(ring), nullMsToTime(answer)
	a.ConnectAt, a.EndAt = nullMsToTime(connect), nullMsToTime(end)
	return a, nil
}

func (d *DB) listAttempts(ctx context.Context, where string, args ...any) ([]Attempt, error) {
	rows, err := d.db.QueryContext(ctx, "SELECT "+attemptColumns+" FROM attempts WHERE "+where+" ORDER BY id", args...)
	if err != nil {
		return nil, fmt.Errorf("list attempts: %w", err)
	}
	defer rows.Close()
	out := []Attempt{}
	for rows.Next() {
		a, err := scanAttempt(rows)
		if err != nil {
			return nil, fmt.Errorf("list attempts: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// ListAttempts lists a contact's attempts, oldest first.
func (d *DB) ListAttempts(ctx context.Context, contactID int64) ([]Attempt, error) {
	return d.listAttempts(ctx, "contact_id = ?", contactID)
}

// OpenWrapUps lists the campaign's connected calls ended since since with an
// agent and no disposition. A call back on WhatsApp is left out: its wrap-up
// is its dropped SIP call's.
func (d *DB) OpenWrapUps(ctx context.Context, campaignID int64, since time.Time) ([]Attempt, error) {
	return d.listAttempts(ctx, `campaign_id = ? AND state = 'ended' AND outcome = ? AND agent_id IS NOT NULL
		AND disposition IS NULL AND resumed_from IS NULL AND end_at >= ?`, campaignID, string(campaigns.OutcomeConnected), since.UnixMilli())
}

// OpenAttempts lists attempts that have not ended.
func (d *DB) OpenAttempts(ctx context.Context) ([]Attempt, error) {
	return d.listAttempts(ctx, "state IN ('"+strings.Join(openAttemptStates, "','")+"')")
}

// AttemptOrdinal counts the contact's earlier attempts but the template sends that
// were interrupted: those are tried again at once as the same send (same key, so
// WhatsApp never sends it twice). An interrupted call used up its attempt; the next
// call, after the rung's delay, is a new one with a key of its own.
func (d *DB) AttemptOrdinal(ctx context.Context, a Attempt) (int, error) {
	var n int
	err := d.db.QueryRowContext(ctx, `SELECT count(*) FROM attempts WHERE contact_id = ? AND id < ?
		AND NOT (coalesce(outcome,'') = ? AND channel = ?)`, a.ContactID, a.ID,
		string(campaigns.OutcomeInterrupted), string(campaigns.ChannelWhatsAppTemplate)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("attempt ordinal: %w", err)
	}
	return n, nil
}
