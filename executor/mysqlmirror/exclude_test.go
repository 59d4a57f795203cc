package mysqlmirror_test

import (
	"testing"
)

// TestExcludedColumnDropped: the source drops a column the mirror
// excludes, and the mirror, restarted (PAUSE, RESUME), keeps streaming
// the table: there is nothing of the column to leave out any more.
func TestExcludedColumnDropped(t *testing.T) {
	f := newFixture(t)
	my := myConn(t, f.db)
	myExec(t, my, "CREATE TABLE cards (id int PRIMARY KEY, owner varchar(20), card varchar(20))",
		"INSERT INTO cards VALUES (1, 'a', '4111'), (2, 'b', '4222')")
	mustExec(t, f.conn, "CREATE MIRROR ex FROM my TO dst WITH TABLE MAPPING ({from: "+f.db+".cards, to: public.cards, exclude: [card]})")
	waitStatus(t, f.conn, "ex", "RUNNING")
	cols := []col{text("id"), text("owner")}
	waitSamePG(t, f.conn, f.dst, my, "cards", "public.cards", "id", cols)

	myExec(t, my, "ALTER TABLE cards DROP COLUMN card", "INSERT INTO cards VALUES (3, 'c')")
	mustExec(t, f.conn, "PAUSE MIRROR ex")
	mustExec(t, f.conn, "RESUME MIRROR ex")
	myExec(t, my, "INSERT INTO cards VALUES (4, 'd')", "UPDATE cards SET owner = 'a2' WHERE id = 1")
	waitSamePG(t, f.conn, f.dst, my, "cards", "public.cards", "id", cols)
	waitStatus(t, f.conn, "ex", "RUNNING")
}
