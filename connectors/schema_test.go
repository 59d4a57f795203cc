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
	for _, bad := range []string{"", "users", ".t", "s.", `"s.t`, `"".t`, "a.b.c", `s."t"x`, `s.""`} {
		if n, err := ParseTableName(bad); err == nil {
			t.Errorf("ParseTableName(%q) = %+v, want an error", bad, n)
		}
	}
}
