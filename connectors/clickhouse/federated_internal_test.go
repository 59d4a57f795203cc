package clickhouse

import (
	"math"
	"math/big"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/shopspring/decimal"
)

func TestCHTypeOf(t *testing.T) {
	tests := []struct {
		name  string
		oid   uint32
		scale int
	}{
		{"Int8", pgtype.Int2OID, 0}, {"Int16", pgtype.Int2OID, 0}, {"UInt8", pgtype.Int2OID, 0},
		{"Int32", pgtype.Int4OID, 0}, {"UInt16", pgtype.Int4OID, 0},
		{"Int64", pgtype.Int8OID, 0}, {"UInt32", pgtype.Int8OID, 0},
		{"UInt64", pgtype.NumericOID, 0}, {"Int128", pgtype.NumericOID, 0}, {"UInt256", pgtype.NumericOID, 0},
		{"Decimal(12, 2)", pgtype.NumericOID, 2}, {"Decimal64(4)", pgtype.NumericOID, 4},
		{"Float32", pgtype.Float4OID, 0}, {"Float64", pgtype.Float8OID, 0},
		{"String", pgtype.TextOID, 0}, {"FixedString(3)", pgtype.TextOID, 0},
		{"Enum8('a' = 1, 'b' = 2)", pgtype.TextOID, 0}, {"Enum16('x' = 1)", pgtype.TextOID, 0},
		{"Bool", pgtype.BoolOID, 0}, {"Date", pgtype.DateOID, 0}, {"Date32", pgtype.DateOID, 0},
		{"DateTime", pgtype.TimestamptzOID, 0}, {"DateTime('UTC')", pgtype.TimestamptzOID, 0},
		{"DateTime64(3, 'Europe/Paris')", pgtype.TimestamptzOID, 0},
		{"UUID", pgtype.UUIDOID, 0}, {"IPv4", pgtype.InetOID, 0}, {"IPv6", pgtype.InetOID, 0},
		{"Nullable(Int32)", pgtype.Int4OID, 0}, {"LowCardinality(String)", pgtype.TextOID, 0},
		{"LowCardinality(Nullable(String))", pgtype.TextOID, 0}, {"Nullable(Decimal(10, 3))", pgtype.NumericOID, 3},
		{"Array(Int64)", pgtype.Int8ArrayOID, 0}, {"Array(Nullable(UInt8))", pgtype.Int2ArrayOID, 0},
		{"Array(LowCardinality(String))", pgtype.TextArrayOID, 0}, {"Array(DateTime)", pgtype.TimestamptzArrayOID, 0},
		{"Array(Decimal(9, 2))", pgtype.NumericArrayOID, 0},
		// No Postgres counterpart: text.
		{"Array(Array(Int32))", pgtype.TextOID, 0}, {"Tuple(UInt8, String)", pgtype.TextOID, 0},
		{"Map(String, UInt64)", pgtype.TextOID, 0}, {"Nullable(Nothing)", pgtype.TextOID, 0},
		{"IntervalDay", pgtype.TextOID, 0}, {"Array(Tuple(Int8))", pgtype.TextOID, 0},
	}
	for _, tt := range tests {
		got := chTypeOf(tt.name)
		if got.oid != tt.oid || got.scale != tt.scale {
			t.Errorf("chTypeOf(%q) = oid %d scale %d, want %d, %d", tt.name, got.oid, got.scale, tt.oid, tt.scale)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// TestCHValues checks the text form of each mapped type's values (as
// clickhouse-go scans them), and that pgtype reads that text and writes it
// in binary, which reads back as the same value.
func TestCHValues(t *testing.T) {
	m := pgtype.NewMap()
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	u := uuid.MustParse("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
	big128, _ := new(big.Int).SetString("-170141183460469231731687303715884105728", 10)
	tests := []struct {
		typ  string
		v    any
		want string // "<NULL>" for NULL
	}{
		{"Int8", int8(-128), "-128"},
		{"Int16", int16(32767), "32767"},
		{"UInt8", uint8(255), "255"},
		{"Int32", int32(-2147483648), "-2147483648"},
		{"UInt16", uint16(65535), "65535"},
		{"Int64", int64(math.MinInt64), "-9223372036854775808"},
		{"UInt32", uint32(4294967295), "4294967295"},
		{"UInt64", uint64(math.MaxUint64), "18446744073709551615"},
		{"Int128", big128, "-170141183460469231731687303715884105728"},
		{"Decimal(12, 2)", decimal.RequireFromString("1.5"), "1.50"},
		{"Decimal(38, 4)", decimal.RequireFromString("-12345678901234.1234"), "-12345678901234.1234"},
		{"Float32", float32(1.5), "1.5"},
		{"Float32", float32(1234567), "1.234567e+06"},
		{"Float64", -2.25e-300, "-2.25e-300"},
		{"Float64", 123456789012345.0, "123456789012345"},
		{"Float64", 1e15, "1e+15"},
		{"Float64", 0.0001, "0.0001"},
		{"Float64", math.NaN(), "NaN"},
		{"Float64", math.Inf(-1), "-Infinity"},
		{"String", "multi\nline 'quoted' \\ ü", "multi\nline 'quoted' \\ ü"},
		{"FixedString(4)", "ab\x00\x00", "ab"},
		{"Enum8('a' = 1, 'b' = 2)", "b", "b"},
		{"Bool", true, "t"},
		{"Date", time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC), "2024-02-29"},
		{"Date32", time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC), "1900-01-01"},
		{"DateTime", time.Date(2024, 1, 2, 4, 4, 5, 0, paris), "2024-01-02 03:04:05+00"},
		{"DateTime64(6, 'UTC')", time.Date(2024, 1, 2, 3, 4, 5, 678901000, time.UTC), "2024-01-02 03:04:05.678901+00"},
		{"DateTime64(9, 'UTC')", time.Date(2024, 1, 2, 3, 4, 5, 123456789, time.UTC), "2024-01-02 03:04:05.123457+00"},
		{"UUID", u, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
		{"IPv4", net.ParseIP("192.168.0.1").To4(), "192.168.0.1"},
		{"IPv6", net.ParseIP("2001:db8::1"), "2001:db8::1"},
		{"IPv6", net.ParseIP("::ffff:10.0.0.1"), "::ffff:10.0.0.1"},
		{"Nullable(Int32)", (*int32)(nil), "<NULL>"},
		{"Nullable(Int32)", ptr(int32(7)), "7"},
		{"LowCardinality(Nullable(String))", ptr("x"), "x"},
		{"Array(Int64)", []int64{1, -2}, "{1,-2}"},
		{"Array(Nullable(UInt8))", []*uint8{ptr(uint8(1)), nil}, "{1,NULL}"},
		{"Array(String)", []string{"x y", "", "NULL", `a"b\c`, "{}", "plain"}, `{"x y","","NULL","a\"b\\c","{}",plain}`},
		{"Array(Float64)", []float64{1.5, math.Inf(1)}, "{1.5,Infinity}"},
		{"Array(Decimal(9, 2))", []decimal.Decimal{decimal.RequireFromString("3")}, "{3.00}"},
		{"Array(DateTime('UTC'))", []time.Time{time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)}, `{"2024-01-02 03:04:05+00"}`},
		{"Array(Date)", []time.Time{time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC)}, "{2024-01-02}"},
		{"Array(UUID)", []uuid.UUID{u}, "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}"},
		{"Array(IPv4)", []net.IP{net.ParseIP("10.1.2.3")}, "{10.1.2.3}"},
		{"Array(Bool)", []bool{true, false}, "{t,f}"},
		{"Array(Int64)", []int64{}, "{}"},
		// No Postgres counterpart: text, much as ClickHouse prints it.
		{"Array(Array(String))", [][]string{{"a"}, {"b", "c"}}, "[['a'],['b','c']]"},
		{"Tuple(UInt8, String)", []any{uint8(1), "a"}, "(1,'a')"},
		{"Map(String, UInt64)", map[string]uint64{"b": 2, "a": 1}, "{'a':1,'b':2}"},
		{"Nullable(Nothing)", (*any)(nil), "<NULL>"},
		{"IntervalDay", "1 Day", "1 Day"},
	}
	for _, tt := range tests {
		typ := chTypeOf(tt.typ)
		// clickhouse-go scans into a pointer to the column's scan type.
		pv := reflect.New(reflect.TypeOf(tt.v))
		pv.Elem().Set(reflect.ValueOf(tt.v))
		got := chText(typ, pv.Interface())
		if tt.want == "<NULL>" {
			if got != nil {
				t.Errorf("%s %#v: got %q, want NULL", tt.typ, tt.v, got)
			}
			continue
		}
		if string(got) != tt.want {
			t.Errorf("%s %#v: got %q, want %q", tt.typ, tt.v, got, tt.want)
			continue
		}
		if typ.oid == pgtype.TextOID {
			continue
		}
		bin, err := binaryValue(m, typ.oid, got)
		if err != nil {
			t.Errorf("%s %q: binary: %v", tt.typ, got, err)
			continue
		}
		// The binary value reads back as the value the text stands for.
		pt, _ := m.TypeForOID(typ.oid)
		fromBin, err := pt.Codec.DecodeValue(m, typ.oid, pgtype.BinaryFormatCode, bin)
		if err != nil {
			t.Errorf("%s %q: read binary: %v", tt.typ, got, err)
			continue
		}
		fromText, _ := pt.Codec.DecodeValue(m, typ.oid, pgtype.TextFormatCode, got)
		back, err := m.Encode(typ.oid, pgtype.TextFormatCode, fromBin, nil)
		if err != nil {
			t.Errorf("%s %q: text of binary: %v", tt.typ, got, err)
			continue
		}
		again, _ := m.Encode(typ.oid, pgtype.TextFormatCode, fromText, nil)
		if string(back) != string(again) || !sameValue(fromBin, fromText) {
			t.Errorf("%s %q: binary reads back as %q (%#v), text as %q (%#v)", tt.typ, got, back, fromBin, again, fromText)
		}
	}
}

// sameValue compares decoded values; NaN equals NaN.
func sameValue(a, b any) bool {
	if fa, ok := a.(float64); ok {
		if fb, ok := b.(float64); ok && math.IsNaN(fa) && math.IsNaN(fb) {
			return true
		}
	}
	return reflect.DeepEqual(a, b)
}

func TestCHParams(t *testing.T) {
	columns := []chColumn{
		{current: true, db: "default", table: "orders", name: "id", typ: "Int64"},
		{current: true, db: "default", table: "orders", name: "item", typ: "String"},
		{current: true, db: "default", table: "orders", name: "price", typ: "Nullable(Decimal(12, 2))"},
		{current: true, db: "default", table: "orders", name: "at", typ: "DateTime"},
		{current: true, db: "default", table: "users", name: "id", typ: "UInt32"},
		{current: true, db: "default", table: "users", name: "userName", typ: "LowCardinality(String)"},
		{current: false, db: "other", table: "orders", name: "id", typ: "UUID"},
	}
	tests := []struct {
		sql  string
		want []uint32
	}{
		{"SELECT * FROM orders WHERE id = $1", []uint32{20}},
		{"SELECT * FROM orders WHERE $1 = id AND item <> $2", []uint32{20, 25}},
		{"SELECT * FROM orders o WHERE o.id IN ($1, $2) AND o.price BETWEEN $3 AND $4", []uint32{20, 20, 1700, 1700}},
		{"SELECT * FROM orders WHERE at >= $1 LIMIT $2 OFFSET $3", []uint32{1184, 20, 20}},
		{"SELECT * FROM other.orders WHERE id = $1", []uint32{2950}},
		{"SELECT * FROM orders FINAL WHERE orders.id = $1", []uint32{20}},
		// Ambiguous: id is Int64 in orders and UInt32 in users.
		{"SELECT * FROM orders JOIN users USING (id) WHERE id = $1", []uint32{25}},
		{"SELECT * FROM orders o JOIN users u ON o.id = u.id WHERE u.id = $1 AND username = $2", []uint32{20, 25}},
		{"SELECT * FROM orders WHERE id + 1 = $1 AND id = CAST($2 AS Int64) AND id = CAST($3 AS bigint)", []uint32{25, 20, 20}},
		{"SELECT $1, $3", []uint32{25, 25, 25}},
		{"SELECT 1", []uint32{}},
	}
	for _, tt := range tests {
		p, err := chParamsOf(tt.sql)
		if err != nil {
			t.Fatalf("%s: %v", tt.sql, err)
		}
		got := p.paramOIDs(nil, columns)
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: parameter types %v, want %v", tt.sql, got, tt.want)
		}
	}
	// Declared types win.
	p, _ := chParamsOf("SELECT * FROM orders WHERE id = $1 AND item = $2")
	if got := p.paramOIDs([]uint32{0, 23, 25}, columns); !reflect.DeepEqual(got, []uint32{20, 23, 25}) {
		t.Errorf("declared: %v", got)
	}
	if q := p.columnQuery(); !strings.Contains(q, "IN ('orders')") {
		t.Errorf("column query %q", q)
	}
	// Binding replaces the parameters, not $1 inside a string.
	p, _ = chParamsOf("SELECT '$1', x-$1, $2 FROM t WHERE s = $2 -- $1")
	got := p.bind("SELECT '$1', x-$1, $2 FROM t WHERE s = $2 -- $1", []string{"(-5)", "'a'"})
	if want := "SELECT '$1', x-(-5), 'a' FROM t WHERE s = 'a' -- $1"; got != want {
		t.Errorf("bind = %q, want %q", got, want)
	}
}

func TestCHLiteral(t *testing.T) {
	m := pgtype.NewMap()
	bin := func(oid uint32, v any) []byte {
		b, err := m.Encode(oid, pgtype.BinaryFormatCode, v, nil)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		oid    uint32
		format int16
		in     []byte
		want   string // "" for an error
	}{
		{pgtype.Int8OID, 0, []byte("42"), "42"},
		{pgtype.Int8OID, 0, []byte("-42"), "(-42)"},
		{pgtype.Int8OID, 1, bin(pgtype.Int8OID, int64(-7)), "(-7)"},
		{pgtype.Int4OID, 1, bin(pgtype.Int4OID, int32(5)), "5"},
		{pgtype.Int8OID, 0, []byte("1; DROP TABLE t"), ""},
		{pgtype.Float8OID, 0, []byte("1.5e-3"), "1.5e-3"},
		{pgtype.Float8OID, 1, bin(pgtype.Float8OID, 2.5), "2.5"},
		{pgtype.Float8OID, 0, []byte("NaN"), "nan"},
		{pgtype.Float8OID, 0, []byte("-Infinity"), "(-inf)"},
		{pgtype.NumericOID, 0, []byte("18446744073709551615"), "18446744073709551615"},
		{pgtype.NumericOID, 1, bin(pgtype.NumericOID, pgtype.Numeric{Int: big.NewInt(-1250), Exp: -2, Valid: true}), "(-12.50)"},
		{pgtype.NumericOID, 0, []byte("1 OR 1=1"), ""},
		{pgtype.BoolOID, 0, []byte("t"), "1"},
		{pgtype.BoolOID, 1, bin(pgtype.BoolOID, false), "0"},
		{pgtype.TextOID, 0, []byte(`it's a \ test`), `'it\'s a \\ test'`},
		{pgtype.TextOID, 1, []byte("binary text"), "'binary text'"},
		{pgtype.TimestamptzOID, 1, bin(pgtype.TimestamptzOID, time.Date(2024, 1, 2, 4, 4, 5, 0, time.FixedZone("", 3600))),
			"toDateTime('2024-01-02 03:04:05', 'UTC')"},
		{pgtype.TimestamptzOID, 0, []byte("2024-01-02 03:04:05.5+00"), "toDateTime64('2024-01-02 03:04:05.500000', 6, 'UTC')"},
		{pgtype.DateOID, 1, bin(pgtype.DateOID, time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC)), "'2024-02-29'"},
		{pgtype.UUIDOID, 1, bin(pgtype.UUIDOID, uuid.MustParse("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")), "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'"},
		{pgtype.InetOID, 0, []byte("10.0.0.1/32"), "'10.0.0.1'"},
		{pgtype.TextOID, 0, nil, "NULL"},
		{pgtype.PointOID, 1, []byte{1, 2}, ""},
	}
	for _, tt := range tests {
		got, err := chLiteral(m, tt.oid, tt.format, tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("oid %d %q: got %q, want an error", tt.oid, tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("oid %d %q: got %q, %v; want %q", tt.oid, tt.in, got, err, tt.want)
		}
	}
}

func TestCHExecuteChecks(t *testing.T) {
	for sql, want := range map[string]string{
		"  SELECT 1": "select", "-- c\n/* d */WITH x AS (SELECT 1) SELECT * FROM x": "with",
		"insert into t values (1)": "insert", "": "", "-- only": "",
	} {
		if got := firstWord(sql); got != want {
			t.Errorf("firstWord(%q) = %q, want %q", sql, got, want)
		}
	}
	for sql, refused := range map[string]bool{
		"INSERT INTO t VALUES (1)":                 true,
		"INSERT INTO t FORMAT Values (1)":          true,
		"INSERT INTO t VALUES ('SELECT')":          true,
		"INSERT INTO t SELECT 1":                   false,
		"insert into t (a) select a from u":        false,
		"CREATE TABLE t (a Int32) ENGINE = Memory": false,
	} {
		err := checkCHExecute("ch", sql, 0)
		if (err != nil) != refused {
			t.Errorf("checkCHExecute(%q) = %v, want refused %v", sql, err, refused)
		}
	}
}
