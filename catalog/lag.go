package catalog

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// MirrorLag is one mirror's lag figures as the status view shows them
// (sluice_status.mirrors), read for the lag history. Nil is unknown
// (NULL).
type MirrorLag struct {
	Mirror     string
	LagBytes   *int64
	LagSeconds *float64
	// RowsSynced is the mirror's rows_synced: row changes applied since
	// it was created or last resynced as a whole.
	RowsSynced int64
}

// MirrorLags reads every mirror's lag figures, and the catalog's time of
// the reading (the clock the history's "at" is on), in one statement.
func (s *Store) MirrorLags(ctx context.Context) (time.Time, []MirrorLag, error) {
	// The time comes in a row of its own when there is no mirror.
	rows, err := s.pool.Query(ctx, `
SELECT t.at, m.name, m.lag_bytes, m.lag_seconds, m.rows_synced
FROM (SELECT clock_timestamp() AS at) t LEFT JOIN sluice_status.mirrors m ON true ORDER BY m.name`)
	if err != nil {
		return time.Time{}, nil, fmt.Errorf("read mirrors' lag: %w", err)
	}
	var at time.Time
	var out []MirrorLag
	var name *string
	var rowsSynced *int64
	var m MirrorLag
	_, err = pgx.ForEachRow(rows, []any{&at, &name, &m.LagBytes, &m.LagSeconds, &rowsSynced}, func() error {
		if name != nil {
			m.Mirror, m.RowsSynced = *name, *rowsSynced
			out = append(out, m)
		}
		m = MirrorLag{}
		return nil
	})
	if err != nil {
		return time.Time{}, nil, fmt.Errorf("read mirrors' lag: %w", err)
	}
	return at, out, nil
}

// LagSample is one row of sluice.mirror_lag_history. Nil is unknown (NULL).
type LagSample struct {
	Mirror        string
	LagBytes      *int64
	LagSeconds    *float64
	RowsPerSecond *float64
	// RowsSynced is the mirror's rows_synced at the sample, for the next
	// sample's rate (LastLagSamples); nil in samples an older Sluice
	// stored.
	RowsSynced *int64
}

// LagMark is what the next sample of a mirror needs of its last one: its
// time and the mirror's rows_synced then.
type LagMark struct {
	At   time.Time
	Rows int64
}

// LastLagSamples returns, by mirror, the latest sample taken after since
// that recorded rows_synced, whichever node stored it: the lag history's
// sampler runs as a job on any node (docs/cluster.md), so a sample's rate
// is computed against the catalog's last sample rather than one a node
// remembers.
func (s *Store) LastLagSamples(ctx context.Context, since time.Time) (map[string]LagMark, error) {
	rows, err := s.pool.Query(ctx, `
SELECT DISTINCT ON (mirror) mirror, at, rows_synced FROM sluice.mirror_lag_history
WHERE at > $1 AND rows_synced IS NOT NULL ORDER BY mirror, at DESC`, since)
	if err != nil {
		return nil, fmt.Errorf("read the last lag samples: %w", err)
	}
	out := make(map[string]LagMark)
	var name string
	var m LagMark
	if _, err := pgx.ForEachRow(rows, []any{&name, &m.At, &m.Rows}, func() error {
		out[name] = m
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read the last lag samples: %w", err)
	}
	return out, nil
}

// AddLagSamples stores samples taken at at, and, when retention > 0,
// deletes every mirror's samples older than at minus retention, in one
// transaction (the lag_sample job of each period does both: see
// docs/cluster.md). A
// sample of a mirror dropped meanwhile is not stored; one already stored
// for the same mirror and time is kept. Idempotent. at must be set
// (MirrorLags' time).
//
// The mirror's row is locked (FOR KEY SHARE) while its sample is stored:
// a DROP MIRROR in flight (DeleteMirror deletes the mirror's row, then its
// history) either is waited for, and then the mirror is gone and no sample
// is stored, or waits for the sample's commit and then deletes it. Without
// the lock a sample whose statement began before the drop committed was
// stored after the drop had deleted the history, and stayed.
func (s *Store) AddLagSamples(ctx context.Context, at time.Time, samples []LagSample, retention time.Duration) error {
	if at.IsZero() {
		return fmt.Errorf("add lag samples: no time given")
	}
	names := make([]string, len(samples))
	bytes := make([]*int64, len(samples))
	secs := make([]*float64, len(samples))
	rates := make([]*float64, len(samples))
	synced := make([]*int64, len(samples))
	for i, sm := range samples {
		names[i], bytes[i], secs[i], rates[i], synced[i] = sm.Mirror, sm.LagBytes, sm.LagSeconds, sm.RowsPerSecond, sm.RowsSynced
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `
INSERT INTO sluice.mirror_lag_history (mirror, at, lag_bytes, lag_seconds, rows_per_second, rows_synced)
SELECT u.mirror, $1, u.lag_bytes, u.lag_seconds, u.rows_per_second, u.rows_synced
FROM unnest($2::text[], $3::bigint[], $4::double precision[], $5::double precision[], $6::bigint[])
     AS u(mirror, lag_bytes, lag_seconds, rows_per_second, rows_synced)
WHERE EXISTS (SELECT 1 FROM sluice.mirrors m WHERE m.name = u.mirror FOR KEY SHARE)
ON CONFLICT (mirror, at) DO NOTHING`, at, names, bytes, secs, rates, synced)
		if err != nil {
			return fmt.Errorf("add lag samples: %w", err)
		}
		if retention <= 0 {
			return nil
		}
		if _, err := tx.Exec(ctx, `DELETE FROM sluice.mirror_lag_history WHERE at < $1`, at.Add(-retention)); err != nil {
			return fmt.Errorf("expire lag history: %w", err)
		}
		return nil
	})
}
