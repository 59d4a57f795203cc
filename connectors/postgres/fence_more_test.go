package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/postgres"
)

// The destination's writes besides batches, partitions, shadows, table
// states and swaps under the lease epoch (fence_more.go): a truncate
// resync's emptying and restoring, the keys and indexes built after a
// load, forgetting a load, removing a table. A stale epoch's write is
// refused with a FencedError and changes nothing; the current epoch's goes
// through.

// wantFenced fails t unless err is a FencedError of epoch against
// recorded.
func wantFenced(t *testing.T, what string, err error, epoch, recorded int64) {
	t.Helper()
	var fe *connectors.FencedError
	if !errors.Is(err, connectors.ErrFenced) || !errors.As(err, &fe) || fe.Epoch != epoch || fe.Recorded != recorded {
		t.Fatalf("%s = %v; want a FencedError %d < %d", what, err, epoch, recorded)
	}
}

// overtaken runs op while table is locked by another session, claims the
// mirror with claim once op waits for that lock (so op passed its first
// epoch check and is in the middle of its build), then lets op go on and
// returns its error: the check just before op's commit must refuse it.
func overtaken(t *testing.T, url string, table connectors.TableName, claim func() error, op func() error) error {
	t.Helper()
	ctx := testCtx(t)
	locker := connect(t, url)
	tx, err := locker.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, "LOCK TABLE "+table.Quoted()+" IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- op() }()
	watch := connect(t, url)
	for deadline := time.Now().Add(20 * time.Second); ; {
		var waiting bool
		if err := watch.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_locks WHERE relation = $1::regclass AND NOT granted)",
			table.Quoted()).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("the build ended (%v) before it waited for the lock on %s", err, table)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the build never waited for the lock on %s", table)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := claim(); err != nil {
		t.Fatalf("the claim during the build: %v", err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	return <-done
}

// queryString returns the text that sql, with args, selects.
func queryString(t *testing.T, q postgres.Querier, sql string, args ...any) string {
	t.Helper()
	var s string
	if err := q.QueryRow(testCtx(t), sql, args...).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

// indexesOf lists table's indexes by name, comma-separated.
const indexesOf = "SELECT coalesce(string_agg(indexname, ',' ORDER BY indexname), '') FROM pg_indexes WHERE schemaname = 'public' AND tablename = $1"

// A truncate resync's Empty and Restore of a stale epoch are refused and
// change nothing: the rows, indexes and foreign keys stay (Empty), nothing
// is rebuilt (Restore), also when the claim comes in the middle of the
// rebuild; the current epoch's go through.
func TestFenceEmptyRestore(t *testing.T) {
	ctx := testCtx(t)
	url := dstCluster.NewDB(t)
	conn := connect(t, url)
	mustExec(t, conn, `CREATE TABLE users (id int PRIMARY KEY, v text); CREATE INDEX users_v ON users (v);
CREATE TABLE orders (id int PRIMARY KEY, user_id int REFERENCES users);
INSERT INTO users SELECT g, 'v' || g FROM generate_series(1, 3) g; INSERT INTO orders VALUES (1, 1)`)
	users := publicTable("users")
	dt := connectors.DestTable{Source: users, Dest: users, Schema: usersSchema("users")}
	stale, owner, next := openDest(t, url, "", "m"), openDest(t, url, "", "m"), openDest(t, url, "", "m")
	if _, err := stale.Fence(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := owner.Fence(ctx, 2); err != nil {
		t.Fatal(err)
	}
	fks := "SELECT count(*)::text FROM pg_constraint WHERE contype = 'f'"
	st := connectors.TableState{Table: users, Stage: connectors.StageCopy, Strategy: "truncate"}

	_, err := stale.Empty(ctx, users, st)
	wantFenced(t, "stale Empty", err, 1, 2)
	wantRows(t, conn, "SELECT count(*)::text FROM users", "3")
	wantRows(t, conn, fks, "1")
	if got := queryString(t, conn, indexesOf, "users"); got != "users_pkey,users_v" {
		t.Fatalf("indexes of users after the stale Empty: %q", got)
	}
	if states, err := owner.TableStates(ctx); err != nil || len(states) != 0 {
		t.Fatalf("table states after the stale Empty: %v, %v; want none", states, err)
	}

	saved, err := owner.Empty(ctx, users, st)
	if err != nil {
		t.Fatalf("the current epoch's Empty: %v", err)
	}
	wantRows(t, conn, "SELECT count(*)::text FROM users", "0")
	wantRows(t, conn, fks, "0")
	mustExec(t, conn, `INSERT INTO users SELECT g, 'v' || g FROM generate_series(1, 3) g`) // the reload

	wantFenced(t, "stale Restore", stale.Restore(ctx, dt, saved), 1, 2)
	err = overtaken(t, url, users, func() error { _, err := next.Fence(ctx, 3); return err },
		func() error { return owner.Restore(ctx, dt, saved) })
	wantFenced(t, "Restore overtaken by a claim", err, 2, 3)
	if got := queryString(t, conn, indexesOf, "users"); got != "" {
		t.Fatalf("indexes of users after the refused Restores: %q, want none", got)
	}
	wantRows(t, conn, fks, "0")

	// The claim comes as the foreign key is added (its step checked the
	// epoch and holds the metadata row): the claim ends that session, and
	// the foreign key is not added. The indexes and key, built before the
	// claim under the epoch then current, stay.
	last := openDest(t, url, "", "m")
	err = overtaken(t, url, publicTable("orders"), func() error { _, err := last.Fence(ctx, 4); return err },
		func() error { return next.Restore(ctx, dt, saved) })
	if err == nil {
		t.Fatal("Restore overtaken by a claim as it adds the foreign key: no error")
	}
	wantRows(t, conn, fks, "0")

	if err := last.Restore(ctx, dt, saved); err != nil {
		t.Fatalf("the current epoch's Restore: %v", err)
	}
	if got := queryString(t, conn, indexesOf, "users"); got != "users_pkey,users_v" {
		t.Fatalf("indexes of users after the Restore: %q", got)
	}
	wantRows(t, conn, fks, "1")
}

// The key and indexes built around a load (PrepareUpsert, FinishLoad) of a
// stale epoch are refused and build nothing, on a table loaded in place and on a shadow
// table, also when the claim comes in the middle of the build; the current
// epoch's are built.
func TestFenceFinishLoad(t *testing.T) {
	ctx := testCtx(t)
	url := dstCluster.NewDB(t)
	conn := connect(t, url)
	mustExec(t, conn, `CREATE TABLE items (id int PRIMARY KEY, v text); CREATE INDEX items_v ON items (v)`)
	users, items := publicTable("users"), publicTable("items")
	du := connectors.DestTable{Source: users, Dest: users, Schema: usersSchema("users")}
	di := connectors.DestTable{Source: items, Dest: items, Schema: usersSchema("items")}
	stale, owner, next := openDest(t, url, "", "m"), openDest(t, url, "", "m"), openDest(t, url, "", "m")
	if _, err := stale.Fence(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := stale.CreateTable(ctx, du); err != nil { // without its key, built after the load
		t.Fatal(err)
	}
	shadow, err := stale.CreateShadow(ctx, di, nil)
	if err != nil {
		t.Fatal(err)
	}
	ds := di
	ds.Dest = shadow
	if _, err := owner.Fence(ctx, 2); err != nil {
		t.Fatal(err)
	}

	wantFenced(t, "stale PrepareUpsert", stale.PrepareUpsert(ctx, du), 1, 2)
	wantFenced(t, "stale FinishLoad in place", stale.FinishLoad(ctx, du, users), 1, 2)
	wantFenced(t, "stale FinishLoad of a shadow", stale.FinishLoad(ctx, ds, items), 1, 2)
	err = overtaken(t, url, users, func() error { _, err := next.Fence(ctx, 3); return err },
		func() error { return owner.FinishLoad(ctx, du, users) })
	wantFenced(t, "FinishLoad overtaken by a claim", err, 2, 3)
	if got := queryString(t, conn, indexesOf, "users"); got != "" {
		t.Fatalf("indexes of users after the refused builds: %q, want none", got)
	}
	if got := queryString(t, conn, indexesOf, shadow.Name); got != "" {
		t.Fatalf("indexes of shadow %s after the refused build: %q, want none", shadow, got)
	}

	if err := next.FinishLoad(ctx, du, users); err != nil {
		t.Fatalf("the current epoch's FinishLoad in place: %v", err)
	}
	if err := next.FinishLoad(ctx, ds, items); err != nil {
		t.Fatalf("the current epoch's FinishLoad of the shadow: %v", err)
	}
	if got := queryString(t, conn, indexesOf, "users"); got != "users_pkey" {
		t.Fatalf("indexes of users after FinishLoad: %q, want its key", got)
	}
	if n := queryInt64(t, conn, "SELECT count(*) FROM pg_indexes WHERE schemaname = 'public' AND tablename = $1", shadow.Name); n != 2 {
		t.Fatalf("shadow %s has %d indexes after FinishLoad, want the live table's 2", shadow, n)
	}
}

// Forgetting a load (ForgetLoad, of a table and of the whole mirror) under
// a stale epoch is refused and forgets nothing; the current epoch's
// forgets the partitions, and with the zero name the position, and keeps
// the epoch.
func TestFenceForgetLoad(t *testing.T) {
	ctx := testCtx(t)
	url := dstCluster.NewDB(t)
	conn := connect(t, url)
	users := publicTable("users")
	stale, owner := openDest(t, url, "", "m"), openDest(t, url, "", "m")
	if _, err := stale.Fence(ctx, 1); err != nil {
		t.Fatal(err)
	}
	pos := postgres.LSNPosition(0x100)
	record := func() {
		mustExec(t, conn, `INSERT INTO _sluice.snapshot_partitions (mirror, source_table, partition, rows) VALUES ('m', 'public.users', 0, 10)
ON CONFLICT DO NOTHING`)
		mustExec(t, conn, `UPDATE _sluice.mirror_state SET position = $1, lsn = 256 WHERE mirror = 'm'`, string(pos))
	}
	record()
	if _, err := owner.Fence(ctx, 2); err != nil {
		t.Fatal(err)
	}
	kept := func(when string) {
		t.Helper()
		if done, err := owner.Loaded(ctx, users); err != nil || len(done) != 1 {
			t.Fatalf("%s: Loaded = %v, %v; want the partition kept", when, done, err)
		}
		if got, err := owner.Applied(ctx); err != nil || got != pos {
			t.Fatalf("%s: Applied = %q, %v; want %q kept", when, got, err, pos)
		}
	}

	wantFenced(t, "stale ForgetLoad of a table", stale.ForgetLoad(ctx, users), 1, 2)
	kept("after the stale ForgetLoad of a table")
	wantFenced(t, "stale ForgetLoad of the mirror", stale.ForgetLoad(ctx, connectors.TableName{}), 1, 2)
	kept("after the stale ForgetLoad of the mirror")

	if err := owner.ForgetLoad(ctx, users); err != nil {
		t.Fatalf("the current epoch's ForgetLoad of a table: %v", err)
	}
	if done, err := owner.Loaded(ctx, users); err != nil || len(done) != 0 {
		t.Fatalf("Loaded after ForgetLoad = %v, %v; want none", done, err)
	}
	record()
	if err := owner.ForgetLoad(ctx, connectors.TableName{}); err != nil {
		t.Fatalf("the current epoch's ForgetLoad of the mirror: %v", err)
	}
	if done, err := owner.Loaded(ctx, users); err != nil || len(done) != 0 {
		t.Fatalf("Loaded after ForgetLoad of the mirror = %v, %v; want none", done, err)
	}
	if got, err := owner.Applied(ctx); err != nil || got != "" {
		t.Fatalf("Applied after ForgetLoad of the mirror = %q, %v; want none", got, err)
	}
	if e, err := postgres.Epoch(ctx, conn, "", "m"); err != nil || e != 2 {
		t.Fatalf("epoch after ForgetLoad of the mirror = %d, %v; want 2 kept", e, err)
	}
}

// Removing a table from the mirror (RemoveTable, ALTER MIRROR ... DROP
// TABLE) under a stale epoch is refused and changes nothing: the table,
// its partitions, its resync state and its shadow stay; the current
// epoch's removes them.
func TestFenceRemoveTable(t *testing.T) {
	ctx := testCtx(t)
	url := dstCluster.NewDB(t)
	conn := connect(t, url)
	mustExec(t, conn, `CREATE TABLE users (id int PRIMARY KEY, v text); INSERT INTO users VALUES (1, 'live')`)
	users := publicTable("users")
	dt := connectors.DestTable{Source: users, Dest: users, Schema: usersSchema("users")}
	stale, owner := openDest(t, url, "", "m"), openDest(t, url, "", "m")
	if _, err := stale.Fence(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := stale.PutTableState(ctx, connectors.TableState{Table: users, Stage: connectors.StageCopy, Strategy: "swap"}); err != nil {
		t.Fatal(err)
	}
	if _, err := stale.CreateShadow(ctx, dt, nil); err != nil {
		t.Fatal(err)
	}
	mustExec(t, conn, `INSERT INTO _sluice.snapshot_partitions (mirror, source_table, partition, rows) VALUES ('m', 'public.users', 0, 1)`)
	if _, err := owner.Fence(ctx, 2); err != nil {
		t.Fatal(err)
	}
	state := func(want int) {
		t.Helper()
		if done, err := owner.Loaded(ctx, users); err != nil || len(done) != want {
			t.Fatalf("Loaded = %v, %v; want %d partition(s)", done, err, want)
		}
		if states, err := owner.TableStates(ctx); err != nil || len(states) != want {
			t.Fatalf("TableStates = %v, %v; want %d", states, err, want)
		}
		if shadows, err := owner.Shadows(ctx); err != nil || len(shadows) != want {
			t.Fatalf("Shadows = %v, %v; want %d", shadows, err, want)
		}
	}

	wantFenced(t, "stale RemoveTable", stale.RemoveTable(ctx, users, users, true), 1, 2)
	wantRows(t, conn, "SELECT v FROM users", "live")
	state(1)

	if err := owner.RemoveTable(ctx, users, users, true); err != nil {
		t.Fatalf("the current epoch's RemoveTable: %v", err)
	}
	if exists, err := owner.TableExists(ctx, users); err != nil || exists {
		t.Fatalf("users exists after RemoveTable with drop: %v, %v", exists, err)
	}
	state(0)
}

// The source's indexes and foreign keys (IndexCreator, replicate_indexes
// and replicate_foreign_keys) made under a stale epoch are refused and
// made nowhere; the current epoch's are made.
func TestFenceCreateIndexes(t *testing.T) {
	ctx := testCtx(t)
	url := dstCluster.NewDB(t)
	conn := connect(t, url)
	mustExec(t, conn, `CREATE TABLE users (id int PRIMARY KEY, v text); CREATE TABLE orders (id int PRIMARY KEY, user_id int)`)
	users, orders := publicTable("users"), publicTable("orders")
	stale, owner := openDest(t, url, "", "m"), openDest(t, url, "", "m")
	if _, err := stale.Fence(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := owner.Fence(ctx, 2); err != nil {
		t.Fatal(err)
	}
	ix := []string{"CREATE INDEX IF NOT EXISTS users_v ON users (v)"}
	fk := []string{"ALTER TABLE orders ADD CONSTRAINT orders_user FOREIGN KEY (user_id) REFERENCES users"}
	wantFenced(t, "stale CreateIndexes", stale.CreateIndexes(ctx, users, ix), 1, 2)
	wantFenced(t, "stale CreateForeignKeys", stale.CreateForeignKeys(ctx, orders, fk), 1, 2)
	if got := queryString(t, conn, indexesOf, "users"); got != "users_pkey" {
		t.Fatalf("indexes of users after the stale CreateIndexes: %q", got)
	}
	wantRows(t, conn, "SELECT count(*)::text FROM pg_constraint WHERE contype = 'f'", "0")

	if err := owner.CreateIndexes(ctx, users, ix); err != nil {
		t.Fatalf("the current epoch's CreateIndexes: %v", err)
	}
	if err := owner.CreateForeignKeys(ctx, orders, fk); err != nil {
		t.Fatalf("the current epoch's CreateForeignKeys: %v", err)
	}
	if got := queryString(t, conn, indexesOf, "users"); got != "users_pkey,users_v" {
		t.Fatalf("indexes of users after CreateIndexes: %q", got)
	}
	wantRows(t, conn, "SELECT count(*)::text FROM pg_constraint WHERE contype = 'f'", "1")
}
