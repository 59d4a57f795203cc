package catalog

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// StartMirrorResync puts the mirror back to SETUP for a full-mirror resync:
// it marks the resync, clears the mirror's statistics and every table's
// progress and counts (settings are kept), puts every table at
// StepWaiting, and records an event, in one
// transaction. The caller stops the mirror's runner first and starts it
// after. Not idempotent: it restarts a resync under way from its setup.
func (s *Store) StartMirrorResync(ctx context.Context, name string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
UPDATE sluice.mirrors SET phase = $2, resync = $3, error = NULL, error_count = 0, consistent_lsn = NULL,
       consistent_position = NULL, last_synced_lsn = NULL, last_synced_position = NULL, last_synced_shown = NULL, last_synced_at = NULL, last_source_commit_at = NULL,
       rows_synced = 0, updated_at = now()
WHERE name = $1`, name, PhaseSetup, ResyncMirrorKind)
		if err != nil {
			return fmt.Errorf("start resync of mirror %q: %w", name, err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("start resync of mirror %q: %w", name, ErrMirrorNotFound)
		}
		_, err = tx.Exec(ctx, `
UPDATE sluice.mirror_tables SET status = 'pending', partitions = NULL, partitions_total = 0, partitions_done = 0,
       rows_copied = 0, rows_estimated = 0, inserts = 0, updates = 0, deletes = 0,
       resync_status = $2, resync_strategy = 'swap', resync_error = NULL, resync_started_at = now(),
       resync_finished_at = NULL, step = $3, step_started_at = now()
WHERE mirror = $1`, name, ResyncPending, StepWaiting)
		if err != nil {
			return fmt.Errorf("start resync of mirror %q: %w", name, err)
		}
		return addEvent(ctx, tx, name, "resync", "resync of the whole mirror started")
	})
}

// FinishMirrorResync ends a full-mirror resync whose tables were swapped
// in: the mirror moves to phase (PhaseCDC, or COMPLETED for an initial copy
// only) and every table is done. Idempotent.
func (s *Store) FinishMirrorResync(ctx context.Context, name, phase string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `
UPDATE sluice.mirrors SET phase = $2, resync = NULL, error = NULL, error_count = 0, updated_at = now()
WHERE name = $1`, name, phase)
		if err != nil {
			return fmt.Errorf("finish resync of mirror %q: %w", name, err)
		}
		_, err = tx.Exec(ctx, `
UPDATE sluice.mirror_tables SET status = 'running', resync_status = $2, resync_error = NULL, resync_finished_at = now()
WHERE mirror = $1`, name, ResyncDone)
		if err != nil {
			return fmt.Errorf("finish resync of mirror %q: %w", name, err)
		}
		return addEvent(ctx, tx, name, "resync", "resync of the whole mirror done: tables swapped in, streaming from the new slot")
	})
}

// StartTableResync asks for a resync of one table of the mirror with the
// strategy (swap or truncate): the table's resync status becomes pending,
// its copy progress is cleared and its step is StepWaiting, with an event. A non-nil orderBy
// becomes the table's sorting key (ClickHouse). It fails wrapping
// ErrResyncInProgress when the table's resync is pending or in progress,
// and wrapping ErrMirrorNotFound when the mirror has no such table.
func (s *Store) StartTableResync(ctx context.Context, mirror, table, strategy string, orderBy []string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var status string
		err := tx.QueryRow(ctx, `
SELECT coalesce(resync_status, '') FROM sluice.mirror_tables WHERE mirror = $1 AND source_table = $2 FOR UPDATE`,
			mirror, table).Scan(&status)
		if err == pgx.ErrNoRows {
			return fmt.Errorf("resync %s of mirror %q: %w", table, mirror, ErrMirrorNotFound)
		}
		if err != nil {
			return fmt.Errorf("resync %s of mirror %q: %w", table, mirror, err)
		}
		if status == ResyncPending || status == ResyncInProgress {
			return fmt.Errorf("resync %s of mirror %q: %w", table, mirror, ErrResyncInProgress)
		}
		_, err = tx.Exec(ctx, `
UPDATE sluice.mirror_tables SET resync_status = $3, resync_strategy = $4, resync_error = NULL,
       resync_started_at = now(), resync_finished_at = NULL, partitions = NULL, partitions_total = 0,
       partitions_done = 0, rows_copied = 0, rows_estimated = 0, order_by = coalesce($5, order_by),
       step = $6, step_started_at = now()
WHERE mirror = $1 AND source_table = $2`, mirror, table, ResyncPending, strategy, orderBy, StepWaiting)
		if err != nil {
			return fmt.Errorf("resync %s of mirror %q: %w", table, mirror, err)
		}
		return addEvent(ctx, tx, mirror, "resync", fmt.Sprintf("resync of %s (%s) requested", table, strategy))
	})
}

// SetTableResync records the progress of a table resync: status is one of
// the Resync* states; errText is the reason of a failure ("" clears it).
// In progress the table's status is "resync"; done, "running". A change of
// status is recorded as an event. Idempotent.
func (s *Store) SetTableResync(ctx context.Context, mirror, table, status, errText string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var old string
		err := tx.QueryRow(ctx, `
SELECT coalesce(resync_status, '') FROM sluice.mirror_tables WHERE mirror = $1 AND source_table = $2 FOR UPDATE`,
			mirror, table).Scan(&old)
		if err != nil {
			return fmt.Errorf("set resync status of %s in mirror %q: %w", table, mirror, err)
		}
		_, err = tx.Exec(ctx, `
UPDATE sluice.mirror_tables SET resync_status = $3, resync_error = NULLIF($4, ''),
       status = CASE $3 WHEN 'done' THEN 'running' WHEN 'in_progress' THEN 'resync' ELSE status END,
       resync_finished_at = CASE WHEN $3 = 'done' THEN now() END
WHERE mirror = $1 AND source_table = $2`, mirror, table, status, errText)
		if err != nil {
			return fmt.Errorf("set resync status of %s in mirror %q: %w", table, mirror, err)
		}
		if old == status && errText == "" {
			return nil
		}
		msg := fmt.Sprintf("resync of %s: %s", table, status)
		if errText != "" {
			msg += ": " + errText
		}
		return addEvent(ctx, tx, mirror, "resync", msg)
	})
}
