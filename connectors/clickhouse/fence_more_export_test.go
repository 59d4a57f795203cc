package clickhouse

import (
	"context"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// ClearMirrorUpTo is what a claimed Destination's ForgetLoad of the whole
// mirror deletes (clearMirror), for the test of a stale one that slipped
// past its check.
func ClearMirrorUpTo(ctx context.Context, conn driver.Conn, db, mirror string, upTo int64) error {
	return clearMirror(ctx, conn, db, mirror, upTo)
}
