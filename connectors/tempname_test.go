package connectors

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// TestTempName checks the candidate names of temporary tables that both
// destinations use: suffix, then suffix and "_k", cut to the destination's
// limit at a character boundary, never the live table's own name.
func TestTempName(t *testing.T) {
	long := strings.Repeat("a", 60)
	multi := strings.Repeat("é", 30) // 60 bytes
	for _, tc := range []struct {
		name   string
		suffix string
		k, max int
		want   string
	}{
		{"users", ShadowSuffix, 0, 63, "users_resync"},
		{"users", ShadowSuffix, 2, 63, "users_resync_2"},
		{"users", "_sluice_old", 0, 0, "users_sluice_old"},
		{"users", "_sluice_old", 12, 0, "users_sluice_old_12"},
		{long, ShadowSuffix, 0, 0, long + "_resync"},
		{long, ShadowSuffix, 0, 63, long[:56] + "_resync"},
		{long, ShadowSuffix, 3, 63, long[:54] + "_resync_3"},
		{multi, ShadowSuffix, 0, 63, strings.Repeat("é", 28) + "_resync"},
		// A name that already ends with the suffix and fills the limit
		// loses one more character, so the result differs from it.
		{long[:56] + "_resync", ShadowSuffix, 0, 63, long[:55] + "_resync"},
	} {
		live := TableName{Schema: "s", Name: tc.name}
		got := TempName(live, tc.suffix, tc.k, tc.max)
		if got.Schema != "s" || got.Name != tc.want {
			t.Errorf("TempName(%q, %q, %d, %d) = %s, want s.%s", tc.name, tc.suffix, tc.k, tc.max, got, tc.want)
		}
		if got == live || !utf8.ValidString(got.Name) || tc.max > 0 && len(got.Name) > tc.max {
			t.Errorf("TempName(%q, %q, %d, %d) = %q: unchanged, invalid or too long", tc.name, tc.suffix, tc.k, tc.max, got.Name)
		}
	}
	if got, want := ShadowName(TableName{Schema: "s", Name: "t"}, 1, 63), (TableName{Schema: "s", Name: "t_resync_1"}); got != want {
		t.Errorf("ShadowName(s.t, 1, 63) = %s, want %s", got, want)
	}
}
