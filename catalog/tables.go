package catalog

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Tables added to and removed from an existing mirror (ALTER MIRROR ... ADD
// TABLE, DROP TABLE).

// ErrTableInMirror is wrapped by AddMirrorTables when a source table is
// already in the mirror.
var ErrTableInMirror = errors.New("table is already in the mirror")

// ErrTableNotInMirror is wrapped by RemoveMirrorTable and the table holds
// (holds.go) when the mirror has no such table.
var ErrTableNotInMirror = errors.New("table is not in the mirror")

// ErrLastTable is wrapped by RemoveMirrorTable for the mirror's only
// table: a mirror has at least one.
var ErrLastTable = errors.New("the mirror's last table")

// AddMirrorTables adds tables to mirror after its others, with an event, in
// one transaction. With a loadStrategy, each table's initial load is
// recorded as a requested table resync of that strategy (the flow runs it
// as one: resync pending, step waiting); without, each table streams from
// now on (status running, step streaming). It fails wrapping
// ErrMirrorNotFound when the mirror is gone and ErrTableInMirror when one
// of tables is in it already; then nothing is added.
func (s *Store) AddMirrorTables(ctx context.Context, mirror string, tables []MirrorTable, loadStrategy string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var next int
		err := tx.QueryRow(ctx, `
SELECT coalesce((SELECT max(ordinal) + 1 FROM sluice.mirror_tables WHERE mirror = m.name), 0)
FROM sluice.mirrors m WHERE m.name = $1 FOR UPDATE`, mirror).Scan(&next)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("add tables to mirror %q: %w", mirror, ErrMirrorNotFound)
		}
		if err != nil {
			return fmt.Errorf("add tables to mirror %q: %w", mirror, err)
		}
		status, step, resync, strategy := "running", StepStreaming, "", ""
		if loadStrategy != "" {
			status, step, resync, strategy = "pending", StepWaiting, ResyncPending, loadStrategy
		}
		names := make([]string, len(tables))
		for i, t := range tables {
			names[i] = t.Source
			exclude, orderBy := t.Exclude, t.OrderBy
			if exclude == nil {
				exclude = []string{}
			}
			if orderBy == nil {
				orderBy = []string{}
			}
			_, err := tx.Exec(ctx, `
INSERT INTO sluice.mirror_tables (mirror, source_table, destination_table, ordinal, partition_key, exclude, order_by,
       status, step, resync_status, resync_strategy, resync_started_at)
VALUES ($1, $2, $3, $4, NULLIF($5, ''), $6, $7, $8, $9, NULLIF($10, ''), NULLIF($11, ''),
       CASE WHEN $10 <> '' THEN now() END)`,
				mirror, t.Source, t.Destination, next+i, t.PartitionKey, exclude, orderBy, status, step, resync, strategy)
			if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == pgerrcode.UniqueViolation {
				return fmt.Errorf("add %s to mirror %q: %w", t.Source, mirror, ErrTableInMirror)
			}
			if err != nil {
				return fmt.Errorf("add %s to mirror %q: %w", t.Source, mirror, err)
			}
		}
		how := "streaming from now on, without an initial load"
		if loadStrategy != "" {
			how = "initial load requested"
		}
		return addEvent(ctx, tx, mirror, "tables", fmt.Sprintf("added %s: %s", strings.Join(names, ", "), how))
	})
}

// RemoveMirrorTable removes source table table from mirror (its row of
// mirror_tables, with its progress and resync state) with an event whose
// message ends with note, in one transaction. It fails wrapping
// ErrMirrorNotFound when the mirror is gone, ErrTableNotInMirror when it
// has no such table, and ErrLastTable when table is its only one.
func (s *Store) RemoveMirrorTable(ctx context.Context, mirror, table, note string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var n int
		var has bool
		err := tx.QueryRow(ctx, `
SELECT (SELECT count(*) FROM sluice.mirror_tables WHERE mirror = m.name),
       EXISTS (SELECT 1 FROM sluice.mirror_tables WHERE mirror = m.name AND source_table = $2)
FROM sluice.mirrors m WHERE m.name = $1 FOR UPDATE`, mirror, table).Scan(&n, &has)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("remove %s from mirror %q: %w", table, mirror, ErrMirrorNotFound)
		case err != nil:
			return fmt.Errorf("remove %s from mirror %q: %w", table, mirror, err)
		case !has:
			return fmt.Errorf("remove %s from mirror %q: %w", table, mirror, ErrTableNotInMirror)
		case n <= 1:
			return fmt.Errorf("remove %s from mirror %q: %w", table, mirror, ErrLastTable)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM sluice.mirror_tables WHERE mirror = $1 AND source_table = $2`, mirror, table); err != nil {
			return fmt.Errorf("remove %s from mirror %q: %w", table, mirror, err)
		}
		msg := "dropped " + table
		if note != "" {
			msg += ": " + note
		}
		return addEvent(ctx, tx, mirror, "tables", msg)
	})
}
