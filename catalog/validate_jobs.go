package catalog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// The catalog's side of VALIDATE MIRROR as a River job
// (executor/replication/validate_jobs.go): a validate job waits in the
// queue of the node holding its mirror's stream lease; the nodes' rescue
// loop moves a waiting one whose mirror is now held elsewhere (its node
// died, or handed the stream over), and the session waits for its end.

// QueuedJob is a job waiting to run, as the routing of validate jobs
// reads it.
type QueuedJob struct {
	ID    int64
	Queue string
	// Holder is the node holding the live stream lease of the job's
	// mirror ("": none does).
	Holder string
	// Expired: the job's args' until has passed.
	Expired bool
}

// QueuedJobs returns the jobs of kind waiting to run (available,
// scheduled, retryable), with the holder of their args' mirror's live
// lease and whether their args' until has passed.
func (s *Store) QueuedJobs(ctx context.Context, kind string) ([]QueuedJob, error) {
	rows, err := s.pool.Query(ctx, `
SELECT j.id, j.queue, coalesce(CASE WHEN m.lease_expires_at > now() THEN m.node END, ''),
       coalesce((j.args->>'until')::timestamptz < now(), false)
FROM sluice.river_job j LEFT JOIN sluice.mirrors m ON m.name = j.args->>'mirror'
WHERE j.kind = $1 AND j.state IN ('available', 'scheduled', 'retryable')`, kind)
	if err != nil {
		return nil, fmt.Errorf("read the queued %s jobs: %w", kind, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (QueuedJob, error) {
		var j QueuedJob
		err := r.Scan(&j.ID, &j.Queue, &j.Holder, &j.Expired)
		return j, err
	})
	if err != nil {
		return nil, fmt.Errorf("read the queued %s jobs: %w", kind, err)
	}
	return out, nil
}

// MoveJob moves a job still waiting to run to queue, to run now; false
// when it no longer waits (a node took it meanwhile).
func (s *Store) MoveJob(ctx context.Context, id int64, queue string) (bool, error) {
	tag, err := s.pool.Exec(ctx, `
UPDATE sluice.river_job SET queue = $2, state = 'available', scheduled_at = now()
WHERE id = $1 AND state IN ('available', 'scheduled', 'retryable')`, id, queue)
	if err != nil {
		return false, fmt.Errorf("move job %d to queue %s: %w", id, queue, err)
	}
	return tag.RowsAffected() == 1, nil
}

// JobEnd is a job as its waiter reads it.
type JobEnd struct {
	State string // River's state
	Queue string
	Node  string // the node of its last attempt ("" before one)
	// Error is its last attempt's error ("" if none failed).
	Error string
	// Output is what it recorded (River's output), nil if nothing.
	Output []byte
	// Started: an attempt started.
	Started time.Time
}

// GetJob reads job id; ErrJobNotFound when it is gone.
func (s *Store) GetJob(ctx context.Context, id int64) (JobEnd, error) {
	var j JobEnd
	var started *time.Time
	err := s.pool.QueryRow(ctx, `
SELECT state::text, queue, coalesce(attempted_by[cardinality(attempted_by)], ''),
       coalesce(errors[cardinality(errors)]->>'error', ''), metadata->'output', attempted_at
FROM sluice.river_job WHERE id = $1`, id).Scan(&j.State, &j.Queue, &j.Node, &j.Error, &j.Output, &started)
	if errors.Is(err, pgx.ErrNoRows) {
		return j, fmt.Errorf("job %d: %w", id, ErrJobNotFound)
	}
	if err != nil {
		return j, fmt.Errorf("read job %d: %w", id, err)
	}
	if started != nil {
		j.Started = *started
	}
	return j, nil
}

// ErrJobNotFound is GetJob's error for a job that is gone.
var ErrJobNotFound = errors.New("job not found")
