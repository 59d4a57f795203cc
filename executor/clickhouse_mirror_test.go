package executor_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"
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
