package executor

import (
	"context"
	"time"

	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/executor/replication"
)

// The lag history sampler keeps sluice.mirror_lag_history (status view
// mirror_lag_history): every LagHistoryEvery it stores one row per mirror
// with the lag the mirrors view shows then (lag_bytes, measured by the
// slot monitor; lag_seconds, recorded with each applied batch) and the
// rows applied per second since its previous sample of the mirror, and
// deletes rows older than LagHistoryRetention. One goroutine, the
// catalog's clock. In a cluster, each mirror is sampled by the node that
// does its periodic work, and the leader expires (owner.go).
//
// The rate is computed against this node's own previous sample of the
// mirror, kept only while the mirror is sampled here at every successful
// round: a mirror that moved here from another node, or back after a
// while, has no rate in its first sample here (NULL, unknown) rather than
// a rate against a sample another node took, or one this node took
// before another node's turn.

// Defaults of Config.LagHistoryRetention and Config.LagHistoryEvery.
const (
	DefaultLagHistoryRetention = 7 * 24 * time.Hour
	DefaultLagHistoryEvery     = 10 * time.Second
)

// Observer receives, for metrics, what the flows measure
// (replication.Observer) and what the slot monitor learns that the
// catalog does not keep. Safe for concurrent use; its methods must not
// block.
type Observer interface {
	replication.Observer
	// StreamActive reports whether a reader streams from the mirror's
	// slot on its source now (Postgres: pg_replication_slots.active;
	// MySQL: a replica with the mirror's server id is connected); nil
	// when it is not known (no slot, a source that cannot tell, or one
	// that cannot be reached).
	StreamActive(mirror string, active *bool)
}

// nopObserver is the Observer of an executor configured without one.
type nopObserver struct{}

func (nopObserver) FetchedBytes(string, int64)              {}
func (nopObserver) BatchApplied(string, int, time.Duration) {}
func (nopObserver) Error(string, string)                    {}
func (nopObserver) StreamActive(string, *bool)              {}

// lagMark is what a sample needs of the sampler's previous one of a
// mirror: its time and the mirror's rows_synced then.
type lagMark struct {
	at   time.Time
	rows int64
}

// sampleLag samples every LagHistoryEvery until ctx ends.
func (e *Executor) sampleLag(ctx context.Context) {
	t := time.NewTicker(e.cfg.LagHistoryEvery)
	defer t.Stop()
	prev := make(map[string]lagMark)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := e.sampleLagOnce(ctx, prev); err != nil && ctx.Err() == nil {
			e.cfg.Logger.DebugContext(ctx, "lag history: sample", "err", err)
		}
	}
}

// sampleLagOnce stores one sample of every mirror; prev holds each
// mirror's previous sample and is updated (mirrors gone are forgotten).
func (e *Executor) sampleLagOnce(ctx context.Context, prev map[string]lagMark) error {
	at, lags, err := e.cfg.Store.MirrorLags(ctx)
	if err != nil {
		return err
	}
	own, err := e.readOwnership(ctx)
	if err != nil {
		return err
	}
	samples := make([]catalog.LagSample, 0, len(lags))
	seen := make(map[string]bool, len(lags))
	for _, l := range lags {
		// The owner as MirrorLags read it, with the sample's figures.
		if !own.mineAs(l.Owner) {
			continue
		}
		seen[l.Mirror] = true
		samples = append(samples, catalog.LagSample{Mirror: l.Mirror, LagBytes: l.LagBytes, LagSeconds: l.LagSeconds,
			RowsPerSecond: rowsPerSecond(prev[l.Mirror], at, l.RowsSynced)})
		prev[l.Mirror] = lagMark{at: at, rows: l.RowsSynced}
	}
	for name := range prev {
		if !seen[name] {
			delete(prev, name) // gone, or sampled elsewhere: no rate against it later
		}
	}
	var retention time.Duration
	if own.leader {
		retention = e.cfg.LagHistoryRetention
	}
	return e.cfg.Store.AddLagSamples(ctx, at, samples, retention)
}

// rowsPerSecond is the rate of rows applied from the previous sample p to
// rows at at; nil without a previous sample, or when rows_synced went back
// (a RESYNC MIRROR starts it over), so the rate is not known. rows_synced
// is the catalog's, whichever node applied them, so the rate is right over
// any interval this node watched.
func rowsPerSecond(p lagMark, at time.Time, rows int64) *float64 {
	secs := at.Sub(p.at).Seconds()
	if p.at.IsZero() || secs <= 0 || rows < p.rows {
		return nil
	}
	r := float64(rows-p.rows) / secs
	return &r
}
