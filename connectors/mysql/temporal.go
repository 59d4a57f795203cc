package mysql

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sluicedb/sluice/connectors"
	"golang.org/x/text/encoding/charmap"
)

// Dates, times and charsets: the encoders' parts that read MySQL's text
// forms (which both the text protocol and go-mysql's binlog decoding
// produce) and convert a binlog string from its column's charset.

// pgEpoch is Postgres's epoch for dates and timestamps.
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// encodeTemporal encodes a DATE ("2024-05-06"), DATETIME or TIMESTAMP
// ("2024-05-06 07:08:09.123456", a TIMESTAMP in UTC) or TIME
// ("-838:59:59.000000") from its text; a zero date is NULL.
func encodeTemporal(c *colType, s string) (connectors.Value, error) {
	switch c.Enc {
	case encDate, encTimestamp, encTimestamptz:
		y, mo, d, micros, err := parseDateTime(s)
		if err != nil {
			return null, fmt.Errorf("column %q: read %q: %w", c.Name, s, err)
		}
		if mo == 0 || d == 0 {
			return null, nil // a zero date, or one with a zero part: no Postgres value (see the file comment in encode.go)
		}
		day := time.Date(y, time.Month(mo), d, 0, 0, 0, 0, time.UTC)
		if c.Enc == encDate {
			days := int32((day.Unix() - pgEpoch.Unix()) / 86400) // both are UTC midnights
			return binaryValue(binary.BigEndian.AppendUint32(nil, uint32(days))), nil
		}
		us := (day.Unix()-pgEpoch.Unix())*1_000_000 + micros
		return binaryValue(binary.BigEndian.AppendUint64(nil, uint64(us))), nil
	case encInterval:
		us, err := parseTimeOfDay(s)
		if err != nil {
			return null, fmt.Errorf("column %q: read %q: %w", c.Name, s, err)
		}
		b := binary.BigEndian.AppendUint64(make([]byte, 0, 16), uint64(us))
		b = binary.BigEndian.AppendUint32(b, 0) // days
		b = binary.BigEndian.AppendUint32(b, 0) // months
		return binaryValue(b), nil
	}
	return null, fmt.Errorf("column %q: text value %q for a %s column", c.Name, s, c.ColumnType)
}

// encodeTime encodes a DATETIME or TIMESTAMP that go-mysql decoded into a
// time.Time (ParseTime): a DATETIME's wall clock in UTC, a TIMESTAMP's
// instant.
func encodeTime(c *colType, t time.Time) (connectors.Value, error) {
	switch c.Enc {
	case encTimestamp, encTimestamptz:
		us := t.UnixMicro() - pgEpoch.UnixMicro()
		return binaryValue(binary.BigEndian.AppendUint64(nil, uint64(us))), nil
	case encDate:
		return encodeTemporal(c, t.UTC().Format("2006-01-02"))
	}
	return null, fmt.Errorf("column %q: time value for a %s column", c.Name, c.ColumnType)
}

// parseDateTime reads "YYYY-MM-DD[ HH:MM:SS[.ffffff]]" into its date
// parts and the microseconds since the day's start. Zero parts are
// allowed (MySQL's zero dates).
func parseDateTime(s string) (y, mo, d int, micros int64, err error) {
	date, clock, hasClock := strings.Cut(strings.TrimSpace(s), " ")
	parts := strings.Split(date, "-")
	if len(parts) != 3 {
		return 0, 0, 0, 0, fmt.Errorf("not a date")
	}
	if y, err = strconv.Atoi(parts[0]); err == nil {
		if mo, err = strconv.Atoi(parts[1]); err == nil {
			d, err = strconv.Atoi(parts[2])
		}
	}
	if err != nil {
		return 0, 0, 0, 0, fmt.Errorf("not a date")
	}
	if hasClock {
		micros, err = parseTimeOfDay(clock)
		if err != nil || micros < 0 || micros >= 24*3600*1_000_000 {
			return 0, 0, 0, 0, fmt.Errorf("not a time of day")
		}
	}
	return y, mo, d, micros, nil
}

// parseTimeOfDay reads "[-]H+:MM:SS[.f+]" (a TIME may exceed 24 hours and
// be negative) into microseconds.
func parseTimeOfDay(s string) (int64, error) {
	s = strings.TrimSpace(s)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	whole, frac, _ := strings.Cut(s, ".")
	parts := strings.Split(whole, ":")
	if len(parts) != 3 || len(frac) > 6 {
		return 0, fmt.Errorf("not a time")
	}
	var v [3]int64
	for i, p := range parts {
		n, err := strconv.ParseInt(p, 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("not a time")
		}
		v[i] = n
	}
	if v[1] > 59 || v[2] > 59 {
		return 0, fmt.Errorf("not a time")
	}
	var us int64
	if frac != "" {
		n, err := strconv.ParseInt(frac+strings.Repeat("0", 6-len(frac)), 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("not a time")
		}
		us = n
	}
	total := ((v[0]*60+v[1])*60+v[2])*1_000_000 + us
	if neg {
		total = -total
	}
	return total, nil
}

// supportedCharset reports whether text in charset cs ("" for a column
// without one) can be mirrored: UTF-8 and ASCII as they are, latin1
// converted (toUTF8).
func supportedCharset(cs string) bool {
	switch strings.ToLower(cs) {
	case "", "utf8mb4", "utf8mb3", "utf8", "ascii", "latin1":
		return true
	}
	return false
}

// toUTF8 converts b, text in c's charset as the binlog carries it, to
// UTF-8. utf8mb4, utf8mb3 and ascii are UTF-8 already (checked); latin1 is
// MySQL's latin1, which is Windows-1252. Another charset is an error
// naming the column: the stream cannot convert it yet.
func toUTF8(c *colType, b []byte) ([]byte, error) {
	switch cs := strings.ToLower(c.Charset); {
	case cs == "latin1":
		out, err := charmap.Windows1252.NewDecoder().Bytes(b)
		if err != nil {
			return nil, fmt.Errorf("column %q: convert latin1: %w", c.Name, err)
		}
		return out, nil
	case supportedCharset(cs):
		if !utf8.Valid(b) {
			return nil, fmt.Errorf("column %q: value is not valid %s", c.Name, c.Charset)
		}
		return b, nil
	}
	return nil, fmt.Errorf("column %q: charset %s is not supported yet (utf8mb4, utf8mb3, ascii and latin1 are): %w",
		c.Name, c.Charset, connectors.ErrUnsupportedType)
}
