package clickhouse

import (
	"fmt"
	"math"
	"math/big"
	"net"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/sluicedb/sluice/sqlerr"
)

// The types of a ClickHouse peer's results, as Postgres clients see them
// (docs/clickhouse.md, "Federated reads"): each ClickHouse column type maps
// to a built-in Postgres type, and each value is sent in that type's text
// form (converted to its binary form with pgtype when the client asks).

// chType is how a ClickHouse column is described to a Postgres client.
type chType struct {
	oid   uint32  // Postgres type of the column
	name  string  // the ClickHouse type, e.g. "Nullable(Decimal(12, 2))"
	base  string  // its family once Nullable and LowCardinality are unwrapped, e.g. "Decimal"
	scale int     // Decimal: digits after the point
	elem  *chType // Array(T) mapped to T[]: T
}

// chScalarOIDs maps ClickHouse type families to Postgres types. Families not
// listed (Tuple, Map, nested arrays, Nothing, intervals, ...) are text.
var chScalarOIDs = map[string]uint32{
	"Int8": pgtype.Int2OID, "Int16": pgtype.Int2OID, "UInt8": pgtype.Int2OID,
	"Int32": pgtype.Int4OID, "UInt16": pgtype.Int4OID,
	"Int64": pgtype.Int8OID, "UInt32": pgtype.Int8OID,
	"UInt64": pgtype.NumericOID, "Int128": pgtype.NumericOID, "UInt128": pgtype.NumericOID,
	"Int256": pgtype.NumericOID, "UInt256": pgtype.NumericOID,
	"Decimal": pgtype.NumericOID, "Decimal32": pgtype.NumericOID, "Decimal64": pgtype.NumericOID,
	"Decimal128": pgtype.NumericOID, "Decimal256": pgtype.NumericOID,
	"Float32": pgtype.Float4OID, "Float64": pgtype.Float8OID,
	"String": pgtype.TextOID, "FixedString": pgtype.TextOID, "Enum8": pgtype.TextOID, "Enum16": pgtype.TextOID,
	"Bool": pgtype.BoolOID,
	"Date": pgtype.DateOID, "Date32": pgtype.DateOID,
	"DateTime": pgtype.TimestamptzOID, "DateTime64": pgtype.TimestamptzOID,
	"UUID": pgtype.UUIDOID,
	"IPv4": pgtype.InetOID, "IPv6": pgtype.InetOID,
}

// chArrayOIDs maps a Postgres element type to its array type.
var chArrayOIDs = map[uint32]uint32{
	pgtype.Int2OID: pgtype.Int2ArrayOID, pgtype.Int4OID: pgtype.Int4ArrayOID, pgtype.Int8OID: pgtype.Int8ArrayOID,
	pgtype.NumericOID: pgtype.NumericArrayOID, pgtype.Float4OID: pgtype.Float4ArrayOID,
	pgtype.Float8OID: pgtype.Float8ArrayOID, pgtype.TextOID: pgtype.TextArrayOID, pgtype.BoolOID: pgtype.BoolArrayOID,
	pgtype.DateOID: pgtype.DateArrayOID, pgtype.TimestamptzOID: pgtype.TimestamptzArrayOID,
	pgtype.UUIDOID: pgtype.UUIDArrayOID, pgtype.InetOID: pgtype.InetArrayOID,
}

// chTypeOf maps a ClickHouse type name (ColumnType.DatabaseTypeName) to
// the Postgres type a client sees.
func chTypeOf(name string) chType {
	t := chType{name: name, oid: pgtype.TextOID}
	inner := unwrapCH(name)
	family, args := splitCHType(inner)
	t.base = family
	if family == "Array" {
		elem := chTypeOf(args)
		if elem.elem == nil && elem.base != "" {
			if arr, ok := chArrayOIDs[elem.oid]; ok && chScalarOIDs[elem.base] != 0 {
				t.oid, t.elem = arr, &elem
			}
		}
		return t
	}
	if oid, ok := chScalarOIDs[family]; ok {
		t.oid = oid
	}
	switch family {
	case "Decimal":
		// Decimal(P, S)
		if i := strings.LastIndexByte(args, ','); i >= 0 {
			t.scale, _ = strconv.Atoi(strings.TrimSpace(args[i+1:]))
		}
	case "Decimal32", "Decimal64", "Decimal128", "Decimal256":
		// Decimal64(S)
		t.scale, _ = strconv.Atoi(strings.TrimSpace(args))
	}
	return t
}

// unwrapCH removes Nullable(...) and LowCardinality(...) around a type.
func unwrapCH(name string) string {
	for {
		family, args := splitCHType(name)
		if family != "Nullable" && family != "LowCardinality" {
			return name
		}
		name = args
	}
}

// splitCHType splits "Family(args)" into its family and arguments.
func splitCHType(name string) (family, args string) {
	name = strings.TrimSpace(name)
	i := strings.IndexByte(name, '(')
	if i < 0 || !strings.HasSuffix(name, ")") {
		return name, ""
	}
	return name[:i], name[i+1 : len(name)-1]
}

// chFields describes result columns to the client, in text format.
func chFields(names []string, types []chType) []pgproto3.FieldDescription {
	out := make([]pgproto3.FieldDescription, len(types))
	for i, t := range types {
		out[i] = pgproto3.FieldDescription{
			Name:         []byte(names[i]),
			DataTypeOID:  t.oid,
			DataTypeSize: typeSize(t.oid),
			TypeModifier: -1,
		}
	}
	return out
}

// typeSize is pg_type.typlen of the types chTypeOf produces.
func typeSize(oid uint32) int16 {
	switch oid {
	case pgtype.BoolOID:
		return 1
	case pgtype.Int2OID:
		return 2
	case pgtype.Int4OID, pgtype.Float4OID, pgtype.DateOID:
		return 4
	case pgtype.Int8OID, pgtype.Float8OID, pgtype.TimestamptzOID:
		return 8
	case pgtype.UUIDOID:
		return 16
	}
	return -1
}

// chText returns the Postgres text form of v, a value scanned from a column
// of type t (a pointer to the column's ScanType); nil for NULL.
func chText(t chType, v any) []byte {
	rv := deref(reflect.ValueOf(v))
	if !rv.IsValid() {
		return nil
	}
	if t.elem != nil {
		return []byte(pgArray(*t.elem, rv))
	}
	if chScalarOIDs[t.base] == 0 {
		return []byte(chDisplay(rv, true, t.base == "Tuple"))
	}
	return []byte(pgScalar(t, rv))
}

// deref follows pointers and interfaces; the result is invalid for nil.
func deref(rv reflect.Value) reflect.Value {
	for rv.IsValid() && (rv.Kind() == reflect.Pointer || rv.Kind() == reflect.Interface) {
		if rv.IsNil() {
			return reflect.Value{}
		}
		if _, ok := rv.Interface().(*big.Int); ok {
			return rv
		}
		rv = rv.Elem()
	}
	return rv
}

// pgScalar formats a non-NULL value of a mapped scalar type.
func pgScalar(t chType, rv reflect.Value) string {
	v := rv.Interface()
	switch x := v.(type) {
	case string:
		if t.base == "FixedString" {
			// ClickHouse pads with zero bytes, which Postgres text cannot hold.
			return strings.TrimRight(x, "\x00")
		}
		return x
	case bool:
		if x {
			return "t"
		}
		return "f"
	case float32:
		return pgFloat(float64(x), 32)
	case float64:
		return pgFloat(x, 64)
	case *big.Int:
		return x.String()
	case time.Time:
		if t.base == "Date" || t.base == "Date32" {
			return x.Format("2006-01-02")
		}
		return x.UTC().Round(time.Microsecond).Format("2006-01-02 15:04:05.999999") + "+00"
	case net.IP:
		if t.base == "IPv6" && len(x) == net.IPv6len && x.To4() != nil {
			// net.IP prints an IPv4-mapped address as IPv4; Postgres keeps
			// the family.
			return "::ffff:" + x.To4().String()
		}
		return x.String()
	case interface{ StringFixed(int32) string }: // decimal.Decimal
		return x.StringFixed(int32(t.scale))
	case fmt.Stringer: // uuid.UUID
		return x.String()
	}
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(rv.Int(), 10)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.FormatUint(rv.Uint(), 10)
	case reflect.String:
		return rv.String()
	}
	return fmt.Sprint(v)
}

// pgFloat formats f as Postgres does (extra_float_digits = 1, the
// default): the shortest text that reads back as the same value, in
// exponent form below 1e-4 and from 1e15 (float8) or 1e6 (float4) on.
func pgFloat(f float64, bits int) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	e := strconv.FormatFloat(f, 'e', -1, bits)
	exp, _ := strconv.Atoi(e[strings.IndexByte(e, 'e')+1:])
	limit := 15
	if bits == 32 {
		limit = 6
	}
	if exp < -4 || exp >= limit {
		return e
	}
	return strconv.FormatFloat(f, 'f', -1, bits)
}

// pgArray formats a ClickHouse array as a Postgres array literal.
func pgArray(elem chType, rv reflect.Value) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i < rv.Len(); i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		ev := deref(rv.Index(i))
		if !ev.IsValid() {
			b.WriteString("NULL")
			continue
		}
		b.WriteString(quoteArrayElem(pgScalar(elem, ev)))
	}
	b.WriteByte('}')
	return b.String()
}

// quoteArrayElem quotes an element of an array literal when Postgres would.
func quoteArrayElem(s string) string {
	if s != "" && !strings.EqualFold(s, "NULL") && !strings.ContainsAny(s, "{},\"\\ \t\n\r\v\f") {
		return s
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

// chDisplay formats a value of a type without a Postgres counterpart
// (tuples, maps, nested arrays, ...) much as ClickHouse prints it:
// [1,2], ('a',1), {'k':1}; strings are quoted inside such values.
func chDisplay(rv reflect.Value, top, tuple bool) string {
	rv = deref(rv)
	if !rv.IsValid() {
		return "NULL"
	}
	switch x := rv.Interface().(type) {
	case string:
		if top {
			return x
		}
		return quoteCHString(x)
	case time.Time:
		s := x.Format("2006-01-02 15:04:05.999999999")
		if top {
			return s
		}
		return quoteCHString(s)
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case *big.Int:
		return x.String()
	case net.IP:
		return quoteCHString(x.String())
	case interface{ StringFixed(int32) string }: // decimal.Decimal
		return x.(fmt.Stringer).String()
	case fmt.Stringer:
		if top {
			return x.String()
		}
		return quoteCHString(x.String())
	}
	switch rv.Kind() {
	case reflect.Slice, reflect.Array:
		parts := make([]string, rv.Len())
		for i := range parts {
			parts[i] = chDisplay(rv.Index(i), false, false)
		}
		if tuple {
			return "(" + strings.Join(parts, ",") + ")"
		}
		return "[" + strings.Join(parts, ",") + "]"
	case reflect.Map:
		parts := make([]string, 0, rv.Len())
		iter := rv.MapRange()
		for iter.Next() {
			parts = append(parts, chDisplay(iter.Key(), false, false)+":"+chDisplay(iter.Value(), false, false))
		}
		sort.Strings(parts)
		return "{" + strings.Join(parts, ",") + "}"
	case reflect.Struct:
		parts := make([]string, rv.NumField())
		for i := range parts {
			parts[i] = chDisplay(rv.Field(i), false, false)
		}
		return "(" + strings.Join(parts, ",") + ")"
	}
	return fmt.Sprint(rv.Interface())
}

// quoteCHString quotes s as a ClickHouse string literal.
func quoteCHString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// binaryValue converts text, a value's Postgres text form, to the binary
// form of type oid.
func binaryValue(m *pgtype.Map, oid uint32, text []byte) ([]byte, error) {
	typ, ok := m.TypeForOID(oid)
	if !ok {
		return nil, fmt.Errorf("no binary format for type OID %d", oid)
	}
	v, err := typ.Codec.DecodeValue(m, oid, pgtype.TextFormatCode, text)
	if err != nil {
		return nil, fmt.Errorf("read %s value %q: %w", typ.Name, text, err)
	}
	buf, err := m.Encode(oid, pgtype.BinaryFormatCode, v, nil)
	if err != nil {
		return nil, fmt.Errorf("encode %s value %q: %w", typ.Name, text, err)
	}
	return buf, nil
}

// formatAt returns the format of column or parameter i given the client's
// formats (none: all text; one: for all; else one each).
func formatAt(formats []int16, i int) int16 {
	switch {
	case len(formats) == 1:
		return formats[0]
	case i < len(formats):
		return formats[i]
	}
	return pgtype.TextFormatCode
}

// chRowWriter turns scanned ClickHouse rows into Postgres rows.
type chRowWriter struct {
	m       *pgtype.Map
	types   []chType
	formats []int16 // the client's result formats
	values  [][]byte
	peer    string
	names   []string // the columns' names, for errors
	rows    int      // rows converted
}

// row returns the values of one row, valid until the next call. A value
// that is not valid text (federated_bytea.go) is an error: bytea
// columns are sent as bytea, nothing else goes out that is not UTF-8.
func (rw *chRowWriter) row(dest []any) ([][]byte, error) {
	if rw.values == nil {
		rw.values = make([][]byte, len(rw.types))
	}
	rw.rows++
	for i, t := range rw.types {
		if t.oid == pgtype.ByteaOID {
			if b := chBytes(dest[i]); b != nil {
				rw.values[i] = byteaValue(b, formatAt(rw.formats, i))
			} else {
				rw.values[i] = nil
			}
			continue
		}
		v := chText(t, dest[i])
		if bad, ok := invalidText(v); ok {
			name := fmt.Sprintf("column %d", i+1)
			if i < len(rw.names) {
				name = rw.names[i]
			}
			return nil, notText(rw.peer, name, rw.rows, bad)
		}
		if v != nil && formatAt(rw.formats, i) == pgtype.BinaryFormatCode && t.oid != pgtype.TextOID {
			b, err := binaryValue(rw.m, t.oid, v)
			if err != nil {
				return nil, sqlerr.New(pgerrcode.FDWInvalidDataType, "convert column %d to binary: %v", i+1, err)
			}
			v = b
		}
		rw.values[i] = v
	}
	return rw.values, nil
}
