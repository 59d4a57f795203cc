package clickhouse

import (
	"context"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/sluicedb/sluice/connectors"
)

// The lease epoch at a ClickHouse destination (docs/cluster.md). ClickHouse
// has no transactions, so the fence cannot be checked in the batch's own
// transaction as on Postgres. Instead:
//
//   - Fence records the epoch in _sluice_mirror_epoch (merges keep the
//     highest) and the mirror's current position again under it, and an
//     applier checks that the highest recorded epoch is still its own
//     before each batch (Begin) and again after writing the batch's rows,
//     just before recording its position (Commit). A stale node that
//     wakes up fails at the first check it reaches, with an error
//     wrapping connectors.ErrFenced.
//   - The position is read from the highest epoch's records
//     (LastPosition): a stale node that passed its check just before the
//     fence and records its position after it cannot move the position
//     the new owner resumes from.
//   - Rows are versioned (ReplacingMergeTree by the source version of the
//     change): the rows of a stale batch that slipped between the check
//     and the fence are rows of the same source stream, with the same
//     versions, that the new owner's replay writes identically; the
//     newest version of a row wins whichever node wrote it last. So such
//     rows change nothing the new owner would not set the same way.
//   - Once claimed, the Destination's own writes that a stale node could
//     make after losing its lease (a table resync's shadow made and
//     recorded, CreateShadow; a swap, SwapIn) check the epoch first
//     (Destination.checkEpoch), and a swap again just before each
//     EXCHANGE or RENAME that puts a shadow in. The check and the
//     statement are two round trips: a claim that lands between them lets
//     one stale swap through. That window is a round trip (about a
//     millisecond), against the new owner's claim, stream start and first
//     batch, all of which must fit in it for a row of the new owner's to
//     be written into the live table the stale swap then moves away; only
//     a node frozen exactly between its check and its statement can do
//     it, and the swap it makes is the resync's own, finished (the shadow
//     carries the live table's newer rows, and the new owner's replay
//     writes its rows again).
//   - A load's partitions (Loader.Load, LoadJob.Epoch) are checked against
//     the highest epoch before their rows, before each insert they open
//     (an insert names its table once, when it starts) and before their
//     done mark; a partition of an earlier epoch is refused. Rows of a
//     stale partition that slip past a check converge: an initial load or
//     a full resync's is redone by the new owner with the same snapshot
//     version, and its stream replays every change after that version, so
//     the newest version wins whichever node wrote last; a table resync's
//     copy is started over by the new owner in a new shadow table, made
//     after its claim and after the stale shadow was dropped, so a stale
//     insert begun before the claim writes into the dropped table. A done
//     mark is written after the partition's rows, so for an initial load
//     or a full resync (same tables for every owner) it is true whoever
//     writes it. Not closed: in a table resync, the mark of a node frozen
//     exactly between its last check and the mark's insert, landing after
//     the new owner forgot the copy's marks (ForgetLoad) and before it
//     read them, would make the new copy skip a partition whose rows went
//     to the dropped shadow.

// Fence implements connectors.Fencer: it refuses, with a
// *connectors.FencedError, an epoch below the highest recorded for the
// mirror; otherwise it records epoch and, when the mirror has a position,
// records it again under epoch (so that positions recorded under earlier
// epochs no longer count). The same epoch again is accepted, and writes
// nothing once the position is recorded under it. The
// appliers the Destination makes after it check the epoch. Nothing a
// stale node holds needs ending: ClickHouse has no transactions.
func (d *Destination) Fence(ctx context.Context, epoch int64) ([]string, error) {
	if epoch <= 0 {
		return nil, fmt.Errorf("fence mirror %q: epoch %d is not positive", d.mirror, epoch)
	}
	if err := d.ensureMeta(ctx); err != nil {
		return nil, err
	}
	db := d.cfg.Database
	recorded, err := Epoch(ctx, d.conn, db, d.mirror)
	if err != nil {
		return nil, err
	}
	if recorded > epoch {
		return nil, &connectors.FencedError{Mirror: d.mirror, Epoch: epoch, Recorded: recorded}
	}
	if recorded < epoch {
		if err := insertRow(ctx, d.conn, metaTable(db, MirrorEpochTable)+" (mirror, epoch)", d.mirror, uint64(epoch)); err != nil {
			return nil, fmt.Errorf("fence mirror %q at epoch %d: %w", d.mirror, epoch, err)
		}
	}
	if recorded == epoch {
		// Claimed before (another step of the same run, such as a table
		// resync's copy beside the stream): the position is recorded
		// under epoch already, unless that claim was cut off before it
		// recorded it. Recording it again while the stream's applier
		// records later ones would give a merge two rows of one epoch,
		// and the older could outlive the newer.
		var n uint64
		if err := d.conn.QueryRow(ctx, "SELECT count() FROM "+metaTable(db, MirrorStateTable)+" WHERE mirror = ? AND epoch = ?",
			d.mirror, uint64(epoch)).Scan(&n); err != nil {
			return nil, fmt.Errorf("fence mirror %q at epoch %d: %w", d.mirror, epoch, err)
		}
		if n > 0 {
			d.epoch = epoch
			return nil, nil
		}
	}
	pos, _, err := LastPosition(ctx, d.conn, db, d.mirror)
	if err != nil {
		return nil, err
	}
	if pos != "" {
		if err := SetPositionAt(ctx, d.conn, db, d.mirror, pos, epoch); err != nil {
			return nil, err
		}
	}
	d.epoch = epoch
	return nil, nil
}

// Epoch returns the highest lease epoch recorded for mirror (0: none). It
// only reads; EnsureMetadata must have run.
func Epoch(ctx context.Context, conn driver.Conn, db, mirror string) (int64, error) {
	var epoch uint64
	if err := conn.QueryRow(ctx, "SELECT max(epoch) FROM "+metaTable(db, MirrorEpochTable)+" WHERE mirror = ?", mirror).
		Scan(&epoch); err != nil {
		return 0, fmt.Errorf("read the lease epoch of mirror %q: %w", mirror, err)
	}
	return int64(epoch), nil
}

// ClearEpoch forgets the epochs recorded for mirror (DROP MIRROR: a mirror
// made again under the name starts its epochs over) and waits until the
// delete is done. Idempotent.
func ClearEpoch(ctx context.Context, conn driver.Conn, db, mirror string) error {
	if err := deleteWhere(ctx, conn, db, MirrorEpochTable, "mirror = "+quoteString(mirror)); err != nil {
		return fmt.Errorf("clear the lease epochs of mirror %q: %w", mirror, err)
	}
	return nil
}

// checkEpoch returns a *connectors.FencedError when a later epoch than
// the applier's claimed the mirror; nothing for an applier not fenced.
func (a *Applier) checkEpoch(ctx context.Context) error {
	return checkClaimed(ctx, a.conn, a.db, a.mirror, a.epoch)
}

// checkEpoch refuses, with a *connectors.FencedError, a write of a
// claimed Destination (Fence) whose epoch is no longer the highest
// recorded: a later lease claimed the mirror. A Destination never claimed
// (a flow without a lease) checks nothing. See the file's comment for the
// window between the check and the write.
func (d *Destination) checkEpoch(ctx context.Context) error {
	return checkClaimed(ctx, d.conn, d.cfg.Database, d.mirror, d.epoch)
}

// checkClaimed returns an error wrapping connectors.ErrFenced unless
// epoch (0: none, nothing checked) is the highest epoch recorded for
// mirror: a *connectors.FencedError when a later one is recorded, and an
// error saying so when the epochs were removed (DROP MIRROR) after it
// claimed the mirror.
func checkClaimed(ctx context.Context, conn driver.Conn, db, mirror string, epoch int64) error {
	if epoch == 0 {
		return nil
	}
	recorded, err := Epoch(ctx, conn, db, mirror)
	if err != nil {
		return err
	}
	if recorded != epoch {
		if recorded < epoch {
			return fmt.Errorf("mirror %q: the lease epochs recorded at the destination were removed after epoch %d claimed it: %w",
				mirror, epoch, connectors.ErrFenced)
		}
		return &connectors.FencedError{Mirror: mirror, Epoch: epoch, Recorded: recorded}
	}
	return nil
}

// checkLoadEpoch refuses, with a *connectors.FencedError, a partition of
// a load planned under lease epoch epoch (0: none, nothing checked) when
// a later epoch is recorded for mirror: a node that took the mirror over
// claimed it, and the load is stale. A lower or no recorded epoch passes
// (a load whose flow never claimed the destination).
func checkLoadEpoch(ctx context.Context, conn driver.Conn, db, mirror string, epoch int64) error {
	if epoch == 0 {
		return nil
	}
	recorded, err := Epoch(ctx, conn, db, mirror)
	if err != nil {
		return err
	}
	if recorded > epoch {
		return &connectors.FencedError{Mirror: mirror, Epoch: epoch, Recorded: recorded}
	}
	return nil
}
