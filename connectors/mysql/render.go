package mysql

import (
	"fmt"
	"strconv"

	"github.com/sluicedb/sluice/connectors"
)

// Renderings for checksums (summary.go): MariaDB SQL that renders a
// column's value as the destination renders what Sluice mirrored of it
// (connectors.Rendering). RenderText is Postgres's text output of the
// mapped type (types.go) with the settings the Postgres side pins (UTC,
// ISO dates, hex bytea):
//
//   - integers: decimal; a YEAR as its number (0, not 0000); without
//     ZEROFILL's padding;
//   - decimal: its text with the column's scale (numeric(p,s) keeps it),
//     without ZEROFILL's padding;
//   - bit(n): n binary digits (bit varying(n) of exactly n bits);
//   - date and datetime: 'YYYY-MM-DD[ HH:MM:SS[.fraction]]', the fraction
//     without trailing zeros, year 0 as '0001-... BC'; timestamp the
//     same in UTC with '+00';
//   - text, char, varchar, enum: the characters (char without the padding
//     MariaDB strips as it reads);
//   - binary kinds: '\x' and lower-case hex; a spatial value without the
//     4-byte SRID MariaDB keeps before the WKB.
//
// A zero date, or one with a zero month or day, is NULL, as Sluice mirrors
// it. Every rendering is utf8mb4 text, so that MD5 reads the bytes
// Postgres's md5 reads, and CHAR_LENGTH counts characters as length does.

// render returns the SQL of column c's value as r asks. A rendering
// CanRender declines is an error.
func render(c *colType, r connectors.Rendering) (string, error) {
	q := quoteIdent(c.Name)
	zero := "MONTH(" + q + ") = 0 OR DAYOFMONTH(" + q + ") = 0"
	switch c.Enc {
	case encInt2, encInt4, encInt8:
		if r == connectors.RenderText {
			// + 0: the value, without ZEROFILL's padding (a YEAR's too).
			return utf8mb4("CAST(" + q + " + 0 AS CHAR)"), nil
		}
	case encNumeric:
		t := utf8mb4("CAST(" + q + " + 0 AS CHAR)") // the column's scale, without ZEROFILL's padding
		switch r {
		case connectors.RenderText:
			return t, nil
		case connectors.RenderTrimmedDecimal:
			return "IF(LOCATE('.', " + t + ") > 0, TRIM(TRAILING '.' FROM TRIM(TRAILING '0' FROM " + t + ")), " + t + ")", nil
		}
	case encVarbit:
		if r == connectors.RenderText {
			return utf8mb4("LPAD(BIN(" + q + " + 0), " + strconv.FormatInt(c.Length, 10) + ", '0')"), nil
		}
	case encDate:
		switch r {
		case connectors.RenderText:
			return utf8mb4("CASE WHEN " + zero + " THEN NULL WHEN YEAR(" + q + ") = 0 THEN CONCAT('0001-', DATE_FORMAT(" + q +
				", '%m-%d'), ' BC') ELSE DATE_FORMAT(" + q + ", '%Y-%m-%d') END"), nil
		case connectors.RenderDate:
			// Year 0 is 1 BC, which to_char's YYYY prints as 0001.
			return utf8mb4("CASE WHEN " + zero + " THEN NULL WHEN YEAR(" + q + ") = 0 THEN CONCAT('0001-', DATE_FORMAT(" + q +
				", '%m-%d')) ELSE DATE_FORMAT(" + q + ", '%Y-%m-%d') END"), nil
		}
	case encTimestamp, encTimestamptz:
		tz := ""
		if c.Enc == encTimestamptz {
			tz = "+00" // the session is in UTC (Connect), as the Postgres side is
		}
		frac := "IF(MICROSECOND(" + q + ") = 0, '', CONCAT('.', TRIM(TRAILING '0' FROM LPAD(MICROSECOND(" + q + "), 6, '0'))))"
		switch r {
		case connectors.RenderText:
			return utf8mb4("CASE WHEN " + zero + " THEN NULL WHEN YEAR(" + q + ") = 0 THEN CONCAT('0001-', DATE_FORMAT(" + q +
				", '%m-%d %H:%i:%s'), " + frac + ", '" + tz + " BC') ELSE CONCAT(DATE_FORMAT(" + q + ", '%Y-%m-%d %H:%i:%s'), " +
				frac + ", '" + tz + "') END"), nil
		case connectors.RenderEpochMicros:
			// MariaDB counts year 0 as a common year, the proleptic
			// Gregorian calendar (Go's, Postgres's) as a leap year: year 0
			// is counted 400 years later (146097 days), where they agree.
			diff := "TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', " + q + ")"
			diff0 := "TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', " + q + " + INTERVAL 400 YEAR) - 12622780800000000"
			return utf8mb4("CASE WHEN " + zero + " THEN NULL WHEN YEAR(" + q + ") = 0 THEN CAST(" + diff0 +
				" AS CHAR) ELSE CAST(" + diff + " AS CHAR) END"), nil
		}
	case encText, encEnum:
		if r == connectors.RenderText {
			return utf8mb4(q), nil
		}
	case encBytea, encGeometry:
		b := q
		if c.Enc == encGeometry {
			b = "SUBSTRING(" + q + ", 5)" // the WKB after the SRID (encodeGeometry)
		}
		switch r {
		case connectors.RenderHex:
			return utf8mb4("LOWER(HEX(" + b + "))"), nil
		case connectors.RenderText:
			return utf8mb4("CONCAT(CHAR(92 USING ascii), 'x', LOWER(HEX(" + b + ")))"), nil
		}
	}
	return "", fmt.Errorf("column %q (%s): no exact rendering of it for a checksum", c.Name, c.ColumnType)
}

// utf8mb4 converts the text of SQL expression e to utf8mb4.
func utf8mb4(e string) string { return "CONVERT(" + e + " USING utf8mb4)" }
