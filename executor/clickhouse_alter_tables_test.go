package executor_test

import (
	"fmt"
	"testing"
)

// TestClickHouseAlterMirrorTables adds a table with its initial load to a
// mirror into ClickHouse under a write load on every table (the load
// swaps in a shadow table), with an order_by of its own, then drops
// tables: with drop_destination_table the ClickHouse table goes, without
// it stays and its changes stop.
func TestClickHouseAlterMirrorTables(t *testing.T) {
	ch := startClickHouse(t)
	f := newMirrorFixture(t)
	mustExec(t, f.conn, fmt.Sprintf("CREATE PEER ch FROM CLICKHOUSE WITH (host = '127.0.0.1', port = %d, database = 'default')", ch.Port()))
	mustExec(t, f.src, alterTablesSQL)
	mustExec(t, f.conn, "CREATE MIRROR cha FROM src TO ch WITH TABLE MAPPING (a:a, b:b)")
	f.waitStatus(t, "cha", "RUNNING")
	const pgQ = `SELECT id || '|' || v FROM %s ORDER BY id`
	const chQ = `SELECT concat(toString(id), '|', v) FROM %s FINAL WHERE _sluice_is_deleted = 0 ORDER BY id`
	waitSame(t, f.src, fmt.Sprintf(pgQ, "a"), ch, fmt.Sprintf(chQ, "a"))

	w := startWriter(t, f.srcURL, "a", "b", "c")
	mustExec(t, f.conn, "ALTER MIRROR cha ADD TABLE MAPPING ({from: c, to: c, order_by: [id]})")
	f.waitResync(t, "cha", "public.c", "done")
	w.finish(t)
	for _, tbl := range []string{"a", "b", "c"} {
		waitSame(t, f.src, fmt.Sprintf(pgQ, tbl), ch, fmt.Sprintf(chQ, tbl))
	}

	mustExec(t, f.conn, "ALTER MIRROR cha DROP TABLE b")
	mustExec(t, f.conn, "ALTER MIRROR cha DROP TABLE c WITH (drop_destination_table = true)")
	if got := chRows(t, ch, `SELECT name FROM system.tables WHERE database = 'default' AND name IN ('a', 'b', 'c') ORDER BY name`); fmt.Sprint(got) != "[a b]" {
		t.Fatalf("ClickHouse tables %v after the drops, want [a b]", got)
	}
	before := chRows(t, ch, fmt.Sprintf(chQ, "b"))
	mustExec(t, f.src, "INSERT INTO b VALUES (-1, 'after'); INSERT INTO a VALUES (-1, 'after')")
	waitSame(t, f.src, fmt.Sprintf(pgQ, "a"), ch, fmt.Sprintf(chQ, "a"))
	if after := chRows(t, ch, fmt.Sprintf(chQ, "b")); len(after) != len(before) {
		t.Fatalf("b has %d rows in ClickHouse after its drop, had %d", len(after), len(before))
	}
	if got := f.mirrorTableNames(t, "cha"); got != "public.a" {
		t.Fatalf("mirror tables %s after the drops", got)
	}
}
