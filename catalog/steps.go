package catalog

import (
	"context"
	"fmt"
)

// Table steps (mirror_tables.step): what the flow is doing for a table now.
// step_started_at says since when. The vocabulary is small and documented
// in docs/sql.md; every step but streaming and done ends on its own.
const (
	// StepWaiting: nothing runs for the table; it waits for its turn (the
	// mirror's setup, other tables' copies or index builds, a requested
	// resync that has not started).
	StepWaiting = "waiting"
	// StepCopying: rows are copied (rows_copied moves), for the initial
	// load or a resync; a truncate resync empties the table first.
	StepCopying = "copying"
	// StepBuildingIndexes: after the copy, the primary key, the indexes
	// (and, for a truncate resync, the foreign keys dropped for the copy)
	// are built and the table analyzed.
	StepBuildingIndexes = "building indexes"
	// StepAddingForeignKeys: replicate_foreign_keys adds the source's
	// foreign keys after the initial load.
	StepAddingForeignKeys = "adding foreign keys"
	// StepCatchingUp: a resynced table receives the changes committed
	// since its copy's snapshot.
	StepCatchingUp = "applying changes since snapshot"
	// StepSwapping: the resynced copy replaces the live table.
	StepSwapping = "swapping"
	// StepValidatingForeignKeys: foreign keys a swap re-added NOT VALID are
	// validated (readers and writers are not blocked).
	StepValidatingForeignKeys = "validating foreign keys"
	// StepStreaming: the table receives changes as they commit (the CDC
	// phase).
	StepStreaming = "streaming"
	// StepDone: an initial_copy_only mirror finished the table.
	StepDone = "done"
)

// SetTableStep records that the flow is at step for each of tables (source
// table names) of mirror. step_started_at moves to now only for a table
// whose step changes, so it says how long the table has been at it.
// Idempotent.
func (s *Store) SetTableStep(ctx context.Context, mirror, step string, tables ...string) error {
	if len(tables) == 0 {
		return nil
	}
	_, err := s.pool.Exec(ctx, `
UPDATE sluice.mirror_tables
SET step = $2, step_started_at = CASE WHEN step = $2 THEN step_started_at ELSE now() END
WHERE mirror = $1 AND source_table = ANY($3)`, mirror, step, tables)
	if err != nil {
		return fmt.Errorf("set step of %d table(s) in mirror %q to %s: %w", len(tables), mirror, step, err)
	}
	return nil
}
