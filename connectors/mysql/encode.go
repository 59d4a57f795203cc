package mysql

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/shopspring/decimal"
	"github.com/sluicedb/sluice/connectors"
)

// Value encoding: a MySQL value becomes a connectors.Value holding the
// Postgres binary send format of the column's mapped type (types.go). The
// same value reaches Sluice in two forms, and both encoders must give the
// same bytes (the tests check it on every type against a real MariaDB):
//
//   - encodeText: the text protocol of a SELECT (the initial load), as
//     go-mysql's client parses it into a FieldValue: integers already
//     parsed, everything else the server's text. The connection is in UTC
//     and utf8mb4 (PeerConfig.Connect), and FLOAT columns are read as
//     DOUBLE (selectExpr): the text of a FLOAT has only 6 digits.
//   - encodeBinlog: a binlog row event as go-mysql's replication package
//     decodes it: int8..int64, or uint8..uint64 for unsigned columns
//     (go-mysql reads signedness from the full row metadata; without it
//     an unsigned value comes signed and is read back as unsigned),
//     float32/64, decimal as a string or decimal.Decimal (UseDecimal),
//     DATETIME/TIMESTAMP as a string or time.Time (ParseTime; the stream
//     sets TimestampStringLocation to UTC), TIME as a string, ENUM and SET
//     as their index and bit mask, BIT as int64, strings in the column's
//     charset, JSON as text.
//
// Zero dates ('0000-00-00', '0000-00-00 00:00:00', and dates with a zero
// month or day, which MySQL accepts without NO_ZERO_IN_DATE) have no
// Postgres value and become NULL. -infinity was the alternative, rejected:
// it is a real value a query would sort and compare, ClickHouse has no
// such value, and "no date" is what applications store a zero date for.

// null is SQL NULL.
var null = connectors.Value{Kind: connectors.Null}

// binaryValue returns b as a Binary value; an empty value's Data is an
// empty slice, never nil (nil reads as NULL in places, as it does to pgx).
func binaryValue(b []byte) connectors.Value {
	if b == nil {
		b = []byte{}
	}
	return connectors.Value{Kind: connectors.Binary, Data: b}
}

// selectExpr returns the SQL that reads column c for encodeText: the
// quoted column, or, for a FLOAT, its exact value as a DOUBLE.
func selectExpr(c *colType) string {
	q := quoteIdent(c.Name)
	if c.Enc == encFloat4 {
		return "CAST(" + q + " AS DOUBLE)"
	}
	return q
}

// quoteIdent quotes a MySQL identifier with backquotes.
func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// encodeText encodes a value of column c read with the text protocol.
func encodeText(c *colType, fv gomysql.FieldValue) (connectors.Value, error) {
	switch fv.Type {
	case gomysql.FieldValueTypeNull:
		return null, nil
	case gomysql.FieldValueTypeSigned:
		return encodeInt(c, fv.AsInt64())
	case gomysql.FieldValueTypeUnsigned:
		return encodeUint(c, fv.AsUint64())
	case gomysql.FieldValueTypeFloat:
		return encodeFloat(c, fv.AsFloat64())
	}
	s := fv.AsString()
	switch c.Enc {
	case encInt2, encInt4, encInt8, encNumeric:
		if c.Enc == encNumeric {
			return encodeNumeric(c, string(s))
		}
		n, err := strconv.ParseInt(string(s), 10, 64)
		if err != nil {
			return null, fmt.Errorf("column %q: read %q: %w", c.Name, s, err)
		}
		return encodeInt(c, n)
	case encFloat4, encFloat8:
		f, err := strconv.ParseFloat(string(s), 64)
		if err != nil {
			return null, fmt.Errorf("column %q: read %q: %w", c.Name, s, err)
		}
		return encodeFloat(c, f)
	case encVarbit:
		// The text protocol sends a BIT as its bytes, big-endian.
		if len(s) > 8 {
			return null, fmt.Errorf("column %q: bit value of %d bytes", c.Name, len(s))
		}
		var v uint64
		for _, b := range s {
			v = v<<8 | uint64(b)
		}
		return encodeBits(c, v), nil
	case encText, encJSON:
		return encodeString(c, s, true)
	case encEnum:
		return encodeString(c, s, true)
	case encSet:
		var members []string
		if len(s) > 0 {
			members = strings.Split(string(s), ",")
		}
		return encodeTextArray(members), nil
	case encBytea:
		return binaryValue(append([]byte(nil), s...)), nil
	case encGeometry:
		return encodeGeometry(c, s)
	}
	return encodeTemporal(c, string(s))
}

// encodeBinlog encodes a value of column c as go-mysql decodes it from a
// binlog row event (nil is NULL).
func encodeBinlog(c *colType, v any) (connectors.Value, error) {
	switch x := v.(type) {
	case nil:
		return null, nil
	case int8:
		return encodeBinlogInt(c, int64(x), 8)
	case int16:
		return encodeBinlogInt(c, int64(x), 16)
	case int32:
		return encodeBinlogInt(c, int64(x), c.intBits())
	case int64:
		return encodeBinlogInt(c, x, 64)
	case int:
		return encodeBinlogInt(c, int64(x), 64)
	case uint8:
		return encodeUint(c, uint64(x))
	case uint16:
		return encodeUint(c, uint64(x))
	case uint32:
		return encodeUint(c, uint64(x))
	case uint64:
		return encodeUint(c, x)
	case float32:
		return encodeFloat(c, float64(x))
	case float64:
		return encodeFloat(c, x)
	case decimal.Decimal:
		// String drops trailing zeros; the column's scale keeps them (1.50
		// in a decimal(5,2) is 1.50, as the SELECT reads it).
		return encodeNumeric(c, x.StringFixed(int32(c.Scale)))
	case time.Time:
		return encodeTime(c, x)
	case []byte:
		return encodeBinlogBytes(c, x)
	case string:
		return encodeBinlogBytes(c, []byte(x))
	}
	return null, fmt.Errorf("column %q: unexpected binlog value %T", c.Name, v)
}

// intBits is the width of c's integer type in the binlog (MEDIUMINT is 24
// bits, decoded into an int32).
func (c *colType) intBits() int {
	if c.DataType == "mediumint" {
		return 24
	}
	return 32
}

// encodeBinlogInt encodes an integer from the binlog: go-mysql decodes
// every integer as signed; an unsigned column's value is the same bits
// read unsigned (width bits wide). ENUM, SET, BIT and YEAR come as integers
// too.
func encodeBinlogInt(c *colType, n int64, width int) (connectors.Value, error) {
	switch c.Enc {
	case encEnum:
		if n == 0 {
			return binaryValue([]byte{}), nil // the empty string MySQL stores for an invalid value
		}
		if n < 0 || int(n) > len(c.Elements) {
			return null, fmt.Errorf("column %q: enum index %d out of range (%d labels)", c.Name, n, len(c.Elements))
		}
		return binaryValue([]byte(c.Elements[n-1])), nil
	case encSet:
		mask := uint64(n)
		var members []string
		for i, e := range c.Elements {
			if mask&(1<<uint(i)) != 0 {
				members = append(members, e)
			}
		}
		return encodeTextArray(members), nil
	case encVarbit:
		return encodeBits(c, uint64(n)), nil
	}
	if c.Unsigned && n < 0 {
		u := uint64(n)
		if width < 64 {
			u &= 1<<uint(width) - 1
		}
		return encodeUint(c, u)
	}
	return encodeInt(c, n)
}

// encodeBinlogBytes encodes a string or bytes value from the binlog: text
// in the column's charset, binary data, a decimal or temporal value as
// text, JSON.
func encodeBinlogBytes(c *colType, b []byte) (connectors.Value, error) {
	switch c.Enc {
	case encText, encJSON, encEnum:
		u, err := toUTF8(c, b)
		if err != nil {
			return null, err
		}
		return encodeString(c, u, false)
	case encBytea:
		if c.DataType == "binary" && int64(len(b)) < c.Length {
			// The binlog drops a BINARY(n) value's trailing zero bytes;
			// the column holds them.
			padded := make([]byte, c.Length)
			copy(padded, b)
			return binaryValue(padded), nil
		}
		return binaryValue(append([]byte(nil), b...)), nil
	case encGeometry:
		return encodeGeometry(c, b)
	case encNumeric:
		return encodeNumeric(c, string(b))
	}
	return encodeTemporal(c, string(b))
}

// encodeInt encodes a signed integer into c's type, refusing one out of
// its range.
func encodeInt(c *colType, n int64) (connectors.Value, error) {
	switch c.Enc {
	case encInt2:
		if n < math.MinInt16 || n > math.MaxInt16 {
			return null, outOfRange(c, strconv.FormatInt(n, 10))
		}
		return binaryValue(binary.BigEndian.AppendUint16(nil, uint16(n))), nil
	case encInt4:
		if n < math.MinInt32 || n > math.MaxInt32 {
			return null, outOfRange(c, strconv.FormatInt(n, 10))
		}
		return binaryValue(binary.BigEndian.AppendUint32(nil, uint32(n))), nil
	case encInt8:
		return binaryValue(binary.BigEndian.AppendUint64(nil, uint64(n))), nil
	case encNumeric:
		return encodeNumeric(c, strconv.FormatInt(n, 10))
	case encFloat4, encFloat8:
		return encodeFloat(c, float64(n))
	case encVarbit, encEnum, encSet:
		return encodeBinlogInt(c, n, 64)
	}
	return null, fmt.Errorf("column %q: integer value for a %s column", c.Name, c.ColumnType)
}

// encodeUint encodes an unsigned integer into c's type.
func encodeUint(c *colType, n uint64) (connectors.Value, error) {
	if n <= math.MaxInt64 {
		return encodeInt(c, int64(n))
	}
	if c.Enc == encNumeric {
		return encodeNumeric(c, strconv.FormatUint(n, 10))
	}
	return null, outOfRange(c, strconv.FormatUint(n, 10))
}

func outOfRange(c *colType, v string) error {
	return fmt.Errorf("column %q: value %s out of range of %s", c.Name, v, c.PGType)
}

// encodeFloat encodes a float into real or double precision.
func encodeFloat(c *colType, f float64) (connectors.Value, error) {
	switch c.Enc {
	case encFloat4:
		return binaryValue(binary.BigEndian.AppendUint32(nil, math.Float32bits(float32(f)))), nil
	case encFloat8:
		return binaryValue(binary.BigEndian.AppendUint64(nil, math.Float64bits(f))), nil
	}
	return null, fmt.Errorf("column %q: float value for a %s column", c.Name, c.ColumnType)
}

// encodeNumeric encodes a decimal string ("-12.3400") as Postgres's numeric
// send format: the digits in base 10000 around the decimal point, the
// weight of the first group, the sign, and the display scale (the
// string's fraction digits, so 1.50 stays 1.50).
func encodeNumeric(c *colType, s string) (connectors.Value, error) {
	s = strings.TrimSpace(s)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimLeft(s, "+-")
	intPart, frac, _ := strings.Cut(s, ".")
	if intPart == "" && frac == "" || strings.Trim(intPart+frac, "0123456789") != "" {
		return null, fmt.Errorf("column %q: %q is not a decimal", c.Name, s)
	}
	dscale := len(frac)
	intPart = strings.TrimLeft(intPart, "0")
	// Pad to whole groups of four digits on both sides of the point.
	if r := len(intPart) % 4; r != 0 {
		intPart = strings.Repeat("0", 4-r) + intPart
	}
	if r := len(frac) % 4; r != 0 {
		frac += strings.Repeat("0", 4-r)
	}
	digits := intPart + frac
	groups := make([]uint16, 0, len(digits)/4)
	for i := 0; i < len(digits); i += 4 {
		g, _ := strconv.Atoi(digits[i : i+4])
		groups = append(groups, uint16(g))
	}
	weight := len(intPart)/4 - 1
	for len(groups) > 0 && groups[0] == 0 {
		groups = groups[1:]
		weight--
	}
	for len(groups) > 0 && groups[len(groups)-1] == 0 {
		groups = groups[:len(groups)-1]
	}
	sign := uint16(0x0000)
	if len(groups) == 0 {
		weight = 0 // zero: no digits, weight 0, positive
	} else if neg {
		sign = 0x4000
	}
	b := make([]byte, 0, 8+2*len(groups))
	b = binary.BigEndian.AppendUint16(b, uint16(len(groups)))
	b = binary.BigEndian.AppendUint16(b, uint16(int16(weight)))
	b = binary.BigEndian.AppendUint16(b, sign)
	b = binary.BigEndian.AppendUint16(b, uint16(dscale))
	for _, g := range groups {
		b = binary.BigEndian.AppendUint16(b, g)
	}
	return binaryValue(b), nil
}

// encodeBits encodes a BIT(n) value, the integer v, as bit varying(n) of
// exactly n bits: the bit length, then the bits from the most significant,
// left-aligned in bytes.
func encodeBits(c *colType, v uint64) connectors.Value {
	n := int(c.Length)
	nbytes := (n + 7) / 8
	b := binary.BigEndian.AppendUint32(make([]byte, 0, 4+nbytes), uint32(n))
	if n < 64 {
		v &= 1<<uint(n) - 1
	}
	shifted := v << uint(8*nbytes-n) // left-align in the bytes
	for i := nbytes - 1; i >= 0; i-- {
		b = append(b, byte(shifted>>(8*uint(i))))
	}
	return binaryValue(b)
}

// encodeString encodes text (text, varchar, an enum label, JSON as jsonb).
// Postgres text holds no NUL character: a value with one is an error
// naming the column. check asks for s to be checked to be UTF-8 (text the
// server converted to utf8mb4; toUTF8 checks what it converts).
func encodeString(c *colType, s []byte, check bool) (connectors.Value, error) {
	if check && !utf8.Valid(s) {
		return null, fmt.Errorf("column %q: value is not UTF-8", c.Name)
	}
	for _, b := range s {
		if b == 0 {
			return null, fmt.Errorf("column %q: value holds a NUL character, which Postgres text cannot store "+
				"(exclude the column, or change it to a binary type)", c.Name)
		}
	}
	if c.Enc == encJSON {
		if len(s) == 0 {
			s = []byte("null") // an empty document: MySQL stores it for NULL in non-strict mode
		}
		out := make([]byte, 1+len(s))
		out[0] = 1 // jsonb's format version
		copy(out[1:], s)
		return binaryValue(out), nil
	}
	return binaryValue(append([]byte(nil), s...)), nil
}

// encodeTextArray encodes members as a one-dimensional text[] (an empty
// array for none).
func encodeTextArray(members []string) connectors.Value {
	if len(members) == 0 {
		b := make([]byte, 0, 12)
		b = binary.BigEndian.AppendUint32(b, 0) // dimensions
		b = binary.BigEndian.AppendUint32(b, 0) // no NULLs
		b = binary.BigEndian.AppendUint32(b, pgtype.TextOID)
		return binaryValue(b)
	}
	b := make([]byte, 0, 20+8*len(members))
	b = binary.BigEndian.AppendUint32(b, 1)
	b = binary.BigEndian.AppendUint32(b, 0)
	b = binary.BigEndian.AppendUint32(b, pgtype.TextOID)
	b = binary.BigEndian.AppendUint32(b, uint32(len(members)))
	b = binary.BigEndian.AppendUint32(b, 1) // lower bound
	for _, m := range members {
		b = binary.BigEndian.AppendUint32(b, uint32(len(m)))
		b = append(b, m...)
	}
	return binaryValue(b)
}

// encodeGeometry encodes a spatial value, which MySQL keeps as a 4-byte
// SRID and then the WKB, as the WKB alone.
func encodeGeometry(c *colType, b []byte) (connectors.Value, error) {
	if len(b) < 4 {
		return null, fmt.Errorf("column %q: spatial value of %d bytes", c.Name, len(b))
	}
	return binaryValue(append([]byte(nil), b[4:]...)), nil
}
