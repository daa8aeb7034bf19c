package storage

import "context"

// Store is every repository Turbina needs. *DB implements it on SQLite and on
// PostgreSQL alike.
type Store interface {
	CampaignStore
	ContactStore
	DNCStore
	UserStore
	AuditLog
	Outbox
	StatsStore
	ComplianceStore
	AttemptStore
	WhatsAppStore
	QuarantineStore
	SessionStore
	PolicyStore
	LeaseStore
	ClusterStore
	PhoneBindingStore
	Ping(ctx context.Context) error
	// Ready is nil when the database answers reads and takes writes.
	Ready(ctx context.Context) error
	IntegrityCheck(ctx context.Context) error
	FailInterruptedImports(ctx context.Context) (int, error)
	Close() error
}

var _ Store = (*DB)(nil)
