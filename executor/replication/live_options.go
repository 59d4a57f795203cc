package replication

import (
	"context"
	"sync/atomic"
	"time"
)

// How a change of a mirror's options (ALTER MIRROR ... SET / RESET)
// reaches its running flow.
//
// The options live in the catalog only (sluice.mirrors.options); ALTER
// MIRROR stores them there, with an event, then calls Engine.Wake. Nothing
// is sent to the flow but the wake-up: the catalog stays the one place a
// flow reads its settings from, so a change made while Sluice is down, or
// while the flow is between attempts, is picked up the same way.
//
//   - Every attempt of a flow (a step of the runner, engine.go) parses the
//     options afresh from the mirror it loads, so whatever an attempt reads
//     at its start (the load options: snapshot_num_rows_per_partition,
//     snapshot_max_parallel_workers, snapshot_num_tables_in_parallel,
//     snapshot_num_partitions_override; resync_strategy's default) applies
//     from the next attempt on. Loads that start later (RESYNC TABLE,
//     RESYNC MIRROR, an initial load retried or not yet planned) start in a
//     new attempt, so they use the new values; a table already planned keeps
//     its stored partitions.
//   - A CDC attempt can run for days, so the batcher follows the options
//     that shape its batches (max_batch_size, sync_interval) while it runs:
//     it reads them from the catalog when woken (at once after ALTER
//     MIRROR) and at each poll of the catalog (pollEvery), between
//     batches' events, on its own goroutine. A batch already collecting
//     takes the new limits at once: it ends at its next transaction's
//     commit if it has reached the new max_batch_size, or once it is older
//     than the new sync_interval.
//
// The flow's Options (flow.opt) are never changed during an attempt:
// copies running on other goroutines read them.

// useOptions sets the batch limits the batcher follows from o: the most
// rows per batch, the longest a change waits, and the chunks rows are
// handed to the destination in (addChunk).
func (b *batcher) useOptions(o Options) {
	b.maxBatch = o.MaxBatchSize
	b.maxWait = time.Duration(o.SyncInterval) * time.Second
	b.chunk = addChunk(o.MaxBatchSize)
	b.eager = min(eagerAdd, b.chunk)
}

// pollOptions reads the mirror's stored options and, when its batch limits
// changed, follows them (see useOptions). A limit not stored (a mirror of a
// unit test's fake catalog) keeps its value.
func (b *batcher) pollOptions(ctx context.Context) error {
	m, err := b.store.GetMirror(ctx, b.f.m.Name)
	if err != nil {
		return err
	}
	o := ParseOptions(m.Options)
	if _, ok := m.Options["max_batch_size"]; !ok || o.MaxBatchSize < 1 {
		o.MaxBatchSize = b.maxBatch
	}
	if _, ok := m.Options["sync_interval"]; !ok || o.SyncInterval < 0 {
		o.SyncInterval = int(b.maxWait / time.Second)
	}
	if o.MaxBatchSize == b.maxBatch && time.Duration(o.SyncInterval)*time.Second == b.maxWait {
		return nil
	}
	b.f.log.InfoContext(ctx, "mirror options changed: batches follow them from now on",
		"max_batch_size", o.MaxBatchSize, "sync_interval", o.SyncInterval)
	b.useOptions(o)
	return nil
}

// batchHook, when set, is called after each batch is applied and recorded,
// with the mirror's name, the batch's rows and the max_batch_size it was
// made under: tests watch batch sizes with it. Nil in production.
var batchHook atomic.Pointer[func(mirror string, rows, maxBatch int)]

// SetBatchHook makes the flows call fn after each batch they apply (see
// batchHook) until restore is called. For tests.
func SetBatchHook(fn func(mirror string, rows, maxBatch int)) (restore func()) {
	old := batchHook.Swap(&fn)
	return func() { batchHook.Store(old) }
}
