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
// replication engine, executor/replication), and starts the slot monitor
// (monitor.go) and the lag history sampler (lag_history.go). They stop
// when ctx ends (Close waits for them). Call it once.
func (e *Executor) Start(ctx context.Context) error {
	mctx, stop := context.WithCancel(ctx)
	e.monStop, e.monDone, e.histDone = stop, make(chan struct{}), make(chan struct{})
	go func() {
		defer close(e.monDone)
		e.monitor(mctx)
	}()
	go func() {
		defer close(e.histDone)
		e.sampleLag(mctx)
	}()
	e.checkCatalogCapacity(ctx)
	return e.engine.Start(ctx)
}

// Close stops every mirror's flow, the monitor and the sampler and waits
// for them, and closes the idle catalog connections of sessions.
func (e *Executor) Close() {
	e.engine.Close()
	if e.monDone != nil {
		e.monStop()
		<-e.monDone
		<-e.histDone
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e.pool.close(ctx)
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
