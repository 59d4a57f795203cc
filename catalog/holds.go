package catalog

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// A held table (migration 0012): one whose changes are not applied while
// the mirror's other tables stream, because it was paused (PAUSE MIRROR m
// TABLE t) or its changes failed to apply for a reason of its own. Where
// it stopped is recorded on the destination, with the data; the catalog
// shows why (status, error) and carries the statements' requests to the
// running flow (hold_request).

// Table statuses of held tables (mirror_tables.status), beside pending,
// snapshot, running and resync.
const (
	// TableStatusPaused: PAUSE MIRROR m TABLE t holds the table.
	TableStatusPaused = "paused"
	// TableStatusFailed: the table's changes failed to apply; error says
	// why.
	TableStatusFailed = "failed"
	// TableStatusRunning: the table streams.
	TableStatusRunning = "running"
)

// Requests to the running flow (mirror_tables.hold_request).
const (
	// HoldPause asks the flow to hold the table.
	HoldPause = "pause"
	// HoldResume asks the flow to bring a held table back.
	HoldResume = "resume"
)

// TableHold is a table's hold as the catalog shows it.
type TableHold struct {
	Status  string // mirror_tables.status
	Error   string // why it failed ("" when it did not)
	Request string // HoldPause, HoldResume or "" (none waiting)
}

// TableHolds returns the hold status of every table of mirror, by source
// table. Tables of a mirror that does not exist: none.
func (s *Store) TableHolds(ctx context.Context, mirror string) (map[string]TableHold, error) {
	rows, err := s.pool.Query(ctx, `
SELECT source_table, status, coalesce(error, ''), coalesce(hold_request, '')
FROM sluice.mirror_tables WHERE mirror = $1`, mirror)
	if err != nil {
		return nil, fmt.Errorf("read table holds of mirror %q: %w", mirror, err)
	}
	out := make(map[string]TableHold)
	var name string
	var h TableHold
	_, err = pgx.ForEachRow(rows, []any{&name, &h.Status, &h.Error, &h.Request}, func() error {
		out[name] = h
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read table holds of mirror %q: %w", mirror, err)
	}
	return out, nil
}

// RequestTableHold records request (HoldPause or HoldResume; "" cancels
// one) for table, replacing one not yet done, with an event. It fails wrapping
// ErrTableNotInMirror when the mirror has no such table.
func (s *Store) RequestTableHold(ctx context.Context, mirror, table, request string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE sluice.mirror_tables SET hold_request = NULLIF($3, '') WHERE mirror = $1 AND source_table = $2`,
			mirror, table, request)
		if err != nil {
			return fmt.Errorf("%s %s of mirror %q: %w", request, table, mirror, err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("%s %s of mirror %q: %w", request, table, mirror, ErrTableNotInMirror)
		}
		if request == "" {
			return addEvent(ctx, tx, mirror, "hold", fmt.Sprintf("the pause of %s requested before is cancelled", table))
		}
		return addEvent(ctx, tx, mirror, "hold", fmt.Sprintf("%s of %s requested", request, table))
	})
}

// SetTableHeld records that the flow holds table: status (TableStatusPaused
// or TableStatusFailed) with reason (for a failure), the pause request
// done, and an event. A resume requested meanwhile stays. Idempotent.
func (s *Store) SetTableHeld(ctx context.Context, mirror, table, status, reason string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `
UPDATE sluice.mirror_tables SET status = $3, error = NULLIF($4, ''),
       hold_request = CASE WHEN hold_request = 'pause' THEN NULL ELSE hold_request END
WHERE mirror = $1 AND source_table = $2`, mirror, table, status, reason)
		if err != nil {
			return fmt.Errorf("hold %s of mirror %q: %w", table, mirror, err)
		}
		msg := fmt.Sprintf("%s is %s: its changes are kept on the source until it resumes", table, status)
		if reason != "" {
			msg += "; " + reason
		}
		return addEvent(ctx, tx, mirror, "hold", msg)
	})
}

// EndTableHold records that table streams again (it catches up first):
// status running, no error, no request, with an event. Idempotent.
func (s *Store) EndTableHold(ctx context.Context, mirror, table, message string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `
UPDATE sluice.mirror_tables SET status = 'running', error = NULL, hold_request = NULL
WHERE mirror = $1 AND source_table = $2`, mirror, table)
		if err != nil {
			return fmt.Errorf("resume %s of mirror %q: %w", table, mirror, err)
		}
		return addEvent(ctx, tx, mirror, "hold", message)
	})
}
