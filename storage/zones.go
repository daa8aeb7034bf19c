package storage

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"github.com/turbina-dialer/turbina/campaigns"
)

// widenAmbiguousZones is migration 10's Go step. Imports before it stored, as
// a contact's timezone, the first zone its number gave, even where the area
// spans several (+1 605 in Denver though Sioux Falls is Central). For each
// contact without zones whose number gives several, and whose timezone is
// empty or one of them (what the old import would have written), it stores
// them all and clears the single timezone, so the calling hours hold in each.
// A timezone the file set to a zone the number does not give is kept.
func widenAmbiguousZones(ctx context.Context, tx *sql.Tx) (bool, error) {
	rows, err := tx.QueryContext(ctx, "SELECT id, phone, coalesce(timezone,'') FROM contacts WHERE zones IS NULL")
	if err != nil {
		return false, fmt.Errorf("read contacts' zones: %w", err)
	}
	type change struct {
		id    int64
		zones string
	}
	var changes []change
	for rows.Next() {
		var id int64
		var phone, tz string
		if err := rows.Scan(&id, &phone, &tz); err != nil {
			rows.Close()
			return false, fmt.Errorf("read contacts' zones: %w", err)
		}
		zs := campaigns.ZonesForNumber(phone)
		if len(zs) > 1 && (tz == "" || slices.Contains(zs, tz)) {
			changes = append(changes, change{id, strings.Join(zs, " ")})
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return false, fmt.Errorf("read contacts' zones: %w", err)
	}
	stmt, err := tx.PrepareContext(ctx, "UPDATE contacts SET zones=?, timezone=NULL WHERE id=?")
	if err != nil {
		return false, fmt.Errorf("widen contacts' zones: %w", err)
	}
	defer stmt.Close()
	for _, c := range changes {
		if _, err := stmt.ExecContext(ctx, c.zones, c.id); err != nil {
			return false, fmt.Errorf("widen contact %d's zones: %w", c.id, err)
		}
	}
	return false, nil
}
