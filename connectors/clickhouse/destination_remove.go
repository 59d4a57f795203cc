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
func (d *Destination) RemoveTable(ctx context.Context, source, live connectors.TableName, drop bool) error {
	if err := d.ensureMeta(ctx); err != nil {
		return err
	}
	if err := ClearTable(ctx, d.conn, d.cfg.Database, d.mirror, source); err != nil {
		return err
	}
	for _, role := range []string{RoleShadow, RoleOld} {
		if err := DropOwned(ctx, d.conn, d.cfg.Database, d.mirror, live, role); err != nil {
			return err
		}
	}
	if drop {
		return DropTable(ctx, d.conn, live)
	}
	return nil
}
