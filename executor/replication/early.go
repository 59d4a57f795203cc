package replication

import (
	"context"
	"fmt"
	"time"

	"github.com/sluicedb/sluice/connectors"
)

// Early streams (connectors.EarlyStreamer): a source that can send a large
// transaction's changes before it commits does so into a Postgres-like
// destination, which applies them as they come instead of waiting for the
// commit. The batcher takes such a transaction (an EventBegin with Open)
// as the only one of its destination transaction: it commits the batch
// before it, so that an EventAbort rolls back that transaction alone. A
// destination that needs a version with each row (VersionedRows) takes
// it when its applier can hold the changes aside until the commit gives
// their version (connectors.LateVersions: ClickHouse's stage tables); the
// batcher then commits the destination transaction at the open one's
// commit (commitLate). A stream that table resyncs follow (positions of
// their own, or a versioned copy under way) gets transactions at their
// commit, as before.
//
// When the source cannot go on with an open transaction (the stream's
// error wraps connectors.ErrEarlyAbandoned), the destination transaction is
// rolled back and the stream starts again from the applied position
// without early sending, for a while that doubles each time (earlyOffMin
// to earlyOffMax), so that a long transaction that keeps rolling back
// savepoints is not decoded again and again; the first idle moment after
// that while starts it again early.

const (
	earlyOffMin = time.Minute
	earlyOffMax = time.Hour
)

// earlyBackoff is a runner's memory, across its flows, of early streams
// that were abandoned.
type earlyBackoff struct {
	offUntil time.Time     // no early stream before
	offFor   time.Duration // the last wait (0: none since one committed)
}

// allowed reports whether a stream may be started early now.
func (e *earlyBackoff) allowed() bool { return e == nil || !time.Now().Before(e.offUntil) }

// abandoned starts, or doubles, the wait without early streams.
func (e *earlyBackoff) abandoned() time.Duration {
	if e == nil {
		return 0
	}
	e.offFor = min(max(2*e.offFor, earlyOffMin), earlyOffMax)
	e.offUntil = time.Now().Add(e.offFor)
	return e.offFor
}

// committed forgets the waits: an open transaction committed.
func (e *earlyBackoff) committed() {
	if e != nil {
		e.offFor = 0
	}
}

// openStream starts the mirror's stream at start, early when early is set
// and the source can.
func openStream(ctx context.Context, src connectors.Source, spec connectors.StreamSpec, start connectors.Position,
	schemas map[connectors.TableName]*connectors.TableSchema, early bool) (connectors.Stream, error) {
	if es, ok := src.(connectors.EarlyStreamer); ok && early {
		return es.StreamEarly(ctx, spec, start, schemas)
	}
	return src.Stream(ctx, spec, start, schemas)
}

// beginOpen takes the EventBegin of a transaction sent before its commit:
// the batch before it is committed first.
func (b *batcher) beginOpen(ctx context.Context) error {
	if b.rs.active() || b.vr.active() {
		// The flow asks for early streams only without these (cdc).
		return fmt.Errorf("a transaction came before its commit while table resyncs follow the stream: %w",
			connectors.ErrEarlyAbandoned)
	}
	return b.flush(ctx)
}

// abortOpen drops the open transaction the source rolled back. The
// destination transaction holds its rows alone (beginOpen), so it is rolled
// back, and the batch starts empty.
func (b *batcher) abortOpen(ctx context.Context) error {
	if !b.inTx || !b.open || b.txStart != 0 {
		return fmt.Errorf("a rollback of a transaction that is not the batch's only open one: %w", connectors.ErrEarlyAbandoned)
	}
	if b.applier.InTx() {
		if err := b.applier.Rollback(ctx); err != nil {
			return err
		}
	}
	b.changes.drop(b.changes.n)
	b.added, b.txRows, b.rows = 0, 0, 0
	b.inTx, b.open = false, false
	b.f.log.DebugContext(ctx, "a transaction sent before its commit was rolled back on the source")
	return nil
}

// commitOpen checks, at the commit of an open transaction, that a
// validation holding the stream at a snapshot can still be given the
// destination as of it: the transaction's rows are in the destination
// transaction, so if it commits at or after the snapshot, the validation
// fails (to be asked again) rather than compare the wrong rows.
func (b *batcher) commitOpen(ev *connectors.Event) {
	b.f.early.committed()
	if b.hold != nil && !ev.Pos.Before(b.hold.snap.Position) {
		b.hold.fail(fmt.Errorf("validate: a large transaction that was applied as it came commits after the snapshot; try again"))
		b.hold = nil
	}
}

// commitLate ends an open transaction on a destination that versions its
// rows late (connectors.LateVersions): the changes held aside take the
// commit's version, and the destination transaction, which holds that
// transaction alone (beginOpen), commits at once.
func (b *batcher) commitLate(ctx context.Context, lv connectors.LateVersions, ev *connectors.Event) error {
	if ev.Version == 0 {
		return fmt.Errorf("the commit at %s of a transaction sent before it carries no version", b.f.display(ev.Pos))
	}
	lv.SetVersion(ev.Version)
	return b.flush(ctx)
}

// earlyFits reports whether the flow may start its stream early: the
// destination needs no version before a commit, or its applier can give
// one late; and no table resync follows the stream (positions of their
// own, a table held, a versioned copy to make).
func (f *flow) earlyFits(versioned bool, applier connectors.Applier, rs *resyncs) bool {
	_, late := applier.(connectors.LateVersions)
	return (!versioned || late) && !rs.active() && !(versioned && f.versionedCopies())
}

// retryEarly reports, on an idle stream started without early sending
// only because an earlier one was abandoned, that the wait is over: the
// stream is to start again, early (not while a table copy runs: its
// restart would start the copy over).
func (b *batcher) retryEarly() bool {
	return b.lateOnly && !b.inTx && b.changes.n == 0 && !b.applier.InTx() && (b.rs == nil || b.rs.copying == 0) && b.f.early.allowed()
}
