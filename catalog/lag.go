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
	// Owner is the node holding the mirror's live stream lease; "" when
	// none does (paused, waiting, or between nodes).
	Owner string
}

// MirrorLags reads every mirror's lag figures, and the catalog's time of
// the reading (the clock the history's "at" is on), in one statement.
func (s *Store) MirrorLags(ctx context.Context) (time.Time, []MirrorLag, error) {
	// The time comes in a row of its own when there is no mirror.
	rows, err := s.pool.Query(ctx, `
SELECT t.at, m.name, m.lag_bytes, m.lag_seconds, m.rows_synced,
       CASE WHEN s.lease_expires_at > now() THEN s.node END
FROM (SELECT clock_timestamp() AS at) t LEFT JOIN sluice_status.mirrors m ON true
LEFT JOIN sluice.mirrors s ON s.name = m.name ORDER BY m.name`)
	if err != nil {
		return time.Time{}, nil, fmt.Errorf("read mirrors' lag: %w", err)
	}
	var at time.Time
	var out []MirrorLag
	var name *string
	var rowsSynced *int64
	var owner *string
	var m MirrorLag
	_, err = pgx.ForEachRow(rows, []any{&at, &name, &m.LagBytes, &m.LagSeconds, &rowsSynced, &owner}, func() error {
		if name != nil {
			m.Mirror, m.RowsSynced = *name, *rowsSynced
			if owner != nil {
				m.Owner = *owner
			}
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
}

// AddLagSamples stores samples taken at at, and, when retention > 0,
// deletes every mirror's samples older than at minus retention, in one
// transaction (one node of a cluster expires: see docs/cluster.md). A
// sample of a mirror dropped meanwhile is not stored; one already stored
// for the same mirror and time is kept. Idempotent. at must be set
// (MirrorLags' time).
func (s *Store) AddLagSamples(ctx context.Context, at time.Time, samples []LagSample, retention time.Duration) error {
	if at.IsZero() {
		return fmt.Errorf("add lag samples: no time given")
	}
	names := make([]string, len(samples))
	bytes := make([]*int64, len(samples))
	secs := make([]*float64, len(samples))
	rates := make([]*float64, len(samples))
	for i, sm := range samples {
		names[i], bytes[i], secs[i], rates[i] = sm.Mirror, sm.LagBytes, sm.LagSeconds, sm.RowsPerSecond
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `
INSERT INTO sluice.mirror_lag_history (mirror, at, lag_bytes, lag_seconds, rows_per_second)
SELECT u.mirror, $1, u.lag_bytes, u.lag_seconds, u.rows_per_second
FROM unnest($2::text[], $3::bigint[], $4::double precision[], $5::double precision[])
     AS u(mirror, lag_bytes, lag_seconds, rows_per_second)
WHERE EXISTS (SELECT 1 FROM sluice.mirrors m WHERE m.name = u.mirror)
ON CONFLICT (mirror, at) DO NOTHING`, at, names, bytes, secs, rates)
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
