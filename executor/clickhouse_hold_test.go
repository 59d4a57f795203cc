package executor_test

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/sluicedb/sluice/internal/testbed"
)

// chWaitGrows waits until ClickHouse table has more live rows than it had.
func chWaitGrows(t *testing.T, ch *testbed.ClickHouse, table string) {
	t.Helper()
	count := func() int {
		rows := chRows(t, ch, "SELECT toString(count()) FROM "+table+" FINAL WHERE _sluice_is_deleted = 0")
		n, _ := strconv.Atoi(rows[0])
		return n
	}
	before := count()
	for deadline := time.Now().Add(30 * time.Second); count() <= before; {
		if time.Now().After(deadline) {
			t.Fatalf("%s stopped receiving rows (%d)", table, before)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestClickHouseTableHold: on ClickHouse (no position per table) a table
// whose destination table is dropped fails alone while the other streams,
// and RESUME TABLE brings it back by a copy; a paused table stops while
// the other streams, and comes back the same way. Both end equal to the
// source under a write load.
func TestClickHouseTableHold(t *testing.T) {
	ch := startClickHouse(t)
	f := newMirrorFixture(t)
	mustExec(t, f.conn, fmt.Sprintf("CREATE PEER ch FROM CLICKHOUSE WITH (host = '127.0.0.1', port = %d, database = 'default')", ch.Port()))
	mustExec(t, f.src, `CREATE TABLE a (id int PRIMARY KEY, v text); CREATE TABLE b (id int PRIMARY KEY, v text);
		INSERT INTO a SELECT g, 'a' || g FROM generate_series(0, 500) g; INSERT INTO b SELECT g, 'b' || g FROM generate_series(0, 500) g`)
	mustExec(t, f.conn, "CREATE MIRROR h FROM src TO ch WITH TABLE MAPPING (a:a, b:b) WITH (sync_interval = 1)")
	f.waitStatus(t, "h", "RUNNING")
	const pgA, pgB = `SELECT id || '|' || v FROM a ORDER BY id`, `SELECT id || '|' || v FROM b ORDER BY id`
	const chA = `SELECT concat(toString(id), '|', v) FROM a FINAL WHERE _sluice_is_deleted = 0 ORDER BY id`
	const chB = `SELECT concat(toString(id), '|', v) FROM b FINAL WHERE _sluice_is_deleted = 0 ORDER BY id`
	waitSame(t, f.src, pgA, ch, chA)
	load := startTableLoad(t, f.srcURL)

	chExec(t, ch, "DROP TABLE default.a")
	reason := f.waitTable(t, "h", "public.a", "failed")
	t.Logf("reason: %s", reason)
	chWaitGrows(t, ch, "b")
	f.waitStatus(t, "h", "RUNNING")
	mustExec(t, f.conn, "RESUME MIRROR h TABLE a")
	f.waitResync(t, "h", "public.a", "done")
	f.waitTable(t, "h", "public.a", "running")
	chWaitGrows(t, ch, "a")

	mustExec(t, f.conn, "PAUSE MIRROR h TABLE b")
	f.waitTable(t, "h", "public.b", "paused")
	const chCountB = `SELECT toString(count()) FROM b FINAL`
	before := chRows(t, ch, chCountB)
	chWaitGrows(t, ch, "a")
	chWaitGrows(t, ch, "a")
	if after := chRows(t, ch, chCountB); after[0] != before[0] {
		t.Fatalf("b paused went from %s to %s rows", before[0], after[0])
	}
	mustExec(t, f.conn, "RESUME MIRROR h TABLE b")
	f.waitResync(t, "h", "public.b", "done")
	f.waitTable(t, "h", "public.b", "running")
	load.finish()
	waitSame(t, f.src, pgA, ch, chA)
	waitSame(t, f.src, pgB, ch, chB)
}
