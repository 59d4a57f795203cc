package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/connectors"
)

// AddMissingColumns adds to the destination table every column of cols it
// lacks (nullable, so existing rows stay valid). It returns the columns it
// added. Idempotent.
func AddMissingColumns(ctx context.Context, conn *pgx.Conn, dest connectors.TableName, cols []connectors.Column) ([]connectors.Column, error) {
	rows, err := conn.Query(ctx, `
SELECT a.attname FROM pg_attribute a
WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`, dest.Quoted())
	if err != nil {
		return nil, fmt.Errorf("list columns of %s: %w", dest, err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list columns of %s: %w", dest, err)
	}
	have := make(map[string]bool, len(names))
	for _, n := range names {
		have[n] = true
	}
	var added []connectors.Column
	for _, c := range cols {
		if have[c.Name] {
			continue
		}
		sql := fmt.Sprintf("ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s %s", dest.Quoted(), pgx.Identifier{c.Name}.Sanitize(), c.Type)
		if _, err := conn.Exec(ctx, sql); err != nil {
			return nil, fmt.Errorf("add column %s to %s: %w", c.Name, dest, err)
		}
		added = append(added, c)
	}
	return added, nil
}
