package executor_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluicedb/sluice/internal/testbed"
)

// TestClickHouseMirrorAddColumn adds columns to a source table mirrored
// into ClickHouse, while the mirror runs and while it is paused: each is
// added on ClickHouse, rows already there read the source's default (NULL
// without one), new rows and updates carry the column, and the mirror
// stays RUNNING without an error.
func TestClickHouseMirrorAddColumn(t *testing.T) {
	ch := startClickHouse(t)
	f := newMirrorFixture(t)
	ctx := testCtx(t)
	mustExec(t, f.conn, fmt.Sprintf("CREATE PEER ch FROM CLICKHOUSE WITH (host = '127.0.0.1', port = %d, database = 'default')", ch.Port()))
	mustExec(t, f.src, `CREATE TABLE customers (id int PRIMARY KEY, name text);
		INSERT INTO customers SELECT g, 'c' || g FROM generate_series(1, 100) g`)
	mustExec(t, f.conn, `CREATE MIRROR chalt FROM src TO ch WITH TABLE MAPPING (public.customers:customers)`)
	f.waitStatus(t, "chalt", "RUNNING")
	const pgBase = `SELECT id || '|' || name FROM customers ORDER BY id`
	const chBase = `SELECT concat(toString(id), '|', name) FROM customers FINAL WHERE _sluice_is_deleted = 0 ORDER BY id`
	waitSame(t, f.src, pgBase, ch, chBase)

	// While streaming: a constant default and a nullable column without one.
	mustExec(t, f.src, `ALTER TABLE customers ADD COLUMN loyalty int DEFAULT 5;
		ALTER TABLE customers ADD COLUMN note text;
		INSERT INTO customers VALUES (101, 'new', 7, 'hello');
		UPDATE customers SET note = 'updated' WHERE id = 2;
		UPDATE customers SET loyalty = 9 WHERE id = 3`)
	const pgTwo = `SELECT id || '|' || name || '|' || coalesce(loyalty::text, 'N') || '|' || coalesce(note, 'N') FROM customers ORDER BY id`
	const chTwo = `SELECT concat(toString(id), '|', name, '|', ifNull(toString(loyalty), 'N'), '|', ifNull(note, 'N'))
		FROM customers FINAL WHERE _sluice_is_deleted = 0 ORDER BY id`
	waitCHColumn(t, f, ch, "customers", "note")
	waitSame(t, f.src, pgTwo, ch, chTwo)
	if got := chRows(t, ch, `SELECT toString(loyalty) FROM customers FINAL WHERE id = 50`); len(got) != 1 || got[0] != "5" {
		t.Fatalf("an existing row reads loyalty %q, want the source's default 5", got)
	}

	// While paused: added when the mirror starts again.
	mustExec(t, f.conn, "PAUSE MIRROR chalt")
	f.waitStatus(t, "chalt", "PAUSED")
	mustExec(t, f.src, `ALTER TABLE customers ADD COLUMN tier text NOT NULL DEFAULT 'gold';
		INSERT INTO customers VALUES (102, 'paused', 1, NULL, 'silver')`)
	mustExec(t, f.conn, "RESUME MIRROR chalt")
	const pgThree = `SELECT id || '|' || coalesce(loyalty::text, 'N') || '|' || coalesce(note, 'N') || '|' || tier FROM customers ORDER BY id`
	const chThree = `SELECT concat(toString(id), '|', ifNull(toString(loyalty), 'N'), '|', ifNull(note, 'N'), '|', tier)
		FROM customers FINAL WHERE _sluice_is_deleted = 0 ORDER BY id`
	waitCHColumn(t, f, ch, "customers", "tier")
	waitSame(t, f.src, pgThree, ch, chThree)

	// A volatile default: each source row has its own value, which no
	// change carries; existing rows read NULL on ClickHouse, and an event
	// says so. New rows carry their value.
	mustExec(t, f.src, `ALTER TABLE customers ADD COLUMN score float8 DEFAULT random();
		INSERT INTO customers (id, name, score) VALUES (103, 'scored', 0.5)`)
	waitCHColumn(t, f, ch, "customers", "score")
	waitSame(t, f.src, `SELECT coalesce(score::text, 'N') FROM customers WHERE id = 103`,
		ch, `SELECT ifNull(toString(score), 'N') FROM customers FINAL WHERE id = 103`)
	if got := chRows(t, ch, `SELECT ifNull(toString(score), 'N') FROM customers FINAL WHERE id = 1`); len(got) != 1 || got[0] != "N" {
		t.Fatalf("an existing row reads score %q, want NULL", got)
	}
	var msg string
	if err := f.conn.QueryRow(ctx, `SELECT string_agg(message, '; ') FROM mirror_events WHERE mirror = 'chalt' AND kind = 'schema'`).
		Scan(&msg); err != nil || !strings.Contains(msg, "score (existing rows: NULL)") || !strings.Contains(msg, "loyalty") {
		t.Fatalf("schema events %q, %v", msg, err)
	}

	// A dropped source column stays on ClickHouse (as on Postgres
	// destinations); rows written after it read NULL there.
	mustExec(t, f.src, `ALTER TABLE customers DROP COLUMN note; INSERT INTO customers (id, name) VALUES (104, 'after drop')`)
	waitSame(t, f.src, `SELECT id || '|N' FROM customers WHERE id >= 104 ORDER BY id`,
		ch, `SELECT concat(toString(id), '|', ifNull(note, 'N')) FROM customers FINAL WHERE id >= 104 ORDER BY id`)

	// Still running, never failed.
	time.Sleep(time.Second)
	var status, errText string
	var errors int
	if err := f.conn.QueryRow(ctx, `SELECT status, coalesce(error, ''),
		(SELECT count(*) FROM mirror_events WHERE mirror = 'chalt' AND kind = 'error') FROM mirrors WHERE name = 'chalt'`).
		Scan(&status, &errText, &errors); err != nil || status != "RUNNING" || errText != "" || errors != 0 {
		t.Fatalf("mirror %s, error %q, %d error events (%v)", status, errText, errors, err)
	}
	// A user's materialized view reading a mirrored table stops
	// drop_destination_tables up front: ClickHouse would drop the table and
	// leave the view broken.
	chExec(t, ch, "CREATE MATERIALIZED VIEW default.loyal ENGINE = Memory AS SELECT id FROM default.customers WHERE loyalty > 5")
	_, err := f.conn.Exec(ctx, "DROP MIRROR chalt WITH (drop_destination_tables = true)")
	wantRefusal(t, err, "2BP01", "materialized view `default`.`loyal`")
	f.waitStatus(t, "chalt", "RUNNING")
	chExec(t, ch, "DROP TABLE default.loyal")
	mustExec(t, f.conn, "DROP MIRROR chalt WITH (drop_destination_tables = true)")
	if got := chRows(t, ch, `SELECT name FROM system.tables WHERE database = 'default' AND name = 'customers'`); len(got) != 0 {
		t.Fatalf("drop_destination_tables left %q", got)
	}
}

// waitCHColumn waits until ClickHouse table table (in default) has column
// col.
func waitCHColumn(t *testing.T, f *mirrorFixture, ch *testbed.ClickHouse, table, col string) {
	t.Helper()
	q := fmt.Sprintf("SELECT name FROM system.columns WHERE database = 'default' AND table = '%s' AND name = '%s'", table, col)
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if len(chRows(t, ch, q)) == 1 {
			return
		}
	}
	var events string
	_ = f.conn.QueryRow(testCtx(t), "SELECT string_agg(kind || ': ' || message, E'\\n' ORDER BY at) FROM mirror_events").Scan(&events)
	t.Fatalf("ClickHouse table %s did not get column %s; events:\n%s", table, col, events)
}

// TestClickHouseMirrorTypeChange: a source column's type changes. The
// mirror does not write the new values into the old column (an int8 in an
// Int32 column would be truncated); it fails with an error naming the
// column and saying that RESYNC MIRROR rebuilds the tables, which stays
// (no "recovered" while nothing did), and RESYNC MIRROR recovers.
func TestClickHouseMirrorTypeChange(t *testing.T) {
	ch := startClickHouse(t)
	f := newMirrorFixture(t)
	ctx := testCtx(t)
	mustExec(t, f.conn, fmt.Sprintf("CREATE PEER ch FROM CLICKHOUSE WITH (host = '127.0.0.1', port = %d, database = 'default')", ch.Port()))
	mustExec(t, f.src, `CREATE TABLE c (id int PRIMARY KEY, n int); INSERT INTO c VALUES (1, 1)`)
	mustExec(t, f.conn, `CREATE MIRROR chtype FROM src TO ch WITH TABLE MAPPING (public.c:c)`)
	f.waitStatus(t, "chtype", "RUNNING")
	const pgC = `SELECT id || '|' || n FROM c ORDER BY id`
	const chC = `SELECT concat(toString(id), '|', toString(n)) FROM c FINAL WHERE _sluice_is_deleted = 0 ORDER BY id`
	waitSame(t, f.src, pgC, ch, chC)

	mustExec(t, f.src, `ALTER TABLE c ALTER COLUMN n TYPE bigint; INSERT INTO c VALUES (2, 5000000000)`)
	const want = `column "n" of public.c changed type on the source to bigint, which maps to ClickHouse Nullable(Int64), ` +
		`but "default".c has Nullable(Int32): Sluice does not follow a column's type change; ` +
		"RESYNC MIRROR chtype rebuilds the ClickHouse tables with the new types"
	var msg string
	for deadline := time.Now().Add(60 * time.Second); msg != want && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if err := f.conn.QueryRow(ctx, "SELECT coalesce(error, '') FROM mirrors WHERE name = 'chtype'").Scan(&msg); err != nil {
			t.Fatal(err)
		}
	}
	if msg != want {
		t.Fatalf("mirrors.error = %q, want %q", msg, want)
	}
	time.Sleep(3 * time.Second)
	var status string
	var recovered int
	if err := f.conn.QueryRow(ctx, `SELECT status, coalesce(error, ''), (SELECT count(*) FROM mirror_events WHERE mirror = 'chtype'
		AND kind = 'recovered' AND at > (SELECT min(at) FROM mirror_events WHERE mirror = 'chtype' AND kind = 'error' AND message = $1))
		FROM mirrors WHERE name = 'chtype'`, want).Scan(&status, &msg, &recovered); err != nil {
		t.Fatal(err)
	}
	if status != "FAILED" || msg != want || recovered != 0 {
		t.Fatalf("later: status %s, error %q, %d recovered events", status, msg, recovered)
	}
	if got := chRows(t, ch, `SELECT toString(n) FROM c FINAL WHERE id = 2`); len(got) != 0 {
		t.Fatalf("the changed column's value was written into the old column: %q", got)
	}
	mustExec(t, f.conn, "RESYNC MIRROR chtype")
	f.waitStatus(t, "chtype", "RUNNING")
	waitSame(t, f.src, pgC, ch, chC)
}

// TestClickHouseResyncAddColumn adds a column while a table resync copies
// the table: the resynced table swapped in has the column, older rows read
// the default, and rows written meanwhile keep their values.
func TestClickHouseResyncAddColumn(t *testing.T) {
	ch := startClickHouse(t)
	f := newMirrorFixture(t)
	ctx := testCtx(t)
	mustExec(t, f.conn, fmt.Sprintf("CREATE PEER ch FROM CLICKHOUSE WITH (host = '127.0.0.1', port = %d, database = 'default')", ch.Port()))
	mustExec(t, f.src, `CREATE TABLE big (id int PRIMARY KEY, v text);
		INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 300000) g`)
	mustExec(t, f.conn, `CREATE MIRROR chres FROM src TO ch WITH TABLE MAPPING (public.big:big)
		WITH (snapshot_num_rows_per_partition = 20000, snapshot_max_parallel_workers = 1)`)
	f.waitStatus(t, "chres", "RUNNING")
	const pgCount = `SELECT count(*)::text FROM big`
	const chCount = `SELECT toString(count()) FROM big FINAL WHERE _sluice_is_deleted = 0`
	waitSame(t, f.src, pgCount, ch, chCount)

	mustExec(t, f.conn, "RESYNC TABLE chres.public.big")
	// The shadow table exists and is being loaded.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var n int
		if err := f.conn.QueryRow(ctx, `SELECT count(*) FROM mirror_events WHERE mirror = 'chres' AND kind = 'resync'
			AND message LIKE 'copying%'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the resync copy did not start")
		}
	}
	mustExec(t, f.src, `ALTER TABLE big ADD COLUMN extra int DEFAULT 7;
		INSERT INTO big VALUES (300001, 'new', 1);
		UPDATE big SET extra = 2 WHERE id = 10`)
	f.waitResync(t, "chres", "public.big", "done")
	const pgSum = `SELECT count(*) || '|' || sum(extra) || '|' || min(extra) || '|' || max(extra) FROM big`
	const chSum = `SELECT concat(toString(count()), '|', toString(sum(extra)), '|', toString(min(extra)), '|', toString(max(extra)))
		FROM big FINAL WHERE _sluice_is_deleted = 0`
	waitSame(t, f.src, pgSum, ch, chSum)
	waitSame(t, f.src, `SELECT id || '|' || extra FROM big WHERE id IN (1, 10, 300001) ORDER BY id`,
		ch, `SELECT concat(toString(id), '|', toString(extra)) FROM big FINAL WHERE id IN (1, 10, 300001) ORDER BY id`)
	// The column came while the copy ran: the shadow gained it before
	// the swap.
	var during bool
	if err := f.conn.QueryRow(ctx, `SELECT (SELECT min(at) FROM mirror_events WHERE mirror = 'chres' AND kind = 'schema')
		BETWEEN (SELECT max(at) FROM mirror_events WHERE mirror = 'chres' AND kind = 'resync' AND message LIKE 'copying%')
		AND (SELECT max(at) FROM mirror_events WHERE mirror = 'chres' AND kind = 'resync' AND message LIKE 'swapped%')`).Scan(&during); err != nil {
		t.Fatal(err)
	}
	if !during {
		t.Fatal("the column was not added while the copy ran; make the table bigger")
	}
	f.waitStatus(t, "chres", "RUNNING")
}
