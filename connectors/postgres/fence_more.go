package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/connectors"
)

// The lease epoch checked by the Destination's long writes (docs/cluster.md,
// "Fencing a node that wakes up"): the keys and indexes built after a load
// (FinishLoad), the rebuild after a truncate resync's copy (Restore). A
// claimed Destination (Fence) runs each in a transaction that commits only
// where the recorded epoch is still its own; DDL is transactional in
// Postgres, so a stale node's build rolls back and leaves nothing.
//
// The short writes (ForgetLoad, Empty, RemoveTable, the table states)
// check first, with the metadata row share-locked until they commit
// (fencedWrite, checkEpoch): they are over in milliseconds, and taking
// the row before the tables they lock keeps the order an applier takes
// them in (its Begin locks the row, then it writes the tables), so the
// two cannot deadlock.
//
// A long build cannot hold the row for its whole length: the stream's
// applier, beside a table resync's copy, locks the row FOR UPDATE for
// every batch, and would wait for an index build of minutes. So a build
// checks the epoch without a lock before it starts (a stale build is not
// run for nothing), and again, with the row locked FOR UPDATE, just
// before it commits: a claim cannot pass between that check and the
// commit (it waits for the lock, a few milliseconds), so a stale build
// either committed before the claim, as if its node had died just after,
// or rolls back. FOR UPDATE rather than FOR SHARE for the reason
// checkLoadEpoch gives: one transaction locks the row, which Fence can
// find and end should its node freeze right there. What the build locks
// is the table it builds on (a shadow, or a table whose changes a
// truncate resync holds back), which no applier writes meanwhile, so
// taking the row last cannot deadlock with an applier either.

// queryExecer is a connection or a transaction: what the builds run on.
type queryExecer interface {
	Querier
	Execer
}

// fencedBuild runs build, a long write, in a transaction that checks the
// claimed epoch before build (no lock) and again just before it commits
// (FOR UPDATE; see the file's comment): a stale epoch is a
// *connectors.FencedError, and build's work rolls back. Without a claim
// (d.epoch 0), build runs alone on the connection, as it always did.
func (d *Destination) fencedBuild(ctx context.Context, build func(db queryExecer) error) error {
	if d.epoch == 0 {
		return build(d.conn)
	}
	return pgx.BeginFunc(ctx, d.conn, func(tx pgx.Tx) error {
		if err := d.fenceBuild(ctx, tx, false); err != nil {
			return err
		}
		if err := build(tx); err != nil {
			return err
		}
		return d.fenceBuild(ctx, tx, true)
	})
}

// fenceBuild is the check of fencedBuild: before the build (lock false)
// without a lock, before the commit (lock true) with the row locked FOR
// UPDATE.
func (d *Destination) fenceBuild(ctx context.Context, tx pgx.Tx, lock bool) error {
	if lock {
		return d.checkEpochLock(ctx, tx, "FOR UPDATE")
	}
	return d.checkEpochLock(ctx, tx, "")
}

// buildShadowIndexes is BuildShadowIndexes, each index's transaction
// fenced as fencedBuild's is once the Destination is claimed.
func (d *Destination) buildShadowIndexes(ctx context.Context, live, shadow connectors.TableName) error {
	var fence func(tx pgx.Tx, lock bool) error
	if d.epoch != 0 {
		fence = func(tx pgx.Tx, lock bool) error { return d.fenceBuild(ctx, tx, lock) }
	}
	return buildShadowIndexes(ctx, d.conn, live, shadow, fence)
}
