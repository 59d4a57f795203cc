package clickhouse_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/clickhouse"
)

// chunkReader reads rows for every partition in batches of size, calling
// between(n) after each batch with the rows handed over so far.
func chunkReader(rows [][]connectors.Value, size int, between func(n int) error) *fakeReader {
	return &fakeReader{read: func(ctx context.Context, _ connectors.TableName, _ *connectors.TableSchema, _ connectors.Partition, _ int,
		fn func(rows [][]connectors.Value) error, progress func(rows int64)) (int64, error) {
		var n int
		for start := 0; start < len(rows); start += size {
			batch := rows[start:min(start+size, len(rows))]
			if err := fn(batch); err != nil {
				return int64(n), err
			}
			n += len(batch)
			if progress != nil {
				progress(int64(n))
			}
			if between != nil {
				if err := between(n); err != nil {
					return int64(n), err
				}
			}
		}
		return int64(n), nil
	}}
}

// TestLoadEveryType loads a row of every supported type, one of NULLs and
// a third in another batch, and checks that ClickHouse has what the
// writer of TestEveryTypeRoundTrip (the converter's values) writes.
func TestLoadEveryType(t *testing.T) {
	ctx := testCtx(t)
	ts := everyTypeSchema()
	conn, db, dt, _ := setup(t, ts)
	var cols []string
	for _, c := range ts.Columns {
		cols = append(cols, c.Name)
	}
	full, shown := everyTypeRow(t, 1)
	nulls := make([]connectors.Value, len(full))
	for i, c := range ts.Columns {
		nulls[i] = null
		if c.NotNull {
			nulls[i] = full[i]
		}
	}
	nulls[0] = bin(t, pgtype.Int8OID, int64(2))
	third, _ := everyTypeRow(t, 3)
	lc, err := openDest(t, db, "m").OpenLoader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close(ctx)
	n, err := lc.Load(ctx, chunkReader([][]connectors.Value{full, nulls, third}, 2, nil),
		connectors.LoadJob{Table: dt, Index: 0, Partition: part(0), Version: 10})
	if err != nil || n != 3 {
		t.Fatalf("Load: %d rows, %v", n, err)
	}
	nullShown := "i2=NULL i4=123456 f4=NULL f8=NULL b=NULL n=NULL nbig=NULL nu=NULL t=NULL vc=vc bp=NULL nm=NULL by=NULL " +
		"u=NULL j=NULL jb=NULL d=NULL ts=NULL tz=NULL tm=NULL iv=NULL ip=NULL cidr=NULL mood=NULL pt=NULL " +
		"ai=[] at=[x,y] an=[] ats=[] amood=[]"
	sel := "SELECT " + strings.Join(cols, ", ") + ", _sluice_version, _sluice_is_deleted FROM " + db + ".every FINAL"
	equalRows(t, "loaded", query(t, conn, sel), []string{
		"id=1 " + shown + " _sluice_version=10 _sluice_is_deleted=0",
		"id=2 " + nullShown + " _sluice_version=10 _sluice_is_deleted=0",
		"id=3 " + shown + " _sluice_version=10 _sluice_is_deleted=0"})
}

// TestLoadBlocks loads a partition in many batches, blocks and inserts
// (small limits), checks every row, that an insert left idle ends (its
// rows are visible while the read goes on), and that a bad value or a
// reader's error fails the load, naming the row, without recording it.
func TestLoadBlocks(t *testing.T) {
	ctx := testCtx(t)
	conn, db := newDB(t)
	d := openDest(t, db, "m")
	users := usersTable(db, "users")
	if err := d.CreateTable(ctx, users); err != nil {
		t.Fatal(err)
	}
	lc, err := d.OpenLoader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close(ctx)
	l := lc.(*clickhouse.Loader)
	const idle = 200 * time.Millisecond
	clickhouse.SetLoadLimits(l, 100, 1<<20, 1000, idle)
	var rows [][]connectors.Value
	var want []string
	for i := range 2500 {
		name := fmt.Sprintf("user %d %s", i, strings.Repeat("x", i%50))
		rows = append(rows, user(t, int32(i), name))
		want = append(want, fmt.Sprintf("%d %s 5 0", i, name))
	}
	var sawIdle bool
	reader := chunkReader(rows, 64, func(n int) error {
		if n != 64*20 {
			return nil
		}
		// Idle: the open insert ends and its rows become visible.
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if countFinal(t, conn, users.Dest) == uint64(n) {
				sawIdle = true
				return nil
			}
			time.Sleep(idle / 2)
		}
		return fmt.Errorf("rows of an idle insert not written: %d of %d", countFinal(t, conn, users.Dest), n)
	})
	n, err := l.Load(ctx, reader, connectors.LoadJob{Table: users, Index: 0, Partition: part(0), Version: 5})
	if err != nil || n != 2500 || !sawIdle {
		t.Fatalf("Load: %d rows, %v (idle insert seen: %v)", n, err, sawIdle)
	}
	got := finalRows(t, conn, users.Dest)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("%d rows loaded, want %d; first %q", len(got), len(want), got[:min(3, len(got))])
	}
	loaded(t, d, users.Source, map[int]int64{0: 2500})

	// A malformed value after an insert was sent: the error names the
	// partition's row; the partition is not recorded.
	bad := slices.Clone(rows)
	bad[1500] = []connectors.Value{{Kind: connectors.Binary, Data: []byte{1}}, null}
	_, err = l.Load(ctx, chunkReader(bad, 64, nil), connectors.LoadJob{Table: users, Index: 1, Partition: part(1), Version: 6})
	if err == nil || !strings.Contains(err.Error(), "row 1500") || !strings.Contains(err.Error(), `column "id"`) ||
		!strings.Contains(err.Error(), "partition 1") {
		t.Fatalf("Load of a malformed value: %v", err)
	}
	// A reader's error in the middle.
	boom := fmt.Errorf("boom")
	_, err = l.Load(ctx, chunkReader(rows, 64, func(n int) error {
		if n >= 1200 {
			return boom
		}
		return nil
	}), connectors.LoadJob{Table: users, Index: 2, Partition: part(2), Version: 6})
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("Load with a failing reader: %v", err)
	}
	loaded(t, d, users.Source, map[int]int64{0: 2500})
	// The loader goes on after errors: a partition loaded again converges.
	if n, err := l.Load(ctx, chunkReader(rows, 500, nil), connectors.LoadJob{Table: users, Index: 0, Partition: part(0), Version: 5}); err != nil || n != 2500 {
		t.Fatalf("Load again: %d, %v", n, err)
	}
	if n := countFinal(t, conn, users.Dest); n != 2500 {
		t.Fatalf("%d rows after loading again, want 2500", n)
	}
}
