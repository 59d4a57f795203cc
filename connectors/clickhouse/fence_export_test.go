package clickhouse

import (
	"context"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/sluicedb/sluice/connectors"
)

// SwapTablesChecked is SwapTables with the check a claimed Destination's
// SwapIn runs before it changes anything and before each statement that
// puts a shadow in (swapTables), for the tests of where it runs.
func SwapTablesChecked(ctx context.Context, conn driver.Conn, info ServerInfo, db, mirror string, lives, reserved []connectors.TableName,
	check func(ctx context.Context) error) error {
	return swapTables(ctx, conn, info, db, mirror, lives, reserved, check)
}
