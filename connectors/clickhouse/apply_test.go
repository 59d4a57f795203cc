package clickhouse_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/clickhouse"
	"github.com/sluicedb/sluice/connectors/postgres"
)

var itemsSource = connectors.TableName{Schema: "public", Name: "items"}

func itemsSchema() *connectors.TableSchema {
	return &connectors.TableSchema{Name: itemsSource, PrimaryKey: []string{"id"}, Columns: []connectors.Column{
		{Name: "id", Type: "bigint", TypeOID: pgtype.Int8OID, NotNull: true},
		{Name: "name", Type: "text", TypeOID: pgtype.TextOID},
		{Name: "body", Type: "text", TypeOID: pgtype.TextOID},
		{Name: "qty", Type: "integer", TypeOID: pgtype.Int4OID, NotNull: true},
	}}
}

// setup creates the table of ts in a new database and returns it.
func setup(t *testing.T, ts *connectors.TableSchema) (driver.Conn, string, connectors.DestTable, clickhouse.ServerInfo) {
	t.Helper()
	conn, db := newDB(t)
	info := oldServer(t)
	dt := connectors.DestTable{Source: ts.Name, Dest: connectors.TableName{Schema: db, Name: ts.Name.Name}, Schema: ts}
	ddl, err := clickhouse.CreateTableDDL(dt.Dest, ts, info, clickhouse.TableOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Exec(testCtx(t), ddl); err != nil {
		t.Fatal(err)
	}
	return conn, db, dt, info
}

func row(t *testing.T, id int64, name, body any, qty int32) []connectors.Value {
	v := func(x any) connectors.Value {
		switch x := x.(type) {
		case nil:
			return null
		case connectors.Value:
			return x
		}
		return bin(t, pgtype.TextOID, x)
	}
	return []connectors.Value{bin(t, pgtype.Int8OID, id), v(name), v(body), bin(t, pgtype.Int4OID, qty)}
}

func keyOnly(t *testing.T, id int64) []connectors.Value {
	return []connectors.Value{bin(t, pgtype.Int8OID, id), null, null, null}
}

// apply runs one batch through a; it returns the counts.
func apply(t *testing.T, a *clickhouse.Applier, lsn uint64, changes ...connectors.Change) map[connectors.TableName]connectors.TableCounts {
	t.Helper()
	ctx := testCtx(t)
	if _, err := a.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	if !a.InTx() {
		t.Fatal("not in a transaction after Begin")
	}
	// Two Add calls: the applier keeps both.
	half := len(changes) / 2
	if err := a.Add(ctx, changes[:half], changes[half:]); err != nil {
		t.Fatal(err)
	}
	counts, err := a.Commit(ctx, postgres.LSNPosition(lsn))
	if err != nil {
		t.Fatal(err)
	}
	if a.InTx() {
		t.Fatal("in a transaction after Commit")
	}
	return counts
}

func TestApplier(t *testing.T) {
	ctx := testCtx(t)
	conn, db, dt, info := setup(t, itemsSchema())
	a, err := clickhouse.NewApplier(ctx, conn, info, db, "m", []connectors.DestTable{dt}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tbl := db + ".items"
	final := func() []string {
		return query(t, conn, "SELECT id, name, body, qty, _sluice_is_deleted, _sluice_version FROM "+tbl+" FINAL")
	}
	ch := func(kind connectors.ChangeKind, lsn uint64, newRow, old []connectors.Value) connectors.Change {
		return connectors.Change{Kind: kind, Table: itemsSource, New: newRow, Old: old, Version: lsn}
	}

	counts := apply(t, a, 100,
		ch(connectors.Insert, 90, row(t, 1, "one", "body one", 1), nil),
		ch(connectors.Insert, 90, row(t, 2, "two", "body two", 2), nil),
		ch(connectors.Insert, 95, row(t, 3, "three", nil, 3), nil),
		ch(connectors.Insert, 95, row(t, 4, "four", "body four", 4), nil),
		ch(connectors.Update, 95, row(t, 4, "four!", "body four!", 40), nil),
	)
	if c := counts[itemsSource]; c.Inserts != 4 || c.Updates != 1 || c.Deletes != 0 {
		t.Fatalf("counts %+v", counts)
	}
	equalRows(t, "after inserts", final(), []string{
		"id=1 name=one body=body one qty=1 _sluice_is_deleted=0 _sluice_version=90",
		"id=2 name=two body=body two qty=2 _sluice_is_deleted=0 _sluice_version=90",
		"id=3 name=three body=NULL qty=3 _sluice_is_deleted=0 _sluice_version=95",
		"id=4 name=four! body=body four! qty=40 _sluice_is_deleted=0 _sluice_version=95",
	})

	batch2 := []connectors.Change{
		// An update with an unchanged TOAST value keeps the destination's.
		ch(connectors.Update, 150, row(t, 2, "two!", unchanged, 22), nil),
		// A delete carries only the key: the row keeps its last values.
		ch(connectors.Delete, 150, nil, keyOnly(t, 3)),
		// A primary-key change with an unchanged value: 1 moves to 10.
		ch(connectors.Update, 160, row(t, 10, "ten", unchanged, 10), keyOnly(t, 1)),
		// Changes to one key fold; the delete keeps the values of the update.
		ch(connectors.Update, 170, row(t, 4, "four?", unchanged, 44), nil),
		ch(connectors.Delete, 180, nil, keyOnly(t, 4)),
	}
	counts = apply(t, a, 200, batch2...)
	if c := counts[itemsSource]; c.Inserts != 0 || c.Updates != 3 || c.Deletes != 2 {
		t.Fatalf("counts %+v", counts)
	}
	want := []string{
		"id=1 name=one body=body one qty=1 _sluice_is_deleted=1 _sluice_version=160",
		"id=10 name=ten body=body one qty=10 _sluice_is_deleted=0 _sluice_version=160",
		"id=2 name=two! body=body two qty=22 _sluice_is_deleted=0 _sluice_version=150",
		"id=3 name=three body=NULL qty=3 _sluice_is_deleted=1 _sluice_version=150",
		"id=4 name=four? body=body four! qty=44 _sluice_is_deleted=1 _sluice_version=180",
	}
	equalRows(t, "after batch 2", final(), want)
	if pos, _, err := clickhouse.LastPosition(ctx, conn, db, "m"); err != nil || pos != postgres.LSNPosition(200) {
		t.Fatalf("recorded %s, %v", pos, err)
	}

	// A replayed batch is skipped by the recorded position.
	if recorded, err := a.Begin(ctx); err != nil || recorded != postgres.LSNPosition(200) {
		t.Fatalf("begin: %s %v", recorded, err)
	}
	if err := a.Add(ctx, batch2); err != nil {
		t.Fatal(err)
	}
	if counts, err := a.Commit(ctx, postgres.LSNPosition(200)); err != nil || len(counts) != 0 {
		t.Fatalf("replay: %v %v", counts, err)
	}
	// A batch written again after a crash (the position was not recorded:
	// here, a second mirror over the same table) writes the same rows.
	var before uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM "+tbl).Scan(&before); err != nil {
		t.Fatal(err)
	}
	b, err := clickhouse.NewApplier(ctx, conn, info, db, "crashed", []connectors.DestTable{dt}, nil)
	if err != nil {
		t.Fatal(err)
	}
	apply(t, b, 200, batch2...)
	equalRows(t, "after the rewrite", final(), want)
	if err := conn.Exec(ctx, "OPTIMIZE TABLE "+tbl+" FINAL"); err != nil {
		t.Fatal(err)
	}
	var after uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM "+tbl).Scan(&after); err != nil {
		t.Fatal(err)
	}
	if after != 5 {
		t.Fatalf("%d rows after OPTIMIZE FINAL (%d before the rewrite), want 5", after, before)
	}
	equalRows(t, "after OPTIMIZE FINAL", final(), want)

	// Truncate marks every live row deleted; an insert after it in the
	// batch is live.
	apply(t, a, 300,
		ch(connectors.Insert, 250, row(t, 5, "five", nil, 5), nil),
		ch(connectors.Truncate, 260, nil, nil),
		ch(connectors.Insert, 260, row(t, 20, "twenty", "b", 20), nil),
	)
	equalRows(t, "live after truncate", query(t, conn, "SELECT id, name FROM "+tbl+" FINAL WHERE _sluice_is_deleted = 0"),
		[]string{"id=20 name=twenty"})
	equalRows(t, "deleted by truncate", query(t, conn,
		"SELECT id, body, _sluice_version FROM "+tbl+" FINAL WHERE _sluice_is_deleted = 1 AND _sluice_version = 260"),
		[]string{"id=10 body=body one _sluice_version=260", "id=2 body=body two _sluice_version=260", "id=5 body=NULL _sluice_version=260"})

	// Errors: a change of an unknown table; Rollback drops what was added.
	if _, err := a.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	err = a.Add(ctx, []connectors.Change{{Kind: connectors.Insert, Table: connectors.TableName{Schema: "public", Name: "nope"}}})
	if err == nil || !strings.Contains(err.Error(), "public.nope") || a.InTx() {
		t.Fatalf("unknown table: %v (in tx %v)", err, a.InTx())
	}
	if _, err := a.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Add(ctx, []connectors.Change{ch(connectors.Insert, 400, row(t, 99, "x", nil, 1), nil)}); err != nil {
		t.Fatal(err)
	}
	if err := a.Rollback(ctx); err != nil || a.InTx() {
		t.Fatal(err)
	}
	if got := query(t, conn, "SELECT id FROM "+tbl+" WHERE id = 99"); len(got) != 0 {
		t.Fatalf("rolled back row written: %v", got)
	}
}

// everyTypeRow is a source row of everyTypeSchema with non-NULL values, and
// how ClickHouse 18.16 shows them.
func everyTypeRow(t *testing.T, id int64) ([]connectors.Value, string) {
	ts := time.Date(2024, 5, 6, 7, 8, 9, 123456000, time.UTC)
	u := uuid.MustParse("0b2c4f4e-8a1d-4f3e-9b6a-1c2d3e4f5a6b")
	vals := []connectors.Value{
		bin(t, pgtype.Int8OID, id),
		bin(t, pgtype.Int2OID, int16(-12)),
		bin(t, pgtype.Int4OID, int32(123456)),
		bin(t, pgtype.Float4OID, float32(1.5)),
		bin(t, pgtype.Float8OID, 2.25),
		bin(t, pgtype.BoolOID, true),
		bin(t, pgtype.NumericOID, num(t, "12345678901234.123456")),
		bin(t, pgtype.NumericOID, num(t, "123456789012345678901234567890123456789012.25")),
		bin(t, pgtype.NumericOID, num(t, "1.50")),
		bin(t, pgtype.TextOID, "it's \\ text"),
		bin(t, pgtype.VarcharOID, "vc"),
		bin(t, pgtype.BPCharOID, "ab "),
		bin(t, pgtype.NameOID, "nm"),
		bin(t, pgtype.ByteaOID, []byte{0, 1, 0xff}),
		bin(t, pgtype.UUIDOID, u),
		bin(t, pgtype.JSONOID, `{"a": 1}`),
		bin(t, pgtype.JSONBOID, map[string]any{"b": 2}),
		bin(t, pgtype.DateOID, time.Date(2024, 5, 6, 0, 0, 0, 0, time.UTC)),
		bin(t, pgtype.TimestampOID, ts),
		bin(t, pgtype.TimestamptzOID, ts),
		bin(t, pgtype.TimeOID, pgtype.Time{Microseconds: (7*3600+8*60+9)*1e6 + 500000, Valid: true}),
		bin(t, pgtype.IntervalOID, pgtype.Interval{Months: 14, Days: 3, Microseconds: 3600e6, Valid: true}),
		bin(t, pgtype.InetOID, netip.MustParsePrefix("192.168.0.1/32")),
		bin(t, pgtype.CIDROID, netip.MustParsePrefix("10.0.0.0/8")),
		{Kind: connectors.Binary, Data: []byte("happy")},
		bin(t, pgtype.PointOID, pgtype.Point{P: pgtype.Vec2{X: 1.5, Y: -2}, Valid: true}),
		bin(t, pgtype.Int4ArrayOID, []any{int32(1), nil, int32(3)}),
		bin(t, pgtype.TextArrayOID, []string{"x", "y"}),
		bin(t, pgtype.NumericArrayOID, []pgtype.Numeric{num(t, "1.25"), num(t, "-3.5")}),
		bin(t, pgtype.TimestamptzArrayOID, []time.Time{ts}),
		bin(t, pgtype.TextArrayOID, []string{"sad", "happy"}),
	}
	show := "i2=-12 i4=123456 f4=1.5 f8=2.25 b=1 n=12345678901234.123456 " +
		"nbig=123456789012345678901234567890123456789012.25 nu=1.50 t=it's \\ text vc=vc bp=ab  nm=nm by=\x00\x01\xff " +
		"u=0b2c4f4e-8a1d-4f3e-9b6a-1c2d3e4f5a6b j={\"a\": 1} jb={\"b\":2} d=2024-05-06 " +
		"ts=2024-05-06 07:08:09.123456 tz=2024-05-06 07:08:09.123456 tm=07:08:09.500000 iv=1 year 2 mons 3 days 01:00:00 " +
		"ip=192.168.0.1 cidr=10.0.0.0/8 mood=happy pt=(1.5,-2) ai=[1,NULL,3] at=[x,y] an=[1.25,-3.5] " +
		"ats=[2024-05-06 07:08:09.123456] amood=[sad,happy]"
	return vals, show
}

func TestEveryTypeRoundTrip(t *testing.T) {
	ctx := testCtx(t)
	ts := everyTypeSchema()
	conn, db, dt, info := setup(t, ts)
	var cols []string
	for _, c := range ts.Columns {
		cols = append(cols, c.Name)
	}
	sel := "SELECT " + strings.Join(cols, ", ") + " FROM " + db + ".every FINAL WHERE _sluice_is_deleted = 0"

	// The initial load's writer: a full row and a row of NULLs.
	full, shown := everyTypeRow(t, 1)
	nulls := make([]connectors.Value, len(full))
	for i, c := range ts.Columns {
		nulls[i] = null
		if c.NotNull {
			nulls[i] = full[i]
		}
	}
	nulls[0] = bin(t, pgtype.Int8OID, int64(2))
	w, err := clickhouse.NewWriter(dt.Dest, ts, info, clickhouse.TableOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Insert(ctx, conn, [][]connectors.Value{full, nulls}, 10); err != nil {
		t.Fatal(err)
	}
	nullShown := "i2=NULL i4=123456 f4=NULL f8=NULL b=NULL n=NULL nbig=NULL nu=NULL t=NULL vc=vc bp=NULL nm=NULL by=NULL " +
		"u=NULL j=NULL jb=NULL d=NULL ts=NULL tz=NULL tm=NULL iv=NULL ip=NULL cidr=NULL mood=NULL pt=NULL " +
		"ai=[] at=[x,y] an=[] ats=[] amood=[]"
	equalRows(t, "loaded", query(t, conn, sel), []string{"id=1 " + shown, "id=2 " + nullShown})

	// CDC: an insert of every value, and an update of row 1 that leaves
	// every value but i4 unchanged (each is read back from ClickHouse).
	a, err := clickhouse.NewApplier(ctx, conn, info, db, "m", []connectors.DestTable{dt}, nil)
	if err != nil {
		t.Fatal(err)
	}
	third, _ := everyTypeRow(t, 3)
	upd := make([]connectors.Value, len(full))
	for i := range upd {
		upd[i] = unchanged
	}
	upd[0], upd[2] = full[0], bin(t, pgtype.Int4OID, int32(7))
	apply(t, a, 100,
		connectors.Change{Kind: connectors.Insert, Table: ts.Name, New: third, Version: 100},
		connectors.Change{Kind: connectors.Update, Table: ts.Name, New: upd, Version: 100},
	)
	equalRows(t, "after cdc", query(t, conn, sel), []string{
		"id=1 " + strings.Replace(shown, "i4=123456", "i4=7", 1), "id=2 " + nullShown, "id=3 " + shown})
}
