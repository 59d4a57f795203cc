package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/connectors"
)

// SwapTableRetiring is SwapTable with the old table set aside for mirror
// "m" in the default metadata schema (retireTable), as a Destination's
// SwapIn does.
func SwapTableRetiring(ctx context.Context, tx pgx.Tx, live, shadow connectors.TableName) (SwapReport, error) {
	return swapTable(ctx, tx, live, shadow, 0, func(old connectors.TableName) error {
		return retireTable(ctx, tx, "", "m", old)
	})
}

// DropRetiredAll drops the tables set aside for mirror in the default
// metadata schema.
func DropRetiredAll(ctx context.Context, conn *pgx.Conn, mirror string) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error { return dropRetiredAll(ctx, tx, "", mirror) })
}
