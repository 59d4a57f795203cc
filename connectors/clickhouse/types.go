package clickhouse

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/sluicedb/sluice/connectors"
)

// Type mapping.
//
// A Postgres column becomes one ClickHouse column whose type depends on the
// server's version: servers from ModernMajor.ModernMinor on (22.8, an LTS)
// get the newer types (Bool, Date32, DateTime64, Decimal256), older ones
// (18.16, the oldest tested) the documented fallbacks. docs/clickhouse.md
// has the table; the choices in short:
//
//   - Every value is kept exactly where the server can: integers, floats,
//     numeric(p,s) as Decimal(p,s), uuid as UUID, text-like types as String.
//   - timestamp and timestamptz on old servers are a String in a fixed
//     ISO 8601 layout with microseconds, in UTC ("2024-05-06 07:08:09.123456"):
//     lossless (DateTime would drop the microseconds and everything before
//     1970), sortable as text, and readable with toDateTime(substring(x, 1, 19), 'UTC').
//   - date on old servers is a String in Postgres's ISO form (2024-05-06):
//     Date covers only 1970-01-01 to 2149-06-06, and a date outside it (a
//     birth date) would stop the mirror.
//   - A type with no fitting ClickHouse type is a String holding Postgres's
//     text form (time, interval, inet, money is refused: see ColumnType).
//   - Arrays are Array(Nullable(T)) (Postgres array elements may be NULL);
//     a NULL array is written as an empty array, since ClickHouse has no
//     Nullable(Array).

// ModernMajor and ModernMinor are the first server version given the newer
// types (Bool, Date32, DateTime64(6), Decimal256 with the extended ranges).
const (
	ModernMajor = 22
	ModernMinor = 8
)

// modern reports whether the server has the newer types.
func modern(v ServerInfo) bool { return v.AtLeast(ModernMajor, ModernMinor) }

// convKind is how a Postgres binary value becomes a ClickHouse Go value.
type convKind uint8

const (
	kInt16         convKind = iota + 1 // int2 -> Int16
	kInt32                             // int4 -> Int32
	kInt64                             // int8 -> Int64
	kUInt32                            // oid -> UInt32
	kFloat32                           // float4 -> Float32
	kFloat64                           // float8 -> Float64
	kBoolUInt8                         // bool -> UInt8 (old servers)
	kBool                              // bool -> Bool
	kDecimal                           // numeric(p,s) -> Decimal(p,s)
	kRawText                           // text-like: the binary form is the text
	kJSONB                             // jsonb: version byte + text
	kBytes                             // bytea -> String of the raw bytes
	kUUID                              // uuid -> UUID
	kDate                              // date -> Date
	kDate32                            // date -> Date32
	kTimestamp64                       // timestamp[tz] -> DateTime64(6, 'UTC')
	kTimestampText                     // timestamp[tz] -> String (old servers)
	kPGText                            // anything else pgtype knows -> String of the text form
)

// colMapping is the ClickHouse side of one Postgres column.
type colMapping struct {
	sql      string   // ClickHouse type, with Nullable/Array
	kind     convKind // of the value, or of the elements of an array
	oid      uint32   // Postgres type OID of the value, or of the elements
	array    bool
	nullable bool // the column is Nullable(...) (never for arrays)
	scale    int32
	// nullKey: nullable in the source but in the sorting key, so not
	// Nullable here: a NULL is stored as the type's default and counted
	// in nulls (see NullKeys).
	nullKey bool
	nulls   int64
}

// pgTypes is a read-only Map for looking types up; decoding uses a Map
// per writer (a Map caches plans and is not safe for concurrent use).
var pgTypes = pgtype.NewMap()

// ColumnType returns the ClickHouse type for Postgres column c on a server of
// version v: Nullable(...) when the column is nullable in the source and not
// part of the key (key is true for primary-key and ORDER BY columns: a
// sorting key cannot be Nullable, so a NULL is stored as the type's
// default, see NullableKeyColumns), never around an Array. An unsupported type is an error naming the column and type.
// ColumnType is pure and safe for concurrent use.
func ColumnType(c connectors.Column, key bool, v ServerInfo) (string, error) {
	m, err := mapColumn(c, key, v)
	return m.sql, err
}

// mapColumn is ColumnType with what conversion needs.
func mapColumn(c connectors.Column, key bool, v ServerInfo) (colMapping, error) {
	typ := strings.TrimSpace(c.Type)
	m := colMapping{oid: c.TypeOID}
	if strings.HasSuffix(typ, "[]") {
		m.array = true
		typ = strings.TrimSpace(strings.TrimSuffix(typ, "[]"))
		if c.TypeOID >= firstUserOID {
			m.oid = 0 // an array of an enum: elements are labels
		} else {
			t, ok := pgTypes.TypeForOID(c.TypeOID)
			ac, isArray := (*pgtype.ArrayCodec)(nil), false
			if ok {
				ac, isArray = t.Codec.(*pgtype.ArrayCodec)
			}
			if !isArray {
				return m, fmt.Errorf("column %q: type %s (oid %d) is not supported", c.Name, c.Type, c.TypeOID)
			}
			m.oid = ac.ElementType.OID
		}
	}
	base, err := baseType(c, typ, &m, v)
	if err != nil {
		return m, err
	}
	switch {
	case m.array:
		m.sql = "Array(Nullable(" + base + "))"
	case !c.NotNull && !key:
		m.nullable = true
		m.sql = "Nullable(" + base + ")"
	default:
		m.sql = base
	}
	return m, nil
}

// firstUserOID is the first OID of a type made after initdb: DescribeTable
// only lets enums (and arrays of them) through above it.
const firstUserOID = 16384

// baseType sets m.kind (and scale) for the value (or element) type and
// returns its ClickHouse type without Nullable/Array.
func baseType(c connectors.Column, typ string, m *colMapping, v ServerInfo) (string, error) {
	if m.oid >= firstUserOID || (m.array && m.oid == 0) {
		m.kind = kRawText // an enum: the binary form is the label
		return "String", nil
	}
	switch m.oid {
	case pgtype.Int2OID:
		m.kind = kInt16
		return "Int16", nil
	case pgtype.Int4OID:
		m.kind = kInt32
		return "Int32", nil
	case pgtype.Int8OID:
		m.kind = kInt64
		return "Int64", nil
	case pgtype.OIDOID:
		m.kind = kUInt32
		return "UInt32", nil
	case pgtype.Float4OID:
		m.kind = kFloat32
		return "Float32", nil
	case pgtype.Float8OID:
		m.kind = kFloat64
		return "Float64", nil
	case pgtype.BoolOID:
		if modern(v) {
			m.kind = kBool
			return "Bool", nil
		}
		m.kind = kBoolUInt8
		return "UInt8", nil
	case pgtype.NumericOID:
		p, s, ok, err := numericTypmod(typ)
		if err != nil {
			return "", fmt.Errorf("column %q: %w", c.Name, err)
		}
		maxP := 38
		if modern(v) {
			maxP = 76
		}
		if !ok || p > maxP {
			m.kind = kPGText
			return "String", nil
		}
		m.kind, m.scale = kDecimal, int32(s)
		return fmt.Sprintf("Decimal(%d, %d)", p, s), nil
	case pgtype.TextOID, pgtype.VarcharOID, pgtype.BPCharOID, pgtype.NameOID, pgtype.QCharOID,
		pgtype.JSONOID, pgtype.XMLOID:
		m.kind = kRawText
		return "String", nil
	case pgtype.JSONBOID:
		m.kind = kJSONB
		return "String", nil
	case pgtype.ByteaOID:
		m.kind = kBytes
		return "String", nil
	case pgtype.UUIDOID:
		m.kind = kUUID
		return "UUID", nil
	case pgtype.DateOID:
		if modern(v) {
			m.kind = kDate32
			return "Date32", nil
		}
		// Date covers only 1970-2149: a birth date would stop the mirror.
		m.kind = kPGText
		return "String", nil
	case pgtype.TimestampOID, pgtype.TimestamptzOID:
		if modern(v) {
			m.kind = kTimestamp64
			return "DateTime64(6, 'UTC')", nil
		}
		m.kind = kTimestampText
		return "String", nil
	}
	// Anything else pgtype can decode from binary and render as text.
	t, ok := pgTypes.TypeForOID(m.oid)
	if !ok || !t.Codec.FormatSupported(pgtype.BinaryFormatCode) || !t.Codec.FormatSupported(pgtype.TextFormatCode) {
		return "", fmt.Errorf("column %q: type %s (oid %d) has no ClickHouse mapping (exclude the column to mirror the rest)",
			c.Name, c.Type, c.TypeOID)
	}
	m.kind = kPGText
	return "String", nil
}

// numericTypmod parses "numeric(p,s)" / "numeric(p)" / "numeric"; ok is
// false for an unconstrained numeric.
func numericTypmod(typ string) (p, s int, ok bool, err error) {
	open := strings.IndexByte(typ, '(')
	if open < 0 {
		return 0, 0, false, nil
	}
	args := strings.TrimSuffix(strings.TrimSpace(typ[open+1:]), ")")
	ps, ss, hasScale := strings.Cut(args, ",")
	p, err = strconv.Atoi(strings.TrimSpace(ps))
	if err == nil && hasScale {
		s, err = strconv.Atoi(strings.TrimSpace(ss))
	}
	if err != nil || p < 1 || s < 0 || s > p {
		// Postgres 15+ allows a negative scale or one above the precision:
		// no Decimal holds those exactly as declared, so keep the text.
		return 0, 0, false, nil
	}
	return p, s, true, nil
}

// quoteIdent quotes a ClickHouse identifier with backquotes.
func quoteIdent(s string) string {
	r := strings.NewReplacer(`\`, `\\`, "`", "\\`")
	return "`" + r.Replace(s) + "`"
}

// quoteString renders a ClickHouse string literal.
func quoteString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return "'" + r.Replace(s) + "'"
}

// qualified renders `db`.`table` for a destination table.
func qualified(t connectors.TableName) string { return quoteIdent(t.Schema) + "." + quoteIdent(t.Name) }
