package mysql_test

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/mysql"
)

// summaryDDL and summaryRows are the table TestSummarizeSnapshot
// summarizes: edge values of the types whose renderings differ most from
// MariaDB's own text (zero dates, year 0, fractions, times before 1970,
// empty and NULL bytes, decimals with trailing zeros, a negative key).
const summaryDDL = `CREATE TABLE s (id int PRIMARY KEY, dt date, dtm datetime(6), ts timestamp(3) NULL DEFAULT NULL,
  v varchar(10), b varbinary(10), de decimal(10,3), bt bit(10), y year, g point, u bigint unsigned,
  z int(5) unsigned zerofill, zd decimal(8,2) zerofill) CHARACTER SET utf8mb4`

const summaryRows = `INSERT INTO s VALUES
 (1, '2024-02-29', '1969-12-31 23:59:59.500000', '2038-01-19 03:14:07.999', 'ünï😀', x'00ff', 1.5, b'101', 2024, POINT(1, 2), 18446744073709551615, 42, 1.5),
 (2, '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00', NULL, x'', -0.001, b'0', 0, NULL, 0, 0, 0),
 (3, '0000-01-01', '0000-01-01 10:00:00.000001', '1970-01-01 00:00:01', '', NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL),
 (-7, '1000-01-01', '2024-00-10 10:00:00', NULL, 'x', x'41', 100, b'1111111111', 1901, NULL, 5, 123456, 123456.78)`

// summaryWant is each row's rendering (by id; nil for NULL) of a column
// as a rendering asks: what a destination renders of the mirrored value.
var summaryWant = []struct {
	col    string
	render connectors.Rendering
	rows   map[int64]*string
}{
	{"dt", connectors.RenderText, vals("2024-02-29", nil, "0001-01-01 BC", "1000-01-01")},
	{"dt", connectors.RenderDate, vals("2024-02-29", nil, "0001-01-01", "1000-01-01")},
	{"dtm", connectors.RenderText, vals("1969-12-31 23:59:59.5", nil, "0001-01-01 10:00:00.000001 BC", nil)},
	{"dtm", connectors.RenderEpochMicros, vals("-500000", nil,
		strconv.FormatInt(time.Date(0, 1, 1, 10, 0, 0, 1000, time.UTC).UnixMicro(), 10), nil)},
	{"ts", connectors.RenderText, vals("2038-01-19 03:14:07.999+00", nil, "1970-01-01 00:00:01+00", nil)},
	{"ts", connectors.RenderEpochMicros, vals("2147483647999000", nil, "1000000", nil)},
	{"v", connectors.RenderText, vals("ünï😀", nil, "", "x")},
	{"b", connectors.RenderText, vals(`\x00ff`, `\x`, nil, `\x41`)},
	{"b", connectors.RenderHex, vals("00ff", "", nil, "41")},
	{"de", connectors.RenderText, vals("1.500", "-0.001", "0.000", "100.000")},
	{"de", connectors.RenderTrimmedDecimal, vals("1.5", "-0.001", "0", "100")},
	{"bt", connectors.RenderText, vals("0000000101", "0000000000", nil, "1111111111")},
	{"y", connectors.RenderText, vals("2024", "0", nil, "1901")},
	{"g", connectors.RenderHex, vals("0101000000000000000000f03f0000000000000040", nil, nil, nil)},
	{"u", connectors.RenderText, vals("18446744073709551615", "0", nil, "5")},
	{"u", connectors.RenderTrimmedDecimal, vals("18446744073709551615", "0", nil, "5")},
	// ZEROFILL pads MariaDB's text, not the value Sluice mirrors.
	{"z", connectors.RenderText, vals("42", "0", nil, "123456")},
	{"zd", connectors.RenderText, vals("1.50", "0.00", nil, "123456.78")},
	{"zd", connectors.RenderTrimmedDecimal, vals("1.5", "0", nil, "123456.78")},
}

// vals are the renderings of rows 1, 2, 3 and -7: a string or nil.
func vals(v ...any) map[int64]*string {
	out := map[int64]*string{}
	for i, id := range []int64{1, 2, 3, -7} {
		if s, ok := v[i].(string); ok {
			out[id] = &s
		} else {
			out[id] = nil
		}
	}
	return out
}

// wantSummary is the summary of rows by connectors/summary.go's
// definition, in ranges of width of the key.
func wantSummary(rows map[int64]*string, width int64) map[int64]connectors.RangeSummary {
	sums := map[int64]uint64{}
	counts := map[int64]int64{}
	for id, v := range rows {
		canon := "n"
		if v != nil {
			canon = fmt.Sprintf("v%d:%s", utf8.RuneCountInString(*v), *v)
		}
		sum := md5.Sum([]byte(canon))
		h, _ := strconv.ParseUint(hex.EncodeToString(sum[:])[:15], 16, 64)
		b := id / width
		if id < 0 && id%width != 0 {
			b--
		}
		sums[b] += h
		counts[b]++
	}
	out := map[int64]connectors.RangeSummary{}
	for b, s := range sums {
		out[b] = connectors.RangeSummary{Rows: counts[b], Sum: strconv.FormatUint(s, 10)}
	}
	return out
}

// TestSummarizeSnapshot summarizes a table under a snapshot kept for
// summaries: rows written after it are not seen, and each column rendered
// as each rendering asks sums as the rendering's strings do.
func TestSummarizeSnapshot(t *testing.T) {
	ctx := testCtx(t)
	db := newDB(t)
	maria.Exec(t, db, "SET SESSION sql_mode = ''", summaryDDL, summaryRows)
	src := openSource(t, db)
	r, err := src.Exec("SHOW MASTER STATUS")
	if err != nil {
		t.Fatal(err)
	}
	file, _ := r.GetString(0, 0)
	offset, _ := r.GetUint(0, 1)
	snap, err := src.SummarySnapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	if p, err := mysql.DecodePosition(snap.Position); err != nil || p.File != file || p.Offset != offset {
		t.Errorf("snapshot at %+v (%v), want %s:%d", p, err, file, offset)
	}
	// After the snapshot: not seen by its summaries.
	maria.Exec(t, db, "INSERT INTO s (id, v) VALUES (100, 'after')", "UPDATE s SET v = 'changed', dt = NULL WHERE id = 1")

	table := connectors.TableName{Schema: db, Name: "s"}
	got, err := src.SummarizeSnapshot(ctx, snap.Name, table, connectors.SummarySpec{Key: "id"})
	if err != nil {
		t.Fatal(err)
	}
	if got.Rows != 4 || got.MinKey != -7 || got.MaxKey != 3 || got.Ranges != nil {
		t.Errorf("count: %+v, want 4 rows, keys -7 to 3", got)
	}
	for _, w := range summaryWant {
		spec := connectors.SummarySpec{Key: "id", Width: 5, Checksum: true,
			Columns: []connectors.SummaryColumn{{Name: w.col, Render: w.render}}}
		got, err := src.SummarizeSnapshot(ctx, snap.Name, table, spec)
		if err != nil {
			t.Fatalf("%s as %d: %v", w.col, w.render, err)
		}
		want := wantSummary(w.rows, 5)
		if fmt.Sprint(got.Ranges) != fmt.Sprint(want) {
			t.Errorf("%s as %d: ranges %v, want %v", w.col, w.render, got.Ranges, want)
			q, _ := src.Exec(fmt.Sprintf("SELECT id, %s FROM s ORDER BY id", mysql.Render(t, src, table, w.col, w.render)))
			for i := range q.Values {
				id, _ := q.GetInt(i, 0)
				v, _ := q.GetString(i, 1)
				t.Logf("  %d: %q", id, v)
			}
		}
	}
	// A whole-table checksum without a key.
	spec := connectors.SummarySpec{Checksum: true, Columns: []connectors.SummaryColumn{{Name: "v", Render: connectors.RenderText}}}
	if got, err := src.SummarizeSnapshot(ctx, snap.Name, table, spec); err != nil || len(got.Ranges) != 1 || got.Rows != 4 {
		t.Errorf("whole table: %+v (%v)", got, err)
	}

	snap.Close()
	if _, err := src.SummarizeSnapshot(ctx, snap.Name, table, connectors.SummarySpec{}); err == nil ||
		!strings.Contains(err.Error(), "not held") {
		t.Errorf("after the snapshot closed: %v", err)
	}
}

// TestSummarySnapshotRefusedOnMySQL: a MySQL source has no exact position
// for a snapshot, and refuses one for summaries rather than compare at a
// wrong point.
func TestSummarySnapshotRefusedOnMySQL(t *testing.T) {
	db := newDB(t)
	s, err := peerOn(t, maria, db, map[string]string{"flavor": "mysql"}).OpenSource(testCtx(t), "test")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(testCtx(t))
	_, err = s.(*mysql.Source).SummarySnapshot(testCtx(t))
	if err == nil || !strings.Contains(err.Error(), "only MariaDB") {
		t.Fatalf("SummarySnapshot on a MySQL source: %v", err)
	}
}

// TestCanRender: what a MySQL source renders exactly, by the destination
// column's type.
func TestCanRender(t *testing.T) {
	var s mysql.Source
	for _, c := range []struct {
		oid    uint32
		render connectors.Rendering
		want   bool
	}{
		{pgtype.Int4OID, connectors.RenderText, true},
		{pgtype.NumericOID, connectors.RenderTrimmedDecimal, true},
		{pgtype.TimestamptzOID, connectors.RenderEpochMicros, true},
		{pgtype.DateOID, connectors.RenderDate, true},
		{pgtype.ByteaOID, connectors.RenderHex, true},
		{pgtype.ByteaOID, connectors.RenderText, true},
		{pgtype.Float8OID, connectors.RenderText, false},
		{pgtype.Float4OID, connectors.RenderText, false},
		{pgtype.IntervalOID, connectors.RenderText, false},
		{pgtype.TextArrayOID, connectors.RenderText, false},
		{pgtype.JSONBOID, connectors.RenderText, false},
		{pgtype.Int2OID, connectors.RenderBool, false},
		{pgtype.TextOID, connectors.RenderHex, false},
	} {
		if got := s.CanRender(connectors.Column{Name: "c", TypeOID: c.oid}, c.render); got != c.want {
			t.Errorf("CanRender(oid %d, %d) = %v", c.oid, c.render, got)
		}
	}
}
