package catalog

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Validation is one table's result of a VALIDATE MIRROR, as
// sluice_status.mirror_validations shows it.
type Validation struct {
	SourceTable     string
	SourceRows      int64
	DestinationRows int64
	// MismatchedRanges is NULL (nil) in count mode.
	MismatchedRanges []string
	Status           string
}

// RecordValidation records a validation of mirror in mode at position (as
// the source shows it), one row per table, in one transaction. Not
// idempotent: each call is one more validation in the history.
func (s *Store) RecordValidation(ctx context.Context, mirror, mode, position string, tables []Validation) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for _, t := range tables {
			_, err := tx.Exec(ctx, `
INSERT INTO sluice.mirror_validations (mirror, mode, position, source_table, source_rows, destination_rows, mismatched_ranges, status)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, mirror, mode, position, t.SourceTable, t.SourceRows, t.DestinationRows, t.MismatchedRanges, t.Status)
			if err != nil {
				return fmt.Errorf("record validation of mirror %q: %w", mirror, err)
			}
		}
		return nil
	})
}
