package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/connectors"
)

// The lease epoch checked by the Destination's long writes (docs/cluster.md,
// "Fencing a node that wakes up"): the keys and indexes built around a
// load (PrepareUpsert, FinishLoad, CreateIndexes), the rebuild after a
// truncate resync's copy (Restore). A
// claimed Destination (Fence) runs each in a transaction that commits only
// where the recorded epoch is still its own; DDL is transactional in
// Postgres, so a stale node's build rolls back and leaves nothing.
//
// The short writes (ForgetLoad, Empty, RemoveTable, the table states,
// foreign keys) check first, with the metadata row share-locked until they commit
// (fencedWrite, checkEpoch): they are over in milliseconds, and taking
// the row before the tables an applier writes keeps the order it takes
// them in (its Begin locks the row, then it writes the tables), so the
// two cannot deadlock. One table is locked before the row (lockFirst):
// the one a truncate resync empties and rebuilds, which no applier writes
// meanwhile (its changes are held back). Its lock waits for the table's
// readers, which can be long, and must not wait holding the row: every
// batch of the mirror's other tables would wait with it.
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

// lockFirst locks table in mode (a LOCK TABLE mode) in tx, before a
// claimed Destination's epoch check takes the metadata row (see the
// file's comment); without a claim it does nothing, the statements that
// follow taking the lock as they always did.
func (d *Destination) lockFirst(ctx context.Context, tx pgx.Tx, table connectors.TableName, mode string) error {
	if d.epoch == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE "+table.Quoted()+" IN "+mode+" MODE"); err != nil {
		return fmt.Errorf("lock %s: %w", table, err)
	}
	return nil
}

// fencedWriteAfter is fencedWrite with table locked in mode first
// (lockFirst).
func (d *Destination) fencedWriteAfter(ctx context.Context, table connectors.TableName, mode string, write func(db Execer) error) error {
	if d.epoch == 0 {
		return write(d.conn)
	}
	return pgx.BeginFunc(ctx, d.conn, func(tx pgx.Tx) error {
		if err := d.lockFirst(ctx, tx, table, mode); err != nil {
			return err
		}
		if err := d.checkEpoch(ctx, tx); err != nil {
			return err
		}
		return write(tx)
	})
}
