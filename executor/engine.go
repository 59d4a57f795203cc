package executor

import (
	"context"
	"time"
)

// Start resumes every mirror whose operator wants it running (the
// replication engine, executor/replication), and starts the slot monitor
// (monitor.go). Both stop when ctx ends (Close waits for them). Call it
// once.
func (e *Executor) Start(ctx context.Context) error {
	mctx, stop := context.WithCancel(ctx)
	e.monStop, e.monDone = stop, make(chan struct{})
	go func() {
		defer close(e.monDone)
		e.monitor(mctx)
	}()
	e.checkCatalogCapacity(ctx)
	return e.engine.Start(ctx)
}

// Close stops every mirror's flow and the monitor and waits for them, and
// closes the idle catalog connections of sessions.
func (e *Executor) Close() {
	e.engine.Close()
	if e.monDone != nil {
		e.monStop()
		<-e.monDone
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e.pool.close(ctx)
}
