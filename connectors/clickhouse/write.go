package clickhouse

import (
	"context"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"
	"github.com/shopspring/decimal"
	"github.com/sluicedb/sluice/connectors"
)

// Writer writes rows of one mirrored table with native batch inserts: the
// initial load's writer. It is not safe for concurrent use; make one per
// goroutine.
type Writer struct {
	l  *layout
	cv *converter
}

// NewWriter returns a writer of source table ts's rows into dest (Schema is
// the ClickHouse database), for a table made by CreateTableDDL with the same
// server version and options. Errors are CreateTableDDL's.
func NewWriter(dest connectors.TableName, ts *connectors.TableSchema, v ServerInfo, opts TableOptions) (*Writer, error) {
	l, err := newLayout(dest, ts, v, opts)
	if err != nil {
		return nil, err
	}
	return &Writer{l: l, cv: newConverter(l.cols)}, nil
}

// Insert writes rows (values in ts's column order, Binary or Null) as live
// rows with row version version, in one batch insert. Writing the same rows
// with the same version again is harmless: ReplacingMergeTree keeps one.
// Errors name the row and column at fault.
func (w *Writer) Insert(ctx context.Context, conn driver.Conn, rows [][]connectors.Value, version uint64) error {
	if len(rows) == 0 {
		return nil
	}
	now := syncedNow()
	return w.l.send(ctx, conn, len(rows), func(i int, out []any) ([]any, error) {
		out, err := w.cv.row(out, rows[i], w.l.colName)
		if err != nil {
			return nil, fmt.Errorf("row %d: %w", i, err)
		}
		return append(out, version, uint8(0), now), nil
	})
}

// NullKeys returns, by column, how many NULLs the writer stored as the
// type's default in sorting-key columns that are nullable in the source
// (see NullableKeyColumns) since the last call, and resets the counts; nil
// when none.
func (w *Writer) NullKeys() map[string]int64 { return w.l.takeNullKeys(w.cv.cols) }

// syncedNow is the synced-at time of rows written now (DateTime: seconds).
func syncedNow() time.Time { return time.Now().UTC().Truncate(time.Second) }

func (l *layout) colName(i int) string { return l.schema.Columns[i].Name }

// send inserts n rows made by row (which appends a row's values to out) in
// one batch.
func (l *layout) send(ctx context.Context, conn driver.Conn, n int, row func(i int, out []any) ([]any, error)) error {
	b, err := conn.PrepareBatch(ctx, l.insertSQL())
	if err != nil {
		return fmt.Errorf("insert into %s: %w", l.dest, err)
	}
	vals := make([]any, 0, len(l.cols)+3)
	for i := range n {
		vals, err = row(i, vals[:0])
		if err == nil {
			err = b.Append(vals...)
		}
		if err != nil {
			_ = b.Abort()
			return fmt.Errorf("insert into %s: %w", l.dest, err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("insert into %s: %w", l.dest, err)
	}
	return nil
}

// readChunk is how many keys one read of current rows asks for.
const readChunk = 500

// curRow is a row read back from a mirrored table.
type curRow struct {
	vals    []any // ClickHouse values of every replicated column
	version uint64
	deleted uint8
}

// readRows reads the current versions (FINAL, deleted or not) of the rows
// with the given keys (ClickHouse values of the key columns, in key order)
// and returns them by keyString, as ClickHouse values of every replicated
// column ready to be appended again. A key has one row per sorting key it
// was written under: one when the sorting key is the primary key.
func (l *layout) readRows(ctx context.Context, conn driver.Conn, keys [][]any) (map[string][]curRow, error) {
	out := make(map[string][]curRow, len(keys))
	keyCols := make([]string, len(l.keyIdx))
	for i, k := range l.keyIdx {
		keyCols[i] = quoteIdent(l.schema.Columns[k].Name)
	}
	cols := make([]string, len(l.schema.Columns), len(l.schema.Columns)+2)
	for i, c := range l.schema.Columns {
		cols[i] = quoteIdent(c.Name)
	}
	cols = append(cols, quoteIdent(l.opts.VersionColumn), quoteIdent(l.opts.DeletedColumn))
	for start := 0; start < len(keys); start += readChunk {
		chunk := keys[start:min(start+readChunk, len(keys))]
		var in strings.Builder
		for i, k := range chunk {
			if i > 0 {
				in.WriteString(", ")
			}
			in.WriteString("(")
			for j, x := range k {
				if j > 0 {
					in.WriteString(", ")
				}
				lit, err := literal(&l.cols[l.keyIdx[j]], x)
				if err != nil {
					return nil, fmt.Errorf("read current rows of %s: key column %q: %w", l.dest, l.colName(l.keyIdx[j]), err)
				}
				in.WriteString(lit)
			}
			in.WriteString(")")
		}
		q := "SELECT " + strings.Join(cols, ", ") + " FROM " + qualified(l.dest) + " FINAL WHERE (" +
			strings.Join(keyCols, ", ") + ") IN (" + in.String() + ")"
		if len(keyCols) == 1 {
			// A one-element tuple is not a tuple on old servers.
			q = l.singleKeyQuery(cols, keyCols[0], chunk)
		}
		if err := l.scanRows(ctx, conn, q, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// singleKeyQuery reads rows by a one-column key.
func (l *layout) singleKeyQuery(cols []string, keyCol string, chunk [][]any) string {
	lits := make([]string, len(chunk))
	for i, k := range chunk {
		lits[i], _ = literal(&l.cols[l.keyIdx[0]], k[0]) // checked by the caller's loop
	}
	return "SELECT " + strings.Join(cols, ", ") + " FROM " + qualified(l.dest) + " FINAL WHERE " +
		keyCol + " IN (" + strings.Join(lits, ", ") + ")"
}

func (l *layout) scanRows(ctx context.Context, conn driver.Conn, q string, out map[string][]curRow) error {
	rows, err := conn.Query(ctx, q)
	if err != nil {
		return fmt.Errorf("read current rows of %s: %w", l.dest, err)
	}
	defer rows.Close()
	types := rows.ColumnTypes()
	n := len(l.schema.Columns)
	for rows.Next() {
		ptrs := make([]any, n, n+2)
		for i, t := range types[:n] {
			ptrs[i] = reflect.New(t.ScanType()).Interface()
		}
		var r curRow
		ptrs = append(ptrs, &r.version, &r.deleted)
		if err := rows.Scan(ptrs...); err != nil {
			return fmt.Errorf("read current rows of %s: %w", l.dest, err)
		}
		r.vals = make([]any, n)
		for i, p := range ptrs[:n] {
			r.vals[i] = reflect.ValueOf(p).Elem().Interface()
		}
		key := keyString(l.keyOf(r.vals))
		out[key] = append(out[key], r)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read current rows of %s: %w", l.dest, err)
	}
	return nil
}

// keyOf returns the primary-key values of a row of ClickHouse values.
func (l *layout) keyOf(vals []any) []any {
	key := make([]any, len(l.keyIdx))
	for i, k := range l.keyIdx {
		key[i] = vals[k]
	}
	return key
}

// sortKeyOf returns the canonical form (keyString) of the sorting-key
// values of a row of ClickHouse values.
func (l *layout) sortKeyOf(vals []any) string {
	key := make([]any, len(l.sortIdx))
	for i, k := range l.sortIdx {
		key[i] = vals[k]
	}
	return keyString(key)
}

// current picks, of a key's rows, the one whose values a change that
// lacks some takes: the newest live row, else the newest deleted one, else
// the newest moved one; nil when there is none.
func current(rows []curRow) []any {
	var best *curRow
	rank := func(r *curRow) int {
		switch r.deleted {
		case DeletedLive:
			return 2
		case DeletedRow:
			return 1
		}
		return 0
	}
	for i := range rows {
		r := &rows[i]
		if best == nil || rank(r) > rank(best) || rank(r) == rank(best) && r.version > best.version {
			best = r
		}
	}
	if best == nil {
		return nil
	}
	return best.vals
}

// keyString is a canonical form of key values, equal for the value
// converted from Postgres and the one read back from ClickHouse.
func keyString(key []any) string {
	var b strings.Builder
	for _, x := range key {
		switch v := x.(type) {
		case decimal.Decimal:
			b.WriteString(v.String())
		case time.Time:
			b.WriteString(strconv.FormatInt(v.UnixMicro(), 10))
		case bool:
			if v {
				b.WriteString("1")
			} else {
				b.WriteString("0")
			}
		default:
			fmt.Fprint(&b, v)
		}
		b.WriteByte(0)
	}
	return b.String()
}

// literal renders a key value as a ClickHouse literal of column type c.
func literal(c *colMapping, x any) (string, error) {
	switch v := x.(type) {
	case int16, int32, int64, uint32, uint8:
		return fmt.Sprint(v), nil
	case float32:
		return strconv.FormatFloat(float64(v), 'g', -1, 32), nil
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64), nil
	case bool:
		if v {
			return "1", nil
		}
		return "0", nil
	case string:
		return quoteString(v), nil
	case uuid.UUID:
		return "toUUID(" + quoteString(v.String()) + ")", nil
	case decimal.Decimal:
		return fmt.Sprintf("toDecimal128(%s, %d)", quoteString(v.StringFixed(c.scale)), c.scale), nil
	case time.Time:
		switch c.kind {
		case kDate:
			return "toDate(" + quoteString(v.Format(time.DateOnly)) + ")", nil
		case kDate32:
			return "toDate32(" + quoteString(v.Format(time.DateOnly)) + ")", nil
		}
		return "toDateTime64(" + quoteString(v.UTC().Format("2006-01-02 15:04:05.000000")) + ", 6, 'UTC')", nil
	}
	return "", fmt.Errorf("a %T key value has no literal", x)
}
