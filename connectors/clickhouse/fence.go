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

// Fence implements connectors.Fencer: it refuses, with a
// *connectors.FencedError, an epoch below the highest recorded for the
// mirror; otherwise it records epoch and, when the mirror has a position,
// records it again under epoch (so that positions recorded under earlier
// epochs no longer count). The same epoch again is accepted. The
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
	if a.epoch == 0 {
		return nil
	}
	recorded, err := Epoch(ctx, a.conn, a.db, a.mirror)
	if err != nil {
		return err
	}
	if recorded != a.epoch {
		if recorded < a.epoch {
			return fmt.Errorf("mirror %q: the lease epochs recorded at the destination were removed after epoch %d claimed it: %w",
				a.mirror, a.epoch, connectors.ErrFenced)
		}
		return &connectors.FencedError{Mirror: a.mirror, Epoch: a.epoch, Recorded: recorded}
	}
	return nil
}
