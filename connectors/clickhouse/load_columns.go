package clickhouse

import (
	"encoding/binary"
	"errors"
	"math"
	"time"
	"unsafe"

	"github.com/google/uuid"
	"github.com/sluicedb/sluice/connectors"
)

// The initial load's columns. The CDC applier converts a row at a time into
// []any (converter.row) and appends it with Batch.Append, which boxes every
// value and type-switches on it again per column; for the millions of rows
// of a load that dominated its CPU time and allocations. A load instead
// converts one column of a batch of rows at a time into a typed slice that
// it reuses, and appends the slice with one BatchColumn.Append: no value is
// boxed, and strings are not copied until the ClickHouse column copies them
// into its buffer. Types without a typed conversion here go through the
// converter value by value (anyColumn), exactly as the applier's do.

// columnAppender is the part of driver.BatchColumn a loadColumn appends to
// (a clickhouse-go column in the tests).
type columnAppender interface {
	Append(v any) error
	AppendRow(v any) error
}

// loadColumn converts one column of a load's rows and appends the values
// to a ClickHouse column. Not safe for concurrent use.
type loadColumn interface {
	// add appends column i of rows to col. On an error converting a value
	// it returns the index in rows of the row at fault (else -1); col has
	// then some of the values appended, and the insert must be abandoned.
	add(col columnAppender, rows [][]connectors.Value, i int) (int, error)
}

// valueAt is column i of row, or the zero Value (neither Binary nor Null)
// when the row is shorter, as converter.row reads it.
func valueAt(row []connectors.Value, i int) connectors.Value {
	if i < len(row) {
		return row[i]
	}
	return connectors.Value{}
}

// newLoadColumn returns the loadColumn of column c (one of cv.cols): a
// typedColumn for the scalar kinds whose Go value needs no decoding
// library, else an anyColumn.
func newLoadColumn(cv *converter, c *colMapping) loadColumn {
	if c.array {
		return &anyColumn{cv: cv, c: c}
	}
	switch c.kind {
	case kInt16:
		return newTyped(c, func(_ *typedColumn[int16], d []byte) (int16, error) { return int16(binary.BigEndian.Uint16(d)), nil })
	case kInt32:
		return newTyped(c, func(_ *typedColumn[int32], d []byte) (int32, error) { return int32(binary.BigEndian.Uint32(d)), nil })
	case kInt64:
		return newTyped(c, func(_ *typedColumn[int64], d []byte) (int64, error) { return int64(binary.BigEndian.Uint64(d)), nil })
	case kUInt32:
		return newTyped(c, func(_ *typedColumn[uint32], d []byte) (uint32, error) { return binary.BigEndian.Uint32(d), nil })
	case kFloat32:
		return newTyped(c, func(_ *typedColumn[float32], d []byte) (float32, error) {
			return math.Float32frombits(binary.BigEndian.Uint32(d)), nil
		})
	case kFloat64:
		return newTyped(c, func(_ *typedColumn[float64], d []byte) (float64, error) {
			return math.Float64frombits(binary.BigEndian.Uint64(d)), nil
		})
	case kBoolUInt8:
		return newTyped(c, func(_ *typedColumn[uint8], d []byte) (uint8, error) { return d[0], nil })
	case kBool:
		return newTyped(c, func(_ *typedColumn[bool], d []byte) (bool, error) { return d[0] != 0, nil })
	case kRawText, kBytes:
		return newTyped(c, func(_ *typedColumn[string], d []byte) (string, error) { return bytesString(d), nil })
	case kJSONB:
		return newTyped(c, func(_ *typedColumn[string], d []byte) (string, error) {
			if len(d) == 0 || d[0] != 1 {
				return "", errors.New("malformed jsonb: unknown version")
			}
			return bytesString(d[1:]), nil
		})
	case kTimestampText:
		return newTyped(c, func(t *typedColumn[string], d []byte) (string, error) {
			start := len(t.text)
			t.text = appendTimestampText(t.text, int64(binary.BigEndian.Uint64(d)))
			return bytesString(t.text[start:]), nil
		})
	case kUUID:
		return newTyped(c, func(_ *typedColumn[uuid.UUID], d []byte) (uuid.UUID, error) { return uuid.UUID(d), nil })
	case kDate32:
		return newTyped(c, func(_ *typedColumn[time.Time], d []byte) (time.Time, error) { return dateValue(kDate32, d) })
	case kTimestamp64:
		return newTyped(c, func(_ *typedColumn[time.Time], d []byte) (time.Time, error) { return timestamp64Value(d), nil })
	}
	return &anyColumn{cv: cv, c: c}
}

// bytesString is d as a string without a copy. The string must not
// outlive the block it is appended to: ClickHouse's String column copies
// it into its own buffer, and d (a Value's data, typedColumn.text, or an
// applier window's copy) is not changed before then.
func bytesString(d []byte) string {
	if len(d) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(d), len(d))
}

// typedColumn is a loadColumn of a scalar kind whose ClickHouse column
// takes a []T (or []*T when Nullable, nil for NULL). Its slices are reused
// from batch to batch.
type typedColumn[T any] struct {
	c *colMapping
	// zero is what a NULL (or unknown value) of a column that is not
	// Nullable becomes: zeroValue(c).
	zero T
	// conv converts a value of the right length (fixedLen).
	conv func(t *typedColumn[T], d []byte) (T, error)
	vals []T
	ptrs []*T
	// text holds the strings a conv renders (kTimestampText) for one
	// batch.
	text []byte
}

func newTyped[T any](c *colMapping, conv func(t *typedColumn[T], d []byte) (T, error)) *typedColumn[T] {
	return &typedColumn[T]{c: c, zero: zeroValue(c).(T), conv: conv}
}

// add implements loadColumn with converter.value's rules for values that
// are not Binary.
func (t *typedColumn[T]) add(col columnAppender, rows [][]connectors.Value, i int) (int, error) {
	c := t.c
	need := fixedLen[c.kind]
	if cap(t.vals) < len(rows) {
		t.vals = make([]T, len(rows))
	}
	vals := t.vals[:len(rows)]
	ptrs := t.ptrs[:0]
	t.text = t.text[:0]
	for j, row := range rows {
		v := valueAt(row, i)
		if v.Kind != connectors.Binary {
			vals[j] = t.zero
			if c.nullable {
				ptrs = append(ptrs, nil)
			} else if v.Kind == connectors.Null && c.nullKey {
				c.nulls++
			}
			continue
		}
		if need > 0 && len(v.Data) != need {
			return j, errLength
		}
		x, err := t.conv(t, v.Data)
		if err != nil {
			return j, err
		}
		vals[j] = x
		if c.nullable {
			ptrs = append(ptrs, &vals[j])
		}
	}
	var err error
	if c.nullable {
		err = col.Append(ptrs)
	} else {
		err = col.Append(vals)
	}
	// Keep no reference to the batch's values (strings point into them).
	clear(vals)
	clear(ptrs)
	t.ptrs = ptrs[:0]
	return -1, err
}

// anyColumn is a loadColumn that converts value by value with the
// converter (decimals, arrays, types rendered as text) and appends each
// value as Batch.Append does.
type anyColumn struct {
	cv *converter
	c  *colMapping
}

// add implements loadColumn.
func (a *anyColumn) add(col columnAppender, rows [][]connectors.Value, i int) (int, error) {
	for j, row := range rows {
		x, err := a.cv.value(a.c, valueAt(row, i))
		if err != nil {
			return j, err
		}
		if err := col.AppendRow(x); err != nil {
			return -1, err
		}
	}
	return -1, nil
}
