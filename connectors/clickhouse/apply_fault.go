package clickhouse

import (
	"errors"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/sluicedb/sluice/connectors"
)

// errTableGone is wrapped when a destination table does not exist: the
// table's fault when it is a mirrored table.
var errTableGone = errors.New("the table does not exist")

// ClickHouse's error codes of errors that belong to one table (tableOwned).
var tableCodes = map[int32]bool{
	6:   true, // CANNOT_PARSE_TEXT
	8:   true, // THERE_IS_NO_COLUMN
	16:  true, // NO_SUCH_COLUMN_IN_TABLE
	47:  true, // UNKNOWN_IDENTIFIER
	53:  true, // TYPE_MISMATCH
	60:  true, // UNKNOWN_TABLE
	70:  true, // CANNOT_CONVERT_TYPE
	321: true, // VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
	349: true, // CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
	469: true, // VIOLATED_CONSTRAINT
}

// tableFault returns err as a *connectors.TableError of source table t
// when it belongs to that table (tableOwned), else err as it is.
func tableFault(t connectors.TableName, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := connectors.AsTableError(err); ok || !tableOwned(err) {
		return err
	}
	return &connectors.TableError{Table: t, Err: err}
}

// tableOwned reports whether an error writing a table's rows is that
// table's: the server's exceptions for a table or column gone, a type that
// no longer takes the values, a constraint (tableCodes), or the client's
// refusal to convert a value to the column's type (the column's type
// changed). Anything else (the connection, the server) is the mirror's.
func tableOwned(err error) bool {
	if errors.Is(err, errTableGone) {
		return true
	}
	var ex *clickhouse.Exception
	if errors.As(err, &ex) {
		return tableCodes[ex.Code]
	}
	var conv *column.ColumnConverterError
	return errors.As(err, &conv)
}
