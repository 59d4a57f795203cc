package mysqlmirror_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgerrcode"
)

// TestCreateMirrorErrors: CREATE MIRROR from a MYSQL peer refuses what
// cannot be mirrored with the SQLSTATE a Postgres source's mirror gets,
// naming the table and the column.
func TestCreateMirrorErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	myExec(t, myConn(t, f.db), ordersDDL, "CREATE TABLE nokey (a int)", "CREATE TABLE g (id int PRIMARY KEY, u uuid)",
		"CREATE VIEW v AS SELECT * FROM orders")
	for _, c := range []struct {
		mapping, code, want string
	}{
		{"{from: %s.orders, to: orders, exclude: [nope]}", pgerrcode.UndefinedColumn, `excluded column "nope" does not exist`},
		{"{from: %s.orders, to: orders, exclude: [id]}", pgerrcode.InvalidColumnReference, `cannot exclude column "id"`},
		{"%s.missing:missing", pgerrcode.UndefinedTable, "missing does not exist"},
		{"%s.v:v", pgerrcode.WrongObjectType, "is a view"},
		{"%s.nokey:nokey", pgerrcode.ObjectNotInPrerequisiteState, "has no primary key"},
		{"%s.g:g", pgerrcode.FeatureNotSupported, `column "u": type uuid`},
	} {
		mapping := fmt.Sprintf(c.mapping, f.db)
		_, err := f.conn.Exec(testCtx(t), "CREATE MIRROR bad FROM my TO dst WITH TABLE MAPPING ("+mapping+")")
		pe := wantError(t, err, c.code)
		if !strings.Contains(pe.Message, c.want) || !strings.Contains(pe.Message, f.db+".") {
			t.Errorf("%s: %q, want one naming the table and saying %q", mapping, pe.Message, c.want)
		}
	}
	var n int
	if err := f.conn.QueryRow(testCtx(t), "SELECT count(*) FROM mirrors").Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d mirrors after refused statements (%v)", n, err)
	}
}
