package clickhouse

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/shopspring/decimal"
	"github.com/sluicedb/sluice/connectors"
)

// Conversion of Postgres binary values (connectors.Value) into the Go values
// clickhouse-go's batch Append takes for the column types of mapColumn:
//
//	Int16/Int32/Int64/UInt32/Float32/Float64  int16/int32/int64/uint32/float32/float64
//	UInt8 (bool), Bool                        uint8, bool
//	Decimal(p,s)                              decimal.Decimal (exact)
//	String                                    string
//	UUID                                      uuid.UUID
//	Date, Date32, DateTime64                  time.Time (UTC)
//	Nullable(T)                               nil for NULL, else as T
//	Array(Nullable(T))                        []any of nil or as T
//
// A NULL (or unknown) value of a column that is not Nullable becomes the
// type's zero value: that happens for the non-key columns of a deleted row
// whose values the destination never had, and for a NULL in a sorting-key
// column that is nullable in the source (counted, see NullableKeyColumns).

// pgEpoch is 2000-01-01, where Postgres dates and timestamps count from.
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Ranges of ClickHouse's date types.
var (
	dateMin       = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	dateMax       = time.Date(2149, 6, 6, 0, 0, 0, 0, time.UTC)
	date32Min     = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)
	date32Max     = time.Date(2299, 12, 31, 0, 0, 0, 0, time.UTC)
	dateTime64Min = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)
	dateTime64Max = time.Date(2299, 12, 31, 23, 59, 59, 999999000, time.UTC)
)

// converter turns the values of one table's columns into ClickHouse values.
// Not safe for concurrent use (it caches decode plans).
type converter struct {
	cols []colMapping
	m    *pgtype.Map
}

func newConverter(cols []colMapping) *converter {
	return &converter{cols: cols, m: pgtype.NewMap()}
}

// row appends the ClickHouse values of vals (one per column; Unchanged
// counts as NULL) to out.
func (cv *converter) row(out []any, vals []connectors.Value, names func(int) string) ([]any, error) {
	for i := range cv.cols {
		var v connectors.Value
		if i < len(vals) {
			v = vals[i]
		}
		x, err := cv.value(&cv.cols[i], v)
		if err != nil {
			return nil, fmt.Errorf("column %q: %w", names(i), err)
		}
		out = append(out, x)
	}
	return out, nil
}

// value converts one column value.
func (cv *converter) value(c *colMapping, v connectors.Value) (any, error) {
	if v.Kind != connectors.Binary {
		switch {
		case c.array:
			return []any{}, nil
		case c.nullable:
			return nil, nil
		}
		if v.Kind == connectors.Null && c.nullKey {
			c.nulls++
		}
		return zeroValue(c), nil
	}
	if c.array {
		return cv.array(c, v.Data)
	}
	return cv.scalar(c, c.oid, v.Data)
}

// zeroValue is the value written for an unknown value of a non-Nullable
// column.
func zeroValue(c *colMapping) any {
	switch c.kind {
	case kInt16:
		return int16(0)
	case kInt32:
		return int32(0)
	case kInt64:
		return int64(0)
	case kUInt32:
		return uint32(0)
	case kFloat32:
		return float32(0)
	case kFloat64:
		return float64(0)
	case kBoolUInt8:
		return uint8(0)
	case kBool:
		return false
	case kDecimal:
		return decimal.Zero
	case kUUID:
		return uuid.UUID{}
	case kDate:
		return dateMin
	case kDate32:
		return date32Min
	case kTimestamp64:
		return time.Unix(0, 0).UTC()
	}
	return ""
}

// fixedLen is the binary length of fixed-size kinds (0: variable).
var fixedLen = [...]int{kInt16: 2, kInt32: 4, kUInt32: 4, kFloat32: 4, kInt64: 8, kFloat64: 8,
	kBoolUInt8: 1, kBool: 1, kUUID: 16, kDate: 4, kDate32: 4, kTimestamp64: 8, kTimestampText: 8, kPGText: 0}

var errLength = errors.New("malformed binary value: wrong length")

// scalar converts one non-NULL binary value of type oid.
func (cv *converter) scalar(c *colMapping, oid uint32, d []byte) (any, error) {
	if need := fixedLen[c.kind]; need > 0 && len(d) != need {
		return nil, errLength
	}
	switch c.kind {
	case kInt16:
		return int16(binary.BigEndian.Uint16(d)), nil
	case kInt32:
		return int32(binary.BigEndian.Uint32(d)), nil
	case kInt64:
		return int64(binary.BigEndian.Uint64(d)), nil
	case kUInt32:
		return binary.BigEndian.Uint32(d), nil
	case kFloat32:
		return math.Float32frombits(binary.BigEndian.Uint32(d)), nil
	case kFloat64:
		return math.Float64frombits(binary.BigEndian.Uint64(d)), nil
	case kBoolUInt8:
		return d[0], nil
	case kBool:
		return d[0] != 0, nil
	case kRawText, kBytes:
		return string(d), nil
	case kJSONB:
		if len(d) == 0 || d[0] != 1 {
			return nil, errors.New("malformed jsonb: unknown version")
		}
		return string(d[1:]), nil
	case kUUID:
		return uuid.UUID(d), nil
	case kDecimal:
		var n pgtype.Numeric
		if err := cv.m.Scan(oid, pgtype.BinaryFormatCode, d, &n); err != nil {
			return nil, err
		}
		if n.NaN || n.InfinityModifier != pgtype.Finite {
			return nil, errors.New("numeric NaN or Infinity has no Decimal value")
		}
		return decimal.NewFromBigInt(n.Int, n.Exp), nil
	case kDate, kDate32:
		t, err := dateValue(c.kind, d)
		if err != nil {
			return nil, err
		}
		return t, nil
	case kTimestamp64:
		return timestamp64Value(d), nil
	case kTimestampText:
		return timestampText(int64(binary.BigEndian.Uint64(d))), nil
	case kPGText:
		return cv.text(oid, d)
	}
	return nil, fmt.Errorf("no conversion for kind %d", c.kind)
}

// dateValue converts a date (d: 4 bytes) for a Date (kind kDate) or Date32
// column; a date outside the type's range, or infinite, is an error.
func dateValue(kind convKind, d []byte) (time.Time, error) {
	days := int32(binary.BigEndian.Uint32(d))
	lo, hi, name := dateMin, dateMax, "Date"
	if kind == kDate32 {
		lo, hi, name = date32Min, date32Max, "Date32"
	}
	if days == math.MaxInt32 || days == math.MinInt32 {
		return time.Time{}, fmt.Errorf("date infinity does not fit ClickHouse %s", name)
	}
	t := pgEpoch.AddDate(0, 0, int(days))
	if t.Before(lo) || t.After(hi) {
		return time.Time{}, fmt.Errorf("date %s is outside ClickHouse %s's range %s to %s",
			t.Format(time.DateOnly), name, lo.Format(time.DateOnly), hi.Format(time.DateOnly))
	}
	return t, nil
}

// timestamp64Value converts a timestamp (d: 8 bytes) for a DateTime64
// column: infinities become the ends of its range.
func timestamp64Value(d []byte) time.Time {
	us := int64(binary.BigEndian.Uint64(d))
	switch us {
	case math.MaxInt64:
		return dateTime64Max
	case math.MinInt64:
		return dateTime64Min
	}
	return timestampOf(us)
}

// timestampOf is the time of a Postgres timestamp (microseconds since 2000).
func timestampOf(us int64) time.Time {
	const pgEpochUnix = 946684800
	sec := us / 1e6
	frac := us % 1e6
	if frac < 0 {
		sec--
		frac += 1e6
	}
	return time.Unix(pgEpochUnix+sec, frac*1e3).UTC()
}

// timestampText renders a timestamp as "YYYY-MM-DD hh:mm:ss.ffffff" in UTC
// (BC years as Postgres does: "... BC"; infinities as "infinity" and
// "-infinity").
func timestampText(us int64) string { return string(appendTimestampText(nil, us)) }

// appendTimestampText appends timestampText(us) to b: the initial load
// renders its timestamps into one buffer per batch, without a string each.
func appendTimestampText(b []byte, us int64) []byte {
	switch us {
	case math.MaxInt64:
		return append(b, "infinity"...)
	case math.MinInt64:
		return append(b, "-infinity"...)
	}
	t := timestampOf(us)
	year, bc := t.Year(), false
	if year <= 0 {
		year, bc = 1-year, true
	}
	b = appendPadded(b, year, 4)
	b = appendPadded(append(b, '-'), int(t.Month()), 2)
	b = appendPadded(append(b, '-'), t.Day(), 2)
	b = appendPadded(append(b, ' '), t.Hour(), 2)
	b = appendPadded(append(b, ':'), t.Minute(), 2)
	b = appendPadded(append(b, ':'), t.Second(), 2)
	b = appendPadded(append(b, '.'), t.Nanosecond()/1000, 6)
	if bc {
		b = append(b, " BC"...)
	}
	return b
}

// appendPadded appends n (not negative) in decimal, with leading zeros to
// at least width digits (as fmt's %0*d).
func appendPadded(b []byte, n, width int) []byte {
	var digits [20]byte
	i := len(digits)
	for n >= 10 || width > 1 {
		i--
		digits[i] = byte('0' + n%10)
		n /= 10
		width--
	}
	i--
	digits[i] = byte('0' + n)
	return append(b, digits[i:]...)
}

// text renders a binary value of type oid in Postgres's text form.
func (cv *converter) text(oid uint32, d []byte) (string, error) {
	var v any
	if err := cv.m.Scan(oid, pgtype.BinaryFormatCode, d, &v); err != nil {
		return "", err
	}
	if iv, ok := v.(pgtype.Interval); ok && iv.Valid {
		return intervalText(iv), nil
	}
	if p, ok := v.(netip.Prefix); ok && oid == pgtype.InetOID && p.Bits() == p.Addr().BitLen() {
		return p.Addr().String(), nil // inet shows a host address without /32
	}
	b, err := cv.m.Encode(oid, pgtype.TextFormatCode, v, nil)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// array converts a one-dimensional Postgres array (binary format) into a
// []any of element values (nil for NULL elements). Lower bounds other than
// 1 are not kept; arrays of more dimensions are an error.
func (cv *converter) array(c *colMapping, d []byte) (any, error) {
	if len(d) < 12 {
		return nil, errors.New("malformed array")
	}
	ndim := int32(binary.BigEndian.Uint32(d))
	elemOID := binary.BigEndian.Uint32(d[8:])
	d = d[12:]
	switch {
	case ndim == 0:
		return []any{}, nil
	case ndim != 1:
		return nil, fmt.Errorf("a %d-dimensional array does not fit ClickHouse Array(T) (one dimension)", ndim)
	case len(d) < 8:
		return nil, errors.New("malformed array")
	}
	n := int32(binary.BigEndian.Uint32(d))
	d = d[8:]
	if n < 0 {
		return nil, errors.New("malformed array: negative length")
	}
	oid := c.oid
	if oid == 0 {
		oid = elemOID // an enum's elements
	}
	out := make([]any, 0, n)
	for range n {
		if len(d) < 4 {
			return nil, errors.New("malformed array: truncated")
		}
		l := int32(binary.BigEndian.Uint32(d))
		d = d[4:]
		if l < 0 {
			out = append(out, nil)
			continue
		}
		if int(l) > len(d) {
			return nil, errors.New("malformed array: truncated")
		}
		x, err := cv.scalar(c, oid, d[:l])
		if err != nil {
			return nil, fmt.Errorf("element %d: %w", len(out)+1, err)
		}
		out = append(out, x)
		d = d[l:]
	}
	return out, nil
}

// intervalText renders an interval as Postgres does with the default
// IntervalStyle: "1 year 2 mons 3 days 04:05:06.5".
func intervalText(iv pgtype.Interval) string {
	var parts []string
	unit := func(n int64, name string) {
		if n == 0 {
			return
		}
		if n == 1 {
			parts = append(parts, fmt.Sprintf("%d %s", n, name))
		} else {
			parts = append(parts, fmt.Sprintf("%d %ss", n, name))
		}
	}
	unit(int64(iv.Months/12), "year")
	unit(int64(iv.Months%12), "mon")
	unit(int64(iv.Days), "day")
	us := iv.Microseconds
	if us != 0 || len(parts) == 0 {
		sign := ""
		if us < 0 {
			sign, us = "-", -us
		}
		t := fmt.Sprintf("%s%02d:%02d:%02d", sign, us/3600e6, us/60e6%60, us/1e6%60)
		if frac := us % 1e6; frac != 0 {
			t += strings.TrimRight(fmt.Sprintf(".%06d", frac), "0")
		}
		parts = append(parts, t)
	}
	return strings.Join(parts, " ")
}
