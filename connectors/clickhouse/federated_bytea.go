package clickhouse

import (
	"context"
	"encoding/hex"
	"fmt"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/sluicedb/sluice/sqlerr"
)

// Bytes in ClickHouse String columns. A String holds any bytes; Postgres
// text must be valid UTF-8 without NUL. A column Sluice made for a Postgres
// bytea column (it carries the comment ByteaMarker) reads back
// as bytea: text form \x and hex digits, binary form the raw bytes. Any
// other value that is not valid text is refused as Postgres refuses it,
// 22021 naming the column, and never sent.
//
// A result column is taken for such a bytea column when its type is
// String (or Nullable(String)), and its name (or the part after the last
// dot, "o.thumbnail") is a column of the statement's tables that is marked
// in each of them that has it.

// chBytea is the set of column names of a statement's tables that are
// marked bytea.
type chBytea map[string]bool

// tablesOf returns the tables named in sql, a statement Postgres' parser
// reads; none when it cannot.
func tablesOf(sql string) []queryTable {
	p, err := chParamsOf(sql)
	if err != nil {
		return nil
	}
	return p.tables
}

// byteaColumns reads which columns of tables are marked bytea. Without
// the answer (system.columns unreadable) there are none: such columns then
// read as text, checked.
func (c *federatedConn) byteaColumns(ctx context.Context, tables []queryTable) (chBytea, error) {
	if len(tables) == 0 {
		return nil, nil
	}
	seen := map[string]bool{}
	var names []string
	for _, t := range tables {
		name := quoteCHString(strings.ToLower(t.table))
		if !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	rows, err := c.query(ctx, "SELECT toUInt8(database = currentDatabase()), database, table, name, comment = "+
		quoteCHString(ByteaMarker)+" FROM system.columns WHERE lower(table) IN ("+strings.Join(names, ", ")+")", true)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, nil
	}
	defer rows.Close()
	state := map[string]bool{} // name: marked in every table that has it
	for rows.Next() {
		var current, marked uint8
		var db, table, name string
		if err := rows.Scan(&current, &db, &table, &name, &marked); err != nil {
			return nil, nil
		}
		for _, t := range tables {
			if !strings.EqualFold(table, t.table) || (t.db == "" && current == 0) || (t.db != "" && !strings.EqualFold(db, t.db)) {
				continue
			}
			if was, ok := state[name]; ok {
				state[name] = was && marked == 1
			} else {
				state[name] = marked == 1
			}
		}
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	out := chBytea{}
	for n, marked := range state {
		if marked {
			out[n] = true
		}
	}
	return out, nil
}

// mark sets the type of each result column that is a marked bytea column
// to bytea.
func (b chBytea) mark(names []string, types []chType) {
	if len(b) == 0 {
		return
	}
	for i := range types {
		if types[i].elem != nil || types[i].base != "String" || i >= len(names) {
			continue
		}
		n := names[i]
		if b[n] {
			types[i].oid = pgtype.ByteaOID
		} else if j := strings.LastIndexByte(n, '.'); j >= 0 && b[n[j+1:]] {
			types[i].oid = pgtype.ByteaOID
		}
	}
}

// chBytes returns the bytes of a scanned String value; nil for NULL.
func chBytes(v any) []byte {
	rv := deref(reflect.ValueOf(v))
	if !rv.IsValid() {
		return nil
	}
	if rv.Kind() == reflect.String {
		return []byte(rv.String())
	}
	return []byte(fmt.Sprint(rv.Interface()))
}

// byteaValue is a bytea value in format: raw bytes, or \x and hex digits.
func byteaValue(b []byte, format int16) []byte {
	if format == pgtype.BinaryFormatCode {
		return b
	}
	out := make([]byte, 2+hex.EncodedLen(len(b)))
	out[0], out[1] = '\\', 'x'
	hex.Encode(out[2:], b)
	return out
}

// invalidText returns the first byte of v that Postgres text cannot hold
// (invalid UTF-8, or NUL), and whether there is one.
func invalidText(v []byte) (byte, bool) {
	for i := 0; i < len(v); {
		if v[i] == 0 {
			return 0, true
		}
		if v[i] < utf8.RuneSelf {
			i++
			continue
		}
		r, size := utf8.DecodeRune(v[i:])
		if r == utf8.RuneError && size <= 1 {
			return v[i], true
		}
		i += size
	}
	return 0, false
}

// notText is the error for a value of column name that is not valid text.
func notText(peer, name string, row int, bad byte) error {
	return sqlerr.New(pgerrcode.CharacterNotInRepertoire, "invalid byte sequence for encoding \"UTF8\": 0x%02x in column %q of clickhouse peer %q",
		bad, name, peer).
		WithDetail("Row %d: the ClickHouse column holds bytes that are not UTF-8 text, which Postgres clients cannot read as text.", row).
		WithHint("Read the bytes as text with hex(%s) or base64Encode(%s) in the query. Columns Sluice mirrored from bytea read back as bytea.",
			name, name)
}
