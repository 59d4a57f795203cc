package clickhouse_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/clickhouse"
)

// fakeReader is a connectors.PartitionReader whose Read is a function.
type fakeReader struct {
	read func(ctx context.Context, table connectors.TableName, ts *connectors.TableSchema, part connectors.Partition, batch int,
		fn func(rows [][]connectors.Value) error, progress func(rows int64)) (int64, error)
}

func (r *fakeReader) Read(ctx context.Context, table connectors.TableName, ts *connectors.TableSchema, part connectors.Partition, batch int,
	fn func(rows [][]connectors.Value) error, progress func(rows int64)) (int64, error) {
	return r.read(ctx, table, ts, part, batch, fn, progress)
}

func (r *fakeReader) Close(context.Context) error { return nil }

// rowsReader reads rows for every partition, checking what Load asks for.
func rowsReader(t *testing.T, want connectors.TableName, rows ...[]connectors.Value) *fakeReader {
	return &fakeReader{read: func(ctx context.Context, table connectors.TableName, ts *connectors.TableSchema, part connectors.Partition, batch int,
		fn func(rows [][]connectors.Value) error, progress func(rows int64)) (int64, error) {
		if table != want || batch != clickhouse.LoadBatch || len(part) == 0 {
			t.Errorf("Read(%s, part %s, batch %d), want %s, a partition, batch %d", table, part, batch, want, clickhouse.LoadBatch)
		}
		if err := fn(rows); err != nil {
			return 0, err
		}
		if progress != nil {
			progress(int64(len(rows)))
		}
		return int64(len(rows)), nil
	}}
}

// fakeSource is a connectors.Source (whose other methods are not called)
// and a connectors.ColumnReader whose CurrentValues is a function.
type fakeSource struct {
	connectors.Source
	currentValues func(table connectors.TableName, cols []string) (map[string]connectors.Value, error)
}

func (s *fakeSource) ReadColumns(context.Context, connectors.TableName, []string, []string, int, func([][]connectors.Value) error) (int64, error) {
	return 0, errors.New("not used")
}

func (s *fakeSource) CurrentValues(_ context.Context, table connectors.TableName, cols []string) (map[string]connectors.Value, error) {
	return s.currentValues(table, cols)
}

// openDest opens a Destination on database db for mirror.
func openDest(t *testing.T, db, mirror string) *clickhouse.Destination {
	t.Helper()
	cfg, err := clickhouse.ParsePeerOptions(peer("database", db))
	if err != nil {
		t.Fatal(err)
	}
	d, err := cfg.OpenDestination(testCtx(t), "sluice-test", mirror)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	return d.(*clickhouse.Destination)
}

// usersTable is a mirrored table users (id integer key, name text) into
// database db.
func usersTable(db, name string) connectors.DestTable {
	return connectors.DestTable{
		Source: connectors.TableName{Schema: "public", Name: name},
		Dest:   connectors.TableName{Schema: db, Name: name},
		Schema: &connectors.TableSchema{Name: connectors.TableName{Schema: "public", Name: name},
			Columns:    []connectors.Column{{Name: "id", Type: "integer", TypeOID: 23, NotNull: true}, {Name: "name", Type: "text", TypeOID: 25}},
			PrimaryKey: []string{"id"}},
	}
}

func user(t *testing.T, id int32, name string) []connectors.Value {
	return []connectors.Value{bin(t, 23, id), bin(t, 25, name)}
}

func part(n int) connectors.Partition { return connectors.Partition(fmt.Sprintf(`{"n":%d}`, n)) }

// load loads rows as partition index of d.Dest with version, and checks the
// rows Load returns.
func load(t *testing.T, l connectors.Loader, d connectors.DestTable, index int, version uint64, rows ...[]connectors.Value) {
	t.Helper()
	var progress int64
	n, err := l.Load(testCtx(t), rowsReader(t, d.Source, rows...), connectors.LoadJob{Table: d, Index: index, Partition: part(index),
		Version: version, Progress: func(r int64) { progress = r }})
	if err != nil {
		t.Fatalf("Load %s partition %d: %v", d.Dest, index, err)
	}
	if n != int64(len(rows)) || progress != n {
		t.Fatalf("Load %s partition %d: %d rows, progress %d, want %d", d.Dest, index, n, progress, len(rows))
	}
}

func countFinal(t *testing.T, conn driver.Conn, table connectors.TableName) uint64 {
	t.Helper()
	var n uint64
	if err := conn.QueryRow(testCtx(t), "SELECT count() FROM `"+table.Schema+"`.`"+table.Name+"` FINAL").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func loaded(t *testing.T, d *clickhouse.Destination, table connectors.TableName, want map[int]int64) {
	t.Helper()
	got, err := d.Loaded(testCtx(t), table)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(got, want) {
		t.Fatalf("Loaded(%s) = %v, want %v", table, got, want)
	}
}

func applied(t *testing.T, d *clickhouse.Destination, want connectors.Position) {
	t.Helper()
	got, err := d.Applied(testCtx(t))
	if err != nil || got != want {
		t.Fatalf("Applied = %q, %v; want %q", got, err, want)
	}
}

// TestDestinationLoad checks OpenDestination, CreateTable, the Loader
// (rows written with the job's version, the partition recorded, a reload
// of the same partition converging, NULL sorting-key counts), Loaded,
// ForgetLoad and Applied.
func TestDestinationLoad(t *testing.T) {
	ctx := testCtx(t)
	conn, db := newDB(t)
	cfg, err := clickhouse.ParsePeerOptions(peer("database", db+"_missing"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.OpenDestination(ctx, "sluice-test", "m"); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("OpenDestination of a missing database: %v", err)
	}
	d := openDest(t, db, "m")
	if d.DefaultSchema() != db {
		t.Fatalf("DefaultSchema = %q, want %q", d.DefaultSchema(), db)
	}
	applied(t, d, "")
	users := usersTable(db, "users")
	for range 2 { // idempotent
		if err := d.CreateTable(ctx, users); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := d.TableExists(ctx, users.Dest); err != nil || !ok {
		t.Fatalf("TableExists(%s) = %v, %v", users.Dest, ok, err)
	}
	if ok, err := d.TableExists(ctx, connectors.TableName{Schema: db, Name: "nope"}); err != nil || ok {
		t.Fatalf("TableExists(nope) = %v, %v", ok, err)
	}
	lc, err := d.OpenLoader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close(ctx)
	l := lc.(*clickhouse.Loader)
	load(t, l, users, 0, 7, user(t, 1, "a"), user(t, 2, "b"))
	load(t, l, users, 1, 7, user(t, 3, "c"))
	if got, want := finalRows(t, conn, users.Dest), []string{"1 a 7 0", "2 b 7 0", "3 c 7 0"}; !slices.Equal(got, want) {
		t.Fatalf("rows after Load: %q, want %q", got, want)
	}
	loaded(t, d, users.Source, map[int]int64{0: 2, 1: 1})
	// A partition cut off and loaded again: the same rows, the same
	// version, one row each.
	load(t, l, users, 0, 7, user(t, 1, "a"), user(t, 2, "b"))
	if n := countFinal(t, conn, users.Dest); n != 3 {
		t.Fatalf("%d rows after reloading a partition, want 3", n)
	}
	loaded(t, d, users.Source, map[int]int64{0: 2, 1: 1})
	if l.NullKeys() != nil {
		t.Fatalf("NullKeys = %v, want nil", l.NullKeys())
	}

	// A reader's error: nothing recorded.
	boom := errors.New("boom")
	_, err = l.Load(ctx, &fakeReader{read: func(context.Context, connectors.TableName, *connectors.TableSchema, connectors.Partition, int,
		func([][]connectors.Value) error, func(int64)) (int64, error) {
		return 0, boom
	}}, connectors.LoadJob{Table: users, Index: 2, Partition: part(2), Version: 7})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "partition 2") {
		t.Fatalf("Load with a failing reader: %v", err)
	}
	loaded(t, d, users.Source, map[int]int64{0: 2, 1: 1})

	// A sorting key with a column nullable in the source: NULL stored as
	// '' and counted for the partition.
	byName := usersTable(db, "by_name")
	byName.OrderBy = []string{"name", "id"}
	if err := d.CreateTable(ctx, byName); err != nil {
		t.Fatal(err)
	}
	load(t, l, byName, 0, 9, []connectors.Value{bin(t, 23, int32(1)), null}, user(t, 2, "x"))
	if got, want := l.NullKeys(), map[connectors.TableName]map[string]int64{byName.Source: {"name": 1}}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("NullKeys = %v, want %v", got, want)
	}
	if got, want := finalRows(t, conn, byName.Dest), []string{"1  9 0", "2 x 9 0"}; !slices.Equal(got, want) {
		t.Fatalf("by_name rows: %q, want %q", got, want)
	}

	// ForgetLoad: one table, then the whole mirror (with its position).
	if err := d.ForgetLoad(ctx, users.Source); err != nil {
		t.Fatal(err)
	}
	loaded(t, d, users.Source, map[int]int64{})
	loaded(t, d, byName.Source, map[int]int64{0: 2})
	if err := clickhouse.SetPosition(ctx, conn, db, "m", "0000000000001A2B"); err != nil {
		t.Fatal(err)
	}
	applied(t, d, "0000000000001A2B")
	other := openDest(t, db, "other")
	applied(t, other, "")
	if err := d.ForgetLoad(ctx, connectors.TableName{}); err != nil {
		t.Fatal(err)
	}
	loaded(t, d, byName.Source, map[int]int64{})
	applied(t, d, "")
}

// TestDestinationApplier checks that NewApplier applies to the tables with
// their own sorting key (DestTable.OrderBy) and records the position.
func TestDestinationApplier(t *testing.T) {
	ctx := testCtx(t)
	conn, db := newDB(t)
	d := openDest(t, db, "m")
	byName := usersTable(db, "by_name")
	byName.OrderBy = []string{"name", "id"}
	if err := d.CreateTable(ctx, byName); err != nil {
		t.Fatal(err)
	}
	a, err := d.NewApplier(ctx, []connectors.DestTable{byName})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	ch := func(kind connectors.ChangeKind, lsn uint64, row []connectors.Value) connectors.Change {
		return connectors.Change{Kind: kind, Table: byName.Source, New: row, Version: lsn}
	}
	if err := a.Add(ctx, []connectors.Change{ch(connectors.Insert, 10, user(t, 1, "a"))}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Commit(ctx, "000000000000000A"); err != nil {
		t.Fatal(err)
	}
	// An update of the sorting key moves the row: the old one is
	// superseded (deleted = 2), which the applier does only when it knows
	// the table's sorting key.
	if _, err := a.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Add(ctx, []connectors.Change{ch(connectors.Update, 20, user(t, 1, "b"))}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Commit(ctx, "0000000000000014"); err != nil {
		t.Fatal(err)
	}
	if got, want := slices.Sorted(slices.Values(finalRows(t, conn, byName.Dest))), []string{"1 a 20 2", "1 b 20 0"}; !slices.Equal(got, want) {
		t.Fatalf("rows: %q, want %q", got, want)
	}
	applied(t, d, "0000000000000014")
}

// TestDestinationSwapIn checks CreateShadow, Shadows and SwapIn: with
// NewerThan the live table's newer rows survive; without, its deleted
// rows are carried; columns the live table gained reach the shadow; a run
// again after the swap changes nothing; a shadow lost while another is
// there is ErrShadowLost and nothing is swapped.
func TestDestinationSwapIn(t *testing.T) {
	ctx := testCtx(t)
	conn, db := newDB(t)
	d := openDest(t, db, "m")
	users, orders := usersTable(db, "users"), usersTable(db, "orders")
	for _, dt := range []connectors.DestTable{users, orders} {
		if err := d.CreateTable(ctx, dt); err != nil {
			t.Fatal(err)
		}
	}
	l, err := d.OpenLoader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(ctx)
	load(t, l, users, 0, 10, user(t, 1, "a"), user(t, 2, "b"), user(t, 3, "c"))
	load(t, l, orders, 0, 5, user(t, 1, "old"), user(t, 8, "gone from the source"), user(t, 9, "doomed"))
	a, err := d.NewApplier(ctx, []connectors.DestTable{users, orders})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Add(ctx, []connectors.Change{
		{Kind: connectors.Update, Table: users.Source, New: user(t, 2, "changed after the copy"), Version: 20},
		{Kind: connectors.Delete, Table: users.Source, Old: user(t, 3, "c"), Version: 20},
		{Kind: connectors.Delete, Table: orders.Source, Old: user(t, 9, "doomed"), Version: 6},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Commit(ctx, "0000000000000014"); err != nil {
		t.Fatal(err)
	}

	shadows := map[connectors.TableName]connectors.TableName{}
	for _, dt := range []connectors.DestTable{users, orders} {
		sh, err := d.CreateShadow(ctx, dt, nil)
		if err != nil {
			t.Fatal(err)
		}
		shadows[dt.Dest] = sh
	}
	if got, err := d.Shadows(ctx); err != nil || !maps.Equal(got, shadows) {
		t.Fatalf("Shadows = %v, %v; want %v", got, err, shadows)
	}
	if want := (connectors.TableName{Schema: db, Name: "users_resync"}); shadows[users.Dest] != want {
		t.Fatalf("shadow of users: %s, want %s", shadows[users.Dest], want)
	}
	// The shadows loaded under a snapshot at 15 (users) and 10 (orders).
	shUsers, shOrders := users, orders
	shUsers.Dest, shOrders.Dest = shadows[users.Dest], shadows[orders.Dest]
	load(t, l, shUsers, 0, 15, user(t, 1, "a"), user(t, 2, "b"))
	load(t, l, shOrders, 0, 10, user(t, 1, "new"))
	// A column the source added while the shadow was loaded.
	src := &fakeSource{currentValues: func(connectors.TableName, []string) (map[string]connectors.Value, error) {
		return nil, nil
	}}
	cols := append(slices.Clone(users.Schema.Columns), connectors.Column{Name: "email", Type: "text", TypeOID: 25})
	if _, err := d.AddColumns(ctx, src, users, cols); err != nil {
		t.Fatal(err)
	}
	if err := d.CheckSwappable(ctx, users.Dest); err != nil {
		t.Fatal(err)
	}

	// A shadow lost while the other is there: nothing is swapped.
	lost := usersTable(db, "lost")
	if err := d.CreateTable(ctx, lost); err != nil {
		t.Fatal(err)
	}
	lostShadow, err := d.CreateShadow(ctx, lost, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Exec(ctx, "DROP TABLE `"+db+"`.`"+lostShadow.Name+"`"); err != nil {
		t.Fatal(err)
	}
	_, err = d.SwapIn(ctx, []connectors.Swap{{Table: users, NewerThan: 15}, {Table: lost}})
	if !errors.Is(err, connectors.ErrShadowLost) || !strings.Contains(err.Error(), lost.Dest.String()) {
		t.Fatalf("SwapIn with a lost shadow: %v", err)
	}
	if got, want := finalRows(t, conn, users.Dest), []string{"1 a 10 0", "2 changed after the copy 20 0", "3 c 20 1"}; !slices.Equal(got, want) {
		t.Fatalf("users after a refused SwapIn: %q, want %q", got, want)
	}

	// A column the live orders table has and its source no longer has
	// (dropped there): a full resync's shadow, made from the source, does
	// not get it back.
	if err := conn.Exec(ctx, "ALTER TABLE `"+db+"`.orders ADD COLUMN dropped_on_source String"); err != nil {
		t.Fatal(err)
	}
	swaps := []connectors.Swap{{Table: users, NewerThan: 15}, {Table: orders}}
	for range 2 { // the second run finds the swap done
		rep, err := d.SwapIn(ctx, swaps)
		if err != nil {
			t.Fatalf("SwapIn: %v", err)
		}
		if len(rep.Notes) != 0 || len(rep.Validate) != 0 {
			t.Fatalf("SwapIn report: %+v", rep)
		}
		if got, want := finalRows(t, conn, users.Dest), []string{"1 a 15 0", "2 changed after the copy 20 0", "3 c 20 1"}; !slices.Equal(got, want) {
			t.Fatalf("users after SwapIn: %q, want %q", got, want)
		}
		// orders: the deleted row 9 carried, the live row 8 and the old
		// row 1 not.
		if got, want := finalRows(t, conn, orders.Dest), []string{"1 new 10 0", "9 doomed 6 1"}; !slices.Equal(got, want) {
			t.Fatalf("orders after SwapIn: %q, want %q", got, want)
		}
		if got, want := withoutMeta(tablesOf(t, conn, db)), []string{"lost", "orders", "users"}; !slices.Equal(got, want) {
			t.Fatalf("tables after SwapIn: %q, want %q", got, want)
		}
		if got, err := d.Shadows(ctx); err != nil || len(got) != 0 {
			t.Fatalf("Shadows after SwapIn = %v, %v", got, err)
		}
	}
	if got := query(t, conn, "SELECT name FROM system.columns WHERE database = '"+db+"' AND table = 'users' AND name = 'email'"); len(got) != 1 {
		t.Fatalf("users after SwapIn has no column email: %q", got)
	}
	if got := query(t, conn, "SELECT name FROM system.columns WHERE database = '"+db+"' AND table = 'orders' AND name = 'dropped_on_source'"); len(got) != 0 {
		t.Fatalf("orders after a full resync's SwapIn has the column the source dropped: %q", got)
	}
}

// TestDestinationAddColumns checks AddColumns: missing columns added with
// the source's value for existing rows as DEFAULT, the event line, a
// second call doing nothing, and a source that cannot read columns.
func TestDestinationAddColumns(t *testing.T) {
	ctx := testCtx(t)
	conn, db := newDB(t)
	d := openDest(t, db, "m")
	users := usersTable(db, "users")
	if err := d.CreateTable(ctx, users); err != nil {
		t.Fatal(err)
	}
	l, err := d.OpenLoader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(ctx)
	load(t, l, users, 0, 1, user(t, 1, "a"))
	var asked []string
	src := &fakeSource{currentValues: func(table connectors.TableName, cols []string) (map[string]connectors.Value, error) {
		if table != users.Source {
			t.Errorf("CurrentValues of %s, want %s", table, users.Source)
		}
		asked = cols
		return map[string]connectors.Value{"email": bin(t, 25, "none")}, nil
	}}
	cols := append(slices.Clone(users.Schema.Columns), connectors.Column{Name: "email", Type: "text", TypeOID: 25},
		connectors.Column{Name: "age", Type: "integer", TypeOID: 23})
	events, err := d.AddColumns(ctx, src, users, cols)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"id", "name", "email", "age"}; !slices.Equal(asked, want) {
		t.Fatalf("CurrentValues asked for %q, want %q", asked, want)
	}
	want := fmt.Sprintf("%s gained column(s) email, age (existing rows: NULL); added on ClickHouse table %s", users.Source, users.Dest)
	if !slices.Equal(events, []string{want}) {
		t.Fatalf("events = %q, want %q", events, want)
	}
	got := query(t, conn, "SELECT id, email, age FROM `"+db+"`.users FINAL")
	if w := []string{"id=1 email=none age=NULL"}; !slices.Equal(got, w) {
		t.Fatalf("rows after AddColumns: %q, want %q", got, w)
	}
	if events, err := d.AddColumns(ctx, src, users, cols); err != nil || events != nil {
		t.Fatalf("AddColumns again = %q, %v; want nothing", events, err)
	}
	if _, err := d.AddColumns(ctx, struct{ connectors.Source }{}, users, cols); err == nil || !strings.Contains(err.Error(), "column reader") {
		t.Fatalf("AddColumns from a source without ColumnReader: %v", err)
	}
}

// TestDestinationCheckTables checks CheckTables: a column whose source
// type changed is a *TypeChangeError naming it; a table that fits passes.
func TestDestinationCheckTables(t *testing.T) {
	ctx := testCtx(t)
	_, db := newDB(t)
	d := openDest(t, db, "my mirror")
	users := usersTable(db, "users")
	if err := d.CreateTable(ctx, users); err != nil {
		t.Fatal(err)
	}
	if err := d.CheckTables(ctx, []connectors.DestTable{users}); err != nil {
		t.Fatalf("CheckTables of a table that fits: %v", err)
	}
	changed := users
	ts := *users.Schema
	ts.Columns = []connectors.Column{ts.Columns[0], {Name: "name", Type: "bigint", TypeOID: 20}}
	changed.Schema = &ts
	err := d.CheckTables(ctx, []connectors.DestTable{changed})
	var tc *clickhouse.TypeChangeError
	if !errors.As(err, &tc) || tc.Column.Name != "name" || !errors.Is(err, connectors.ErrTableChanged) {
		t.Fatalf("CheckTables after a type change: %v", err)
	}
	want := fmt.Sprintf(`column "name" of %s changed type on the source to bigint, which maps to ClickHouse Nullable(Int64), but %s has Nullable(String): `+
		`Sluice does not follow a column's type change; RESYNC MIRROR "my mirror" rebuilds the ClickHouse tables with the new types`,
		users.Source, users.Dest)
	if err.Error() != want {
		t.Fatalf("CheckTables error:\n%s\nwant\n%s", err, want)
	}
}

// TestDestinationPlanTable checks PlanTable's refusal and notices, and
// SortsBy.
func TestDestinationPlanTable(t *testing.T) {
	_, db := newDB(t)
	d := openDest(t, db, "m")
	users := usersTable(db, "users")
	if got := d.SortsBy(users); !slices.Equal(got, []string{"id"}) {
		t.Fatalf("SortsBy = %q, want the primary key", got)
	}
	if notices, err := d.PlanTable(users); err != nil || len(notices) != 0 {
		t.Fatalf("PlanTable = %q, %v", notices, err)
	}
	bad := users
	bad.OrderBy = []string{"nope", "id"}
	if _, err := d.PlanTable(bad); err == nil || !strings.Contains(err.Error(), "destination table "+users.Dest.String()+" cannot be made") ||
		!strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("PlanTable with a bad order_by: %v", err)
	}
	byName := users
	byName.OrderBy = []string{"name", "id"}
	ts := *users.Schema
	ts.Generated = []connectors.GeneratedColumn{{Name: "upper_name", Type: "text", Expression: "upper(name)", DependsOn: []string{"name"}}}
	byName.Schema = &ts
	if got := d.SortsBy(byName); !slices.Equal(got, byName.OrderBy) {
		t.Fatalf("SortsBy = %q, want the order_by", got)
	}
	notices, err := d.PlanTable(byName)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`order_by column(s) "name" of ` + users.Source.String() + ` are nullable in the source, and ClickHouse sorting keys cannot be Nullable: ` +
			`they are created non-Nullable, and a NULL the source sends is stored as the type's default (0, '', 1970-01-01, ...) ` +
			`and reported as a warning in mirror_events`,
		`column "upper_name" of ` + users.Source.String() + ` is generated on the source (as upper(name)) and is not replicated to ClickHouse: ` +
			`logical replication does not send generated columns, so ` + users.Dest.String() + ` has no column "upper_name"; ` +
			`compute it from "name" in your queries`,
	}
	if !slices.Equal(notices, want) {
		t.Fatalf("PlanTable notices:\n%s\nwant\n%s", strings.Join(notices, "\n"), strings.Join(want, "\n"))
	}
}

// TestDestinationTeardown checks Dependents and Teardown: the mirror's
// metadata forgotten, its shadows dropped, the tables asked for dropped,
// other mirrors' metadata and other tables kept.
func TestDestinationTeardown(t *testing.T) {
	ctx := testCtx(t)
	conn, db := newDB(t)
	d := openDest(t, db, "m")
	other := openDest(t, db, "other")
	users, orders := usersTable(db, "users"), usersTable(db, "orders")
	for _, dt := range []connectors.DestTable{users, orders} {
		if err := d.CreateTable(ctx, dt); err != nil {
			t.Fatal(err)
		}
	}
	l, err := d.OpenLoader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(ctx)
	load(t, l, users, 0, 1, user(t, 1, "a"))
	lo, err := other.OpenLoader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lo.Close(ctx)
	load(t, lo, orders, 0, 1, user(t, 1, "a"))
	for _, m := range []string{"m", "other"} {
		if err := clickhouse.SetPosition(ctx, conn, db, m, "000000000000002A"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.CreateShadow(ctx, users, nil); err != nil {
		t.Fatal(err)
	}
	if err := conn.Exec(ctx, "CREATE MATERIALIZED VIEW `"+db+"`.mv ENGINE = MergeTree ORDER BY id AS SELECT id FROM `"+db+"`.users"); err != nil {
		t.Fatal(err)
	}
	deps, err := d.Dependents(ctx, []connectors.TableName{users.Dest})
	if err != nil || len(deps) != 1 || !strings.Contains(deps[0], "mv") || !strings.Contains(deps[0], "depends on") {
		t.Fatalf("Dependents = %q, %v", deps, err)
	}
	if err := conn.Exec(ctx, "DROP TABLE `"+db+"`.mv"); err != nil {
		t.Fatal(err)
	}
	for range 2 { // idempotent
		p, err := d.Teardown(ctx, []connectors.TableName{users.Dest})
		if err != nil {
			t.Fatalf("Teardown: %v", err)
		}
		if err := p.Commit(ctx); err != nil {
			t.Fatalf("Teardown commit: %v", err)
		}
	}
	applied(t, d, "")
	loaded(t, d, users.Source, map[int]int64{})
	applied(t, other, "000000000000002A")
	loaded(t, other, orders.Source, map[int]int64{0: 1})
	if got, want := withoutMeta(tablesOf(t, conn, db)), []string{"orders"}; !slices.Equal(got, want) {
		t.Fatalf("tables after Teardown: %q, want %q", got, want)
	}
}
