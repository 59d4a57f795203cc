package connectors

import "testing"

// TestTableNameRoundTrip checks that String renders each part as Postgres's
// quote_ident does and that ParseTableName reads every rendering back.
func TestTableNameRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		schema, name, want string
	}{
		{"public", "users", "public.users"},
		{"sch.ema", "t1", `"sch.ema".t1`},
		{"public", "Upper.Dot", `public."Upper.Dot"`},
		{"public", `we"ird`, `public."we""ird"`},
		{"public", "spa ce", `public."spa ce"`},
		{"public", "Ünï", `public."Ünï"`},
		{"public", "user", `public."user"`}, // reserved keyword
		{"public", "name", "public.name"},   // unreserved keyword
		{"public", "t$1", `public."t$1"`},
		{"public", "1t", `public."1t"`},
		{"s", `"`, `s.""""`},
		{`a"."b`, `.`, `"a"".""b"."."`},
	} {
		got := TableName{Schema: tc.schema, Name: tc.name}.String()
		if got != tc.want {
			t.Errorf("String(%q, %q) = %s, want %s", tc.schema, tc.name, got, tc.want)
		}
		back, err := ParseTableName(got)
		if err != nil || back != (TableName{Schema: tc.schema, Name: tc.name}) {
			t.Errorf("ParseTableName(%s) = %+v, %v; want %q.%q", got, back, err, tc.schema, tc.name)
		}
	}
	// Names stored before quoting are split at the first dot, as then.
	for old, want := range map[string]TableName{
		"public.Upper.Dot": {"public", "Upper.Dot"},
		"sch.ema.t1":       {"sch", "ema.t1"},
		"public.user":      {"public", "user"},
	} {
		if got, err := ParseTableName(old); err != nil || got != want {
			t.Errorf("ParseTableName(%q) = %+v, %v; want %+v", old, got, err, want)
		}
	}
	if got := (TableName{"public", "Upper.Dot"}).Keys(); len(got) != 2 || got[0] != `public."Upper.Dot"` || got[1] != "public.Upper.Dot" {
		t.Errorf("Keys = %q", got)
	}
	if got := (TableName{"public", "users"}).Keys(); len(got) != 1 || got[0] != "public.users" {
		t.Errorf("Keys = %q", got)
	}
	for _, bad := range []string{"", "users", ".t", "s.", `"s.t`, `"".t`, `s."t"x`, `s.""`} {
		if n, err := ParseTableName(bad); err == nil {
			t.Errorf("ParseTableName(%q) = %+v, want an error", bad, n)
		}
	}
}
