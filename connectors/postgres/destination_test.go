package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/postgres"
)

// destPeer returns the peer of the database at url, with metadata schema
// meta ("" for the default).
func destPeer(t *testing.T, url, meta string) *postgres.PeerConfig {
	t.Helper()
	cfg, err := pgconn.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	return &postgres.PeerConfig{Host: cfg.Host, Port: int(cfg.Port), User: cfg.User, Password: cfg.Password,
		Database: cfg.Database, MetadataSchema: meta, TLSOptions: connectors.TLSOptions{DisableTLS: true}}
}

// openDest opens the destination at url for mirror, closed when the test
// ends.
func openDest(t *testing.T, url, meta, mirror string) *postgres.Destination {
	t.Helper()
	var p connectors.DestinationPeer = destPeer(t, url, meta)
	d, err := p.OpenDestination(testCtx(t), "sluice-test", mirror)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(context.Background()) })
	return d.(*postgres.Destination)
}

// fakeReader is a connectors.PartitionReader made of functions.
type fakeReader struct {
	read func(ctx context.Context, table connectors.TableName, ts *connectors.TableSchema, part connectors.Partition, batch int,
		fn func(rows [][]connectors.Value) error, progress func(rows int64)) (int64, error)
}

func (f fakeReader) Read(ctx context.Context, table connectors.TableName, ts *connectors.TableSchema, part connectors.Partition,
	batch int, fn func(rows [][]connectors.Value) error, progress func(rows int64)) (int64, error) {
	return f.read(ctx, table, ts, part, batch, fn, progress)
}

func (f fakeReader) Close(context.Context) error { return nil }

// valuesReader is a fakeReader that reads partitions as values
// (ReadPartition) on a new connection to srcURL under snapshot.
func valuesReader(t *testing.T, srcURL, snapshot string) fakeReader {
	t.Helper()
	conn := connect(t, srcURL)
	tx, err := postgres.BeginSnapshot(testCtx(t), conn, snapshot)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback(context.Background()) })
	return fakeReader{read: func(ctx context.Context, table connectors.TableName, ts *connectors.TableSchema, part connectors.Partition,
		batch int, fn func(rows [][]connectors.Value) error, progress func(rows int64)) (int64, error) {
		var p postgres.Partition
		if err := json.Unmarshal(part, &p); err != nil {
			return 0, err
		}
		cols := make([]string, len(ts.Columns))
		for i, c := range ts.Columns {
			cols[i] = c.Name
		}
		return postgres.ReadPartition(ctx, conn, table, cols, p, batch, fn, progress)
	}}
}

// exportedSnapshot exports a snapshot of the database at url, kept until
// the test ends.
func exportedSnapshot(t *testing.T, url string) string {
	t.Helper()
	ctx := testCtx(t)
	tx, err := postgres.BeginSnapshot(ctx, connect(t, url), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback(context.Background()) })
	var name string
	if err := tx.QueryRow(ctx, `SELECT pg_export_snapshot()`).Scan(&name); err != nil {
		t.Fatal(err)
	}
	return name
}

func partitionJSON(t *testing.T, p postgres.Partition) connectors.Partition {
	t.Helper()
	raw, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// binaryRows runs sql on conn and returns its rows as binary values.
func binaryRows(ctx context.Context, conn *pgx.Conn, sql string) ([][]connectors.Value, error) {
	rows, err := conn.Query(ctx, sql, pgx.QueryResultFormats{pgx.BinaryFormatCode})
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out [][]connectors.Value
	for rows.Next() {
		raw := rows.RawValues()
		row := make([]connectors.Value, len(raw))
		for i, r := range raw {
			row[i] = connectors.Value{Kind: connectors.Null}
			if r != nil {
				row[i] = connectors.Value{Kind: connectors.Binary, Data: append([]byte(nil), r...)}
			}
		}
		out = append(out, row)
	}
	return out, rows.Err()
}

// TestDestinationCreateLoad creates a table and loads it, a partition
// straight from a Postgres reader's snapshot (the fast path) and one from
// a reader of values (the generic path), then again upserting under a new
// snapshot; a failed load leaves nothing; the applied position and the
// loaded partitions are the mirror's, in the peer's metadata schema.
func TestDestinationCreateLoad(t *testing.T) {
	ctx := testCtx(t)
	srcURL, dstURL := srcCluster.NewDB(t), dstCluster.NewDB(t)
	src, dst := connect(t, srcURL), connect(t, dstURL)
	mustExec(t, src, `CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
		CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, moods mood[], pad text,
			twice int GENERATED ALWAYS AS (id * 2) STORED);
		INSERT INTO items SELECT g, 'n' || g, ARRAY['ok', 'happy']::mood[], repeat('x', 200) FROM generate_series(1, 400) g`)
	items := publicTable("items")
	ts, err := postgres.DescribeTable(ctx, src, items, nil)
	if err != nil {
		t.Fatal(err)
	}
	dt := connectors.DestTable{Source: items, Dest: items, Schema: ts, SoftDeleteColumn: "deleted", SyncedAtColumn: "synced_at"}
	d := openDest(t, dstURL, "custom_meta", "m")

	if notices, err := d.PlanTable(dt); err != nil || notices != nil || len(ts.Generated) != 1 {
		t.Fatalf("PlanTable = %v, %v (generated columns %d); want nothing to say about a generated column", notices, err, len(ts.Generated))
	}
	if pos, err := d.Applied(ctx); err != nil || pos != "" {
		t.Fatalf("Applied = %q, %v; want none", pos, err)
	}
	if n := queryInt64(t, dst, `SELECT count(*) FROM pg_tables WHERE schemaname = 'custom_meta'`); n == 0 {
		t.Fatal("the peer's metadata_schema custom_meta has no tables")
	}
	for range 2 {
		if err := d.CreateTable(ctx, dt); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := d.TableExists(ctx, items); err != nil || !ok {
		t.Fatalf("TableExists = %v, %v", ok, err)
	}
	if has, err := postgres.HasPrimaryKey(ctx, dst, items); err != nil || has {
		t.Fatalf("primary key before the load: %v, %v; want none", has, err)
	}

	l, err := d.OpenLoader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(context.Background())
	parts := []connectors.Partition{
		partitionJSON(t, postgres.Partition{Index: 0, StartPage: 0, EndPage: 3}),
		partitionJSON(t, postgres.Partition{Index: 1, StartPage: 3, EndPage: -1}),
	}
	load := func(upsert bool) (int64, int64) {
		t.Helper()
		snap := exportedSnapshot(t, srcURL)
		fast, err := postgres.NewTestSnapshotReader(ctx, connect(t, srcURL), snap)
		if err != nil {
			t.Fatal(err)
		}
		defer fast.Close(context.Background())
		var progress atomic.Int64
		n0, err := l.Load(ctx, fast, connectors.LoadJob{Table: dt, Index: 0, Partition: parts[0], Upsert: upsert,
			Progress: func(n int64) { progress.Store(n) }})
		if err != nil {
			t.Fatalf("fast load (upsert %v): %v", upsert, err)
		}
		if progress.Load() != n0 {
			t.Errorf("fast load progress %d, rows %d", progress.Load(), n0)
		}
		n1, err := l.Load(ctx, valuesReader(t, srcURL, snap), connectors.LoadJob{Table: dt, Index: 1, Partition: parts[1], Upsert: upsert,
			Progress: func(n int64) { progress.Store(n) }})
		if err != nil {
			t.Fatalf("generic load (upsert %v): %v", upsert, err)
		}
		if progress.Load() != n1 {
			t.Errorf("generic load progress %d, rows %d", progress.Load(), n1)
		}
		return n0, n1
	}
	same := func(when string, rows int64) {
		t.Helper()
		q := `SELECT format('%s|%s|%s|%s|%s', id, name, moods, pad, twice) FROM items ORDER BY id`
		want, got := dump(t, src, q), dump(t, dst, q)
		if int64(len(want)) != rows || !slices.Equal(got, want) {
			t.Fatalf("%s: destination has %d rows, source %d (want %d); equal: %v", when, len(got), len(want), rows, slices.Equal(got, want))
		}
		if n := queryInt64(t, dst, `SELECT count(*) FROM items WHERE deleted OR synced_at < now() - interval '1 hour'`); n != 0 {
			t.Fatalf("%s: %d rows soft-deleted or not synced now", when, n)
		}
	}
	loaded := func(when string, want map[int]int64) {
		t.Helper()
		got, err := d.Loaded(ctx, items)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: Loaded = %v, %v; want %v", when, got, err, want)
		}
	}

	n0, n1 := load(false)
	if n0 == 0 || n1 == 0 || n0+n1 != 400 {
		t.Fatalf("loaded %d + %d rows, want 400 in two non-empty partitions", n0, n1)
	}
	same("first load", 400)
	loaded("first load", map[int]int64{0: n0, 1: n1})

	// A load resumed under a newer snapshot upserts, and resets the
	// soft-delete and synced-at columns of the rows it finds.
	mustExec(t, src, `UPDATE items SET name = 'changed' || id WHERE id % 10 = 0;
		INSERT INTO items SELECT g, 'n' || g, NULL, 'new' FROM generate_series(401, 410) g`)
	mustExec(t, dst, `UPDATE items SET deleted = true, synced_at = '2000-01-01' WHERE id = 5`)
	if err := d.PrepareUpsert(ctx, dt); err != nil {
		t.Fatal(err)
	}
	if has, err := postgres.HasPrimaryKey(ctx, dst, items); err != nil || !has {
		t.Fatalf("primary key after PrepareUpsert: %v, %v", has, err)
	}
	m0, m1 := load(true)
	same("upserting load", 410)
	loaded("upserting load", map[int]int64{0: m0, 1: m1})

	// A failing reader, or a row of the wrong width, leaves nothing.
	boom := errors.New("boom")
	for _, tc := range []struct {
		name string
		row  []connectors.Value
		want error
	}{
		{"reader error", []connectors.Value{{Kind: connectors.Binary, Data: []byte{0, 0, 3, 232}}, {Kind: connectors.Binary, Data: []byte("x")},
			{Kind: connectors.Null}, {Kind: connectors.Null}}, boom},
		{"short row", []connectors.Value{{Kind: connectors.Null}}, nil},
	} {
		r := fakeReader{read: func(_ context.Context, _ connectors.TableName, _ *connectors.TableSchema, _ connectors.Partition, _ int,
			fn func([][]connectors.Value) error, _ func(int64)) (int64, error) {
			if err := fn([][]connectors.Value{tc.row}); err != nil {
				return 0, err
			}
			return 1, boom
		}}
		_, err := l.Load(ctx, r, connectors.LoadJob{Table: dt, Index: 2, Partition: parts[1]})
		if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Fatalf("%s: Load = %v, want an error (%v)", tc.name, err, tc.want)
		}
		same("after "+tc.name, 410)
		loaded("after "+tc.name, map[int]int64{0: m0, 1: m1})
	}

	if err := d.FinishLoad(ctx, dt, items); err != nil {
		t.Fatal(err)
	}
	if err := d.ForgetLoad(ctx, items); err != nil {
		t.Fatal(err)
	}
	loaded("after ForgetLoad", map[int]int64{})

	// The applied position is the applier's, as a Position; ForgetLoad of
	// the zero name forgets it.
	a, err := d.NewApplier(ctx, []connectors.DestTable{dt})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Commit(ctx, postgres.LSNPosition(0x16B374D8)); err != nil {
		t.Fatal(err)
	}
	if pos, err := d.Applied(ctx); err != nil || pos != postgres.LSNPosition(0x16B374D8) {
		t.Fatalf("Applied = %q, %v; want %q", pos, err, postgres.LSNPosition(0x16B374D8))
	}
	if err := d.ForgetLoad(ctx, connectors.TableName{}); err != nil {
		t.Fatal(err)
	}
	if pos, err := d.Applied(ctx); err != nil || pos != "" {
		t.Fatalf("Applied after ForgetLoad of the mirror = %q, %v; want none", pos, err)
	}
}

// usersSchema is the source schema of the tables of the swap and teardown
// tests: id and v.
func usersSchema(name string) *connectors.TableSchema {
	return &connectors.TableSchema{Name: publicTable(name), PrimaryKey: []string{"id"}, Columns: []connectors.Column{
		{Name: "id", Type: "integer", NotNull: true, Position: 1}, {Name: "v", Type: "text", Position: 2}}}
}

// TestDestinationShadowSwap makes shadow tables, finishes their load and
// swaps them in: rows soft-deleted in the live table are carried, views
// and referencing foreign keys follow, a missing live table is created,
// EndResync forgets the table's resync state, and a swap without its
// shadow is refused.
func TestDestinationShadowSwap(t *testing.T) {
	ctx := testCtx(t)
	url := dstCluster.NewDB(t)
	conn := connect(t, url)
	mustExec(t, conn, `CREATE TABLE users (id integer PRIMARY KEY, v text, deleted boolean NOT NULL DEFAULT false,
			synced_at timestamptz DEFAULT now());
		CREATE INDEX users_v ON users (v);
		INSERT INTO users (id, v) VALUES (1, 'old'), (2, 'old');
		INSERT INTO users (id, v, deleted) VALUES (99, 'gone', true);
		CREATE VIEW active_users AS SELECT id, v FROM users WHERE NOT deleted;
		CREATE TABLE orders_ref (id int PRIMARY KEY, user_id int REFERENCES users);
		INSERT INTO orders_ref VALUES (1, 1);
		CREATE TABLE parted (id int) PARTITION BY RANGE (id)`)
	d := openDest(t, url, "", "m")
	users, orders := publicTable("users"), publicTable("orders")
	dtUsers := connectors.DestTable{Source: publicTable("src_users"), Dest: users, Schema: usersSchema("src_users"),
		SoftDeleteColumn: "deleted", SyncedAtColumn: "synced_at"}
	dtOrders := connectors.DestTable{Source: publicTable("src_orders"), Dest: orders, Schema: usersSchema("src_orders"),
		SoftDeleteColumn: "deleted", SyncedAtColumn: "synced_at"}

	for _, live := range []connectors.TableName{users, orders} {
		if err := d.CheckSwappable(ctx, live); err != nil {
			t.Fatalf("CheckSwappable(%s) = %v", live, err)
		}
	}
	if err := d.CheckSwappable(ctx, publicTable("parted")); !errors.Is(err, connectors.ErrNotSwappable) {
		t.Fatalf("CheckSwappable(partitioned) = %v, want ErrNotSwappable", err)
	}

	reserved := []connectors.TableName{users, orders}
	shU, err := d.CreateShadow(ctx, dtUsers, reserved)
	if err != nil {
		t.Fatal(err)
	}
	shO, err := d.CreateShadow(ctx, dtOrders, reserved)
	if err != nil {
		t.Fatal(err)
	}
	if shU != publicTable("users_resync") || shO != publicTable("orders_resync") {
		t.Fatalf("shadows %s, %s", shU, shO)
	}
	if got, err := d.Shadows(ctx); err != nil || !reflect.DeepEqual(got, map[connectors.TableName]connectors.TableName{users: shU, orders: shO}) {
		t.Fatalf("Shadows = %v, %v", got, err)
	}
	mustExec(t, conn, `INSERT INTO users_resync (id, v) VALUES (1, 'new'), (2, 'new'), (3, 'new');
		INSERT INTO orders_resync (id, v) VALUES (1, 'o')`)
	if err := d.FinishLoad(ctx, connectors.DestTable{Source: dtUsers.Source, Dest: shU, Schema: dtUsers.Schema}, users); err != nil {
		t.Fatal(err)
	}
	if err := d.FinishLoad(ctx, connectors.DestTable{Source: dtOrders.Source, Dest: shO, Schema: dtOrders.Schema}, orders); err != nil {
		t.Fatal(err)
	}
	if n := queryInt64(t, conn, `SELECT count(*) FROM pg_index WHERE indrelid = 'users_resync'::regclass`); n != 2 {
		t.Fatalf("users' shadow has %d indexes after FinishLoad, want users' 2", n)
	}
	if has, err := postgres.HasPrimaryKey(ctx, conn, shO); err != nil || !has {
		t.Fatalf("orders' shadow primary key: %v, %v", has, err)
	}
	for _, src := range []connectors.TableName{dtUsers.Source, dtOrders.Source} {
		if err := d.PutTableState(ctx, connectors.TableState{Table: src, Stage: connectors.StageSwap, Strategy: "swap", Position: postgres.LSNPosition(42)}); err != nil {
			t.Fatal(err)
		}
	}

	rep, err := d.SwapIn(ctx, []connectors.Swap{{Table: dtUsers, EndResync: true}, {Table: dtOrders}})
	if err != nil {
		t.Fatal(err)
	}
	notes := strings.Join(rep.Notes, "; ")
	for _, want := range []string{"public.orders was missing and was created", "views recreated: public.active_users",
		"foreign keys re-added NOT VALID: public.orders_ref."} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes %q lack %q", notes, want)
		}
	}
	if got, want := strs(t, conn, `SELECT id || ':' || v || ':' || deleted FROM users ORDER BY id`),
		[]string{"1:new:false", "2:new:false", "3:new:false", "99:gone:true"}; !slices.Equal(got, want) {
		t.Errorf("users after the swap: %v, want %v", got, want)
	}
	if got := strs(t, conn, `SELECT v FROM active_users ORDER BY id`); !slices.Equal(got, []string{"new", "new", "new"}) {
		t.Errorf("active_users after the swap: %v", got)
	}
	if got := strs(t, conn, `SELECT v FROM orders`); !slices.Equal(got, []string{"o"}) {
		t.Errorf("orders after the swap: %v", got)
	}
	if got, err := d.Shadows(ctx); err != nil || len(got) != 0 {
		t.Errorf("Shadows after the swap = %v, %v", got, err)
	}
	// The old users table is set aside, not dropped, until DropRetired.
	retired := func() int64 {
		return queryInt64(t, conn, `SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tablename LIKE 'sluice_retired%'`,
			postgres.DefaultMetadataSchema)
	}
	if n := retired(); n != 1 {
		t.Errorf("%d tables set aside after the swap, want users' old one", n)
	}
	for range 2 {
		if err := d.DropRetired(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := retired(); n != 0 {
		t.Errorf("%d tables set aside after DropRetired", n)
	}
	states, err := d.TableStates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, has := states[dtUsers.Source]; has || len(states) != 1 || states[dtOrders.Source].Position != postgres.LSNPosition(42) {
		t.Errorf("states after the swap %v: want only orders' (no EndResync)", states)
	}
	if err := d.DeleteTableState(ctx, dtOrders.Source); err != nil {
		t.Fatal(err)
	}

	// The foreign key re-added NOT VALID validates; a failing check is
	// reported and the others go on.
	if len(rep.Validate) != 1 {
		t.Fatalf("Validate %v, want orders_ref's foreign key", rep.Validate)
	}
	var failed []string
	checks := append([]string{"ALTER TABLE nope VALIDATE CONSTRAINT x"}, rep.Validate...)
	err = d.ValidateConstraints(ctx, checks, func(check string, err error) error {
		failed = append(failed, check)
		return nil
	})
	if err != nil || !slices.Equal(failed, checks[:1]) {
		t.Fatalf("ValidateConstraints = %v, failed %v", err, failed)
	}
	if n := queryInt64(t, conn, `SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND NOT convalidated`); n != 0 {
		t.Errorf("%d foreign keys left not valid", n)
	}

	// Statistics come after the swap: none before, Analyze collects them
	// for every table swapped in; a failing table is reported and the
	// others go on.
	stats := func(table string) int64 {
		return queryInt64(t, conn, `SELECT count(*) FROM pg_stats WHERE schemaname = 'public' AND tablename = $1`, table)
	}
	if n := stats("users"); n != 0 {
		t.Errorf("users has statistics of %d columns before Analyze, want none (FinishLoad leaves them for after the swap)", n)
	}
	if !slices.Equal(rep.Analyze, []connectors.TableName{users, orders}) {
		t.Fatalf("Analyze %v, want users and orders", rep.Analyze)
	}
	var unanalyzed []connectors.TableName
	tables := append([]connectors.TableName{publicTable("nope")}, rep.Analyze...)
	if err := d.Analyze(ctx, tables, func(table connectors.TableName, err error) error {
		unanalyzed = append(unanalyzed, table)
		return nil
	}); err != nil || !slices.Equal(unanalyzed, tables[:1]) {
		t.Fatalf("Analyze = %v, failed %v", err, unanalyzed)
	}
	if stats("users") == 0 || stats("orders") == 0 {
		t.Errorf("users has statistics of %d columns, orders %d, after Analyze", stats("users"), stats("orders"))
	}

	// No shadow recorded: the swap was done before (a crash after its
	// commit), nothing to do.
	if rep, err := d.SwapIn(ctx, []connectors.Swap{{Table: dtUsers}, {Table: dtOrders}}); err != nil || len(rep.Notes) != 0 {
		t.Fatalf("SwapIn with no shadow recorded = %+v, %v; want nothing done", rep, err)
	}
	// One recorded, one not: refused, nothing swapped.
	shadow, err := d.CreateShadow(ctx, dtUsers, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.SwapIn(ctx, []connectors.Swap{{Table: dtUsers}, {Table: dtOrders}}); !errors.Is(err, connectors.ErrShadowLost) {
		t.Fatalf("SwapIn with a shadow missing = %v, want ErrShadowLost", err)
	}
	if sh, err := d.Shadows(ctx); err != nil || sh[dtUsers.Dest] != shadow {
		t.Fatalf("shadows after a refused swap: %v, %v; want %s kept", sh, err, shadow)
	}
}

// TestDestinationEmptyRestore empties a table for a truncate resync and
// restores it: its indexes and the foreign keys that involve it are
// recorded with the resync's state, dropped and rebuilt; a retry reuses
// the record.
func TestDestinationEmptyRestore(t *testing.T) {
	ctx := testCtx(t)
	url := dstCluster.NewDB(t)
	conn := connect(t, url)
	mustExec(t, conn, `CREATE TABLE users (id integer PRIMARY KEY, v text);
		CREATE INDEX users_v ON users (v);
		INSERT INTO users VALUES (1, 'a'), (2, 'b');
		CREATE TABLE child (id int PRIMARY KEY, user_id int CONSTRAINT child_user REFERENCES users);
		INSERT INTO child VALUES (1, 1)`)
	d := openDest(t, url, "", "m")
	users := publicTable("users")
	source := publicTable("src_users")
	st := connectors.TableState{Table: source, Stage: connectors.StageCopy, Strategy: "truncate"}
	got, err := d.Empty(ctx, users, st)
	if err != nil {
		t.Fatal(err)
	}
	var saved postgres.SavedObjects
	if err := json.Unmarshal(got.Saved, &saved); err != nil || len(saved.Indexes) != 2 || len(saved.ForeignKeys) != 1 {
		t.Fatalf("Saved %s (%v): want 2 indexes and a foreign key", got.Saved, err)
	}
	empty := func(when string) {
		t.Helper()
		if n := queryInt64(t, conn, `SELECT count(*) FROM users`); n != 0 {
			t.Fatalf("%s: %d rows", when, n)
		}
		if n := queryInt64(t, conn, `SELECT count(*) FROM pg_index WHERE indrelid = 'users'::regclass`); n != 0 {
			t.Fatalf("%s: %d indexes", when, n)
		}
		states, err := d.TableStates(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var rec postgres.SavedObjects
		if err := json.Unmarshal(states[source].Saved, &rec); err != nil || !reflect.DeepEqual(rec, saved) {
			t.Fatalf("%s: recorded %s (%v), want what Empty returned", when, states[source].Saved, err)
		}
	}
	empty("after Empty")
	// A retry after a crash: the table no longer has what the record lists.
	if got2, err := d.Empty(ctx, users, got); err != nil || string(got2.Saved) != string(got.Saved) {
		t.Fatalf("Empty again = %s, %v", got2.Saved, err)
	}
	empty("after a second Empty")

	mustExec(t, conn, `INSERT INTO users VALUES (1, 'a'), (2, 'b')`)
	if err := d.Restore(ctx, connectors.DestTable{Source: source, Dest: users, Schema: usersSchema("src_users")}, got); err != nil {
		t.Fatal(err)
	}
	if got := strs(t, conn, `SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = 'users'::regclass ORDER BY 1`); !slices.Equal(got, []string{"users_pkey", "users_v"}) {
		t.Errorf("indexes after Restore: %v", got)
	}
	if n := queryInt64(t, conn, `SELECT count(*) FROM pg_constraint WHERE conname = 'child_user'`); n != 1 {
		t.Errorf("child_user after Restore: %d", n)
	}
}

// columnSource is a Source that only reads columns (connectors.ColumnReader).
type columnSource struct {
	connectors.Source
	readColumns func(ctx context.Context, table connectors.TableName, key, cols []string, batch int,
		fn func(rows [][]connectors.Value) error) (int64, error)
}

func (s columnSource) ReadColumns(ctx context.Context, table connectors.TableName, key, cols []string, batch int,
	fn func(rows [][]connectors.Value) error) (int64, error) {
	return s.readColumns(ctx, table, key, cols, batch, fn)
}

func (s columnSource) CurrentValues(context.Context, connectors.TableName, []string) (map[string]connectors.Value, error) {
	return nil, errors.New("columnSource: CurrentValues not expected")
}

// TestDestinationAddColumns adds the source's new columns to destination
// tables and back-fills them, from a Postgres source's connection and from
// a ColumnReader; a failed back-fill adds nothing, and a source that can
// do neither is refused.
func TestDestinationAddColumns(t *testing.T) {
	ctx := testCtx(t)
	srcURL, dstURL := srcCluster.NewDB(t), dstCluster.NewDB(t)
	src, dst := connect(t, srcURL), connect(t, dstURL)
	mustExec(t, src, `CREATE TABLE t (id int PRIMARY KEY, a text);
		INSERT INTO t SELECT g, 'a' || g FROM generate_series(1, 5) g`)
	tbl := publicTable("t")
	ts, err := postgres.DescribeTable(ctx, src, tbl, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := openDest(t, dstURL, "", "m")
	dts := map[string]connectors.DestTable{}
	for _, name := range []string{"t", "t2", "t3", "t4"} {
		dt := connectors.DestTable{Source: tbl, Dest: publicTable(name), Schema: ts}
		if err := d.CreateTable(ctx, dt); err != nil {
			t.Fatal(err)
		}
		mustExec(t, dst, fmt.Sprintf(`INSERT INTO %s SELECT g, 'a' || g FROM generate_series(1, 5) g`, name))
		dts[name] = dt
	}
	mustExec(t, src, `ALTER TABLE t ADD COLUMN b int DEFAULT 7, ADD COLUMN c text`)
	ts2, err := postgres.DescribeTable(ctx, src, tbl, nil)
	if err != nil {
		t.Fatal(err)
	}
	added := ts2.Columns[2:]
	reader := columnSource{readColumns: func(ctx context.Context, table connectors.TableName, key, cols []string, batch int,
		fn func(rows [][]connectors.Value) error) (int64, error) {
		rows, err := binaryRows(ctx, src, fmt.Sprintf("SELECT %s FROM %s",
			strings.Join(append(append([]string{}, key...), cols...), ", "), table.Quoted()))
		if err != nil {
			return 0, err
		}
		return int64(len(rows)), fn(rows)
	}}

	for _, tc := range []struct {
		dest string
		src  connectors.Source
	}{{"t", postgres.NewTestSQLSource(src)}, {"t2", reader}} {
		events, err := d.AddColumns(ctx, tc.src, dts[tc.dest], added)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"public.t gained 2 column(s); added on public." + tc.dest,
			"back-filled 5 row(s) of public." + tc.dest + " with the source's values of b, c"}
		if !slices.Equal(events, want) {
			t.Errorf("%s: events %q, want %q", tc.dest, events, want)
		}
		if n := queryInt64(t, dst, "SELECT count(*) FROM "+tc.dest+" WHERE b = 7 AND c IS NULL"); n != 5 {
			t.Errorf("%s: %d rows back-filled, want 5", tc.dest, n)
		}
		if events, err := d.AddColumns(ctx, tc.src, dts[tc.dest], added); err != nil || events != nil {
			t.Errorf("%s: AddColumns again = %q, %v; want nothing done", tc.dest, events, err)
		}
	}

	// A back-fill that fails adds no column; a source that cannot read
	// columns is refused.
	boom := errors.New("boom")
	failing := columnSource{readColumns: func(context.Context, connectors.TableName, []string, []string, int,
		func([][]connectors.Value) error) (int64, error) {
		return 0, boom
	}}
	if _, err := d.AddColumns(ctx, failing, dts["t3"], added); !errors.Is(err, boom) {
		t.Fatalf("AddColumns with a failing reader = %v, want boom", err)
	}
	if _, err := d.AddColumns(ctx, struct{ connectors.Source }{}, dts["t4"], added); err == nil {
		t.Fatal("AddColumns from a source that cannot read columns succeeded")
	}
	for _, name := range []string{"t3", "t4"} {
		if n := queryInt64(t, dst, `SELECT count(*) FROM pg_attribute WHERE attrelid = $1::regclass AND attname = 'b'`, name); n != 0 {
			t.Errorf("%s gained column b though AddColumns failed", name)
		}
	}
}

// TestDestinationTeardown forgets the mirror's metadata and drops its
// shadow tables and the tables asked for, in one transaction, and nothing
// else: not a table of the shadow's kind of name that Sluice did not make,
// not another mirror's metadata; a table a view depends on stops it all.
func TestDestinationTeardown(t *testing.T) {
	ctx := testCtx(t)
	url := dstCluster.NewDB(t)
	conn := connect(t, url)
	mustExec(t, conn, `CREATE TABLE a (id integer, v text); CREATE TABLE b (id integer, v text); CREATE TABLE c (id integer);
		CREATE TABLE b_resync (mine text); CREATE VIEW bv AS SELECT id FROM b`)
	d := openDest(t, url, "", "m")
	other := openDest(t, url, "", "m2")
	a, b := publicTable("a"), publicTable("b")
	dtA := connectors.DestTable{Source: publicTable("src_a"), Dest: a, Schema: usersSchema("src_a")}
	shadow, err := d.CreateShadow(ctx, dtA, []connectors.TableName{a, b})
	if err != nil {
		t.Fatal(err)
	}
	st := connectors.TableState{Table: dtA.Source, Stage: connectors.StageSwap, Strategy: "swap", Position: postgres.LSNPosition(7)}
	for _, x := range []*postgres.Destination{d, other} {
		if err := x.PutTableState(ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	tables := func() []string {
		return strs(t, conn, `SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`)
	}
	states := func(x *postgres.Destination) int {
		s, err := x.TableStates(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return len(s)
	}

	if deps, err := d.Dependents(ctx, []connectors.TableName{a, b}); err != nil || !slices.Equal(deps, []string{"view public.bv depends on public.b"}) {
		t.Fatalf("Dependents = %q, %v", deps, err)
	}
	if _, err := d.Teardown(ctx, []connectors.TableName{a, b}); err == nil {
		t.Fatal("Teardown of a table a view depends on succeeded")
	}
	// A teardown aborted changes nothing, and holds nothing after.
	p, err := d.Teardown(ctx, []connectors.TableName{a})
	if err != nil {
		t.Fatal(err)
	}
	p.Abort()
	if got, want := tables(), []string{"a", shadow.Name, "b", "b_resync", "c"}; !slices.Equal(got, want) || states(d) != 1 {
		t.Fatalf("after a failed Teardown: tables %v (want %v), %d states (want 1)", got, want, states(d))
	}
	for range 2 {
		p, err := d.Teardown(ctx, []connectors.TableName{a})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := tables(), []string{"b", "b_resync", "c"}; !slices.Equal(got, want) {
		t.Errorf("tables after Teardown: %v, want %v", got, want)
	}
	if states(d) != 0 || states(other) != 1 {
		t.Errorf("states after Teardown: mirror %d (want 0), other mirror %d (want 1)", states(d), states(other))
	}
	if sh, err := other.Shadows(ctx); err != nil || len(sh) != 0 {
		t.Errorf("other mirror's shadows: %v, %v", sh, err)
	}
}

// TestDestinationCreateTableRace: two sessions creating the same tables at
// once (CREATE MIRROR and its flow on another node) both succeed.
func TestDestinationCreateTableRace(t *testing.T) {
	ctx := testCtx(t)
	dstURL := dstCluster.NewDB(t)
	ts := &connectors.TableSchema{Columns: []connectors.Column{{Name: "id", Type: "integer", NotNull: true}, {Name: "v", Type: "text"}},
		PrimaryKey: []string{"id"}}
	a, b := openDest(t, dstURL, "", "m"), openDest(t, dstURL, "", "m")
	for i := range 20 {
		name := publicTable(fmt.Sprintf("race_%d", i))
		dt := connectors.DestTable{Source: name, Dest: name, Schema: &connectors.TableSchema{Name: name,
			Columns: ts.Columns, PrimaryKey: ts.PrimaryKey}}
		errs := make(chan error, 2)
		for _, d := range []*postgres.Destination{a, b} {
			go func() { errs <- d.CreateTable(ctx, dt) }()
		}
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatalf("CreateTable %s: %v", name, err)
			}
		}
	}
}

// TestDestinationSwapMetadataInTableSchema: with the peer's metadata
// schema the live table's own, the swap sets the old table aside in it
// (no SET SCHEMA to where it is), and Teardown drops it.
func TestDestinationSwapMetadataInTableSchema(t *testing.T) {
	ctx := testCtx(t)
	url := dstCluster.NewDB(t)
	conn := connect(t, url)
	mustExec(t, conn, `CREATE TABLE users (id integer PRIMARY KEY, v text); CREATE INDEX users_v ON users (v);
		INSERT INTO users VALUES (1, 'old')`)
	d := openDest(t, url, "public", "m")
	users := publicTable("users")
	dt := connectors.DestTable{Source: publicTable("src_users"), Dest: users, Schema: usersSchema("src_users")}
	shadow, err := d.CreateShadow(ctx, dt, []connectors.TableName{users})
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, conn, `INSERT INTO `+shadow.Quoted()+` VALUES (1, 'new'), (2, 'new')`)
	if err := d.FinishLoad(ctx, connectors.DestTable{Source: dt.Source, Dest: shadow, Schema: dt.Schema}, users); err != nil {
		t.Fatal(err)
	}
	if _, err := d.SwapIn(ctx, []connectors.Swap{{Table: dt}}); err != nil {
		t.Fatal(err)
	}
	if got := strs(t, conn, `SELECT v FROM users ORDER BY id`); !slices.Equal(got, []string{"new", "new"}) {
		t.Errorf("users after the swap: %v", got)
	}
	set := `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'public' AND c.relname LIKE 'sluice_retired%'`
	if n := queryInt64(t, conn, set); n != 3 { // the table, its key and its index
		t.Errorf("%d relations set aside in public, want 3", n)
	}
	// DROP MIRROR drops what is set aside (DropRetired: TestDestinationShadowSwap).
	p, err := d.Teardown(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if n := queryInt64(t, conn, set); n != 0 {
		t.Errorf("%d relations set aside after Teardown", n)
	}
}
