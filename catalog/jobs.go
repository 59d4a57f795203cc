package catalog

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// The catalog's side of the cluster's jobs (River's sluice.river_job, see
// river.go): what a load's owner reads of its jobs, and the rescue of jobs
// whose node died. River itself inserts, fetches and finishes jobs.

// JobState is one job of a load as its owner watches it.
type JobState struct {
	ID        int64
	Table     string // the source table
	Partition int
	State     string // River's state: available, running, completed, retryable, ...
	Node      string // the node of its last attempt ("" before one)
	Error     string // its last attempt's error ("" if none failed)
	Rows      int64  // rows loaded, recorded by a completed job (its output)
}

// LoadJobs returns the jobs of kind for mirror's load load (their args'
// mirror and load), in no particular order.
func (s *Store) LoadJobs(ctx context.Context, kind, mirror, load string) ([]JobState, error) {
	rows, err := s.pool.Query(ctx, `
SELECT id, args->>'table', (args->>'partition')::int, state::text,
       coalesce(attempted_by[cardinality(attempted_by)], ''),
       coalesce(errors[cardinality(errors)]->>'error', ''),
       coalesce((metadata->'output'->>'rows')::bigint, 0)
FROM sluice.river_job
WHERE kind = $1 AND args @> jsonb_build_object('mirror', $2::text, 'load', $3::text)`, kind, mirror, load)
	if err != nil {
		return nil, fmt.Errorf("read the jobs of mirror %q's load: %w", mirror, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (JobState, error) {
		var j JobState
		err := r.Scan(&j.ID, &j.Table, &j.Partition, &j.State, &j.Node, &j.Error, &j.Rows)
		return j, err
	})
	if err != nil {
		return nil, fmt.Errorf("read the jobs of mirror %q's load: %w", mirror, err)
	}
	return out, nil
}

// StaleLoadJobs returns the ids of mirror's jobs of kind that may still run
// (not completed, cancelled or discarded) and belong to a load other than
// load: an earlier load, whose owner ended or died, for the new owner to
// cancel.
func (s *Store) StaleLoadJobs(ctx context.Context, kind, mirror, load string) ([]int64, error) {
	rows, err := s.pool.Query(ctx, `
SELECT id FROM sluice.river_job
WHERE kind = $1 AND args->>'mirror' = $2 AND args->>'load' IS DISTINCT FROM $3
  AND state NOT IN ('completed', 'cancelled', 'discarded')`, kind, mirror, load)
	if err != nil {
		return nil, fmt.Errorf("read mirror %q's earlier jobs: %w", mirror, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("read mirror %q's earlier jobs: %w", mirror, err)
	}
	return ids, nil
}

// RescueJobs makes the running jobs whose node is gone (silent for longer
// than its node timeout, or stopped) or is node (this node's earlier run,
// over since this one started; "" for none) available again at once, for
// any node to redo, recording why as the attempt's error; those whose
// cancellation was asked for (River's JobCancel of a running job: their
// load ended) are cancelled instead. It returns how
// many it rescued. River's own rescuer cannot tell a dead node's job from
// a slow one, so it waits much longer (RescueStuckJobsAfter).
func (s *Store) RescueJobs(ctx context.Context, node string) (int64, error) {
	tag, err := s.pool.Exec(ctx, `
UPDATE sluice.river_job j
SET state = CASE WHEN j.metadata ? 'cancel_attempted_at' THEN 'cancelled' ELSE 'available' END::sluice.river_job_state,
    finalized_at = CASE WHEN j.metadata ? 'cancel_attempted_at' THEN now() END,
    scheduled_at = now(),
    errors = array_append(errors, jsonb_build_object('at', now(), 'attempt', j.attempt,
        'error', format('node %s ended while running the job: redone by another attempt',
                        j.attempted_by[cardinality(j.attempted_by)]),
        'trace', ''))
WHERE j.state = 'running'
  AND (j.attempted_by[cardinality(j.attempted_by)] = $1
       OR EXISTS (SELECT FROM sluice.nodes n WHERE n.id = j.attempted_by[cardinality(j.attempted_by)]
                    AND (n.stopped_at IS NOT NULL OR n.heartbeat_at < now() - n.node_timeout)))`, node)
	if err != nil {
		return 0, fmt.Errorf("rescue the jobs of gone nodes: %w", err)
	}
	return tag.RowsAffected(), nil
}

// DeleteFinishedJobs deletes the jobs of kinds completed more than
// completed ago, and those that ended otherwise (failed for good, or
// cancelled) more than failed ago, by the catalog's clock, and returns how
// many it deleted. River's own cleaner keeps every kind's completed jobs
// for a day, too long for a job every few seconds (the periodic samplers:
// docs/cluster.md#where-periodic-work-runs).
func (s *Store) DeleteFinishedJobs(ctx context.Context, kinds []string, completed, failed time.Duration) (int64, error) {
	tag, err := s.pool.Exec(ctx, `
DELETE FROM sluice.river_job
WHERE kind = ANY($1)
  AND (state = 'completed' AND finalized_at < now() - $2::interval
       OR state IN ('discarded', 'cancelled') AND finalized_at < now() - $3::interval)`, kinds, completed, failed)
	if err != nil {
		return 0, fmt.Errorf("delete finished jobs: %w", err)
	}
	return tag.RowsAffected(), nil
}
