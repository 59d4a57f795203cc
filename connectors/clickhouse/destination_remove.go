package clickhouse

import (
	"context"

	"github.com/sluicedb/sluice/connectors"
)

var _ connectors.TableRemover = (*Destination)(nil)

// RemoveTable implements connectors.TableRemover: it forgets source's done
// partitions (ClearTable), drops the temporary tables recorded for live
// (a resync's shadow, a table renamed away by a swap) and, with drop, live
// itself. ClickHouse has no transactions: each step is idempotent, so a
// removal cut off is finished by running it again.
//
// Once the Destination is claimed (ALTER MIRROR claims it with the epoch
// of the stream lease it stopped), each step first checks that its epoch
// is still the highest (checkEpoch): a stale removal is a
// *connectors.FencedError and stops at the first step that sees the later
// claim. The check and its step are two round trips, so a claim landing
// between them lets that one step through; checking before every step
// keeps the window to one statement, which only a statement's node frozen
// exactly there (past the lease it reserved, while a node started the
// mirror's flow with the table still in it) can use. The step let
// through forgets load marks (a copy that needs them reloads, and its rows
// converge), drops a shadow recorded before the claim (the new owner's
// copy makes its own after its claim) or drops the table the user asked
// to drop, whose changes the new owner then holds as the table's error.
func (d *Destination) RemoveTable(ctx context.Context, source, live connectors.TableName, drop bool) error {
	if err := d.ensureMeta(ctx); err != nil {
		return err
	}
	if err := d.checkEpoch(ctx); err != nil {
		return err
	}
	if err := ClearTable(ctx, d.conn, d.cfg.Database, d.mirror, source); err != nil {
		return err
	}
	for _, role := range roles {
		if err := d.checkEpoch(ctx); err != nil {
			return err
		}
		if err := DropOwned(ctx, d.conn, d.cfg.Database, d.mirror, live, role); err != nil {
			return err
		}
	}
	if drop {
		if err := d.checkEpoch(ctx); err != nil {
			return err
		}
		return DropTable(ctx, d.conn, live)
	}
	return nil
}
