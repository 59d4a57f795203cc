package executor

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/sluicedb/sluice/executor/replication"
	"github.com/sluicedb/sluice/sqlerr"
)

// Start resumes every mirror whose operator wants it running (the
// replication engine, executor/replication), and starts the node's River
// client, which works the cluster's jobs, the slot monitor's and the lag
// history's rounds among them (periodicWork). They stop when ctx ends
// (Close waits for them). Call it once.
func (e *Executor) Start(ctx context.Context) error {
	e.checkCatalogCapacity(ctx)
	return e.engine.Start(ctx)
}

// Close stops every mirror's flow and the node's jobs and waits for them,
// and closes the idle catalog connections of sessions.
func (e *Executor) Close() {
	e.engine.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e.pool.close(ctx)
}

// periodicWork is the cluster's periodic work, run as River periodic jobs
// on one node each period (replication/periodic_jobs.go): the slot
// monitor's round (monitor.go) and the lag history's sample
// (lag_history.go).
func (e *Executor) periodicWork() []replication.PeriodicWork {
	return []replication.PeriodicWork{
		{Kind: replication.KindSlotMonitor, Every: monitorEvery, Run: e.measure},
		{Kind: replication.KindLagSample, Every: e.cfg.LagHistoryEvery, Run: e.sampleLagOnce},
	}
}

// stopFlow stops the mirror's flow wherever it runs (replication's
// Engine.Stop); a node that holds the mirror and does not stop it is
// 55006 (object_in_use).
func (e *Executor) stopFlow(name string) error {
	err := e.engine.Stop(name)
	var still *replication.StillRunningError
	if errors.As(err, &still) {
		return sqlerr.New(pgerrcode.ObjectInUse, "%v", err).
			WithHint("The node may be overloaded or cut off from the catalog; its stream stops when its lease expires or it sees the request. Try again.")
	}
	return err
}
