package storage

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Session is a signed-in browser. Its ID is known only to the browser's cookie; the
// database keeps the hash.
type Session struct {
	IDHash     string
	UserID     int64
	CreatedAt  time.Time
	ExpiresAt  time.Time
	LastSeenAt time.Time
	RemoteAddr string
	UserAgent  string
}

// SessionStore keeps browser sessions, finds users by name for password sign-in, and
// records events that change no row (sign-ins, controls of outside systems) in the
// audit log.
type SessionStore interface {
	// UserByUsername finds a user by name, ignoring case.
	UserByUsername(ctx context.Context, username string) (User, error)
	// CreateSession stores a session for s.UserID.
	CreateSession(ctx context.Context, s Session) error
	// UserBySession finds the enabled user of an unexpired session and notes its use.
	UserBySession(ctx context.Context, idHash string, now time.Time) (User, Session, error)
	// DeleteSession ends one session; ending one that does not exist is not an error.
	DeleteSession(ctx context.Context, idHash string) error
	// DeleteUserSessions ends every session of a user (password changed, disabled).
	DeleteUserSessions(ctx context.Context, userID int64) error
	// DeleteExpiredSessions removes sessions past their expiry and returns how many.
	DeleteExpiredSessions(ctx context.Context, now time.Time) (int, error)
	// RecordEvent writes an audit entry for a change made outside the database.
	RecordEvent(ctx context.Context, who Actor, action, objectType, objectID string, detail any) error
}

// UserByUsername returns the user with that name.
func (d *DB) UserByUsername(ctx context.Context, username string) (User, error) {
	u, err := scanUser(d.db.QueryRowContext(ctx, "SELECT "+userColumns+" FROM users WHERE username = ?", username))
	if err != nil {
		return u, notFoundIfNoRows(err, fmt.Sprintf("user %q", username))
	}
	return u, nil
}

// CreateSession stores a new session.
func (d *DB) CreateSession(ctx context.Context, s Session) error {
	_, err := d.exec(ctx, `INSERT INTO sessions(id_hash, user_id, created_at, expires_at, last_seen_at, remote_addr, user_agent)
		VALUES (?,?,?,?,?,?,?)`, s.IDHash, s.UserID, s.CreatedAt.UnixMilli(), s.ExpiresAt.UnixMilli(),
		s.CreatedAt.UnixMilli(), s.RemoteAddr, truncate(s.UserAgent, 256))
	if err != nil {
		if isForeignKeyViolation(err) {
			return fmt.Errorf("user %d: %w", s.UserID, ErrNotFound)
		}
		if isUniqueViolation(err) {
			return fmt.Errorf("session exists: %w", ErrConflict)
		}
		return fmt.Errorf("create session: %w", err)
	}
	return nil
}

// UserBySession resolves a session hash to its user; an expired session, or one of a
// disabled user, is ErrNotFound.
func (d *DB) UserBySession(ctx context.Context, idHash string, now time.Time) (User, Session, error) {
	var u User
	var s Session
	var created, uCreated, expires, seen int64
	err := d.db.QueryRowContext(ctx, `SELECT s.id_hash, s.user_id, s.created_at, s.expires_at, s.last_seen_at, s.remote_addr, s.user_agent,
		u.id, u.username, u.display_name, u.role, coalesce(u.password_hash,''), u.disabled, u.created_at
		FROM sessions s JOIN users u ON u.id = s.user_id
		WHERE s.id_hash = ? AND s.expires_at > ? AND u.disabled = 0`, idHash, now.UnixMilli()).Scan(
		&s.IDHash, &s.UserID, &created, &expires, &seen, &s.RemoteAddr, &s.UserAgent,
		&u.ID, &u.Username, &u.DisplayName, &u.Role, &u.PasswordHash, &u.Disabled, &uCreated)
	if err != nil {
		return u, s, notFoundIfNoRows(err, "session")
	}
	s.CreatedAt, s.ExpiresAt, s.LastSeenAt, u.CreatedAt = msToTime(created), msToTime(expires), msToTime(seen), msToTime(uCreated)
	// Noted in memory and written with the others every few seconds: a request
	// never waits on the write lock for its bookkeeping. Minute precision spares
	// even that write for a session in constant use.
	if now.UnixMilli()-seen > 60_000 {
		d.touches.session(idHash, now.UnixMilli())
	}
	return u, s, nil
}

// DeleteSession removes one session.
func (d *DB) DeleteSession(ctx context.Context, idHash string) error {
	if _, err := d.exec(ctx, "DELETE FROM sessions WHERE id_hash = ?", idHash); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// DeleteUserSessions removes every session of a user.
func (d *DB) DeleteUserSessions(ctx context.Context, userID int64) error {
	if _, err := d.exec(ctx, "DELETE FROM sessions WHERE user_id = ?", userID); err != nil {
		return fmt.Errorf("delete sessions: %w", err)
	}
	return nil
}

// DeleteExpiredSessions removes sessions whose expiry has passed.
func (d *DB) DeleteExpiredSessions(ctx context.Context, now time.Time) (int, error) {
	res, err := d.exec(ctx, "DELETE FROM sessions WHERE expires_at <= ?", now.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("delete expired sessions: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// RecordEvent writes one audit entry on its own.
func (d *DB) RecordEvent(ctx context.Context, who Actor, action, objectType, objectID string, detail any) error {
	return d.inTx(ctx, func(tx *sql.Tx) error {
		return d.audit(ctx, tx, who, action, objectType, objectID, nil, detail)
	})
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
