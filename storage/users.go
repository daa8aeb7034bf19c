package storage

import (
	"context"
	"crypto/md5" //nolint:gosec // SIP digest (RFC 3261 22.4) is MD5
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Role is what a user may do.
type Role string

// Roles, from most to least powerful.
const (
	RoleAdmin      Role = "admin"
	RoleSupervisor Role = "supervisor"
	RoleSales      Role = "sales"
	RoleAgent      Role = "agent"
)

// Valid reports whether r is one of the known roles.
func (r Role) Valid() bool {
	switch r {
	case RoleAdmin, RoleSupervisor, RoleSales, RoleAgent:
		return true
	}
	return false
}

// User is a person (or integration) that signs in.
type User struct {
	ID           int64     `json:"id,string"`
	Username     string    `json:"username"`
	DisplayName  string    `json:"display_name"`
	Role         Role      `json:"role"`
	Disabled     bool      `json:"disabled"`
	CreatedAt    time.Time `json:"created_at"`
	PasswordHash string    `json:"-"`
}

// Token is an API token's record; the secret itself is never stored.
type Token struct {
	ID         int64      `json:"id,string"`
	UserID     int64      `json:"user_id,string"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	// ExpiresAt is when the token stops working; nil never (none made by the API).
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// UserStore keeps users, their API tokens and agents' campaign assignments.
type UserStore interface {
	CreateUser(ctx context.Context, who Actor, u *User) error
	GetUser(ctx context.Context, id int64) (User, error)
	ListUsers(ctx context.Context) ([]User, error)
	UpdateUser(ctx context.Context, who Actor, id int64, change func(*User) error) (User, error)
	// CreateToken stores a token by the SHA-256 of its secret (the store keeps
	// only a keyed hash of it).
	CreateToken(ctx context.Context, who Actor, t *Token, secretHash string) error
	// UserByToken finds the enabled user owning an unrevoked, unexpired token and
	// notes its use.
	UserByToken(ctx context.Context, secretHash string) (User, error)
	ListTokens(ctx context.Context, userID int64) ([]Token, error)
	GetToken(ctx context.Context, id int64) (Token, error)
	// TokenByHash returns the record of the token whose secret's SHA-256 is
	// secretHash, live or not.
	TokenByHash(ctx context.Context, secretHash string) (Token, error)
	RevokeToken(ctx context.Context, who Actor, id int64) error
	// RevokeUserTokens stops every token of a user (a new password, a disabled
	// account) and returns how many it stopped.
	RevokeUserTokens(ctx context.Context, who Actor, userID int64) (int, error)
	// AssignAgent lets an agent user work (and read) a campaign.
	AssignAgent(ctx context.Context, who Actor, campaignID, userID int64) error
	UnassignAgent(ctx context.Context, who Actor, campaignID, userID int64) error
	AgentCampaigns(ctx context.Context, userID int64) ([]int64, error)
	CampaignAgents(ctx context.Context, campaignID int64) ([]User, error)
	SetPhoneSecret(ctx context.Context, who Actor, userID int64, realm, secret string) error
	PhoneCredentials(ctx context.Context, username, realm string) (ha1 string, userID int64, ok bool, err error)
}

const userColumns = "id, username, display_name, role, coalesce(password_hash,''), disabled, created_at"

func scanUser(r rowScanner) (User, error) {
	var u User
	var created int64
	err := r.Scan(&u.ID, &u.Username, &u.DisplayName, &u.Role, &u.PasswordHash, &u.Disabled, &created)
	u.CreatedAt = msToTime(created)
	return u, err
}

// CreateUser stores u and sets its ID; a taken username is ErrConflict.
func (d *DB) CreateUser(ctx context.Context, who Actor, u *User) error {
	return d.inTx(ctx, func(tx *sql.Tx) error {
		now := d.nowMs()
		var err error
		u.ID, err = insertID(ctx, tx, "INSERT INTO users(username, display_name, role, password_hash, disabled, created_at) VALUES (?,?,?,?,?,?)",
			u.Username, u.DisplayName, u.Role, nullString(u.PasswordHash), u.Disabled, now)
		if err != nil {
			if isUniqueViolation(err) {
				return fmt.Errorf("username %q is taken: %w", u.Username, ErrConflict)
			}
			return fmt.Errorf("create user: %w", err)
		}
		u.CreatedAt = msToTime(now)
		if u.Role == RoleAgent {
			if _, err := tx.ExecContext(ctx, "INSERT INTO agents(user_id, state_since) VALUES (?,?)", u.ID, now); err != nil {
				return fmt.Errorf("create agent: %w", err)
			}
		}
		return d.audit(ctx, tx, who, "user.create", "user", idString(u.ID), nil, u)
	})
}

// GetUser returns one user.
func (d *DB) GetUser(ctx context.Context, id int64) (User, error) {
	u, err := scanUser(d.db.QueryRowContext(ctx, "SELECT "+userColumns+" FROM users WHERE id = ?", id))
	if err != nil {
		return u, notFoundIfNoRows(err, fmt.Sprintf("user %d", id))
	}
	return u, nil
}

// ListUsers returns every user ordered by ID.
func (d *DB) ListUsers(ctx context.Context) ([]User, error) {
	rows, err := d.db.QueryContext(ctx, "SELECT "+userColumns+" FROM users ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	out := []User{}
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// UpdateUser changes a user in one transaction with its audit entry.
func (d *DB) UpdateUser(ctx context.Context, who Actor, id int64, change func(*User) error) (User, error) {
	var after User
	err := d.inTx(ctx, func(tx *sql.Tx) error {
		before, err := scanUser(tx.QueryRowContext(ctx, "SELECT "+userColumns+" FROM users WHERE id = ?"+d.dialect.lockRow, id))
		if err != nil {
			return notFoundIfNoRows(err, fmt.Sprintf("user %d", id))
		}
		after = before
		if err := change(&after); err != nil {
			return err
		}
		if before.Role == RoleAdmin && !before.Disabled && (after.Role != RoleAdmin || after.Disabled) {
			// Counted inside the transaction, so two demotions at once cannot both pass.
			var others int
			if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM users WHERE role='admin' AND disabled=0 AND id<>?", id).Scan(&others); err != nil {
				return fmt.Errorf("count admins: %w", err)
			}
			if others == 0 {
				return fmt.Errorf("the last admin cannot be disabled or demoted: %w", ErrConflict)
			}
		}
		_, err = tx.ExecContext(ctx, "UPDATE users SET display_name=?, role=?, password_hash=?, disabled=? WHERE id=?",
			after.DisplayName, after.Role, nullString(after.PasswordHash), after.Disabled, id)
		if err != nil {
			return fmt.Errorf("update user: %w", err)
		}
		if after.Role == RoleAgent {
			if _, err := tx.ExecContext(ctx, "INSERT INTO agents(user_id, state_since) VALUES (?,?) ON CONFLICT DO NOTHING", id, d.nowMs()); err != nil {
				return fmt.Errorf("update user: %w", err)
			}
		}
		return d.audit(ctx, tx, who, "user.update", "user", idString(id), before, after)
	})
	return after, err
}

// CreateToken stores a new token for t.UserID and sets its ID.
func (d *DB) CreateToken(ctx context.Context, who Actor, t *Token, secretHash string) error {
	return d.inTx(ctx, func(tx *sql.Tx) error {
		now := d.nowMs()
		var expires sql.NullInt64
		if t.ExpiresAt != nil {
			expires = sql.NullInt64{Int64: t.ExpiresAt.UnixMilli(), Valid: true}
		}
		keyed := d.keyTokenHash(secretHash)
		// A secret registered again after its token died (an operator's
		// TURBINA_ADMIN_TOKEN, at each start) gets a new row; the dead one stays
		// listed, its hash replaced by one no secret has.
		if _, err := tx.ExecContext(ctx, "UPDATE api_tokens SET token_hash = 'dead:' || id WHERE token_hash = ? AND (revoked_at IS NOT NULL OR expires_at <= ?)",
			keyed, now); err != nil {
			return fmt.Errorf("create token: %w", err)
		}
		var err error
		t.ID, err = insertID(ctx, tx, "INSERT INTO api_tokens(user_id, name, token_hash, keyed, prefix, created_at, expires_at) VALUES (?,?,?,?,?,?,?)",
			t.UserID, t.Name, keyed, hashOutsideK, t.Prefix, now, expires)
		if err != nil {
			if isForeignKeyViolation(err) {
				return fmt.Errorf("user %d: %w", t.UserID, ErrNotFound)
			}
			if isUniqueViolation(err) {
				return fmt.Errorf("token already exists: %w", ErrConflict)
			}
			return fmt.Errorf("create token: %w", err)
		}
		t.CreatedAt = msToTime(now)
		return d.audit(ctx, tx, who, "token.create", "user", idString(t.UserID), nil, t)
	})
}

// UserByToken resolves a token's SHA-256 to its user.
func (d *DB) UserByToken(ctx context.Context, secretHash string) (User, error) {
	var tokenID int64
	row := d.db.QueryRowContext(ctx, `SELECT t.id, u.id, u.username, u.display_name, u.role, coalesce(u.password_hash,''), u.disabled, u.created_at
		FROM api_tokens t JOIN users u ON u.id = t.user_id
		WHERE t.token_hash = ? AND t.revoked_at IS NULL AND u.disabled = 0
		AND (t.expires_at IS NULL OR t.expires_at > ?)`, d.keyTokenHash(secretHash), d.nowMs())
	var u User
	var created int64
	if err := row.Scan(&tokenID, &u.ID, &u.Username, &u.DisplayName, &u.Role, &u.PasswordHash, &u.Disabled, &created); err != nil {
		return u, notFoundIfNoRows(err, "token")
	}
	u.CreatedAt = msToTime(created)
	// Last use is informational: noted in memory and written with the others
	// every few seconds, so a request never waits on the write lock for it, and a
	// busy database never turns a valid token away.
	d.touches.token(tokenID, d.nowMs())
	return u, nil
}

const tokenColumns = "id, user_id, name, prefix, created_at, last_used_at, revoked_at, expires_at"

func scanToken(r rowScanner) (Token, error) {
	var t Token
	var created int64
	var used, revoked, expires sql.NullInt64
	err := r.Scan(&t.ID, &t.UserID, &t.Name, &t.Prefix, &created, &used, &revoked, &expires)
	t.CreatedAt = msToTime(created)
	t.LastUsedAt, t.RevokedAt, t.ExpiresAt = nullMsToTime(used), nullMsToTime(revoked), nullMsToTime(expires)
	return t, err
}

// ListTokens lists a user's tokens, revoked ones included.
func (d *DB) ListTokens(ctx context.Context, userID int64) ([]Token, error) {
	rows, err := d.db.QueryContext(ctx, "SELECT "+tokenColumns+" FROM api_tokens WHERE user_id = ? ORDER BY id", userID)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	out := []Token{}
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// GetToken returns one token's record.
func (d *DB) GetToken(ctx context.Context, id int64) (Token, error) {
	t, err := scanToken(d.db.QueryRowContext(ctx, "SELECT "+tokenColumns+" FROM api_tokens WHERE id = ?", id))
	if err != nil {
		return t, notFoundIfNoRows(err, fmt.Sprintf("token %d", id))
	}
	return t, nil
}

// TokenByHash returns the record of a token by its secret's SHA-256.
func (d *DB) TokenByHash(ctx context.Context, secretHash string) (Token, error) {
	t, err := scanToken(d.db.QueryRowContext(ctx, "SELECT "+tokenColumns+" FROM api_tokens WHERE token_hash = ?", d.keyTokenHash(secretHash)))
	if err != nil {
		return t, notFoundIfNoRows(err, "token")
	}
	return t, nil
}

// RevokeToken stops a token from working.
func (d *DB) RevokeToken(ctx context.Context, who Actor, id int64) error {
	return d.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", d.nowMs(), id)
		if err != nil {
			return fmt.Errorf("revoke token: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("token %d: %w", id, ErrNotFound)
		}
		return d.audit(ctx, tx, who, "token.revoke", "token", idString(id), nil, nil)
	})
}

// RevokeUserTokens stops every live token of a user, with one audit entry.
func (d *DB) RevokeUserTokens(ctx context.Context, who Actor, userID int64) (int, error) {
	var n int64
	err := d.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE api_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL", d.nowMs(), userID)
		if err != nil {
			return fmt.Errorf("revoke tokens of user %d: %w", userID, err)
		}
		if n, _ = res.RowsAffected(); n == 0 {
			return nil
		}
		return d.audit(ctx, tx, who, "token.revoke_all", "user", idString(userID), nil, map[string]int64{"revoked": n})
	})
	return int(n), err
}

// AssignAgent adds a campaign to an agent's.
func (d *DB) AssignAgent(ctx context.Context, who Actor, campaignID, userID int64) error {
	return d.inTx(ctx, func(tx *sql.Tx) error {
		var agentID int64
		err := tx.QueryRowContext(ctx, "SELECT id FROM agents WHERE user_id = ?", userID).Scan(&agentID)
		if err != nil {
			return notFoundIfNoRows(err, fmt.Sprintf("agent user %d", userID))
		}
		_, err = tx.ExecContext(ctx, "INSERT INTO agent_campaigns(agent_id, campaign_id) VALUES (?,?) ON CONFLICT DO NOTHING", agentID, campaignID)
		if err != nil {
			if isForeignKeyViolation(err) {
				return fmt.Errorf("campaign %d: %w", campaignID, ErrNotFound)
			}
			return fmt.Errorf("assign agent: %w", err)
		}
		// A node serving the agent, other than this one, moves it too.
		if err := d.appendCommand(ctx, tx, CommandAssign, AssignmentCommand{UserID: userID, CampaignID: campaignID}); err != nil {
			return err
		}
		return d.audit(ctx, tx, who, "agent.assign", "campaign", idString(campaignID), nil, map[string]any{"user_id": idString(userID)})
	})
}

// UnassignAgent removes a campaign from an agent's.
func (d *DB) UnassignAgent(ctx context.Context, who Actor, campaignID, userID int64) error {
	return d.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM agent_campaigns WHERE campaign_id = ?
			AND agent_id = (SELECT id FROM agents WHERE user_id = ?)`, campaignID, userID)
		if err != nil {
			return fmt.Errorf("unassign agent: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("agent user %d on campaign %d: %w", userID, campaignID, ErrNotFound)
		}
		if err := d.appendCommand(ctx, tx, CommandUnassign, AssignmentCommand{UserID: userID, CampaignID: campaignID}); err != nil {
			return err
		}
		return d.audit(ctx, tx, who, "agent.unassign", "campaign", idString(campaignID), map[string]any{"user_id": idString(userID)}, nil)
	})
}

// AgentCampaigns lists the campaigns an agent user works.
func (d *DB) AgentCampaigns(ctx context.Context, userID int64) ([]int64, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT ac.campaign_id FROM agent_campaigns ac JOIN agents a ON a.id = ac.agent_id
		WHERE a.user_id = ? ORDER BY ac.campaign_id`, userID)
	if err != nil {
		return nil, fmt.Errorf("agent campaigns: %w", err)
	}
	defer rows.Close()
	ids := []int64{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("agent campaigns: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// CampaignAgents lists the agent users assigned to a campaign.
func (d *DB) CampaignAgents(ctx context.Context, campaignID int64) ([]User, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT u.id, u.username, u.display_name, u.role, '', u.disabled, u.created_at
		FROM agent_campaigns ac JOIN agents a ON a.id = ac.agent_id JOIN users u ON u.id = a.user_id
		WHERE ac.campaign_id = ? ORDER BY u.id`, campaignID)
	if err != nil {
		return nil, fmt.Errorf("campaign agents: %w", err)
	}
	defer rows.Close()
	out := []User{}
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("campaign agents: %w", err)
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// SetPhoneSecret sets (or, empty, clears) the secret an agent's SIP phone registers
// with in the registrar's digest realm. Only its HA1 is stored (PhoneHA1), never
// the secret; the audit log records the change. A change of the agent's username
// or of the realm calls for the secret again.
func (d *DB) SetPhoneSecret(ctx context.Context, who Actor, userID int64, realm, secret string) error {
	return d.inTx(ctx, func(tx *sql.Tx) error {
		var username string
		err := tx.QueryRowContext(ctx, "SELECT username FROM users WHERE id=?", userID).Scan(&username)
		if err != nil {
			return notFoundIfNoRows(err, fmt.Sprintf("user %d", userID))
		}
		var ha1, r sql.NullString
		if secret != "" {
			ha1, r = sql.NullString{String: PhoneHA1(username, realm, secret), Valid: true}, sql.NullString{String: realm, Valid: true}
		}
		if _, err := tx.ExecContext(ctx, "UPDATE users SET phone_ha1=?, phone_realm=? WHERE id=?", ha1, r, userID); err != nil {
			return fmt.Errorf("set phone secret: %w", err)
		}
		return d.audit(ctx, tx, who, "user.phone_secret", "user", idString(userID), nil, map[string]any{"set": secret != ""})
	})
}

// PhoneHA1 is the digest HA1 of a phone secret: hex MD5(username:realm:secret)
// (RFC 2617 3.2.2.2, RFC 7616 3.4.2), what SIP digest authentication checks a
// phone's answer against.
func PhoneHA1(username, realm, secret string) string {
	sum := md5.Sum([]byte(username + ":" + realm + ":" + secret)) //nolint:gosec // SIP digest is MD5; phones offer nothing else.
	return hex.EncodeToString(sum[:])
}

// PhoneCredentials returns the HA1 for realm and the user ID of the enabled agent
// whose SIP phone registers as username; ok is false when there is none, or its
// secret was set for another realm.
func (d *DB) PhoneCredentials(ctx context.Context, username, realm string) (ha1 string, userID int64, ok bool, err error) {
	var h sql.NullString
	err = d.db.QueryRowContext(ctx, `SELECT id, phone_ha1 FROM users
		WHERE username = ? AND role = 'agent' AND disabled = 0 AND phone_realm = ?`, username, realm).Scan(&userID, &h)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && !h.Valid) {
		return "", 0, false, nil
	}
	if err != nil {
		return "", 0, false, fmt.Errorf("phone credentials: %w", err)
	}
	return h.String, userID, true, nil
}

// migratedPhoneRealm is the realm secrets stored in clear before migration 8 are
// hashed for: the registrar's default. A deployment with another realm sets its
// phones' secrets again (the registrar finds no HA1 for its realm until then).
const migratedPhoneRealm = "turbina"

// hashPhoneSecrets is migration 8's Go step: each stored phone secret becomes its
// HA1 and the plaintext column goes. When there were secrets, it asks for a
// VACUUM: the secrets (and any older ones) would otherwise stay in free space.
func hashPhoneSecrets(ctx context.Context, tx *sql.Tx) (vacuum bool, err error) {
	rows, err := tx.QueryContext(ctx, "SELECT id, username, phone_secret FROM users WHERE phone_secret IS NOT NULL")
	if err != nil {
		return false, fmt.Errorf("read phone secrets: %w", err)
	}
	type secret struct {
		id             int64
		username, text string
	}
	var all []secret
	for rows.Next() {
		var s secret
		if err := rows.Scan(&s.id, &s.username, &s.text); err != nil {
			rows.Close()
			return false, fmt.Errorf("read phone secrets: %w", err)
		}
		all = append(all, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return false, fmt.Errorf("read phone secrets: %w", err)
	}
	for _, s := range all {
		if _, err := tx.ExecContext(ctx, "UPDATE users SET phone_ha1=?, phone_realm=? WHERE id=?",
			PhoneHA1(s.username, migratedPhoneRealm, s.text), migratedPhoneRealm, s.id); err != nil {
			return false, fmt.Errorf("hash phone secret of user %d: %w", s.id, err)
		}
	}
	if _, err := tx.ExecContext(ctx, "ALTER TABLE users DROP COLUMN phone_secret"); err != nil {
		return false, fmt.Errorf("drop plaintext phone secrets: %w", err)
	}
	return len(all) > 0, nil
}
