package clickhouse

import (
	"errors"
	"fmt"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/sluicedb/sluice/connectors"
)

// TestTableFault checks which write errors are a table's: wrapped as a
// connectors.TableError naming it, the others left as they are.
func TestTableFault(t *testing.T) {
	users := connectors.TableName{Schema: "public", Name: "users"}
	for _, c := range []struct {
		err   error
		table bool
	}{
		{&clickhouse.Exception{Code: 60}, true},
		{&clickhouse.Exception{Code: 16}, true},
		{&clickhouse.Exception{Code: 469}, true},
		{&column.ColumnConverterError{Op: "Append", From: "string", To: "Int32"}, true},
		{&clickhouse.Exception{Code: 241}, false}, // MEMORY_LIMIT_EXCEEDED
		{&clickhouse.Exception{Code: 209}, false}, // SOCKET_TIMEOUT
		{errors.New("read: connection reset by peer"), false},
	} {
		err := tableFault(users, fmt.Errorf("write: %w", c.err))
		te, ok := connectors.AsTableError(err)
		if ok != c.table || ok && (te.Table != users || !errors.Is(err, c.err)) {
			t.Errorf("%v: table error %v (%v), want %v", c.err, ok, err, c.table)
		}
	}
}
