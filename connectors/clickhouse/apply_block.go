package clickhouse

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/sluicedb/sluice/connectors"
)

// Writing a window as one native block, column by column: a column of a
// common type whose values all come from the changes is decoded into one
// typed slice (no value boxed into an interface, no row of []any), the
// others go value by value through the converter.

// sendEntries inserts into table (the destination table or its stage)
// one row per entry (values completed by fills, by entry; nil when none
// lack values) with the entry's version and deleted flag, in one batch.
func (t *chTable) sendEntries(ctx context.Context, conn driver.Conn, table connectors.TableName, entries []entry, fills [][]any,
	now time.Time) error {
	l := t.l
	b, err := conn.PrepareBatch(ctx, l.insertInto(table))
	if err != nil {
		return fmt.Errorf("insert into %s: %w", table, err)
	}
	fail := func(err error) error {
		_ = b.Abort()
		return fmt.Errorf("insert into %s: %w", table, err)
	}
	for j := range l.cols {
		if err := t.appendColumn(b.Column(j), j, entries, fills); err != nil {
			return fail(fmt.Errorf("column %q: %w", l.colName(j), err))
		}
	}
	n := len(entries)
	versions, deleted, synced := make([]uint64, n), make([]uint8, n), make([]time.Time, n)
	for i := range entries {
		versions[i], synced[i] = entries[i].version, now
		if entries[i].deleted {
			deleted[i] = DeletedRow
		}
	}
	for k, col := range []any{versions, deleted, synced} {
		if err := b.Column(len(l.cols) + k).Append(col); err != nil {
			return fail(err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("insert into %s: %w", table, err)
	}
	return nil
}

// appendColumn appends column j of the entries to col.
func (t *chTable) appendColumn(col driver.BatchColumn, j int, entries []entry, fills [][]any) error {
	c := &t.cv.cols[j]
	filled := false
	for i := range entries {
		if fills != nil && fills[i] != nil && entries[i].vals[j].Kind == connectors.Unchanged {
			filled = true
			break
		}
	}
	if !filled && !c.array {
		switch c.kind {
		case kInt16:
			return appendFixed(col, c, entries, j, 2, func(d []byte) (int16, error) { return int16(binary.BigEndian.Uint16(d)), nil })
		case kInt32:
			return appendFixed(col, c, entries, j, 4, func(d []byte) (int32, error) { return int32(binary.BigEndian.Uint32(d)), nil })
		case kInt64:
			return appendFixed(col, c, entries, j, 8, func(d []byte) (int64, error) { return int64(binary.BigEndian.Uint64(d)), nil })
		case kUInt32:
			return appendFixed(col, c, entries, j, 4, func(d []byte) (uint32, error) { return binary.BigEndian.Uint32(d), nil })
		case kFloat32:
			return appendFixed(col, c, entries, j, 4, func(d []byte) (float32, error) {
				return math.Float32frombits(binary.BigEndian.Uint32(d)), nil
			})
		case kFloat64:
			return appendFixed(col, c, entries, j, 8, func(d []byte) (float64, error) {
				return math.Float64frombits(binary.BigEndian.Uint64(d)), nil
			})
		case kBoolUInt8:
			return appendFixed(col, c, entries, j, 1, func(d []byte) (uint8, error) { return d[0], nil })
		case kBool:
			return appendFixed(col, c, entries, j, 1, func(d []byte) (bool, error) { return d[0] != 0, nil })
		case kRawText, kBytes:
			return appendFixed(col, c, entries, j, 0, func(d []byte) (string, error) { return bytesString(d), nil })
		case kJSONB:
			return appendFixed(col, c, entries, j, 0, func(d []byte) (string, error) {
				if len(d) == 0 || d[0] != 1 {
					return "", errors.New("malformed jsonb: unknown version")
				}
				return bytesString(d[1:]), nil
			})
		}
	}
	for i := range entries {
		v := entries[i].vals[j]
		var x any
		if v.Kind == connectors.Unchanged && fills != nil && fills[i] != nil {
			x = fills[i][j]
		} else {
			var err error
			if x, err = t.cv.value(c, v); err != nil {
				return err
			}
		}
		if err := col.AppendRow(x); err != nil {
			return err
		}
	}
	return nil
}

// appendFixed appends column j of the entries to col as a []T, or a []*T
// when the column is Nullable, decoding each binary value with dec (size:
// its length, 0 for any). A value that is not binary is NULL in a Nullable
// column and T's zero value otherwise (as converter.value has it); a NULL
// stored so in a sorting-key column is counted.
func appendFixed[T any](col driver.BatchColumn, c *colMapping, entries []entry, j, size int, dec func([]byte) (T, error)) error {
	vals := make([]T, len(entries))
	var ptrs []*T
	if c.nullable {
		ptrs = make([]*T, len(entries))
	}
	for i := range entries {
		v := entries[i].vals[j]
		if v.Kind != connectors.Binary {
			if v.Kind == connectors.Null && c.nullKey && !c.nullable {
				c.nulls++
			}
			continue
		}
		if size > 0 && len(v.Data) != size {
			return errLength
		}
		x, err := dec(v.Data)
		if err != nil {
			return err
		}
		vals[i] = x
		if ptrs != nil {
			ptrs[i] = &vals[i]
		}
	}
	if ptrs != nil {
		return col.Append(ptrs)
	}
	return col.Append(vals)
}
