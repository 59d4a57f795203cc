package clickhouse_test

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/clickhouse"
	"github.com/sluicedb/sluice/connectors/postgres"
)

// A transaction of either table of boundedTables, and what ClickHouse
// should hold after it: a model of the rows by key.

var movesSource = connectors.TableName{Schema: "public", Name: "moves"}

// boundedTables returns the tables of the bounded-window tests: items,
// sorted by its primary key, and moves, sorted by (bid, aid) so that an
// update can move a row to another sorting key. bid is nullable in the
// source (a NULL is stored as 0 and counted).
func boundedTables() []*connectors.TableSchema {
	moves := &connectors.TableSchema{Name: movesSource, PrimaryKey: []string{"aid"}, Columns: []connectors.Column{
		{Name: "aid", Type: "bigint", TypeOID: pgtype.Int8OID, NotNull: true},
		{Name: "bid", Type: "integer", TypeOID: pgtype.Int4OID},
		{Name: "filler", Type: "text", TypeOID: pgtype.TextOID},
	}}
	return []*connectors.TableSchema{itemsSchema(), moves}
}

var movesOrderBy = []string{"bid", "aid"}

// modelRow is a key's row as ClickHouse should show it: its values
// rendered, deleted or not, and its version.
type modelRow struct {
	vals    []string // by column; "NULL" for NULL
	deleted bool
	version uint64
}

// model is the expected content of one table: one live or deleted row per
// key written (moved rows, gone = 2, are not in it).
type model struct {
	cols []string
	rows map[int64]*modelRow
}

// lines renders the rows as query does for SELECT <cols>, gone, version.
func (m *model) lines(deletedCol string) []string {
	var out []string
	for _, r := range m.rows {
		var b strings.Builder
		for i, c := range m.cols {
			fmt.Fprintf(&b, "%s=%s ", c, r.vals[i])
		}
		del := 0
		if r.deleted {
			del = 1
		}
		fmt.Fprintf(&b, "%s=%d _sluice_version=%d", deletedCol, del, r.version)
		out = append(out, b.String())
	}
	sort.Strings(out)
	return out
}

// boundedBatch is a generated transaction: changes in order, the model of
// each table after it, and the counts it must report.
type boundedBatch struct {
	changes []connectors.Change
	loaded  map[connectors.TableName][][]connectors.Value // the initial copy, version 10
	models  map[connectors.TableName]*model
	counts  map[connectors.TableName]connectors.TableCounts
}

// genBatch generates, from a fixed seed, about 350 changes of both tables
// in 12 source transactions (versions 100 to 210) over 40 keys each:
// inserts, updates (some with an unchanged value, some moving the row to
// another sorting key), deletes carrying only the key, primary-key changes,
// and a truncate of each table in the middle of the seventh transaction.
// Half the keys are loaded first.
func genBatch(t *testing.T, tables []*connectors.TableSchema) *boundedBatch {
	rng := rand.New(rand.NewPCG(13, 7))
	b := &boundedBatch{loaded: map[connectors.TableName][][]connectors.Value{},
		models: map[connectors.TableName]*model{}, counts: map[connectors.TableName]connectors.TableCounts{}}
	const keys = 40
	text := func() (connectors.Value, string) {
		s := fmt.Sprintf("v%d", rng.IntN(1000))
		return bin(t, pgtype.TextOID, s), s
	}
	// newRow makes a row of key k for ts; unchanged lets a non-key value
	// be Unchanged (then shown as prev's).
	newRow := func(ts *connectors.TableSchema, k int64, prev []string, unchanged bool) ([]connectors.Value, []string) {
		vals := []connectors.Value{bin(t, pgtype.Int8OID, k)}
		shown := []string{fmt.Sprint(k)}
		if ts.Name == itemsSource {
			name, ns := text()
			body, bs := text()
			if rng.IntN(5) == 0 {
				body, bs = null, "NULL"
			}
			if unchanged && rng.IntN(2) == 0 {
				body, bs = connectors.Value{Kind: connectors.Unchanged}, prev[2]
			}
			q := int32(rng.IntN(100))
			return append(vals, name, body, bin(t, pgtype.Int4OID, q)), append(shown, ns, bs, fmt.Sprint(q))
		}
		bid := int32(1 + rng.IntN(4))
		filler, fs := text()
		if unchanged && rng.IntN(2) == 0 {
			filler, fs = connectors.Value{Kind: connectors.Unchanged}, prev[2]
		}
		return append(vals, bin(t, pgtype.Int4OID, bid), filler), append(shown, fmt.Sprint(bid), fs)
	}
	keyOnlyRow := func(ts *connectors.TableSchema, k int64) []connectors.Value {
		vals := make([]connectors.Value, len(ts.Columns))
		for i := range vals {
			vals[i] = null
		}
		vals[0] = bin(t, pgtype.Int8OID, k)
		return vals
	}
	for _, ts := range tables {
		m := &model{rows: map[int64]*modelRow{}}
		for _, c := range ts.Columns {
			m.cols = append(m.cols, c.Name)
		}
		b.models[ts.Name] = m
		for k := int64(1); k <= keys/2; k++ {
			vals, shown := newRow(ts, k, nil, false)
			b.loaded[ts.Name] = append(b.loaded[ts.Name], vals)
			m.rows[k] = &modelRow{vals: shown, version: 10}
		}
	}
	live := func(m *model, k int64) bool { r := m.rows[k]; return r != nil && !r.deleted }
	for tx := range 12 {
		version := uint64(100 + 10*tx)
		for step := range 30 {
			ts := tables[rng.IntN(len(tables))]
			m, n := b.models[ts.Name], b.counts[ts.Name]
			if tx == 6 && step == 15 {
				for _, ts := range tables {
					b.changes = append(b.changes, connectors.Change{Kind: connectors.Truncate, Table: ts.Name, Version: version})
					for _, r := range b.models[ts.Name].rows {
						if !r.deleted {
							r.deleted, r.version = true, version
						}
					}
				}
			}
			k := int64(1 + rng.IntN(keys))
			c := connectors.Change{Table: ts.Name, Version: version}
			switch p := rng.IntN(10); {
			case !live(m, k):
				c.Kind = connectors.Insert
				var shown []string
				c.New, shown = newRow(ts, k, nil, false)
				m.rows[k] = &modelRow{vals: shown, version: version}
				n.Inserts++
			case p < 6:
				c.Kind = connectors.Update
				var shown []string
				c.New, shown = newRow(ts, k, m.rows[k].vals, true)
				m.rows[k] = &modelRow{vals: shown, version: version}
				n.Updates++
			case p < 8:
				c.Kind, c.Old = connectors.Delete, keyOnlyRow(ts, k)
				m.rows[k].deleted, m.rows[k].version = true, version
				n.Deletes++
			default:
				// A primary-key change to a key that is not live.
				k2 := int64(1 + rng.IntN(keys))
				if live(m, k2) {
					continue
				}
				c.Kind, c.Old = connectors.Update, keyOnlyRow(ts, k)
				var shown []string
				c.New, shown = newRow(ts, k2, m.rows[k].vals, true)
				m.rows[k].deleted, m.rows[k].version = true, version
				m.rows[k2] = &modelRow{vals: shown, version: version}
				n.Updates++
			}
			b.changes = append(b.changes, c)
			b.counts[ts.Name] = n
		}
	}
	return b
}

// applyBounded loads b's initial copy into fresh tables, applies b's
// changes in one transaction with the given window bounds (0: the
// default), in chunks of 1 to 7 changes handed to Add one to three slices
// at a time, and returns the rows of each table that are not moved, and
// the counts. With scribble, every change Add was given is overwritten as
// soon as it returns (the batcher reuses its memory).
func applyBounded(t *testing.T, b *boundedBatch, keys, bytes int, scribble bool) (map[connectors.TableName][]string,
	map[connectors.TableName]connectors.TableCounts) {
	t.Helper()
	ctx := testCtx(t)
	conn, db := newDB(t)
	info := oldServer(t)
	tables := boundedTables()
	var dests []connectors.DestTable
	for _, ts := range tables {
		dt := connectors.DestTable{Source: ts.Name, Dest: connectors.TableName{Schema: db, Name: ts.Name.Name}, Schema: ts,
			SoftDeleteColumn: "gone"}
		opts := clickhouse.TableOptions{DeletedColumn: "gone"}
		if ts.Name == movesSource {
			opts.OrderBy, dt.OrderBy = movesOrderBy, movesOrderBy
		}
		ddl, err := clickhouse.CreateTableDDL(dt.Dest, ts, info, opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := conn.Exec(ctx, ddl); err != nil {
			t.Fatal(err)
		}
		w, err := clickhouse.NewWriter(dt.Dest, ts, info, opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Insert(ctx, conn, b.loaded[ts.Name], 10); err != nil {
			t.Fatal(err)
		}
		dests = append(dests, dt)
	}
	a, err := clickhouse.NewApplier(ctx, conn, info, db, "m", dests, nil)
	if err != nil {
		t.Fatal(err)
	}
	clickhouse.SetWindow(a, keys, bytes)
	if _, err := a.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 5))
	for rest := b.changes; len(rest) > 0; {
		var slices [][]connectors.Change
		for range 1 + rng.IntN(3) {
			n := min(1+rng.IntN(7), len(rest))
			// A copy of the changes and of their values: scribbled over below.
			chunk := make([]connectors.Change, n)
			for i, c := range rest[:n] {
				c.New, c.Old = deepCopy(c.New), deepCopy(c.Old)
				chunk[i] = c
			}
			slices, rest = append(slices, chunk), rest[n:]
			if len(rest) == 0 {
				break
			}
		}
		if err := a.Add(ctx, slices...); err != nil {
			t.Fatal(err)
		}
		if scribble {
			for _, chunk := range slices {
				for i := range chunk {
					for _, vals := range [][]connectors.Value{chunk[i].New, chunk[i].Old} {
						for j := range vals {
							for k := range vals[j].Data {
								vals[j].Data[k] = 0xee
							}
							vals[j] = connectors.Value{Kind: connectors.Binary, Data: []byte("scribbled")}
						}
					}
					chunk[i] = connectors.Change{Kind: connectors.Delete, Table: movesSource, Version: 1}
				}
			}
		}
	}
	counts, err := a.Commit(ctx, postgres.LSNPosition(1000))
	if err != nil {
		t.Fatal(err)
	}
	out := map[connectors.TableName][]string{}
	for _, ts := range tables {
		out[ts.Name] = query(t, conn, fmt.Sprintf("SELECT %s, gone, _sluice_version FROM %s.%s FINAL WHERE gone != 2",
			strings.Join(ts.ColumnNames(), ", "), db, ts.Name.Name))
		// One live or deleted row per key, whatever sorting keys it went through.
		if dup := query(t, conn, fmt.Sprintf("SELECT %s AS k, count() AS n FROM %s.%s FINAL WHERE gone != 2 GROUP BY k HAVING n > 1",
			ts.PrimaryKey[0], db, ts.Name.Name)); len(dup) > 0 {
			t.Errorf("%s: keys with more than one row: %v", ts.Name, dup)
		}
	}
	return out, counts
}

func deepCopy(vals []connectors.Value) []connectors.Value {
	if vals == nil {
		return nil
	}
	out := make([]connectors.Value, len(vals))
	for i, v := range vals {
		out[i] = connectors.Value{Kind: v.Kind, Data: append([]byte(nil), v.Data...)}
	}
	return out
}

// One transaction written in many windows (full by keys, or by bytes:
// then every window is written) ends as it does in one window,
// and as the model has it: the values an update or delete lacks are
// read back from rows earlier windows wrote, the truncate in the middle
// marks them deleted, a row moved to another sorting key in one window
// and again in a later one keeps one live or deleted row, and the counts
// are those of the changes.
func TestApplierWindows(t *testing.T) {
	b := genBatch(t, boundedTables())
	want := map[connectors.TableName][]string{itemsSource: b.models[itemsSource].lines("gone"),
		movesSource: b.models[movesSource].lines("gone")}
	for _, tc := range []struct {
		name        string
		keys, bytes int
	}{
		{"one window", 0, 0},
		{"windows of 3 keys", 3, 0},
		{"windows of 17 keys", 17, 0},
		{"windows of 1 kB", 0, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, counts := applyBounded(t, b, tc.keys, tc.bytes, false)
			for src, rows := range want {
				equalRows(t, src.String(), got[src], rows)
			}
			if fmt.Sprint(counts) != fmt.Sprint(b.counts) {
				t.Errorf("counts %v, want %v", counts, b.counts)
			}
		})
	}
}

// Add copies what it keeps: changes overwritten as soon as Add returns
// are applied as they were, whether Commit or Add writes them.
func TestApplierAddCopies(t *testing.T) {
	b := genBatch(t, boundedTables())
	for _, keys := range []int{0, 5} {
		t.Run(fmt.Sprintf("windows of %d keys", keys), func(t *testing.T) {
			got, counts := applyBounded(t, b, keys, 0, true)
			for src, m := range b.models {
				equalRows(t, src.String(), got[src], m.lines("gone"))
			}
			if fmt.Sprint(counts) != fmt.Sprint(b.counts) {
				t.Errorf("counts %v, want %v", counts, b.counts)
			}
		})
	}
}

// NULLs stored as 0 in a sorting-key column are counted per row written,
// across the windows of a transaction; a transaction rolled back after a
// window was written reports none, and its changes added again converge.
func TestApplierWindowsNullKeys(t *testing.T) {
	ctx := testCtx(t)
	conn, db := newDB(t)
	info := oldServer(t)
	ts := boundedTables()[1]
	dt := connectors.DestTable{Source: ts.Name, Dest: connectors.TableName{Schema: db, Name: "moves"}, Schema: ts,
		OrderBy: movesOrderBy}
	ddl, err := clickhouse.CreateTableDDL(dt.Dest, ts, info, clickhouse.TableOptions{OrderBy: movesOrderBy})
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Exec(ctx, ddl); err != nil {
		t.Fatal(err)
	}
	a, err := clickhouse.NewApplier(ctx, conn, info, db, "m", []connectors.DestTable{dt}, nil)
	if err != nil {
		t.Fatal(err)
	}
	clickhouse.SetWindow(a, 2, 0)
	var changes []connectors.Change
	for k := int64(1); k <= 5; k++ {
		changes = append(changes, connectors.Change{Kind: connectors.Insert, Table: movesSource, Version: 100,
			New: []connectors.Value{bin(t, pgtype.Int8OID, k), null, bin(t, pgtype.TextOID, "x")}})
	}
	// Rolled back after two windows were written.
	if _, err := a.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Add(ctx, changes); err != nil {
		t.Fatal(err)
	}
	if err := a.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if got := query(t, conn, "SELECT count() AS n FROM "+db+".moves FINAL"); len(got) != 1 || got[0] != "n=4" {
		t.Fatalf("rows written before the rollback: %v, want the two full windows", got)
	}
	counts := apply(t, a, 200, changes...)
	if c := counts[movesSource]; c.Inserts != 5 {
		t.Fatalf("counts %+v", counts)
	}
	if nk := a.NullKeys(); nk[movesSource]["bid"] != 5 {
		t.Fatalf("null keys %v, want 5 for bid", nk)
	}
	equalRows(t, "after", query(t, conn, "SELECT aid, bid, filler, _sluice_is_deleted FROM "+db+".moves FINAL"), []string{
		"aid=1 bid=0 filler=x _sluice_is_deleted=0", "aid=2 bid=0 filler=x _sluice_is_deleted=0",
		"aid=3 bid=0 filler=x _sluice_is_deleted=0", "aid=4 bid=0 filler=x _sluice_is_deleted=0",
		"aid=5 bid=0 filler=x _sluice_is_deleted=0",
	})
}
