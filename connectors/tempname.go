package connectors

import (
	"strconv"
	"unicode/utf8"
)

// Temporary tables a destination makes for a live table (a resync's
// shadow, the table a swap moves away) are named after it: the live
// table's name with a suffix, then with the suffix and "_1", "_2"... while
// the name before is taken. The destination decides what "taken" means
// and how long a name may be; the candidates are the same everywhere.

// ShadowSuffix is the suffix of a shadow table's name: the table a resync
// loads before swapping it in for the live one.
const ShadowSuffix = "_resync"

// ShadowName returns the k-th name tried (k from 0) for the shadow table
// of live: TempName(live, ShadowSuffix, k, maxLen). Pure.
func ShadowName(live TableName, k, maxLen int) TableName {
	return TempName(live, ShadowSuffix, k, maxLen)
}

// TempName returns the k-th name tried (k from 0) for a temporary table of
// live: in live's schema, live's name with suffix appended (k = 0) or with
// suffix and "_k" (k > 0). maxLen is the destination's longest name in
// bytes (0: no limit): a name that would be longer has live's name cut at
// a UTF-8 character boundary to fit (SuffixName). The name always differs
// from live's. Pure.
func TempName(live TableName, suffix string, k, maxLen int) TableName {
	if k > 0 {
		suffix += "_" + strconv.Itoa(k)
	}
	return TableName{Schema: live.Schema, Name: SuffixName(live.Name, suffix, maxLen)}
}

// SuffixName appends suffix (not empty) to base, cutting base at a UTF-8
// character boundary so that the result fits in maxLen bytes (0: no
// limit). The result never equals base: a base that already ends with
// suffix and fills the limit loses one more character. Pure.
func SuffixName(base, suffix string, maxLen int) string {
	cut := func(n int) int {
		for n > 0 && n < len(base) && !utf8.RuneStart(base[n]) {
			n--
		}
		return n
	}
	n := len(base)
	if maxLen > 0 && n+len(suffix) > maxLen {
		n = cut(maxLen - len(suffix))
	}
	s := base[:n] + suffix
	if s == base {
		s = base[:cut(n-1)] + suffix
	}
	return s
}
