package mysql

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/sluicedb/sluice/connectors"
)

// Type mapping: each MySQL/MariaDB column type becomes the Postgres type
// whose values hold every value of it exactly (the package doc has the
// table). Sluice's values cross the seam in Postgres's binary format, so
// the destinations need nothing MySQL-specific.

// encKind is how a column's values are encoded (encode.go).
type encKind uint8

const (
	encInt2        encKind = iota + 1 // int2
	encInt4                           // int4
	encInt8                           // int8
	encNumeric                        // numeric: decimal, bigint unsigned
	encFloat4                         // float4
	encFloat8                         // float8
	encVarbit                         // bit varying(n)
	encDate                           // date
	encTimestamp                      // timestamp: datetime
	encTimestamptz                    // timestamptz: timestamp
	encInterval                       // interval: time
	encText                           // text, varchar: char, varchar, text kinds
	encBytea                          // bytea: binary, varbinary, blob kinds
	encEnum                           // text: enum label
	encSet                            // text[]: set members
	encJSON                           // jsonb
	encGeometry                       // bytea: WKB (the SRID dropped)
)

// colType is one source column as Describe read it from information_schema,
// and its mapping. A value; the encoders only read it.
type colType struct {
	Name string
	// DataType is information_schema's DATA_TYPE, lower-case ("int",
	// "varchar", "enum"), ColumnType its COLUMN_TYPE ("int(10) unsigned",
	// "enum('a','b')").
	DataType, ColumnType string
	Unsigned             bool
	// Precision and Scale of a decimal; FSP, the fractional seconds of a
	// datetime, timestamp or time; Length, the declared length of a char,
	// varchar, binary or varbinary (characters or bytes), or of a bit.
	Precision, Scale, FSP int
	Length                int64
	// Elements are the labels of an enum or a set, in declaration order
	// (the binlog carries an enum as its 1-based index and a set as a bit
	// mask over them).
	Elements []string
	// Charset is the column's character set ("" for non-text columns).
	Charset string
	// JSON: a MariaDB JSON column (a LONGTEXT with a json_valid check).
	JSON    bool
	NotNull bool

	// The mapping: Postgres type (as format_type spells it), its OID, and
	// how values are encoded.
	PGType string
	OID    uint32
	Enc    encKind
}

// mapType sets c's Postgres type. A type with no faithful mapping is an
// error wrapping connectors.ErrUnsupportedType naming the column.
func mapType(c *colType) error {
	set := func(pg string, oid uint32, enc encKind) error {
		c.PGType, c.OID, c.Enc = pg, oid, enc
		switch enc {
		case encDate, encTimestamp, encTimestamptz:
			// A zero date reads as NULL, also in a NOT NULL column: the
			// destination column must take it.
			c.NotNull = false
		case encText, encEnum, encSet:
			if !supportedCharset(c.Charset) {
				return fmt.Errorf("column %q: charset %s is not supported yet (utf8mb4, utf8mb3, ascii and latin1 are; "+
					"exclude the column to mirror the rest): %w", c.Name, c.Charset, connectors.ErrUnsupportedType)
			}
		}
		return nil
	}
	switch c.DataType {
	case "tinyint":
		return set("smallint", pgtype.Int2OID, encInt2) // tinyint(1) (BOOLEAN) too: it holds -128..127
	case "smallint":
		if c.Unsigned {
			return set("integer", pgtype.Int4OID, encInt4)
		}
		return set("smallint", pgtype.Int2OID, encInt2)
	case "mediumint":
		return set("integer", pgtype.Int4OID, encInt4)
	case "int", "integer":
		if c.Unsigned {
			return set("bigint", pgtype.Int8OID, encInt8)
		}
		return set("integer", pgtype.Int4OID, encInt4)
	case "bigint":
		if c.Unsigned {
			return set("numeric(20,0)", pgtype.NumericOID, encNumeric)
		}
		return set("bigint", pgtype.Int8OID, encInt8)
	case "decimal", "numeric":
		return set(fmt.Sprintf("numeric(%d,%d)", c.Precision, c.Scale), pgtype.NumericOID, encNumeric)
	case "float":
		return set("real", pgtype.Float4OID, encFloat4)
	case "double", "double precision", "real":
		return set("double precision", pgtype.Float8OID, encFloat8)
	case "bit":
		return set(fmt.Sprintf("bit varying(%d)", c.Length), pgtype.VarbitOID, encVarbit)
	case "year":
		return set("smallint", pgtype.Int2OID, encInt2)
	case "date":
		return set("date", pgtype.DateOID, encDate)
	case "datetime":
		return set(fmt.Sprintf("timestamp(%d) without time zone", c.FSP), pgtype.TimestampOID, encTimestamp)
	case "timestamp":
		return set(fmt.Sprintf("timestamp(%d) with time zone", c.FSP), pgtype.TimestamptzOID, encTimestamptz)
	case "time":
		return set(fmt.Sprintf("interval(%d)", c.FSP), pgtype.IntervalOID, encInterval)
	case "char", "varchar":
		return set(fmt.Sprintf("character varying(%d)", c.Length), pgtype.VarcharOID, encText)
	case "tinytext", "text", "mediumtext", "longtext":
		if c.JSON {
			return set("jsonb", pgtype.JSONBOID, encJSON)
		}
		return set("text", pgtype.TextOID, encText)
	case "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob":
		return set("bytea", pgtype.ByteaOID, encBytea)
	case "enum":
		return set("text", pgtype.TextOID, encEnum)
	case "set":
		return set("text[]", pgtype.TextArrayOID, encSet)
	case "json":
		return set("jsonb", pgtype.JSONBOID, encJSON)
	case "geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon",
		"geometrycollection", "geomcollection":
		return set("bytea", pgtype.ByteaOID, encGeometry)
	}
	return fmt.Errorf("column %q: type %s has no Postgres mapping yet (exclude the column to mirror the rest): %w",
		c.Name, c.ColumnType, connectors.ErrUnsupportedType)
}

// parseColumnType fills in what COLUMN_TYPE says beyond information_schema's
// other columns: unsigned, a bit's length, an enum's or a set's labels.
func parseColumnType(c *colType) error {
	ct := c.ColumnType
	c.Unsigned = strings.Contains(ct, " unsigned")
	switch c.DataType {
	case "bit":
		n, err := strconv.Atoi(between(ct, "(", ")"))
		if err != nil {
			return fmt.Errorf("column %q: read bit length of %q: %w", c.Name, ct, err)
		}
		c.Length = int64(n)
	case "enum", "set":
		labels, err := parseLabels(between(ct, "(", ")"))
		if err != nil {
			return fmt.Errorf("column %q: read the labels of %q: %w", c.Name, ct, err)
		}
		c.Elements = labels
	}
	return nil
}

// between returns what lies between the first open and the last close in s.
func between(s, open, close string) string {
	i, j := strings.Index(s, open), strings.LastIndex(s, close)
	if i < 0 || j < i {
		return ""
	}
	return s[i+len(open) : j]
}

// parseLabels reads 'a','b”c','d\\e' (COLUMN_TYPE's quoting: a quote is
// doubled; MariaDB and MySQL also escape a backslash) into its labels.
func parseLabels(s string) ([]string, error) {
	var out []string
	for i := 0; i < len(s); {
		if s[i] != '\'' {
			return nil, fmt.Errorf("expected a quote at %d", i)
		}
		var b strings.Builder
		i++
		for {
			if i >= len(s) {
				return nil, fmt.Errorf("unterminated label")
			}
			ch := s[i]
			if ch == '\'' {
				if i+1 < len(s) && s[i+1] == '\'' {
					b.WriteByte('\'')
					i += 2
					continue
				}
				i++
				break
			}
			if ch == '\\' && i+1 < len(s) {
				b.WriteByte(s[i+1])
				i += 2
				continue
			}
			b.WriteByte(ch)
			i++
		}
		out = append(out, b.String())
		if i < len(s) {
			if s[i] != ',' {
				return nil, fmt.Errorf("expected a comma at %d", i)
			}
			i++
		}
	}
	return out, nil
}

// column returns c as the seam's Column; pos is its ordinal position.
func (c *colType) column(pos int) connectors.Column {
	return connectors.Column{Name: c.Name, Type: c.PGType, TypeOID: c.OID, NotNull: c.NotNull, Position: pos}
}
