package executor

import (
	"context"
	"time"

	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/executor/replication"
)

// The lag history sampler keeps sluice.mirror_lag_history (status view
// mirror_lag_history): every LagHistoryEvery a lag_sample River job, which
// one node of the cluster runs (replication/periodic_jobs.go,
// docs/cluster.md#where-periodic-work-runs), stores one row per mirror
// with the lag the mirrors view shows then (lag_bytes, measured by the
// slot monitor; lag_seconds, recorded with each applied batch) and the
// rows applied per second since the mirror's previous sample, and deletes
// rows older than LagHistoryRetention, and the periodic jobs finished long
// enough ago. The catalog's clock.
//
// The rate is computed against the mirror's last sample in the catalog,
// whichever node took it: each sample keeps the mirror's rows_synced,
// which the catalog counts whichever node applied the rows, and its time
// on the catalog's clock. A gap (River electing a new leader after one
// died, up to about 20 s) gives a rate over the gap, an average; a last
// sample older than both lagRateWindow periods and a minute (the cluster
// was down) gives no rate (NULL).

// Defaults of Config.LagHistoryRetention and Config.LagHistoryEvery.
const (
	DefaultLagHistoryRetention = 7 * 24 * time.Hour
	DefaultLagHistoryEvery     = 10 * time.Second
)

// Observer receives, for metrics, what the flows measure
// (replication.Observer); what the slot monitor measures is in the
// catalog, which every node's metrics read. Safe for concurrent use; its
// methods must not block.
type Observer = replication.Observer

// nopObserver is the Observer of an executor configured without one.
type nopObserver struct{}

func (nopObserver) FetchedBytes(string, int64)              {}
func (nopObserver) BatchApplied(string, int, time.Duration) {}
func (nopObserver) Error(string, string)                    {}

// lagRateWindow is how many periods back a mirror's last sample may be
// for the next one to have a rate, if that is more than a minute.
const lagRateWindow = 10

// sampleLagOnce stores one sample of every mirror, expires the history
// older than the retention, and deletes the periodic jobs finished long
// enough ago: one lag_sample job.
func (e *Executor) sampleLagOnce(ctx context.Context) error {
	store := e.cfg.Store
	at, lags, err := store.MirrorLags(ctx)
	if err != nil {
		return err
	}
	prev, err := store.LastLagSamples(ctx, at.Add(-max(lagRateWindow*e.cfg.LagHistoryEvery, time.Minute)))
	if err != nil {
		return err
	}
	samples := make([]catalog.LagSample, 0, len(lags))
	for _, l := range lags {
		rows := l.RowsSynced
		samples = append(samples, catalog.LagSample{Mirror: l.Mirror, LagBytes: l.LagBytes, LagSeconds: l.LagSeconds,
			RowsPerSecond: rowsPerSecond(prev[l.Mirror], at, rows), RowsSynced: &rows})
	}
	if err := store.AddLagSamples(ctx, at, samples, e.cfg.LagHistoryRetention); err != nil {
		return err
	}
	_, err = store.DeleteFinishedJobs(ctx, replication.PeriodicKinds, replication.PeriodicKeepCompleted, replication.PeriodicKeepFailed)
	return err
}

// rowsPerSecond is the rate of rows applied from the previous sample p to
// rows at at; nil without a previous sample, or when rows_synced went back
// (a RESYNC MIRROR starts it over), so the rate is not known.
func rowsPerSecond(p catalog.LagMark, at time.Time, rows int64) *float64 {
	secs := at.Sub(p.At).Seconds()
	if p.At.IsZero() || secs <= 0 || rows < p.Rows {
		return nil
	}
	r := float64(rows-p.Rows) / secs
	return &r
}
