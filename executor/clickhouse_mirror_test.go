package executor_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
)

// TestClickHouseMirror mirrors two tables into ClickHouse (one with its
// own ORDER BY), then streams inserts, updates (one leaving a TOAST value
// unchanged, one changing the key), deletes and a truncate; the FINAL view
// without deleted rows equals the source.
func TestClickHouseMirror(t *testing.T) {
	ch := startClickHouse(t)
	f := newMirrorFixture(t)
	mustExec(t, f.conn, fmt.Sprintf("CREATE PEER ch FROM CLICKHOUSE WITH (host = '127.0.0.1', port = %d, database = 'default')", ch.Port()))
	mustExec(t, f.src, `
CREATE TABLE orders (id bigint PRIMARY KEY, item text, price numeric(12,2), big text);
ALTER TABLE orders ALTER COLUMN big SET STORAGE EXTERNAL;
INSERT INTO orders SELECT g, 'item ' || g, g * 1.25, repeat(md5(g::text), 100) FROM generate_series(1, 3000) g;
CREATE TABLE users (tenant_id int NOT NULL, id int, name text, PRIMARY KEY (id));
INSERT INTO users SELECT g % 7, g, 'user ' || g FROM generate_series(1, 500) g;`)
	mustExec(t, f.conn, `CREATE MIRROR chm FROM src TO ch WITH TABLE MAPPING
		(public.orders:orders, {from: public.users, to: users, order_by: [tenant_id, id]})
		WITH (do_initial_copy = true, snapshot_num_rows_per_partition = 500)`)
	f.waitStatus(t, "chm", "RUNNING")

	const pgOrders = `SELECT id || '|' || item || '|' || price || '|' || md5(big) FROM orders ORDER BY id`
	const chOrders = `SELECT concat(toString(id), '|', item, '|', toString(price), '|', lower(hex(MD5(big)))) FROM orders FINAL WHERE _sluice_is_deleted = 0 ORDER BY id`
	const pgUsers = `SELECT tenant_id || '|' || id || '|' || name FROM users ORDER BY id`
	const chUsers = `SELECT concat(toString(tenant_id), '|', toString(id), '|', name) FROM users FINAL WHERE _sluice_is_deleted = 0 ORDER BY id`
	waitSame(t, f.src, pgOrders, ch, chOrders)
	waitSame(t, f.src, pgUsers, ch, chUsers)
	if key := chRows(t, ch, `SELECT sorting_key FROM system.tables WHERE database = 'default' AND name = 'users'`); len(key) != 1 || key[0] != "tenant_id, id" {
		t.Fatalf("users sorting key %q, want tenant_id, id", key)
	}

	mustExec(t, f.src, `
INSERT INTO orders VALUES (5000, 'new', 9.99, 'small');
UPDATE orders SET price = price + 1 WHERE id <= 100;          -- big unchanged (TOAST)
UPDATE orders SET id = 6000 WHERE id = 200;                    -- key change
DELETE FROM orders WHERE id BETWEEN 300 AND 310;
UPDATE users SET name = 'renamed' WHERE id = 1;
DELETE FROM users WHERE id = 2;`)
	waitSame(t, f.src, pgOrders, ch, chOrders)
	waitSame(t, f.src, pgUsers, ch, chUsers)
	// A delete keeps the key and the last values, marked deleted.
	if got := chRows(t, ch, `SELECT item FROM orders FINAL WHERE id = 305 AND _sluice_is_deleted = 1`); len(got) != 1 || got[0] != "item 305" {
		t.Fatalf("deleted row 305: %q", got)
	}
	mustExec(t, f.src, `TRUNCATE users`)
	waitSame(t, f.src, pgUsers, ch, chUsers)

	// Pause, change, resume: nothing is lost.
	mustExec(t, f.conn, "PAUSE MIRROR chm")
	mustExec(t, f.src, `UPDATE orders SET item = 'while paused' WHERE id % 10 = 0`)
	mustExec(t, f.conn, "RESUME MIRROR chm")
	waitSame(t, f.src, pgOrders, ch, chOrders)

	// Resyncs: a new sorting key for users, remembered; orders keeps its
	// deleted rows. Changes made meanwhile arrive.
	mustExec(t, f.src, `INSERT INTO users SELECT g % 5, g, 'again ' || g FROM generate_series(1, 300) g`)
	waitSame(t, f.src, pgUsers, ch, chUsers)
	mustExec(t, f.conn, "RESYNC TABLE chm.public.users WITH (strategy = 'swap', order_by = 'id')")
	mustExec(t, f.conn, "RESYNC TABLE chm.orders")
	mustExec(t, f.src, `UPDATE users SET name = 'during' WHERE id < 20; UPDATE orders SET item = 'during' WHERE id < 20`)
	f.waitResync(t, "chm", "public.users", "done")
	f.waitResync(t, "chm", "public.orders", "done")
	waitSame(t, f.src, pgUsers, ch, chUsers)
	waitSame(t, f.src, pgOrders, ch, chOrders)
	if key := chRows(t, ch, `SELECT sorting_key FROM system.tables WHERE database = 'default' AND name = 'users'`); len(key) != 1 || key[0] != "id" {
		t.Fatalf("users sorting key after the resync %q, want id", key)
	}
	var orderBy string
	if err := f.conn.QueryRow(testCtx(t), `SELECT array_to_string(order_by, ',') FROM mirror_tables WHERE source_table = 'public.users'`).Scan(&orderBy); err != nil || orderBy != "id" {
		t.Fatalf("mirror_tables.order_by = %q (%v), want the new key remembered", orderBy, err)
	}
	if got := chRows(t, ch, `SELECT item FROM orders FINAL WHERE id = 305 AND _sluice_is_deleted = 1`); len(got) != 1 || got[0] != "item 305" {
		t.Fatalf("deleted row 305 after the resync: %q", got)
	}
	if left := chRows(t, ch, `SELECT name FROM system.tables WHERE database = 'default' AND (name LIKE '%_resync' OR name LIKE '%_sluice_old')`); len(left) != 0 {
		t.Fatalf("tables left behind: %q", left)
	}
	_, err := f.conn.Exec(testCtx(t), "RESYNC TABLE chm.public.users WITH (order_by = 'name')")
	wantError(t, err, pgerrcode.InvalidParameterValue)

	// The whole mirror: new slot, shadow tables, deleted rows carried, one
	// RENAME; the remembered sorting key stays.
	mustExec(t, f.conn, "RESYNC MIRROR chm")
	mustExec(t, f.src, `UPDATE orders SET item = 'during the full resync' WHERE id BETWEEN 20 AND 40`)
	deadline := time.Now().Add(90 * time.Second)
	for {
		var status string
		var resyncing bool
		if err := f.conn.QueryRow(testCtx(t), "SELECT status, resyncing FROM mirrors WHERE name = 'chm'").Scan(&status, &resyncing); err != nil {
			t.Fatal(err)
		}
		if status == "RUNNING" && !resyncing {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("full resync: status %s, resyncing %v", status, resyncing)
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitSame(t, f.src, pgUsers, ch, chUsers)
	waitSame(t, f.src, pgOrders, ch, chOrders)
	if got := chRows(t, ch, `SELECT item FROM orders FINAL WHERE id = 305 AND _sluice_is_deleted = 1`); len(got) != 1 || got[0] != "item 305" {
		t.Fatalf("deleted row 305 after the full resync: %q", got)
	}
	if key := chRows(t, ch, `SELECT sorting_key FROM system.tables WHERE database = 'default' AND name = 'users'`); len(key) != 1 || key[0] != "id" {
		t.Fatalf("users sorting key after the full resync %q, want id", key)
	}
	if left := chRows(t, ch, `SELECT name FROM system.tables WHERE database = 'default' AND (name LIKE '%_resync' OR name LIKE '%_sluice_old')`); len(left) != 0 {
		t.Fatalf("tables left behind: %q", left)
	}
}

// TestClickHouseKillAndRestart kills sluice mid-load and mid-CDC of a
// mirror into ClickHouse, under a pgbench workload: the FINAL view
// converges to the source.
func TestClickHouseKillAndRestart(t *testing.T) {
	ch := startClickHouse(t)
	p := startProcess(t)
	srcURL := peerCluster.NewDB(t)
	src := connect(t, srcURL)
	pgbench(t, srcURL, "-i", "-s", "3", "-q")
	conn := connect(t, p.URL())
	mustExec(t, conn, "CREATE PEER src FROM POSTGRES WITH ("+peerOptions(srcURL)+")")
	mustExec(t, conn, fmt.Sprintf("CREATE PEER ch FROM CLICKHOUSE WITH (host = '127.0.0.1', port = %d)", ch.Port()))
	load := make(chan struct{})
	go func() {
		defer close(load)
		pgbench(t, srcURL, "-n", "-c", "2", "-T", "15")
	}()
	mustExec(t, conn, `CREATE MIRROR chk FROM src TO ch WITH TABLE MAPPING (pgbench_accounts:pgbench_accounts, pgbench_tellers:pgbench_tellers)
		WITH (snapshot_num_rows_per_partition = 10000, snapshot_max_parallel_workers = 1, max_batch_size = 500)`)
	conn.Close(context.Background())
	waitFor(t, p, "a partly done load", func(c *pgx.Conn) bool {
		var done int
		err := c.QueryRow(context.Background(), `SELECT partitions_done FROM mirror_tables
			WHERE mirror = 'chk' AND source_table = 'public.pgbench_accounts'`).Scan(&done)
		return err == nil && done >= 3
	})
	p.Kill()
	p.Start()
	waitFor(t, p, "streaming", func(c *pgx.Conn) bool {
		var status string
		err := c.QueryRow(context.Background(), `SELECT status FROM mirrors WHERE name = 'chk'`).Scan(&status)
		return err == nil && status == "RUNNING"
	})
	for range 2 {
		time.Sleep(1500 * time.Millisecond)
		p.Kill()
		p.Start()
	}
	<-load
	waitSame(t, src, `SELECT aid || '|' || bid || '|' || abalance FROM pgbench_accounts ORDER BY aid`, ch,
		`SELECT concat(toString(aid), '|', toString(bid), '|', toString(abalance)) FROM pgbench_accounts FINAL WHERE _sluice_is_deleted = 0 ORDER BY aid`)
	waitSame(t, src, `SELECT tid || '|' || tbalance FROM pgbench_tellers ORDER BY tid`, ch,
		`SELECT concat(toString(tid), '|', toString(tbalance)) FROM pgbench_tellers FINAL WHERE _sluice_is_deleted = 0 ORDER BY tid`)
}

// TestClickHouseKillDuringResync kills sluice in the middle of each kind of
// resync into ClickHouse (a table with each strategy, then the whole
// mirror), under a pgbench workload: every resync finishes after the
// restart, the FINAL view equals the source, rows deleted before the
// resyncs stay marked deleted (in the column soft_delete_col_name names),
// and no shadow or old table is left.
func TestClickHouseKillDuringResync(t *testing.T) {
	ch := startClickHouse(t)
	p := startProcess(t)
	srcURL := peerCluster.NewDB(t)
	src := connect(t, srcURL)
	pgbench(t, srcURL, "-i", "-s", "3", "-q")
	mustExec(t, src, `DELETE FROM pgbench_accounts WHERE aid BETWEEN 100 AND 109`)
	conn := connect(t, p.URL())
	mustExec(t, conn, "CREATE PEER src FROM POSTGRES WITH ("+peerOptions(srcURL)+")")
	mustExec(t, conn, fmt.Sprintf("CREATE PEER ch FROM CLICKHOUSE WITH (host = '127.0.0.1', port = %d)", ch.Port()))
	mustExec(t, conn, `CREATE MIRROR chr FROM src TO ch WITH TABLE MAPPING (pgbench_accounts:pgbench_accounts, pgbench_tellers:pgbench_tellers)
		WITH (snapshot_num_rows_per_partition = 10000, snapshot_max_parallel_workers = 1,
		      soft_delete_col_name = 'gone', synced_at_col_name = 'synced')`)
	conn.Close(context.Background())
	status := func(c *pgx.Conn) (mirror, resync string, resyncing bool, done int) {
		_ = c.QueryRow(context.Background(), `SELECT m.status, coalesce(t.resync_status, ''), m.resyncing, t.partitions_done
			FROM mirrors m JOIN mirror_tables t ON t.mirror = m.name
			WHERE m.name = 'chr' AND t.source_table = 'public.pgbench_accounts'`).Scan(&mirror, &resync, &resyncing, &done)
		return
	}
	waitFor(t, p, "streaming", func(c *pgx.Conn) bool { m, _, _, _ := status(c); return m == "RUNNING" })
	// Rows deleted while streaming: they must stay marked deleted through
	// every resync.
	mustExec(t, src, `DELETE FROM pgbench_accounts WHERE aid BETWEEN 200 AND 209`)

	load := make(chan struct{})
	go func() {
		defer close(load)
		pgbench(t, srcURL, "-n", "-c", "2", "-T", "30")
	}()
	for _, stmt := range []string{
		"RESYNC TABLE chr.pgbench_accounts WITH (strategy = 'swap', order_by = 'aid')",
		"RESYNC TABLE chr.pgbench_accounts WITH (strategy = 'truncate')",
		"RESYNC MIRROR chr",
	} {
		c := connect(t, p.URL())
		mustExec(t, c, stmt)
		c.Close(context.Background())
		full := strings.HasPrefix(stmt, "RESYNC MIRROR")
		waitFor(t, p, "a partly done copy after "+stmt, func(c *pgx.Conn) bool {
			_, resync, resyncing, done := status(c)
			return (resync == "in_progress" || full && resyncing) && done >= 3
		})
		p.Kill()
		p.Start()
		waitFor(t, p, "the resync done after "+stmt, func(c *pgx.Conn) bool {
			m, resync, resyncing, _ := status(c)
			return m == "RUNNING" && !resyncing && (full || resync == "done")
		})
	}
	<-load
	waitSame(t, src, `SELECT aid || '|' || bid || '|' || abalance FROM pgbench_accounts ORDER BY aid`, ch,
		`SELECT concat(toString(aid), '|', toString(bid), '|', toString(abalance)) FROM pgbench_accounts FINAL WHERE gone = 0 ORDER BY aid`)
	waitSame(t, src, `SELECT tid || '|' || tbalance FROM pgbench_tellers ORDER BY tid`, ch,
		`SELECT concat(toString(tid), '|', toString(tbalance)) FROM pgbench_tellers FINAL WHERE gone = 0 ORDER BY tid`)
	if got := chRows(t, ch, `SELECT toString(count()) FROM pgbench_accounts FINAL WHERE gone = 1`); len(got) != 1 || got[0] != "10" {
		t.Fatalf("rows marked deleted after the resyncs: %q, want the 10 deleted while streaming", got)
	}
	if cols := chRows(t, ch, `SELECT name FROM system.columns WHERE database = 'default' AND table = 'pgbench_accounts'
		AND name NOT IN ('aid', 'bid', 'abalance', 'filler') ORDER BY name`); strings.Join(cols, ",") != "_sluice_version,gone,synced" {
		t.Fatalf("Sluice's columns after the resyncs: %q, want _sluice_version,gone,synced", cols)
	}
	if left := chRows(t, ch, `SELECT name FROM system.tables WHERE database = 'default' AND (name LIKE '%_resync' OR name LIKE '%_sluice_old')`); len(left) != 0 {
		t.Fatalf("tables left behind: %q", left)
	}
	var slots int
	if err := src.QueryRow(context.Background(), `SELECT count(*) FROM pg_replication_slots WHERE database = current_database()`).Scan(&slots); err != nil || slots != 1 {
		t.Fatalf("%d replication slots on the source, want the mirror's one (%v)", slots, err)
	}
}

// TestClickHouseKillDuringLargeTransaction: kill -9 while Sluice writes one
// source transaction far larger than it keeps in memory into ClickHouse
// (written in blocks as it comes, before the position is recorded at its
// end): after the restart the source sends it again, the same rows with
// the same versions, and the FINAL view ends equal to the source.
func TestClickHouseKillDuringLargeTransaction(t *testing.T) {
	ch := startClickHouse(t)
	p := startProcess(t)
	srcURL := peerCluster.NewDB(t)
	src := connect(t, srcURL)
	pgbench(t, srcURL, "-i", "-s", "2", "-q")
	conn := connect(t, p.URL())
	mustExec(t, conn, "CREATE PEER src FROM POSTGRES WITH ("+peerOptions(srcURL)+")")
	mustExec(t, conn, fmt.Sprintf("CREATE PEER ch FROM CLICKHOUSE WITH (host = '127.0.0.1', port = %d)", ch.Port()))
	mustExec(t, conn, `CREATE MIRROR chbig FROM src TO ch WITH TABLE MAPPING (pgbench_accounts:pgbench_accounts)
		WITH (max_batch_size = 10000)`)
	conn.Close(context.Background())
	const pgQuery = `SELECT aid || '|' || bid || '|' || abalance || '|' || rtrim(filler) FROM pgbench_accounts ORDER BY aid`
	const chQuery = `SELECT concat(toString(aid), '|', toString(bid), '|', toString(abalance), '|', replaceRegexpOne(filler, ' +$', ''))
		FROM pgbench_accounts FINAL WHERE _sluice_is_deleted = 0 ORDER BY aid`
	waitSame(t, src, pgQuery, ch, chQuery)

	for i, step := range []struct{ sql, written string }{
		{`UPDATE pgbench_accounts SET abalance = abalance + 7, filler = 'big' || aid`,
			`SELECT toString(count()) FROM pgbench_accounts WHERE abalance = 7`},
		{`BEGIN; UPDATE pgbench_accounts SET aid = aid + 1000000 WHERE aid % 10 = 0;
		 INSERT INTO pgbench_accounts SELECT g, 1, g, 'new' FROM generate_series(2000001, 2150000) g;
		 DELETE FROM pgbench_accounts WHERE aid % 7 = 0; COMMIT`,
			`SELECT toString(count()) FROM pgbench_accounts WHERE aid > 1000000`},
	} {
		mustExec(t, src, step.sql)
		deadline := time.Now().Add(time.Minute)
		for {
			if rows := chRows(t, ch, step.written); len(rows) == 1 && rows[0] != "0" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("step %d: no row of the transaction written", i)
			}
			time.Sleep(10 * time.Millisecond)
		}
		p.Kill()
		p.Start()
	}
	waitSame(t, src, pgQuery, ch, chQuery)
}
