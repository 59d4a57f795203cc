package postgres

import (
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sluicedb/sluice/connectors"
)

// TestTableFault checks which apply errors are a table's: wrapped as a
// connectors.TableError naming it, the others left as they are.
func TestTableFault(t *testing.T) {
	users := connectors.TableName{Schema: "public", Name: "users"}
	for _, c := range []struct {
		err   error
		table bool
	}{
		{&pgconn.PgError{Code: "42P01"}, true},
		{&pgconn.PgError{Code: "42703"}, true},
		{&pgconn.PgError{Code: "42804"}, true},
		{&pgconn.PgError{Code: "22003"}, true},
		{&pgconn.PgError{Code: "23514"}, true},
		{fmt.Errorf("destination table x does not exist: %w", errTableShape), true},
		{&pgconn.PgError{Code: "40001"}, false},
		{&pgconn.PgError{Code: "57P01"}, false},
		{&pgconn.PgError{Code: "53100"}, false},
		{errors.New("unexpected EOF"), false},
	} {
		err := tableFault(users, fmt.Errorf("apply: %w", c.err))
		te, ok := connectors.AsTableError(err)
		if ok != c.table || ok && (te.Table != users || !errors.Is(err, c.err)) {
			t.Errorf("%v: table error %v (%v), want %v", c.err, ok, err, c.table)
		}
	}
	if tableFault(users, nil) != nil {
		t.Error("nil is not an error")
	}
}
