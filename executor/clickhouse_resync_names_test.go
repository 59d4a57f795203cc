package executor_test

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// waitMirrorResynced waits until the mirror streams again after RESYNC
// MIRROR.
func (f *mirrorFixture) waitMirrorResynced(t *testing.T, mirror string) {
	t.Helper()
	deadline := time.Now().Add(120 * time.Second)
	var status, errText string
	var resyncing bool
	for time.Now().Before(deadline) {
		err := f.conn.QueryRow(testCtx(t), "SELECT status, coalesce(error, ''), resyncing FROM mirrors WHERE name = $1", mirror).
			Scan(&status, &errText, &resyncing)
		if err == nil && status == "RUNNING" && !resyncing {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("mirror %s: status %s, resyncing %v (error %q), want RUNNING after its resync", mirror, status, resyncing, errText)
}

// chUserTables are a user's ClickHouse tables under the names a resync of
// users or acct would first think of for its temporary tables.
var chUserTables = []string{"users_resync", "users_resync_1", "users_sluice_old", "acct_sluice_old"}

// TestClickHouseResyncLeavesOtherTables is TestResyncLeavesOtherTables
// into ClickHouse: RESYNC TABLE and RESYNC MIRROR pick free names for the
// shadow and old tables and leave a user's tables of the first names, and
// the mirrored acct_resync beside acct, as they were; acct_resync keeps
// streaming.
func TestClickHouseResyncLeavesOtherTables(t *testing.T) {
	ch := startClickHouse(t)
	f := newMirrorFixture(t)
	mustExec(t, f.conn, fmt.Sprintf("CREATE PEER ch FROM CLICKHOUSE WITH (host = '127.0.0.1', port = %d, database = 'default')", ch.Port()))
	mustExec(t, f.src, `CREATE TABLE users (id int PRIMARY KEY, v text);
		CREATE TABLE acct (id int PRIMARY KEY, v text);
		CREATE TABLE acct_resync (id int PRIMARY KEY, v text);
		INSERT INTO users SELECT g, 'u' || g FROM generate_series(1, 500) g;
		INSERT INTO acct SELECT g, 'a' || g FROM generate_series(1, 300) g;
		INSERT INTO acct_resync SELECT g, 'r' || g FROM generate_series(1, 200) g`)
	for _, name := range chUserTables {
		chExec(t, ch, "CREATE TABLE default."+name+" (keep_me String) ENGINE = MergeTree ORDER BY keep_me",
			"INSERT INTO default."+name+" SELECT 'mine'")
	}
	checkUserTables := func(when string) {
		t.Helper()
		for _, name := range chUserTables {
			if got := chRows(t, ch, "SELECT keep_me FROM default."+name); strings.Join(got, ",") != "mine" {
				t.Fatalf("%s: the user's table %s has %q, want its row 'mine'", when, name, got)
			}
		}
	}
	same := func() {
		t.Helper()
		for _, tbl := range []string{"users", "acct", "acct_resync"} {
			waitSame(t, f.src, "SELECT id || '|' || v FROM "+tbl+" ORDER BY id", ch,
				"SELECT concat(toString(id), '|', v) FROM "+tbl+" FINAL WHERE _sluice_is_deleted = 0 ORDER BY id")
		}
	}
	mustExec(t, f.conn, `CREATE MIRROR chn FROM src TO ch WITH TABLE MAPPING (users:users, acct:acct, acct_resync:acct_resync)`)
	f.waitStatus(t, "chn", "RUNNING")
	same()

	for _, tbl := range []string{"users", "acct"} {
		mustExec(t, f.src, "UPDATE "+tbl+" SET v = v || '!' WHERE id % 7 = 0")
		mustExec(t, f.conn, "RESYNC TABLE chn.public."+tbl+" WITH (strategy = 'swap')")
		f.waitResync(t, "chn", "public."+tbl, "done")
		f.waitStatus(t, "chn", "RUNNING")
		checkUserTables("after RESYNC TABLE " + tbl)
		mustExec(t, f.src, "INSERT INTO acct_resync VALUES (1000 + (SELECT count(*) FROM acct_resync), 'after "+tbl+"')")
		same()
	}

	mustExec(t, f.src, "DELETE FROM acct_resync WHERE id <= 5")
	mustExec(t, f.conn, "RESYNC MIRROR chn")
	f.waitMirrorResynced(t, "chn")
	checkUserTables("after RESYNC MIRROR")
	mustExec(t, f.src, "INSERT INTO acct_resync VALUES (5000, 'after the mirror resync'); UPDATE acct SET v = 'x' WHERE id = 1")
	same()
	f.waitStatus(t, "chn", "RUNNING")
	left := chRows(t, ch, `SELECT name FROM system.tables WHERE database = 'default' AND name NOT LIKE '\_sluice\_%' ORDER BY name`)
	if got, want := strings.Join(left, ","), "acct,acct_resync,acct_sluice_old,users,users_resync,users_resync_1,users_sluice_old"; got != want {
		t.Fatalf("tables after the resyncs: %s, want %s", got, want)
	}

	mustExec(t, f.conn, "DROP MIRROR chn")
	checkUserTables("after DROP MIRROR")
}
