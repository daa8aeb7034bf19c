package storage

import (
	"context"
	"fmt"
)

// IntegrityCheck runs SQLite's integrity and foreign-key checks and reports the
// first problem. PostgreSQL checks foreign keys on every write and its pages'
// checksums on every read, so there it checks that the database answers.
func (d *DB) IntegrityCheck(ctx context.Context) error {
	if d.dialect == postgresDialect {
		return d.Ping(ctx)
	}
	var res string
	if err := d.db.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&res); err != nil {
		return fmt.Errorf("integrity check: %w", err)
	}
	if res != "ok" {
		return fmt.Errorf("integrity check: %s", res)
	}
	rows, err := d.db.QueryContext(ctx, "PRAGMA foreign_key_check")
	if err != nil {
		return fmt.Errorf("foreign key check: %w", err)
	}
	defer rows.Close()
	if rows.Next() {
		var table string
		var rowid, parent, fkid any
		if err := rows.Scan(&table, &rowid, &parent, &fkid); err != nil {
			return fmt.Errorf("foreign key check: %w", err)
		}
		return fmt.Errorf("foreign key check: row %v of %s points to a missing %v", rowid, table, parent)
	}
	return rows.Err()
}

// FailInterruptedImports closes the records of imports a crash left running; the
// batches they committed stay, and the record says how many rows those held.
func (d *DB) FailInterruptedImports(ctx context.Context) (int, error) {
	res, err := d.exec(ctx, `UPDATE imports SET state='failed', error='interrupted: the server stopped during the import',
		finished_at=? WHERE state='running'`, d.nowMs())
	if err != nil {
		return 0, fmt.Errorf("close interrupted imports: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}
