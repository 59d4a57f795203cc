package executor

import (
	"context"
	"time"
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
