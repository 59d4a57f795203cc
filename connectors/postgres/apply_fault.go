package postgres

import (
	"errors"
	"strings"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sluicedb/sluice/connectors"
)

// errTableShape is wrapped when the destination table no longer has the
// shape the applier writes (gone, a column missing): the table's fault.
var errTableShape = errors.New("the destination table changed")

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

// tableOwned reports whether an error applying a table's changes is that
// table's: the destination table or a column gone (42P01, 42703), a type
// that no longer takes the values (42804), a value out of range or that
// does not convert (class 22), a constraint that rejects a row (class 23).
// Anything else (the connection lost, the server shutting down, a
// serialization failure, out of disk) is the mirror's: retried.
func tableOwned(err error) bool {
	if errors.Is(err, errTableShape) {
		return true
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code {
	case pgerrcode.UndefinedTable, pgerrcode.UndefinedColumn, pgerrcode.DatatypeMismatch, pgerrcode.WrongObjectType:
		return true
	}
	return strings.HasPrefix(pe.Code, "22") || strings.HasPrefix(pe.Code, "23")
}
