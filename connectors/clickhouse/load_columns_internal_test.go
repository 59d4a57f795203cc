package clickhouse

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/sluicedb/sluice/connectors"
)

// colAppender adapts a clickhouse-go column to columnAppender, as a batch's
// column is.
type colAppender struct{ col column.Interface }

func (a colAppender) Append(v any) error {
	_, err := a.col.Append(v)
	return err
}

func (a colAppender) AppendRow(v any) error { return a.col.AppendRow(v) }

// loadTypeCases are source columns of every kind, with values.
func loadTypeCases(t *testing.T) []struct {
	typ  string
	oid  uint32
	vals []any
} {
	ts := time.Date(2024, 5, 6, 7, 8, 9, 123456000, time.UTC)
	num := func(s string) pgtype.Numeric {
		var n pgtype.Numeric
		if err := n.Scan(s); err != nil {
			t.Fatal(err)
		}
		return n
	}
	return []struct {
		typ  string
		oid  uint32
		vals []any
	}{
		{"smallint", pgtype.Int2OID, []any{int16(0), int16(-12), int16(math.MaxInt16), int16(math.MinInt16)}},
		{"integer", pgtype.Int4OID, []any{int32(0), int32(123456), int32(math.MinInt32)}},
		{"bigint", pgtype.Int8OID, []any{int64(0), int64(-1), int64(math.MaxInt64)}},
		{"oid", pgtype.OIDOID, []any{uint32(0), uint32(math.MaxUint32)}},
		{"real", pgtype.Float4OID, []any{float32(1.5), float32(math.Inf(-1)), float32(-0.0)}},
		{"double precision", pgtype.Float8OID, []any{2.25, math.MaxFloat64, math.Inf(1)}},
		{"boolean", pgtype.BoolOID, []any{true, false}},
		{"text", pgtype.TextOID, []any{"", "it's \\ text", strings.Repeat("x", 300), "é"}},
		{"character varying(10)", pgtype.VarcharOID, []any{"vc"}},
		{"character(84)", pgtype.BPCharOID, []any{strings.Repeat(" ", 84)}},
		{"bytea", pgtype.ByteaOID, []any{[]byte{0, 1, 0xff}, []byte{}}},
		{"json", pgtype.JSONOID, []any{`{"a": 1}`}},
		{"jsonb", pgtype.JSONBOID, []any{map[string]any{"b": 2}, []any{}}},
		{"uuid", pgtype.UUIDOID, []any{uuid.MustParse("0b2c4f4e-8a1d-4f3e-9b6a-1c2d3e4f5a6b"), uuid.UUID{}}},
		{"date", pgtype.DateOID, []any{time.Date(2024, 5, 6, 0, 0, 0, 0, time.UTC), time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{"timestamp without time zone", pgtype.TimestampOID, []any{ts, time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
			pgtype.Timestamp{InfinityModifier: pgtype.Infinity, Valid: true}, pgtype.Timestamp{InfinityModifier: pgtype.NegativeInfinity, Valid: true}}},
		{"timestamp with time zone", pgtype.TimestamptzOID, []any{ts, time.Date(1969, 12, 31, 23, 59, 59, 999999000, time.UTC)}},
		{"numeric(20,6)", pgtype.NumericOID, []any{num("12345678901234.123456"), num("-1.5")}},
		{"interval", pgtype.IntervalOID, []any{pgtype.Interval{Months: 14, Days: 3, Microseconds: 3600e6, Valid: true}}},
		{"integer[]", pgtype.Int4ArrayOID, []any{[]any{int32(1), nil, int32(3)}, []int32{}}},
		{"text[]", pgtype.TextArrayOID, []any{[]string{"x", "y"}}},
	}
}

// TestLoadColumnsMatchConverter checks that the load's columns (typed for
// the common kinds, the converter's for the rest) append what the
// converter's values appended with AppendRow do, for every kind on old and
// modern servers, Nullable or not, in a sorting key or not, with NULL and
// unknown values and short rows, over two batches (slices reused).
func TestLoadColumnsMatchConverter(t *testing.T) {
	m := pgtype.NewMap()
	servers := []ServerInfo{{Version: "18.16.1", Major: 18, Minor: 16}, {Version: "24.3.1", Major: 24, Minor: 3}}
	for _, srv := range servers {
		for _, tc := range loadTypeCases(t) {
			var vals []connectors.Value
			for _, x := range tc.vals {
				b, err := m.Encode(tc.oid, pgtype.BinaryFormatCode, x, nil)
				if err != nil {
					t.Fatalf("encode %v as %s: %v", x, tc.typ, err)
				}
				vals = append(vals, connectors.Value{Kind: connectors.Binary, Data: b})
			}
			vals = append(vals, connectors.Value{Kind: connectors.Null}, connectors.Value{Kind: connectors.Unchanged})
			for _, shape := range []struct {
				notNull, key bool
			}{{false, false}, {true, false}, {false, true}, {true, true}} {
				name := fmt.Sprintf("%s/%s/notnull=%v/key=%v", srv.Version, tc.typ, shape.notNull, shape.key)
				t.Run(name, func(t *testing.T) {
					c := connectors.Column{Name: "c", Type: tc.typ, TypeOID: tc.oid, NotNull: shape.notNull}
					mc, err := mapColumn(c, shape.key, srv)
					if err != nil {
						t.Fatal(err)
					}
					if shape.key && mc.array {
						t.Skip("arrays are never in a sorting key (newLayout refuses them)")
					}
					mc.nullKey = shape.key && !shape.notNull
					compareLoadColumn(t, mc, vals)
				})
			}
		}
	}
}

// compareLoadColumn appends vals, and a short row, with the converter
// (value by value) and with newLoadColumn (two batches) and compares the
// columns and NULL counts.
func compareLoadColumn(t *testing.T, mc colMapping, vals []connectors.Value) {
	t.Helper()
	newCol := func() column.Interface {
		col, err := column.Type(mc.sql).Column("c", time.UTC)
		if err != nil {
			t.Fatal(err)
		}
		return col
	}
	ref := newConverter([]colMapping{mc})
	want := newCol()
	var rows [][]connectors.Value
	for _, v := range vals {
		x, err := ref.value(&ref.cols[0], v)
		if err != nil {
			t.Fatal(err)
		}
		if err := want.AppendRow(x); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, []connectors.Value{v, {Kind: connectors.Binary, Data: []byte("other column")}})
	}
	x, err := ref.value(&ref.cols[0], connectors.Value{})
	if err != nil {
		t.Fatal(err)
	}
	if err := want.AppendRow(x); err != nil {
		t.Fatal(err)
	}
	rows = append(rows, []connectors.Value{}) // shorter than the schema

	cv := newConverter([]colMapping{mc})
	lc := newLoadColumn(cv, &cv.cols[0])
	got := newCol()
	half := len(rows) / 2
	for _, batch := range [][][]connectors.Value{rows[:half], rows[half:]} {
		if j, err := lc.add(colAppender{got}, batch, 0); err != nil {
			t.Fatalf("add: row %d: %v", j, err)
		}
	}
	if got.Rows() != want.Rows() {
		t.Fatalf("%d rows, want %d", got.Rows(), want.Rows())
	}
	for i := range want.Rows() {
		if g, w := got.Row(i, false), want.Row(i, false); !reflect.DeepEqual(g, w) {
			t.Errorf("row %d: %#v, want %#v", i, g, w)
		}
	}
	if cv.cols[0].nulls != ref.cols[0].nulls {
		t.Errorf("%d NULLs counted, want %d", cv.cols[0].nulls, ref.cols[0].nulls)
	}
}

// TestLoadColumnErrors checks that the load's columns refuse what the
// converter refuses, naming the row.
func TestLoadColumnErrors(t *testing.T) {
	modern := ServerInfo{Major: 24, Minor: 3}
	for _, tc := range []struct {
		typ  string
		oid  uint32
		data []byte
	}{
		{"integer", pgtype.Int4OID, []byte{1, 2}},
		{"bigint", pgtype.Int8OID, []byte{1, 2, 3, 4}},
		{"uuid", pgtype.UUIDOID, []byte{1}},
		{"jsonb", pgtype.JSONBOID, []byte{2, '{', '}'}},
		{"jsonb", pgtype.JSONBOID, []byte{}},
		{"date", pgtype.DateOID, []byte{0x7f, 0xff, 0xff, 0xff}},              // infinity
		{"date", pgtype.DateOID, []byte{0x00, 0x10, 0x00, 0x00}},              // past 2299
		{"timestamp without time zone", pgtype.TimestampOID, []byte{1, 2, 3}}, // short
		{"boolean", pgtype.BoolOID, []byte{}},
	} {
		for _, srv := range []ServerInfo{{Major: 18, Minor: 16}, modern} {
			mc, err := mapColumn(connectors.Column{Name: "c", Type: tc.typ, TypeOID: tc.oid}, false, srv)
			if err != nil {
				t.Fatal(err)
			}
			cv := newConverter([]colMapping{mc})
			_, wantErr := cv.value(&cv.cols[0], connectors.Value{Kind: connectors.Binary, Data: tc.data})
			col, err := column.Type(mc.sql).Column("c", time.UTC)
			if err != nil {
				t.Fatal(err)
			}
			lc := newLoadColumn(cv, &cv.cols[0])
			ok := connectors.Value{Kind: connectors.Null}
			j, err := lc.add(colAppender{col}, [][]connectors.Value{{ok}, {{Kind: connectors.Binary, Data: tc.data}}}, 0)
			if fmt.Sprint(err) != fmt.Sprint(wantErr) || (err != nil && j != 1) {
				t.Errorf("%s %x on %d.%d: row %d, %v; want row 1, %v", tc.typ, tc.data, srv.Major, srv.Minor, j, err, wantErr)
			}
		}
	}
}

// TestTimestampText checks appendTimestampText against fmt's rendering.
func TestTimestampText(t *testing.T) {
	ref := func(us int64) string {
		switch us {
		case math.MaxInt64:
			return "infinity"
		case math.MinInt64:
			return "-infinity"
		}
		t := timestampOf(us)
		year, bc := t.Year(), ""
		if year <= 0 {
			year, bc = 1-year, " BC"
		}
		return fmt.Sprintf("%04d-%02d-%02d %02d:%02d:%02d.%06d%s", year, int(t.Month()), t.Day(),
			t.Hour(), t.Minute(), t.Second(), t.Nanosecond()/1000, bc)
	}
	cases := []int64{0, -1, 1, math.MaxInt64, math.MinInt64, math.MaxInt64 - 1, math.MinInt64 + 1,
		-63082281600000000 - 1, 252423993599999999, -211813488000000000}
	r := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		cases = append(cases, r.Int64N(1<<62)-(1<<61), r.Int64N(4e17)-2e17)
	}
	for _, us := range cases {
		if got, want := timestampText(us), ref(us); got != want {
			t.Fatalf("timestampText(%d) = %q, want %q", us, got, want)
		}
	}
}
