package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/connectors"
)

var _ connectors.TableRemover = (*Destination)(nil)

// RemoveTable implements connectors.TableRemover: in one transaction it
// forgets source's done partitions and resync state, drops the shadow
// table recorded for live (DropOwned) and, with drop, live itself. The
// lock timeout of Teardown applies: a session holding a lock on live makes
// it fail rather than wait. Idempotent. Once the Destination is claimed,
// the transaction first checks its epoch (checkEpoch, the row held until
// the commit): a stale node's removal is a *connectors.FencedError and
// changes nothing (DROP TABLE is transactional).
func (d *Destination) RemoveTable(ctx context.Context, source, live connectors.TableName, drop bool) error {
	if err := d.ensureMeta(ctx); err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, d.conn, func(tx pgx.Tx) error {
		if err := SetLockTimeout(ctx, tx, teardownLockTimeout); err != nil {
			return err
		}
		if err := d.checkEpoch(ctx, tx); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "DELETE FROM "+metaSchema(d.meta)+".snapshot_partitions WHERE mirror = $1 AND source_table = ANY($2)",
			d.mirror, source.Keys()); err != nil {
			return fmt.Errorf("forget done partitions of %s: %w", source, err)
		}
		if err := DeleteTableState(ctx, tx, d.meta, d.mirror, source); err != nil {
			return err
		}
		if err := DropOwned(ctx, tx, d.meta, d.mirror, live); err != nil {
			return err
		}
		if drop {
			if err := DropTableIfExists(ctx, tx, live); err != nil {
				return err
			}
		}
		return nil
	})
}
