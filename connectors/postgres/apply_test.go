package postgres_test

import (
	"encoding/binary"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/postgres"
)

// Applier tests run against the destination test cluster (TestMain in
// main_test.go); values are encoded in binary send format with pgx's type
// map, as the replication stream delivers them.

var apTypes = pgtype.NewMap()

// apUnch stands for an unchanged TOAST value in apRow arguments.
var apUnch = connectors.Value{Kind: connectors.Unchanged}

// apRow encodes xs for the columns of s: nil is NULL, a connectors.Value is
// taken as is, anything else is encoded for the column's TypeOID.
func apRow(t testing.TB, s *connectors.TableSchema, xs ...any) []connectors.Value {
	t.Helper()
	if len(xs) != len(s.Columns) {
		t.Fatalf("apRow: %d values for %d columns", len(xs), len(s.Columns))
	}
	out := make([]connectors.Value, len(xs))
	for i, x := range xs {
		switch x := x.(type) {
		case nil:
			out[i] = connectors.Value{Kind: connectors.Null}
		case connectors.Value:
			out[i] = x
		default:
			oid := s.Columns[i].TypeOID
			if str, ok := x.(string); ok && oid != pgtype.TextOID {
				// Text form of another type (numeric, uuid): parse it first.
				var v any
				if err := apTypes.Scan(oid, pgtype.TextFormatCode, []byte(str), &v); err != nil {
					t.Fatalf("apRow: parse %q for %s: %v", str, s.Columns[i].Name, err)
				}
				x = v
			}
			b, err := apTypes.Encode(oid, pgtype.BinaryFormatCode, x, nil)
			if err != nil {
				t.Fatalf("apRow: encode %v for %s: %v", x, s.Columns[i].Name, err)
			}
			out[i] = connectors.Value{Kind: connectors.Binary, Data: b}
		}
	}
	return out
}

// apKey is an old-key tuple: key columns set, the rest NULL.
func apKey(t testing.TB, s *connectors.TableSchema, key ...any) []connectors.Value {
	t.Helper()
	xs := make([]any, len(s.Columns))
	for j, i := range s.KeyIndexes() {
		xs[i] = key[j]
	}
	return apRow(t, s, xs...)
}

// apFixture is one mirrored table and helpers to build its changes.
type apFixture struct {
	t      testing.TB
	dt     postgres.DestTable
	schema *connectors.TableSchema
}

func (f *apFixture) ins(xs ...any) connectors.Change {
	return connectors.Change{Kind: connectors.Insert, Table: f.dt.Source, New: apRow(f.t, f.schema, xs...)}
}

func (f *apFixture) upd(xs ...any) connectors.Change {
	return connectors.Change{Kind: connectors.Update, Table: f.dt.Source, New: apRow(f.t, f.schema, xs...)}
}

// move is an update that changed the primary key from oldKey.
func (f *apFixture) move(oldKey []any, xs ...any) connectors.Change {
	c := f.upd(xs...)
	c.Old = apKey(f.t, f.schema, oldKey...)
	return c
}

func (f *apFixture) del(key ...any) connectors.Change {
	return connectors.Change{Kind: connectors.Delete, Table: f.dt.Source, Old: apKey(f.t, f.schema, key...)}
}

func (f *apFixture) trunc() connectors.Change {
	return connectors.Change{Kind: connectors.Truncate, Table: f.dt.Source}
}

// itemsSchema is source table src.items(id int primary key, name text, note text).
func itemsSchema() *connectors.TableSchema {
	return &connectors.TableSchema{
		Name: connectors.TableName{Schema: "src", Name: "items"},
		Columns: []connectors.Column{
			{Name: "id", Type: "integer", TypeOID: pgtype.Int4OID, NotNull: true, Position: 1},
			{Name: "name", Type: "text", TypeOID: pgtype.TextOID, Position: 2},
			{Name: "note", Type: "text", TypeOID: pgtype.TextOID, Position: 3},
		},
		PrimaryKey: []string{"id"},
	}
}

// newItems creates public.items on conn (plus the soft-delete and synced-at
// columns when named) and returns its fixture.
func newItems(t testing.TB, conn *pgx.Conn, soft, synced string) *apFixture {
	t.Helper()
	ddl := "CREATE TABLE public.items (id int PRIMARY KEY, name text, note text"
	if soft != "" {
		ddl += ", " + pgx.Identifier{soft}.Sanitize() + " boolean NOT NULL DEFAULT false"
	}
	if synced != "" {
		ddl += ", " + pgx.Identifier{synced}.Sanitize() + " timestamptz"
	}
	mustExec(t, conn, ddl+")")
	s := itemsSchema()
	return &apFixture{t: t, schema: s, dt: postgres.DestTable{
		Source: s.Name, Dest: connectors.TableName{Schema: "public", Name: "items"}, Schema: s,
		SoftDeleteColumn: soft, SyncedAtColumn: synced,
	}}
}

// apBatches hands out batches with increasing end positions.
type apBatches struct{ lsn uint64 }

func (g *apBatches) next(changes ...connectors.Change) *connectors.Batch {
	g.lsn += 0x100
	return &connectors.Batch{Changes: changes, End: postgres.LSNPosition(g.lsn), CommitTime: time.Now()}
}

func newApplier(t testing.TB, conn *pgx.Conn, mirror string, fs ...*apFixture) *postgres.Applier {
	t.Helper()
	var tables []postgres.DestTable
	for _, f := range fs {
		tables = append(tables, f.dt)
	}
	a, err := postgres.NewApplier(testCtx(t), conn, "", mirror, tables)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func mustApply(t testing.TB, a *postgres.Applier, b *connectors.Batch) map[connectors.TableName]postgres.TableCounts {
	t.Helper()
	counts, err := a.Apply(testCtx(t), b)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	return counts
}

// textRows runs sql, whose single column is text, and returns the values.
func textRows(t testing.TB, conn *pgx.Conn, sql string) []string {
	t.Helper()
	rows, err := conn.Query(testCtx(t), sql)
	if err != nil {
		t.Fatalf("query: %v\n%s", err, sql)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("query: %v\n%s", err, sql)
	}
	return got
}

func wantRows(t testing.TB, conn *pgx.Conn, sql string, want ...string) {
	t.Helper()
	got := textRows(t, conn, sql)
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got  %q\n want %q", sql, got, want)
	}
}

const itemsSQL = "SELECT i::text FROM public.items i ORDER BY id"

func lastLSN(t testing.TB, conn *pgx.Conn, mirror string) uint64 {
	t.Helper()
	pos, _, err := postgres.LastPosition(testCtx(t), conn, "", mirror)
	if err != nil {
		t.Fatal(err)
	}
	lsn, err := postgres.PositionLSN(pos)
	if err != nil {
		t.Fatal(err)
	}
	return lsn
}

func TestApplyInsertUpdateDelete(t *testing.T) {
	conn := connect(t, dstCluster.NewDB(t))
	f := newItems(t, conn, "", "")
	a := newApplier(t, conn, "m", f)
	var g apBatches

	counts := mustApply(t, a, g.next(f.ins(1, "a", "x"), f.ins(2, "b", nil), f.ins(3, "c", "z")))
	if want := (postgres.TableCounts{Inserts: 3}); counts[f.dt.Source] != want {
		t.Errorf("counts = %+v, want %+v", counts[f.dt.Source], want)
	}
	wantRows(t, conn, itemsSQL, "(1,a,x)", "(2,b,)", "(3,c,z)")
	if got := lastLSN(t, conn, "m"); got != g.lsn {
		t.Errorf("recorded lsn %X, want %X", got, g.lsn)
	}

	counts = mustApply(t, a, g.next(f.upd(1, "a2", "x2"), f.del(2), f.upd(3, "c2", nil), f.upd(3, "c3", nil), f.del(9)))
	if want := (postgres.TableCounts{Updates: 3, Deletes: 2}); counts[f.dt.Source] != want {
		t.Errorf("counts = %+v, want %+v", counts[f.dt.Source], want)
	}
	wantRows(t, conn, itemsSQL, "(1,a2,x2)", "(3,c3,)")

	// An update of a row the destination lacks inserts it.
	mustApply(t, a, g.next(f.upd(7, "new", "n")))
	wantRows(t, conn, itemsSQL, "(1,a2,x2)", "(3,c3,)", "(7,new,n)")

	// Rows the destination already has (a resumed initial load, a replay)
	// are overwritten, whether the change is an insert or an update, and
	// whatever else the batch holds.
	mustExec(t, conn, "INSERT INTO public.items VALUES (20, 'stale', 's'), (21, 'stale', 's')")
	mustApply(t, a, g.next(f.ins(20, "new", "n"), f.ins(22, "new", "n")))
	mustApply(t, a, g.next(f.upd(21, "new", "n"), f.upd(23, "new", "n")))
	wantRows(t, conn, "SELECT i::text FROM public.items i WHERE id >= 20 ORDER BY id",
		"(20,new,n)", "(21,new,n)", "(22,new,n)", "(23,new,n)")

	// An empty batch only moves the position.
	mustApply(t, a, g.next())
	if got := lastLSN(t, conn, "m"); got != g.lsn {
		t.Errorf("recorded lsn %X, want %X", got, g.lsn)
	}
}

func TestApplyReplay(t *testing.T) {
	conn := connect(t, dstCluster.NewDB(t))
	f := newItems(t, conn, "", "")
	a := newApplier(t, conn, "m", f)
	var g apBatches
	mustApply(t, a, g.next(f.ins(1, "a", "x"), f.ins(2, "b", "y")))
	b := g.next(f.ins(3, "c", "z"), f.upd(1, "a2", apUnch), f.del(2), f.ins(4, "d", "w"), f.del(4))
	first := mustApply(t, a, b)
	want := []string{"(1,a2,x)", "(3,c,z)"}
	wantRows(t, conn, itemsSQL, want...)

	// The same batch again is recognised by its position and skipped.
	again := mustApply(t, a, b)
	if len(again) != 0 {
		t.Errorf("replayed batch counted %v, want nothing", again)
	}
	wantRows(t, conn, itemsSQL, want...)

	// The same changes in a later batch (a batch straddling the recorded
	// position re-applies them) leave the same state.
	c := g.next(b.Changes...)
	if counts := mustApply(t, a, c); counts[f.dt.Source] != first[f.dt.Source] {
		t.Errorf("counts %+v, want %+v", counts[f.dt.Source], first[f.dt.Source])
	}
	wantRows(t, conn, itemsSQL, want...)
	if got := postgres.LSNPosition(lastLSN(t, conn, "m")); got != c.End {
		t.Errorf("recorded position %s, want %s", got, c.End)
	}
}

func TestApplyUnchangedToast(t *testing.T) {
	conn := connect(t, dstCluster.NewDB(t))
	f := newItems(t, conn, "", "")
	a := newApplier(t, conn, "m", f)
	var g apBatches
	big := strings.Repeat("toast", 1000)
	mustApply(t, a, g.next(f.ins(1, "a", big)))

	// A plain update that did not send the TOASTed value keeps it.
	mustApply(t, a, g.next(f.upd(1, "b", apUnch)))
	wantRows(t, conn, "SELECT name || ':' || length(note) FROM public.items", "b:5000")

	// Two such updates in one batch fold; an insert earlier in the batch
	// supplies the value.
	mustApply(t, a, g.next(f.upd(1, "c", apUnch), f.upd(1, "d", apUnch), f.ins(2, "e", "full"), f.upd(2, "f", apUnch)))
	wantRows(t, conn, itemsSQL, "(1,d,"+big+")", "(2,f,full)")

	// An update with unchanged columns of a row the destination lacks can
	// only update what exists: nothing is inserted, but it is counted.
	counts := mustApply(t, a, g.next(f.upd(3, "g", apUnch)))
	if counts[f.dt.Source].Updates != 1 {
		t.Errorf("counts = %+v, want 1 update", counts[f.dt.Source])
	}
	wantRows(t, conn, "SELECT count(*)::text FROM public.items", "2")
}

func TestApplySameKeyInOneBatch(t *testing.T) {
	conn := connect(t, dstCluster.NewDB(t))
	f := newItems(t, conn, "", "")
	a := newApplier(t, conn, "m", f)
	var g apBatches
	mustApply(t, a, g.next(f.ins(5, "pre", "p"), f.ins(6, "pre", "p")))

	mustApply(t, a, g.next(
		f.ins(1, "a", "x"), f.del(1), f.ins(1, "a2", "x2"), // insert, delete, insert: the last insert
		f.del(5), f.ins(5, "again", "q"), // delete then insert: upsert
		f.ins(2, "b", "y"), f.move([]any{2}, 3, "b", "y"), f.ins(2, "b2", "y2"), // 2 -> 3, then 2 reused
		f.ins(4, "c", "z"), f.upd(4, "c2", "z2"), f.del(4), // gone again
		f.del(6), f.upd(6, "ghost", apUnch), // update after delete: nothing to update
	))
	wantRows(t, conn, itemsSQL, "(1,a2,x2)", "(2,b2,y2)", "(3,b,y)", "(5,again,q)")
}

func TestApplyPrimaryKeyChange(t *testing.T) {
	conn := connect(t, dstCluster.NewDB(t))
	f := newItems(t, conn, "", "")
	a := newApplier(t, conn, "m", f)
	var g apBatches
	big := strings.Repeat("B", 3000)
	mustApply(t, a, g.next(f.ins(1, "a", "x"), f.ins(2, "b", big), f.ins(10, "k", "t10"), f.ins(11, "l", "t11"),
		f.ins(20, "m", "t20")))

	// Full new row: delete old key + upsert.
	counts := mustApply(t, a, g.next(f.move([]any{1}, 100, "a", "x")))
	if want := (postgres.TableCounts{Updates: 1}); counts[f.dt.Source] != want {
		t.Errorf("counts = %+v, want %+v", counts[f.dt.Source], want)
	}
	wantRows(t, conn, "SELECT i.id::text FROM public.items i ORDER BY i.id", "2", "10", "11", "20", "100")

	// Unchanged TOAST value: taken from the old row on the destination.
	mustApply(t, a, g.next(f.move([]any{2}, 200, "b2", apUnch)))
	wantRows(t, conn, "SELECT id || ':' || name || ':' || (note = $$"+big+"$$) FROM public.items WHERE id IN (2, 200)",
		"200:b2:true")

	// A shift in one batch (11 -> 12, then 10 -> 11), each keeping its own
	// value, and a partial update before a move of the same key.
	mustApply(t, a, g.next(
		f.move([]any{11}, 12, "l", apUnch), f.move([]any{10}, 11, "k", apUnch),
		f.upd(20, "m2", apUnch), f.move([]any{20}, 21, "m3", apUnch),
	))
	wantRows(t, conn, "SELECT i::text FROM public.items i WHERE id BETWEEN 10 AND 29 ORDER BY id",
		"(11,k,t10)", "(12,l,t11)", "(21,m3,t20)")

	// Insert and move in one batch: the value comes from the insert; a move
	// from a row that does not exist updates the new key only if present.
	mustApply(t, a, g.next(f.ins(30, "n", "t30"), f.move([]any{30}, 31, "n2", apUnch),
		f.move([]any{40}, 41, "ghost", apUnch), f.move([]any{42}, 12, "l2", apUnch)))
	wantRows(t, conn, "SELECT i::text FROM public.items i WHERE id BETWEEN 10 AND 49 ORDER BY id",
		"(11,k,t10)", "(12,l2,t11)", "(21,m3,t20)", "(31,n2,t30)")
}

func TestApplyTruncateMidBatch(t *testing.T) {
	conn := connect(t, dstCluster.NewDB(t))
	f := newItems(t, conn, "", "")
	other := newOther(t, conn)
	a := newApplier(t, conn, "m", f, other)
	var g apBatches
	mustApply(t, a, g.next(f.ins(1, "pre", "p")))
	mustApply(t, a, g.next(f.ins(2, "a", "x"), other.ins(1, "o"), f.upd(1, "pre2", "p"), f.trunc(), f.ins(3, "c", "z"),
		f.upd(3, "c2", apUnch), other.ins(2, "o")))
	wantRows(t, conn, itemsSQL, "(3,c2,z)")
	wantRows(t, conn, "SELECT count(*)::text FROM public.other", "2")
}

// newOther creates public.other(k bigint primary key, v text).
func newOther(t testing.TB, conn *pgx.Conn) *apFixture {
	t.Helper()
	mustExec(t, conn, "CREATE TABLE public.other (k bigint PRIMARY KEY, v text)")
	s := &connectors.TableSchema{
		Name: connectors.TableName{Schema: "src", Name: "other"},
		Columns: []connectors.Column{
			{Name: "k", Type: "bigint", TypeOID: pgtype.Int8OID, NotNull: true, Position: 1},
			{Name: "v", Type: "text", TypeOID: pgtype.TextOID, Position: 2},
		},
		PrimaryKey: []string{"k"},
	}
	return &apFixture{t: t, schema: s, dt: postgres.DestTable{Source: s.Name,
		Dest: connectors.TableName{Schema: "public", Name: "other"}, Schema: s}}
}

func TestApplySoftDelete(t *testing.T) {
	conn := connect(t, dstCluster.NewDB(t))
	f := newItems(t, conn, "_deleted", "_synced")
	a := newApplier(t, conn, "m", f)
	var g apBatches
	const sql = "SELECT format('%s,%s,%s,%s', id, name, note, _deleted) FROM public.items ORDER BY id"

	before := time.Now().Add(-time.Second)
	mustApply(t, a, g.next(f.ins(1, "a", "x"), f.ins(2, "b", "y"), f.ins(3, "c", "z")))
	wantRows(t, conn, "SELECT count(*)::text FROM public.items WHERE _synced IS NULL OR _synced < $$"+
		before.Format(time.RFC3339Nano)+"$$", "0")
	// All rows of one batch share the transaction's time.
	wantRows(t, conn, "SELECT count(DISTINCT _synced)::text FROM public.items", "1")
	var first time.Time
	if err := conn.QueryRow(testCtx(t), "SELECT _synced FROM public.items WHERE id = 1").Scan(&first); err != nil {
		t.Fatal(err)
	}

	// A delete keeps the row and its values; a delete of a row inserted in
	// the same batch keeps that row, flagged.
	mustApply(t, a, g.next(f.del(1), f.ins(4, "d", "w"), f.del(4), f.upd(2, "b2", apUnch), f.del(2)))
	wantRows(t, conn, sql, "1,a,x,t", "2,b2,y,t", "3,c,z,f", "4,d,w,t")
	var later time.Time
	if err := conn.QueryRow(testCtx(t), "SELECT _synced FROM public.items WHERE id = 1").Scan(&later); err != nil {
		t.Fatal(err)
	}
	if !later.After(first) {
		t.Errorf("soft delete left synced-at at %v (inserted at %v)", later, first)
	}

	// Re-insert after soft delete clears the flag; a repeated delete
	// changes nothing.
	mustApply(t, a, g.next(f.ins(1, "a2", "x2"), f.del(4)))
	wantRows(t, conn, sql, "1,a2,x2,f", "2,b2,y,t", "3,c,z,f", "4,d,w,t")

	// A key change soft-deletes the old key; truncate soft-deletes every
	// row, after the changes before it and before those after it.
	mustApply(t, a, g.next(f.move([]any{3}, 5, "c", apUnch)))
	wantRows(t, conn, sql, "1,a2,x2,f", "2,b2,y,t", "3,c,z,t", "4,d,w,t", "5,c,z,f")
	mustApply(t, a, g.next(f.ins(6, "e", "v"), f.trunc(), f.ins(7, "f", "u")))
	wantRows(t, conn, sql, "1,a2,x2,t", "2,b2,y,t", "3,c,z,t", "4,d,w,t", "5,c,z,t", "6,e,v,t", "7,f,u,f")
}

func TestApplyCompositeKeyAndTwoSchemas(t *testing.T) {
	conn := connect(t, dstCluster.NewDB(t))
	mustExec(t, conn, `CREATE SCHEMA "Sales"; CREATE SCHEMA archive;
CREATE TABLE "Sales"."Order Lines" ("order" int, line text, qty numeric(10,2), PRIMARY KEY ("order", line));
CREATE TABLE archive."Order Lines" ("order" int, line text, qty numeric(10,2), PRIMARY KEY ("order", line))`)
	mk := func(schema string) *apFixture {
		s := &connectors.TableSchema{
			Name: connectors.TableName{Schema: schema, Name: "Order Lines"},
			Columns: []connectors.Column{
				{Name: "order", Type: "integer", TypeOID: pgtype.Int4OID},
				{Name: "line", Type: "text", TypeOID: pgtype.TextOID},
				{Name: "qty", Type: "numeric(10,2)", TypeOID: pgtype.NumericOID},
			},
			PrimaryKey: []string{"order", "line"},
		}
		return &apFixture{t: t, schema: s, dt: postgres.DestTable{Source: s.Name, Dest: s.Name, Schema: s}}
	}
	sales, archive := mk("Sales"), mk("archive")
	a := newApplier(t, conn, "m", sales, archive)
	var g apBatches
	counts := mustApply(t, a, g.next(
		sales.ins(1, "a", "1.5"), sales.ins(1, "b", "2"), sales.ins(2, "a", "3"),
		archive.ins(1, "a", "9"),
		sales.upd(1, "b", "2.25"), sales.del(2, "a"), sales.move([]any{1, "a"}, 1, "c", "1.5"),
		archive.del(1, "a"), archive.ins(1, "a", "10"),
	))
	wantRows(t, conn, `SELECT x::text FROM "Sales"."Order Lines" x ORDER BY 1`, `(1,b,2.25)`, `(1,c,1.50)`)
	wantRows(t, conn, `SELECT x::text FROM archive."Order Lines" x ORDER BY 1`, `(1,a,10.00)`)
	if want := (postgres.TableCounts{Inserts: 3, Updates: 2, Deletes: 1}); counts[sales.dt.Source] != want {
		t.Errorf("sales counts = %+v, want %+v", counts[sales.dt.Source], want)
	}
	if want := (postgres.TableCounts{Inserts: 2, Deletes: 1}); counts[archive.dt.Source] != want {
		t.Errorf("archive counts = %+v, want %+v", counts[archive.dt.Source], want)
	}
}

func TestApplyTypes(t *testing.T) {
	conn := connect(t, dstCluster.NewDB(t))
	mustExec(t, conn, `CREATE TYPE public.mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE public.types (
	id uuid PRIMARY KEY, i int8, n numeric(12,3), t text, b bytea, j jsonb, ts timestamptz,
	ia int4[], ta text[], m public.mood, ma public.mood[], f float8, d date, bo boolean)`)
	s := &connectors.TableSchema{
		Name: connectors.TableName{Schema: "public", Name: "types"},
		Columns: []connectors.Column{
			{Name: "id", Type: "uuid", TypeOID: pgtype.UUIDOID},
			{Name: "i", Type: "bigint", TypeOID: pgtype.Int8OID},
			{Name: "n", Type: "numeric(12,3)", TypeOID: pgtype.NumericOID},
			{Name: "t", Type: "text", TypeOID: pgtype.TextOID},
			{Name: "b", Type: "bytea", TypeOID: pgtype.ByteaOID},
			{Name: "j", Type: "jsonb", TypeOID: pgtype.JSONBOID},
			{Name: "ts", Type: "timestamp with time zone", TypeOID: pgtype.TimestamptzOID},
			{Name: "ia", Type: "integer[]", TypeOID: pgtype.Int4ArrayOID},
			{Name: "ta", Type: "text[]", TypeOID: pgtype.TextArrayOID},
			// The enum's binary form is its label; its OID differs per cluster.
			{Name: "m", Type: "public.mood", TypeOID: pgtype.TextOID},
			{Name: "ma", Type: "public.mood[]", TypeOID: pgtype.TextArrayOID},
			{Name: "f", Type: "double precision", TypeOID: pgtype.Float8OID},
			{Name: "d", Type: "date", TypeOID: pgtype.DateOID},
			{Name: "bo", Type: "boolean", TypeOID: pgtype.BoolOID},
		},
		PrimaryKey: []string{"id"},
	}
	f := &apFixture{t: t, schema: s, dt: postgres.DestTable{Source: s.Name, Dest: s.Name, Schema: s}}
	a := newApplier(t, conn, "m", f)

	// An enum array as the source sends it names the source's enum OID.
	moods := apRow(t, s, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, []string{"ok", "happy"}, nil, nil, nil)[10]
	binary.BigEndian.PutUint32(moods.Data[8:12], 91234)
	ts := time.Date(2024, 2, 29, 13, 14, 15, 123456000, time.UTC)
	id1, id2 := "6ba7b810-9dad-11d1-80b4-00c04fd430c8", "00000000-0000-0000-0000-000000000002"
	var g apBatches
	mustApply(t, a, g.next(
		f.ins(id1, int64(-9007199254740993), "12345.678", "héllo\nworld", []byte{0, 1, 255}, map[string]any{"a": []any{1, "x"}},
			ts, []int32{1, 2, 3}, []string{"a", "b,c", ""}, "happy", moods, 1.5, time.Date(2000, 1, 2, 0, 0, 0, 0, time.UTC), true),
		f.ins(id2, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil),
	))
	mustExec(t, conn, "SET timezone = 'UTC'")
	wantRows(t, conn, "SELECT x::text FROM public.types x ORDER BY id",
		`(00000000-0000-0000-0000-000000000002,,,,,,,,,,,,,)`,
		`(6ba7b810-9dad-11d1-80b4-00c04fd430c8,-9007199254740993,12345.678,"héllo`+"\n"+`world","\\x0001ff","{""a"": [1, ""x""]}","2024-02-29 13:14:15.123456+00","{1,2,3}","{a,""b,c"",""""}",happy,"{ok,happy}",1.5,2000-01-02,t)`)

	// A key change of an enum-array row with an unchanged column.
	mustApply(t, a, g.next(f.move([]any{id1}, "6ba7b810-9dad-11d1-80b4-00c04fd430c9", int64(1), apUnch, apUnch, apUnch,
		apUnch, apUnch, apUnch, apUnch, "sad", apUnch, apUnch, apUnch, apUnch)))
	wantRows(t, conn, "SELECT format('%s %s %s %s %s', id, i, n, m, ma) FROM public.types WHERE i IS NOT NULL",
		"6ba7b810-9dad-11d1-80b4-00c04fd430c9 1 12345.678 sad {ok,happy}")
}

// TestApplyCastTypes: destination columns of other types than the source's
// (bigint for integer, varchar for text) take the values by assignment cast
// from staging, since the rows cannot be copied straight in.
func TestApplyCastTypes(t *testing.T) {
	conn := connect(t, dstCluster.NewDB(t))
	mustExec(t, conn, "CREATE TABLE public.items (id bigint PRIMARY KEY, name varchar(10), note text, extra text DEFAULT 'd')")
	s := itemsSchema()
	f := &apFixture{t: t, schema: s, dt: postgres.DestTable{Source: s.Name,
		Dest: connectors.TableName{Schema: "public", Name: "items"}, Schema: s, SyncedAtColumn: "extra"}}
	a := newApplier(t, conn, "m", f)
	var g apBatches
	mustApply(t, a, g.next(f.ins(1, "a", "x"), f.ins(2, "b", "y"), f.upd(3, "c", "z")))
	mustApply(t, a, g.next(f.ins(2, "b2", "y2"), f.ins(4, "d", "w"), f.upd(1, "a2", apUnch))) // 2 exists: replay
	wantRows(t, conn, "SELECT format('%s,%s,%s,%s', id, name, note, extra IS NOT NULL AND extra <> 'd') FROM public.items ORDER BY id",
		"1,a2,x,t", "2,b2,y2,t", "3,c,z,t", "4,d,w,t")
	if _, err := a.Apply(testCtx(t), g.next(f.ins(5, "far too long a name", "x"))); err == nil ||
		!strings.Contains(err.Error(), "too long") {
		t.Errorf("apply of a value the destination type rejects: err = %v", err)
	}
}

func TestApplyFailureIsAtomic(t *testing.T) {
	conn := connect(t, dstCluster.NewDB(t))
	f := newItems(t, conn, "", "")
	other := newOther(t, conn)
	mustExec(t, conn, "ALTER TABLE public.items ALTER COLUMN name SET NOT NULL")
	a := newApplier(t, conn, "m", f, other)
	var g apBatches
	mustApply(t, a, g.next(f.ins(1, "a", "x"), other.ins(1, "o")))
	lsn := g.lsn

	_, err := a.Apply(testCtx(t), g.next(other.ins(2, "o"), f.ins(2, "b", "y"), f.upd(1, nil, "x2"), f.trunc(), f.ins(3, nil, "z")))
	if err == nil || !strings.Contains(err.Error(), "not-null") {
		t.Fatalf("apply of a NOT NULL violation: err = %v", err)
	}
	wantRows(t, conn, itemsSQL, "(1,a,x)")
	wantRows(t, conn, "SELECT count(*)::text FROM public.other", "1")
	if got := lastLSN(t, conn, "m"); got != lsn {
		t.Errorf("recorded lsn %X after a failed batch, want %X", got, lsn)
	}

	// The applier (and its connection) still work.
	mustApply(t, a, g.next(f.upd(1, "a2", apUnch), other.ins(2, "o")))
	wantRows(t, conn, itemsSQL, "(1,a2,x)")
}

func TestApplySchemaChange(t *testing.T) {
	conn := connect(t, dstCluster.NewDB(t))
	f := newItems(t, conn, "", "")
	a := newApplier(t, conn, "m", f)
	var g apBatches
	old := f.ins(1, "a", "x")
	mustApply(t, a, g.next(old))

	// The stream appends a column to the shared schema; the destination
	// gets it too. A change decoded before the addition is shorter: its
	// missing column is unknown, so an existing row keeps its value.
	mustExec(t, conn, "ALTER TABLE public.items ADD COLUMN extra int")
	mustExec(t, conn, "UPDATE public.items SET extra = 7")
	f.schema.Columns = append(f.schema.Columns, connectors.Column{Name: "extra", Type: "integer", TypeOID: pgtype.Int4OID, Position: -1})
	mustApply(t, a, g.next(f.upd(2, "b", "y", 8), connectors.Change{Kind: connectors.Update, Table: f.dt.Source, New: old.New}))
	wantRows(t, conn, itemsSQL, "(1,a,x,7)", "(2,b,y,8)")
	// An insert lacking the column: NULL for a new row, kept for one the
	// destination has (a replay).
	short := func(id int) connectors.Change {
		c := f.ins(id, "s", "s", nil)
		c.New = c.New[:3]
		return c
	}
	mustApply(t, a, g.next(short(5), short(2)))
	wantRows(t, conn, itemsSQL, "(1,a,x,7)", "(2,s,s,8)", "(5,s,s,)")
	// After a partial update of the same key, such an insert has no
	// folded equivalent: the applier flushes between the two (a barrier).
	ins := short(1)
	ins.New[1] = apRow(t, f.schema, 0, "i", nil, nil)[1]
	mustApply(t, a, g.next(f.upd(1, "u", apUnch, apUnch), ins, f.upd(6, "x", "x", 1)))
	wantRows(t, conn, itemsSQL, "(1,i,s,7)", "(2,s,s,8)", "(5,s,s,)", "(6,x,x,1)")

	// A replaced table set: the destination changes.
	mustExec(t, conn, "CREATE TABLE public.items2 (LIKE public.items INCLUDING ALL)")
	dt := f.dt
	dt.Dest.Name = "items2"
	a.SetTables([]postgres.DestTable{dt})
	mustApply(t, a, g.next(f.ins(3, "c", "z", 9)))
	wantRows(t, conn, "SELECT i::text FROM public.items2 i", "(3,c,z,9)")
}

func TestApplyErrors(t *testing.T) {
	conn := connect(t, dstCluster.NewDB(t))
	f := newItems(t, conn, "", "")
	ctx := testCtx(t)
	for _, tc := range []struct {
		name string
		dt   func(postgres.DestTable) postgres.DestTable
		want string
	}{
		{"no key", func(d postgres.DestTable) postgres.DestTable {
			s := *d.Schema
			s.PrimaryKey = nil
			d.Schema = &s
			return d
		}, "no primary key"},
		{"soft delete is replicated", func(d postgres.DestTable) postgres.DestTable { d.SoftDeleteColumn = "note"; return d }, `column "note" is replicated`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := postgres.NewApplier(ctx, conn, "", "m", []postgres.DestTable{tc.dt(f.dt)})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}

	a := newApplier(t, conn, "m", f)
	var g apBatches
	stranger := connectors.Change{Kind: connectors.Insert, Table: connectors.TableName{Schema: "src", Name: "nope"}}
	for _, tc := range []struct {
		name string
		b    *connectors.Batch
		want string
	}{
		{"unmapped table", g.next(stranger), "src.nope, which is not in the mirror"},
		{"no end position", &connectors.Batch{Changes: []connectors.Change{f.ins(1, "a", "b")}}, "no end position"},
		{"null key", g.next(f.ins(nil, "a", "b")), `primary key column "id" is null`},
		{"too many values", g.next(connectors.Change{Kind: connectors.Insert, Table: f.dt.Source,
			New: append(apRow(t, f.schema, 1, "a", "b"), apUnch)}), "has 4 values, table has 3 columns"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := a.Apply(ctx, tc.b)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}

	missing := f.dt
	missing.Dest.Name = "missing"
	a.SetTables([]postgres.DestTable{missing})
	if _, err := a.Apply(ctx, g.next(f.ins(1, "a", "b"))); err == nil || !strings.Contains(err.Error(), "public.missing does not exist") {
		t.Errorf("apply to a missing table: err = %v", err)
	}
	mustExec(t, conn, "CREATE TABLE public.missing (id int PRIMARY KEY, name text)")
	if _, err := a.Apply(ctx, g.next(f.ins(1, "a", "b"))); err == nil || !strings.Contains(err.Error(), `has no column "note"`) {
		t.Errorf("apply to a table lacking a column: err = %v", err)
	}
	wantRows(t, conn, "SELECT count(*)::text FROM public.items", "0")
}
