package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
)

// ContactFilter narrows a contact listing. Zero fields do not filter.
type ContactFilter struct {
	Status campaigns.ContactStatus
	// Phone matches contacts whose number starts with it (E.164 digits, with or without +).
	Phone    string
	ImportID int64
	Limit    int
	Offset   int
}

// ContactStore keeps contacts and their imports.
type ContactStore interface {
	// BeginImport starts an import into a campaign; its rows are written in batches.
	BeginImport(ctx context.Context, who Actor, campaignID int64) (*ImportBatch, error)
	// ListContacts returns matching contacts in file order and how many match in all.
	ListContacts(ctx context.Context, campaignID int64, f ContactFilter) ([]campaigns.Contact, int, error)
	GetContact(ctx context.Context, id int64) (campaigns.Contact, error)
	// ImportRejections streams an import's rejected rows in line order.
	ImportRejections(ctx context.Context, importID int64, fn func(campaigns.Rejection) error) error
	GetImport(ctx context.Context, id int64) (Import, error)
	// CampaignColumns lists the attribute columns the campaign's contacts carry.
	CampaignColumns(ctx context.Context, campaignID int64) ([]string, error)
}

// Import is the record of one contact file upload.
type Import struct {
	ID         int64  `json:"id,string"`
	CampaignID int64  `json:"campaign_id,string"`
	State      string `json:"state"`
	Imported   int    `json:"imported"`
	Rejected   int    `json:"rejected_count"`
	// AmbiguousZones counts the imported contacts that may be in more than one
	// time zone (the calling hours must hold in each).
	AmbiguousZones int `json:"ambiguous_zones"`
	// Columns are the header of the file, as written.
	Columns    []string   `json:"columns,omitempty"`
	Error      string     `json:"error,omitempty"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
}

// ImportBatch writes one import's rows. Rows become durable in whole batches at each
// Flush: a crash loses at most the batch in progress and never leaves half of one.
// A batch's transaction opens with its first row and holds the database's write
// lock until Flush or Finish, so callers flush often enough (campaigns.Load does)
// for other writers not to wait long. It implements campaigns.ImportSink.
type ImportBatch struct {
	d          *DB
	who        Actor
	id         int64
	campaignID int64
	tx         *sql.Tx
	// release lets other writers in; set while tx is open.
	release   func()
	insert    *sql.Stmt
	reject    *sql.Stmt
	blocked   *sql.Stmt
	now       int64
	columns   sql.NullString // the file's header, JSON
	imported  int
	rejected  int
	ambiguous int
	pending   struct{ imported, rejected, ambiguous int }
}

// BeginImport records a new import and opens its first batch.
func (d *DB) BeginImport(ctx context.Context, who Actor, campaignID int64) (*ImportBatch, error) {
	b := &ImportBatch{d: d, who: who, campaignID: campaignID, now: d.nowMs()}
	var uid sql.NullInt64
	if who.UserID != 0 {
		uid = sql.NullInt64{Int64: who.UserID, Valid: true}
	}
	var err error
	b.id, err = d.execID(ctx, "INSERT INTO imports(campaign_id, user_id, state, started_at) VALUES (?,?,?,?)",
		campaignID, uid, "running", b.now)
	if err != nil {
		if isForeignKeyViolation(err) {
			return nil, fmt.Errorf("campaign %d: %w", campaignID, ErrNotFound)
		}
		return nil, fmt.Errorf("record import: %w", err)
	}
	return b, nil
}

// SetColumns records the file's header, written with the batch's next commit.
func (b *ImportBatch) SetColumns(names []string) error {
	j, err := json.Marshal(names)
	if err != nil {
		return fmt.Errorf("encode import columns: %w", err)
	}
	b.columns = sql.NullString{String: string(j), Valid: true}
	return nil
}

// ID is the import's identifier.
func (b *ImportBatch) ID() int64 { return b.id }

// open begins the batch's transaction unless one is open.
func (b *ImportBatch) open(ctx context.Context) error {
	if b.tx != nil {
		return nil
	}
	return b.begin(ctx)
}

func (b *ImportBatch) begin(ctx context.Context) error {
	// A batch's transaction outlives the call that opens it: Add, Reject, Flush and
	// Finish come with contexts of their own (campaigns.Load cancels its context when
	// it returns, before Finish). database/sql rolls a transaction back when the
	// context it began with ends, so it gets one that does not; each statement still
	// honours its caller's context, and Flush or Finish always ends the transaction.
	// The batch holds the write lock from here until commit or rollback.
	deadline, release, err := b.d.acquire(ctx)
	if err != nil {
		return fmt.Errorf("begin import batch: %w", err)
	}
	tx, err := b.d.beginLocked(ctx, context.WithoutCancel(ctx), deadline)
	b.d.health.note(b.d.log, err, false)
	if err != nil {
		release()
		return fmt.Errorf("begin import batch: %w", err)
	}
	b.tx, b.release = tx, release
	prep := func(q string) *sql.Stmt {
		if err != nil {
			return nil
		}
		var s *sql.Stmt
		s, err = tx.PrepareContext(ctx, q)
		return s
	}
	b.insert = prep(`INSERT INTO contacts(campaign_id, import_id, line, phone, whatsapp, name, timezone, zones, attributes,
		status, rung, rung_attempts, next_attempt_at, created_at, updated_at, consent_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
		ON CONFLICT(campaign_id, phone) DO NOTHING`)
	b.reject = prep(`INSERT INTO import_rejections(import_id, line, reason, detail, value, cells) VALUES (?,?,?,?,?,?)
		ON CONFLICT(import_id, line) DO UPDATE SET reason = excluded.reason, detail = excluded.detail,
		value = excluded.value, cells = excluded.cells`)
	b.blocked = prep("SELECT EXISTS(SELECT 1 FROM dnc WHERE phone IN (?, ?) AND (campaign_id IS NULL OR campaign_id = ?))")
	if err != nil {
		b.end(false)
		return fmt.Errorf("prepare import batch: %w", err)
	}
	return nil
}

// end commits or rolls back the batch's transaction and lets other writers in.
func (b *ImportBatch) end(commit bool) error {
	defer b.release()
	tx := b.tx
	b.tx = nil
	if commit {
		err := tx.Commit()
		b.d.health.note(b.d.log, err, false)
		return err
	}
	return tx.Rollback()
}

// Add stores c unless its number (or WhatsApp number) is on a do-not-call list or
// already in the campaign; then it returns the reason and stores nothing.
func (b *ImportBatch) Add(ctx context.Context, c campaigns.Contact) (campaigns.RejectReason, error) {
	if err := b.open(ctx); err != nil {
		return "", err
	}
	// A row's statements take microseconds; given a context that can end, the driver
	// would start a goroutine for each to watch it, which cost more than the
	// statements' own work. The end of ctx is checked here instead, once a row.
	if err := ctx.Err(); err != nil {
		return "", err
	}
	rowCtx := context.WithoutCancel(ctx)
	var blocked bool
	if err := b.blocked.QueryRowContext(rowCtx, c.Phone, c.WhatsAppNumber(), b.campaignID).Scan(&blocked); err != nil {
		return "", fmt.Errorf("check do-not-call: %w", err)
	}
	if blocked {
		return campaigns.RejectDoNotCall, nil
	}
	var attrs sql.NullString
	if len(c.Attributes) > 0 {
		j, err := json.Marshal(c.Attributes)
		if err != nil {
			return "", fmt.Errorf("encode attributes: %w", err)
		}
		attrs = sql.NullString{String: string(j), Valid: true}
	}
	var consent sql.NullInt64
	if c.Consent != nil {
		// A consent without a date is taken as of its import.
		consent = sql.NullInt64{Int64: b.now, Valid: true}
		if !c.Consent.IsZero() {
			consent.Int64 = c.Consent.UnixMilli()
		}
	}
	// Where a new contact starts is the journey's "imported" row.
	pos, err := campaigns.Apply(nil, c, campaigns.Position{}, campaigns.Event{Kind: campaigns.EventImported}, msToTime(b.now))
	if err != nil {
		return "", fmt.Errorf("import contact: %w", err)
	}
	res, err := b.insert.ExecContext(rowCtx, b.campaignID, b.id, c.Line, c.Phone, nullString(c.WhatsApp),
		nullString(c.Name), nullString(c.Timezone), nullString(strings.Join(c.Zones, " ")), attrs, string(pos.Status), pos.Rung, pos.Attempts, pos.NextAt.UnixMilli(), b.now, b.now, consent)
	if err != nil {
		return "", fmt.Errorf("insert contact: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return "", fmt.Errorf("insert contact: %w", err)
	} else if n == 0 {
		return campaigns.RejectAlreadyInCampaign, nil
	}
	b.pending.imported++
	if len(c.Zones) > 1 {
		b.pending.ambiguous++
	}
	return "", nil
}

// Reject records a row that was not imported.
func (b *ImportBatch) Reject(ctx context.Context, r campaigns.Rejection) error {
	if err := b.open(ctx); err != nil {
		return err
	}
	var cells sql.NullString
	if len(r.Cells) > 0 {
		j, err := json.Marshal(r.Cells)
		if err != nil {
			return fmt.Errorf("encode rejected row: %w", err)
		}
		cells = sql.NullString{String: string(j), Valid: true}
	}
	if _, err := b.reject.ExecContext(ctx, b.id, r.Line, string(r.Reason), nullString(r.Detail), nullString(r.Value), cells); err != nil {
		return fmt.Errorf("record rejection: %w", err)
	}
	b.pending.rejected++
	return nil
}

// Flush commits the batch in progress, with the running counts.
func (b *ImportBatch) Flush(ctx context.Context) error {
	if b.tx == nil {
		return nil
	}
	return b.commit(ctx, "running", "")
}

func (b *ImportBatch) commit(ctx context.Context, state, errText string) error {
	imported, rejected := b.imported+b.pending.imported, b.rejected+b.pending.rejected
	ambiguous := b.ambiguous + b.pending.ambiguous
	var finished sql.NullInt64
	if state != "running" {
		finished = sql.NullInt64{Int64: b.d.nowMs(), Valid: true}
	}
	_, err := b.tx.ExecContext(ctx, "UPDATE imports SET imported=?, rejected=?, ambiguous_zones=?, state=?, error=?, finished_at=?, columns=coalesce(?, columns) WHERE id=?",
		imported, rejected, ambiguous, state, nullString(errText), finished, b.columns, b.id)
	if err == nil && state != "running" {
		err = b.d.audit(ctx, b.tx, b.who, "contacts.import", "campaign", idString(b.campaignID), nil,
			map[string]any{"import_id": idString(b.id), "imported": imported, "rejected": rejected, "ambiguous_zones": ambiguous, "state": state})
	}
	if err != nil {
		b.end(false)
		return fmt.Errorf("commit import batch: %w", err)
	}
	if err := b.end(true); err != nil {
		return fmt.Errorf("commit import batch: %w", err)
	}
	b.imported, b.rejected, b.ambiguous = imported, rejected, ambiguous
	b.pending.imported, b.pending.rejected, b.pending.ambiguous = 0, 0, 0
	return nil
}

// Finish commits the last batch and closes the import: done when cause is nil,
// failed (keeping every batch already committed) otherwise.
func (b *ImportBatch) Finish(ctx context.Context, cause error) (Import, error) {
	state, text := "done", ""
	if cause != nil {
		state, text = "failed", cause.Error()
		// The batch in progress may be half of what the client meant; committed ones stand.
		if b.tx != nil {
			b.end(false)
		}
		b.pending.imported, b.pending.rejected, b.pending.ambiguous = 0, 0, 0
		// The context may be the cancelled request's: the record must still be closed.
		ctx = context.WithoutCancel(ctx)
	}
	if err := b.open(ctx); err != nil {
		return Import{}, err
	}
	if err := b.commit(ctx, state, text); err != nil {
		return Import{}, err
	}
	return b.d.GetImport(ctx, b.id)
}

// GetImport returns an import's record.
func (d *DB) GetImport(ctx context.Context, id int64) (Import, error) {
	var im Import
	var started int64
	var finished sql.NullInt64
	var errText, columns sql.NullString
	err := d.db.QueryRowContext(ctx, `SELECT id, campaign_id, state, imported, rejected, ambiguous_zones, error, started_at, finished_at, columns
		FROM imports WHERE id = ?`, id).Scan(&im.ID, &im.CampaignID, &im.State, &im.Imported, &im.Rejected, &im.AmbiguousZones,
		&errText, &started, &finished, &columns)
	if err != nil {
		return im, notFoundIfNoRows(err, fmt.Sprintf("import %d", id))
	}
	if columns.Valid {
		if err := json.Unmarshal([]byte(columns.String), &im.Columns); err != nil {
			return im, fmt.Errorf("import %d columns: %w", id, err)
		}
	}
	im.Error = errText.String
	im.StartedAt = msToTime(started)
	im.FinishedAt = nullMsToTime(finished)
	return im, nil
}

// ImportRejections streams the rejected rows of an import in line order.
func (d *DB) ImportRejections(ctx context.Context, importID int64, fn func(campaigns.Rejection) error) error {
	rows, err := d.db.QueryContext(ctx, "SELECT line, reason, coalesce(detail,''), coalesce(value,''), cells FROM import_rejections WHERE import_id = ? ORDER BY line", importID)
	if err != nil {
		return fmt.Errorf("list rejections: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r campaigns.Rejection
		var cells sql.NullString
		if err := rows.Scan(&r.Line, &r.Reason, &r.Detail, &r.Value, &cells); err != nil {
			return fmt.Errorf("list rejections: %w", err)
		}
		if cells.Valid {
			if err := json.Unmarshal([]byte(cells.String), &r.Cells); err != nil {
				return fmt.Errorf("rejected line %d: %w", r.Line, err)
			}
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return rows.Err()
}

const contactColumns = "id, campaign_id, phone, coalesce(whatsapp,''), coalesce(name,''), coalesce(timezone,''), attributes, status, coalesce(line,0)"

// contactZonesColumns are contactColumns and the contact's zones, which
// scanContact reads.
const contactZonesColumns = contactColumns + ", coalesce(zones,'')"

// dueColumns are what scanDueContact reads: the contact, its zones and its place
// on the ladder.
const dueColumns = contactColumns + ", rung, rung_attempts, next_attempt_at, coalesce(callback_agent_id,0), coalesce(zones,'')"

func scanContact(r rowScanner) (campaigns.Contact, error) {
	var c campaigns.Contact
	var attrs sql.NullString
	var zones string
	if err := r.Scan(&c.ID, &c.CampaignID, &c.Phone, &c.WhatsApp, &c.Name, &c.Timezone, &attrs, &c.Status, &c.Line, &zones); err != nil {
		return c, err
	}
	c.Zones = strings.Fields(zones)
	c.Attributes = map[string]string{}
	if attrs.Valid {
		if err := json.Unmarshal([]byte(attrs.String), &c.Attributes); err != nil {
			return c, fmt.Errorf("decode contact %d attributes: %w", c.ID, err)
		}
	}
	return c, nil
}

// ListContacts returns a page of a campaign's contacts in the order they were imported.
func (d *DB) ListContacts(ctx context.Context, campaignID int64, f ContactFilter) ([]campaigns.Contact, int, error) {
	where := []string{"campaign_id = ?"}
	args := []any{campaignID}
	if f.Status != "" {
		where = append(where, "status = ?")
		args = append(args, string(f.Status))
	}
	if f.Phone != "" {
		// A range on the (campaign_id, phone) index: prefix search without LIKE's
		// escaping rules. The bound is the prefix with its last byte raised, not
		// prefix+"\xff", which PostgreSQL refuses as text that is not UTF-8.
		p := "+" + strings.TrimPrefix(f.Phone, "+")
		where = append(where, "phone >= ? AND phone < ?")
		args = append(args, p, prefixEnd(p))
	}
	if f.ImportID != 0 {
		where = append(where, "import_id = ?")
		args = append(args, f.ImportID)
	}
	cond := " WHERE " + strings.Join(where, " AND ")
	var total int
	if err := d.db.QueryRowContext(ctx, "SELECT count(*) FROM contacts"+cond, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count contacts: %w", err)
	}
	rows, err := d.db.QueryContext(ctx, "SELECT "+contactZonesColumns+" FROM contacts"+cond+" ORDER BY id LIMIT ? OFFSET ?",
		append(args, limitOrDefault(f.Limit), f.Offset)...)
	if err != nil {
		return nil, 0, fmt.Errorf("list contacts: %w", err)
	}
	defer rows.Close()
	out := []campaigns.Contact{}
	for rows.Next() {
		c, err := scanContact(rows)
		if err != nil {
			return nil, 0, fmt.Errorf("list contacts: %w", err)
		}
		out = append(out, c)
	}
	return out, total, rows.Err()
}

// GetContact returns one contact.
func (d *DB) GetContact(ctx context.Context, id int64) (campaigns.Contact, error) {
	c, err := scanContact(d.db.QueryRowContext(ctx, "SELECT "+contactZonesColumns+" FROM contacts WHERE id = ?", id))
	if err != nil {
		return c, notFoundIfNoRows(err, fmt.Sprintf("contact %d", id))
	}
	return c, nil
}

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

// CampaignColumns lists the attribute columns the campaign's contacts carry.
func (d *DB) CampaignColumns(ctx context.Context, campaignID int64) ([]string, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT DISTINCT j.key FROM contacts c, `+d.dialect.jsonKeys("c.attributes", "j")+`
		WHERE c.campaign_id = ? AND c.attributes IS NOT NULL ORDER BY j.key`, campaignID)
	if err != nil {
		return nil, fmt.Errorf("campaign columns: %w", err)
	}
	defer rows.Close()
	cols := []string{}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, fmt.Errorf("campaign columns: %w", err)
		}
		cols = append(cols, k)
	}
	return cols, rows.Err()
}
