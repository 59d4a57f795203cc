package clickhouse

import (
	"testing"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/sluicedb/sluice/connectors"
)

// Only a sorting key with columns outside the primary key makes the
// applier read a batch's keys for moved rows: one of the primary key, in
// any order, costs nothing.
func TestLayoutMoves(t *testing.T) {
	ts := &connectors.TableSchema{Name: connectors.TableName{Schema: "public", Name: "t"}, PrimaryKey: []string{"a", "b"},
		Columns: []connectors.Column{
			{Name: "a", Type: "integer", TypeOID: pgtype.Int4OID, NotNull: true},
			{Name: "b", Type: "integer", TypeOID: pgtype.Int4OID, NotNull: true},
			{Name: "c", Type: "text", TypeOID: pgtype.TextOID},
		}}
	for _, c := range []struct {
		orderBy []string
		moves   bool
	}{
		{nil, false},
		{[]string{"a", "b"}, false},
		{[]string{"b", "a"}, false},
		{[]string{"c", "a", "b"}, true},
		{[]string{"a", "b", "c"}, true},
	} {
		l, err := newLayout(connectors.TableName{Schema: "db", Name: "t"}, ts, ServerInfo{Major: 18, Minor: 16},
			TableOptions{OrderBy: c.orderBy})
		if err != nil {
			t.Fatal(err)
		}
		if l.moves != c.moves {
			t.Errorf("order_by %v: moves %v, want %v", c.orderBy, l.moves, c.moves)
		}
	}
}
