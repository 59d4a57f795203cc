package replication

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/connectors"
)

const (
	// idleFlush is how long the stream may be quiet before a partial batch
	// is applied.
	idleFlush = 100 * time.Millisecond
	// heartbeatEvery is how often an idle source gets a heartbeat message,
	// so the slot advances even when the mirrored tables are quiet.
	heartbeatEvery = 10 * time.Second
	// pollEvery is how often table resync requests are polled.
	pollEvery = 2 * time.Second
)

// batchCatalog is what the batcher reads and writes in the catalog for
// every batch and poll: *catalog.Store.
type batchCatalog interface {
	// RecordSync records an applied batch (see catalog.Store.RecordSync).
	RecordSync(ctx context.Context, name string, end connectors.Position, shown string, at time.Time, rows int64, counts map[string]catalog.TableCounts) error
	// GetMirror reads a mirror (see catalog.Store.GetMirror).
	GetMirror(ctx context.Context, name string) (catalog.Mirror, error)
}

// addChunk is how many rows of a batch the batcher hands to the destination
// at a time: half a batch, within [minAddChunk, maxAddChunk].
func addChunk(maxBatch int) int {
	return min(max(maxBatch/2, minAddChunk), maxAddChunk)
}

// The batcher and the stream reader.
//
// A reader goroutine owns the stream (which, like its connection, is not
// safe for concurrent use): it decodes events and hands them over in
// chunks, and it tells the source the position the batcher acknowledges.
// The batcher groups whole source transactions into batches, each applied
// in one destination transaction that also records the batch's end. It
// does not wait for the end of a batch to start applying it: it opens the
// destination transaction and adds rows to it once a chunk of them waits
// (addChunk), or once a few wait (eagerAdd) and the reader has nothing more
// for now, so the destination works while the source is still sending, and
// chunks grow to what the destination takes in the time the stream needs
// to deliver them.
// A batch still ends, and the destination transaction commits, only at the
// end of a source transaction; a trigger (max_batch_size, sync_interval,
// an idle stream) that comes in the middle of a source transaction of which
// rows were already added waits for its end.
//
// Rows of a source transaction are added before its commit only when the
// transaction is known to commit after the applied position (its Begin
// carries where its commit record starts). The others (only possible right
// after a restart, when the source resends what the destination applied
// but was not yet acknowledged) were applied: their changes are dropped as
// they come, and their commit checks that they were.
//
// Memory stays bounded whatever the size of a source transaction: the
// batcher forgets changes once they are added to the destination
// transaction (an Applier keeps none of them either). The price is that a
// destination transaction cannot be started over from memory: when columns
// are added in the middle of a source transaction whose rows were already
// added and forgotten, the batcher rolls back and restarts the stream from
// the applied position (see addColumns).

// batcher groups whole transactions into batches.
type batcher struct {
	f       *flow
	applier connectors.Applier
	store   batchCatalog           // the catalog
	dst     connectors.Destination // for table resyncs, between the applier's transactions
	dests   []connectors.DestTable
	chunk   int // rows to add at once
	eager   int // rows to add when the reader has nothing more for now
	// maxBatch and maxWait are max_batch_size and sync_interval, followed
	// while the batcher runs (live_options.go).
	maxBatch int
	maxWait  time.Duration
	// ack is the position the reader reports to the source: acked, shared
	// (nil: none yet).
	ack atomic.Pointer[connectors.Position]

	applied connectors.Position // end of the last applied transaction
	acked   connectors.Position

	// changes holds the batch: complete source transactions, then from
	// txStart those of the transaction being received.
	changes    changeList
	txStart    int
	end        connectors.Position // end of the last complete transaction
	commitTime time.Time           // its commit time
	rows       int                 // row changes of the complete transactions
	started    time.Time           // when the batch got its first complete change
	inTx       bool                // a source transaction is being received
	txEarly    bool                // its rows may be added before its commit
	txSkipped  bool                // its changes were dropped as applied before
	open       bool                // it was sent before its commit (early.go)
	// lateOnly: the stream sends transactions at their commit only because
	// an early one was abandoned a while ago (early.go).
	lateOnly bool
	txRows   int // its row changes kept
	// added counts the changes given to the open destination transaction,
	// begun when it was opened.
	added int
	begun time.Time

	// heartbeatEvery and idleFlush, if set, replace the constants (tests).
	heartbeatEvery, idleFlush time.Duration

	// addColumnsTo, if set, adds columns the source added to d's
	// destination table and returns d's schema with them, which the
	// batcher and the applier use from then on (pgColumnAdder,
	// chColumnAdder); nil: the destination does not follow schema changes.
	addColumnsTo columnAdder

	// Table resyncs (resync_catchup.go, resync_versioned.go); noResyncs:
	// the destination can run none (pollResyncs refuses requests).
	rs        *resyncs
	vr        *versionedResyncs
	noResyncs bool
	// copies counts the table copies running (startCopies); src is the
	// flow's source, with which a copy starts on the running stream
	// (copyHere).
	copies sync.WaitGroup
	src    connectors.Source
	// beginPos is where the commit of the transaction being received
	// starts; beginVersion the same as a number, its changes' version.
	beginPos     connectors.Position
	beginVersion uint64
	// asked is a VALIDATE MIRROR waiting for the destination transaction
	// to end before it takes its snapshot, hold one waiting for the
	// stream to reach its snapshot (batcher_validate.go); nil: none.
	asked *asked
	hold  *hold
	// holdReach, if set, replaces the constant (tests).
	holdReach time.Duration
}

const (
	// readChunk is how many events the reader hands over at a time.
	readChunk = 1024
	// readAhead is how many chunks the reader may have handed over that
	// the batcher has not taken: enough to keep reading while the batcher
	// adds a chunk of rows to the destination.
	readAhead = 64
	// minAddChunk and maxAddChunk bound addChunk.
	minAddChunk = 256
	maxAddChunk = 32768
	// eagerAdd is how many rows are worth adding when the reader has
	// nothing more for now (at most a chunk).
	eagerAdd = 1024
)

// readResult is what the reader hands over: events, or nothing when the
// stream was idle for idleFlush, or the error that stopped it.
type readResult struct {
	events []connectors.Event
	err    error
}

func (b *batcher) run(ctx context.Context, stream connectors.Stream) error {
	rctx, cancel := context.WithCancel(ctx)
	results := make(chan readResult, readAhead)
	free := make(chan []connectors.Event, readAhead+2)
	done := make(chan struct{})
	go func() {
		defer close(done)
		// What the source sends is decoded here: a panic is the stream's
		// error (protect.go).
		if err := protect(func() error { b.read(rctx, stream, results, free); return nil }); err != nil {
			select {
			case results <- readResult{err: err}:
			case <-rctx.Done():
			}
		}
	}()
	defer func() {
		cancel()
		<-done // the stream is the reader's until it returns
		if b.applier.InTx() {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			_ = b.applier.Rollback(rctx) // err is the one to report
		}
		if b.hold != nil {
			b.hold.fail(errors.New("validate: the mirror's stream stopped before it reached the snapshot"))
			b.hold = nil
		}
		if b.asked != nil {
			b.asked.v.reply <- validationReply{err: errors.New("validate: the mirror's stream stopped before the validation began")}
			b.asked = nil
		}
	}()

	lastActivity := time.Now()
	lastPoll := time.Time{}
	// Progress is the position moving beyond what this or an earlier
	// attempt of the runner acknowledged: a retry replays from the applied
	// position, and acknowledging again what it acknowledged before (a
	// heartbeat, a skipped transaction) is no progress.
	startAck := connectors.MaxPosition(b.acked, b.f.ackedBefore())
	beatEvery := cmp.Or(b.heartbeatEvery, heartbeatEvery)
	for {
		b.expireHold()
		if err := b.startAsked(ctx, stream); err != nil {
			return err
		}
		var r readResult
		select {
		case r = <-results:
		case c := <-b.rs.doneCh():
			if err := b.copyDone(ctx, c); err != nil {
				return err
			}
			continue
		case d := <-b.vr.doneCh():
			if err := b.versionedDone(ctx, d); err != nil {
				return err
			}
			continue
		case v := <-b.f.validations:
			b.ask(v)
			continue
		case <-b.f.wake:
			// A request was just recorded: no need to wait for the poll.
			lastPoll = time.Now()
			if err := b.pollOptions(ctx); err != nil {
				return err
			}
			if err := b.pollResyncs(ctx); err != nil {
				return err
			}
			continue
		case <-ctx.Done():
			return ctx.Err()
		}
		if r.err != nil {
			return r.err
		}
		if len(r.events) == 0 {
			if err := b.flush(ctx); err != nil {
				return err
			}
			if time.Since(lastActivity) > beatEvery {
				if err := stream.Heartbeat(ctx); err != nil {
					return err
				}
				lastActivity = time.Now()
			}
		} else {
			lastActivity = time.Now()
			for i := range r.events {
				ev := &r.events[i]
				if err := b.handle(ctx, ev); err != nil {
					return err
				}
			}
			clear(r.events) // the changes live on in b.changes
			select {
			case free <- r.events[:0]:
			default:
			}
			if len(results) == 0 {
				// Nothing more to take now: rather than let the
				// destination wait for a full chunk, give it what there is.
				if err := b.add(ctx, b.eager); err != nil {
					return err
				}
			}
		}
		if b.rows > 0 && time.Since(b.started) >= b.maxWait {
			if err := b.flush(ctx); err != nil {
				return err
			}
		}
		if startAck.Before(b.acked) {
			// The source has the stream's position moving again.
			if err := b.f.progressed(ctx); err != nil {
				return err
			}
		}
		if time.Since(lastPoll) >= pollEvery {
			lastPoll = time.Now()
			if err := b.pollOptions(ctx); err != nil {
				return err
			}
			if err := b.pollResyncs(ctx); err != nil {
				return err
			}
		}
	}
}

// read is the reader goroutine: it hands the stream's events over until
// ctx ends or the stream fails, and reports the acknowledged position to
// the source, also while the batcher is too busy to take events.
func (b *batcher) read(ctx context.Context, stream connectors.Stream, results chan<- readResult, free <-chan []connectors.Event) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	// The bytes received, when the stream counts them, go to the
	// observer as they come.
	obs := b.f.observer()
	rc, counted := stream.(connectors.ByteCounter)
	var received int64 // reported so far
	for {
		stream.Ack(b.ackPos())
		var buf []connectors.Event
		select {
		case buf = <-free:
		default:
			buf = make([]connectors.Event, 0, readChunk+8)
		}
		evs, err := stream.Read(ctx, buf, readChunk, cmp.Or(b.idleFlush, idleFlush))
		if counted {
			n := rc.ReceivedBytes()
			if n > received {
				obs.FetchedBytes(b.f.m.Name, n-received)
			}
			received = n
		}
		r := readResult{events: evs, err: err}
		for sent := false; !sent; {
			select {
			case results <- r:
				sent = true
			case <-ctx.Done():
				return
			case <-tick.C:
				stream.Ack(b.ackPos())
				if err := stream.KeepAlive(ctx); err != nil && r.err == nil {
					r = readResult{err: err}
				}
			}
		}
		if r.err != nil {
			return
		}
	}
}

func (b *batcher) handle(ctx context.Context, ev *connectors.Event) error {
	if b.reached(ev) {
		// Everything before a validation's snapshot is here: apply it and
		// let the validation read the destination before going on.
		if err := b.release(ctx); err != nil {
			return err
		}
	}
	switch ev.Kind {
	case connectors.EventBegin:
		if ev.Open {
			if err := b.beginOpen(ctx); err != nil {
				return err
			}
		}
		b.inTx, b.open = true, ev.Open
		b.beginPos, b.beginVersion = ev.Pos, ev.Version
		// Its commit record starts at ev.Pos and ends beyond: when that is
		// not before the applied position, the destination does not have
		// the transaction. One sent before its commit commits after the
		// stream's start.
		b.txEarly = ev.Open || !ev.Pos.Before(b.applied)
		b.txSkipped, b.txRows = false, 0
	case connectors.EventChange:
		if b.rs.active() {
			// Tables with a position of their own (a resync catching up)
			// or whose changes are held (a truncate resync copying).
			if !b.rs.wanted(ev.Change.Table, b.beginPos, b.applied) {
				return nil
			}
			b.txEarly = true // what is kept is wanted
		}
		if !b.txEarly {
			// Its commit starts before the applied position: the
			// destination has it (checked at its commit).
			b.txSkipped = true
			return nil
		}
		ev.Change.Version = b.beginVersion
		if ev.Change.Kind != connectors.Truncate {
			b.txRows++
		}
		b.changes.add(ev.Change)
		return b.add(ctx, b.chunk)
	case connectors.EventCommit:
		open := b.open
		if open {
			b.commitOpen(ev)
		}
		b.inTx, b.open = false, false
		if b.txSkipped && b.applied.Before(ev.Pos) {
			return fmt.Errorf("transaction ending at %s was taken for applied before, but the destination's position is %s",
				b.f.display(ev.Pos), b.f.display(b.applied))
		}
		if !b.applied.Before(ev.Pos) && b.rs.catchingUp() {
			if b.changes.n == b.txStart {
				return nil // nothing in it for a table catching up
			}
		} else if !b.applied.Before(ev.Pos) {
			// Applied before a restart: the destination has it.
			if b.added > b.txStart {
				return fmt.Errorf("transaction ending at %s was applied before, and again", b.f.display(ev.Pos))
			}
			b.changes.truncate(b.txStart)
			return nil
		}
		if b.changes.n > b.txStart {
			if b.txStart == 0 {
				b.started = time.Now()
			}
			b.rows += b.txRows
		}
		b.txRows = 0
		b.txStart = b.changes.n
		b.end, b.commitTime = ev.Pos, ev.CommitTime
		if lv, ok := b.applier.(connectors.LateVersions); ok && open {
			return b.commitLate(ctx, lv, ev)
		}
		if b.rows >= b.maxBatch {
			return b.flush(ctx)
		}
		return b.add(ctx, b.chunk)
	case connectors.EventNewColumns:
		return b.addColumns(ctx, ev)
	case connectors.EventAbort:
		return b.abortOpen(ctx)
	case connectors.EventProgress:
		if b.retryEarly() {
			b.f.log.InfoContext(ctx, "starting the stream again with large transactions sent before their commit")
			return errRestart
		}
		if b.changes.n == 0 && b.rs.catchingUp() && b.applied.Before(ev.Pos) {
			// Idle: every table has caught up to here.
			b.end = ev.Pos
			return b.flush(ctx)
		}
		if b.changes.n == 0 && b.acked.Before(ev.Pos) {
			b.setAcked(ev.Pos)
		}
	}
	return nil
}

// add hands the rows that may go to the destination transaction to it,
// opening it, when at least atLeast wait.
func (b *batcher) add(ctx context.Context, atLeast int) error {
	limit := b.txStart
	if b.inTx && b.txEarly {
		limit = b.changes.n
	}
	if limit-b.added < atLeast {
		return nil
	}
	if !b.applier.InTx() {
		if _, err := b.applier.Begin(ctx); err != nil {
			return err
		}
		b.begun = time.Now()
	}
	if err := b.applier.Add(ctx, b.changes.span(b.added, limit)...); err != nil {
		// A table's error holds that table (held.go).
		return b.tableFailed(ctx, fmt.Errorf("apply batch after %s: %w", b.f.display(b.applied), err))
	}
	b.added = limit
	b.changes.forget(b.added) // the destination transaction has them
	return nil
}

// addColumns handles columns the source added: earlier complete
// transactions are applied with the old columns, the destination and the
// schemas the applier uses gain the new ones, existing rows get the
// source's current values of them (a default), and changes of the current
// transaction keep those values.
func (b *batcher) addColumns(ctx context.Context, ev *connectors.Event) error {
	if b.added > b.txStart {
		// Rows of the current transaction, decoded with the old columns,
		// are in the destination transaction: start it over.
		if err := b.applier.Rollback(ctx); err != nil {
			return err
		}
		if b.changes.first() > 0 {
			// Some are forgotten: the source sends them again, and the
			// destination gains the columns before (cdc).
			b.f.log.InfoContext(ctx, "source added columns in the middle of a large transaction: restarting the stream",
				"table", ev.Table.String(), "from", b.f.display(b.applied))
			return errRestart
		}
		b.added = 0
	}
	if err := b.flush(ctx); err != nil {
		return err
	}
	if b.addColumnsTo == nil {
		return fmt.Errorf("%s gained %d column(s): this destination does not follow source schema changes yet; resync the mirror",
			ev.Table, len(ev.NewColumns))
	}
	for i, d := range b.dests {
		if d.Source != ev.Table || b.rs.isHeld(d.Source) {
			continue // a held table gains them when it resumes (cdc)
		}
		ts, err := b.addColumnsTo(ctx, d, ev.NewColumns)
		if err != nil {
			return b.tableFailed(ctx, err)
		}
		b.dests[i].Schema = ts
	}
	b.applier.SetTables(b.dests)
	width := 0
	for _, d := range b.dests {
		if d.Source == ev.Table {
			width = len(d.Schema.Columns)
		}
	}
	for i := b.changes.first(); i < b.changes.n; i++ {
		c := b.changes.at(i)
		if c.Table != ev.Table {
			continue
		}
		// Unchanged: an updated row keeps the back-filled value.
		for len(c.New) > 0 && len(c.New) < width {
			c.New = append(c.New, connectors.Value{Kind: connectors.Unchanged})
		}
		for len(c.Old) > 0 && len(c.Old) < width {
			c.Old = append(c.Old, connectors.Value{Kind: connectors.Null})
		}
	}
	return nil
}

// flush ends the batch: the complete transactions are applied in one
// destination transaction with their end position, recorded in the
// catalog, and the position is acknowledged to the source. It does nothing while rows of the
// current transaction are in the destination transaction: the batch then
// ends at that transaction's commit.
func (b *batcher) flush(ctx context.Context) error {
	if b.added > b.txStart {
		return nil
	}
	catchup := b.rs.catchingUp()
	if b.txStart == 0 && !b.applied.Before(b.end) {
		return nil
	}
	if b.txStart > 0 || catchup {
		start := time.Now()
		counts, err := b.commit(ctx)
		if err != nil {
			return b.tableFailed(ctx, fmt.Errorf("apply batch ending at %s: %w", b.f.display(b.end), err))
		}
		byName := make(map[string]catalog.TableCounts, len(counts))
		for t, c := range counts {
			byName[t.String()] = catalog.TableCounts{Inserts: c.Inserts, Updates: c.Updates, Deletes: c.Deletes}
		}
		// The batch is in: progress (before RecordSync, which clears the
		// error without an event).
		if err := b.f.progressed(ctx); err != nil {
			return err
		}
		// A batch of no transaction (a table resync catching up on an idle
		// stream) has no commit time of its own.
		commitTime := b.commitTime
		if b.txStart == 0 {
			commitTime = time.Time{}
		}
		if err := b.store.RecordSync(ctx, b.f.m.Name, b.end, b.f.display(b.end), commitTime, int64(b.rows), byName); err != nil {
			return err
		}
		if nk, ok := b.applier.(connectors.NullKeyReporter); ok {
			for t, n := range nk.NullKeys() {
				if err := b.f.reportNullKeys(ctx, t, n); err != nil {
					return err
				}
			}
		}
		// took: the destination transaction, opened while the batch was
		// still coming; tail: what was left when it was complete.
		took := time.Since(b.begun)
		b.f.log.DebugContext(ctx, "batch applied", "rows", b.rows, "lsn", b.f.display(b.end),
			"took", took, "tail", time.Since(start))
		b.f.observer().BatchApplied(b.f.m.Name, b.rows, took)
		if h := batchHook.Load(); h != nil {
			(*h)(b.f.m.Name, b.rows, b.maxBatch)
		}
	}
	b.applied = connectors.MaxPosition(b.applied, b.end)
	b.changes.drop(b.txStart) // the current transaction's changes start the next batch
	b.txStart, b.added, b.rows = 0, 0, 0
	if catchup {
		if err := b.caughtUp(ctx); err != nil {
			return err
		}
	}
	b.setAcked(b.applied)
	return nil
}

// commit applies what remains of the batch's complete transactions and
// commits the destination transaction.
func (b *batcher) commit(ctx context.Context) (map[connectors.TableName]connectors.TableCounts, error) {
	catchup := b.rs.catchingUp()
	if !b.applier.InTx() {
		recorded, err := b.applier.Begin(ctx)
		if err != nil {
			return nil, err
		}
		b.begun = time.Now()
		if !recorded.Before(b.end) && !catchup {
			return nil, b.applier.Rollback(ctx) // applied before
		}
	}
	if b.added < b.txStart {
		if err := b.applier.Add(ctx, b.changes.span(b.added, b.txStart)...); err != nil {
			return nil, err
		}
		b.added = b.txStart
	}
	if catchup {
		tc, ok := b.applier.(connectors.TablePositionCommitter)
		if !ok {
			return nil, fmt.Errorf("table resyncs are not supported on this destination")
		}
		put, drop := b.rs.record(b.end, connectors.MaxPosition(b.applied, b.end))
		return tc.CommitTables(ctx, b.end, put, drop)
	}
	return b.applier.Commit(ctx, b.end)
}

// setAcked acknowledges pos, if beyond what was.
func (b *batcher) setAcked(pos connectors.Position) {
	if limit := b.rs.ackLimit(); limit != "" {
		pos = connectors.MinPosition(pos, limit)
	}
	if b.acked.Before(pos) {
		b.acked = pos
		p := pos // allocated here only: a batch or a progress event
		b.ack.Store(&p)
		b.f.noteAcked(pos)
	}
}

// ackPos is the position to acknowledge to the source: acked, as the
// reader goroutine sees it.
func (b *batcher) ackPos() connectors.Position {
	if p := b.ack.Load(); p != nil {
		return *p
	}
	return ""
}
