package executor

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// plan parses sql and returns the guard's plan of every statement in it.
func plan(t *testing.T, sql string) *guardPlan {
	t.Helper()
	res, err := pg_query.Parse(sql)
	if err != nil {
		t.Fatalf("parse %s: %v", sql, err)
	}
	return executePlan(sql, res)
}

// useString renders an objectUse compactly for comparisons.
func useString(u objectUse) string {
	name := "?"
	if u.known {
		name = u.name
	}
	s := fmt.Sprintf("%s %s %s", u.kind, u.what, name)
	if u.opaque != "" {
		s += " in " + u.opaque
	}
	return s
}

func TestPlanUses(t *testing.T) {
	tests := []struct {
		sql  string
		want []string
	}{
		{"SELECT count(*) FROM t WHERE lower(a) = 'x'", nil},
		{"SELECT pg_drop_replication_slot('sluice_mk')",
			[]string{"replication slot pg_drop_replication_slot() sluice_mk"}},
		{"SELECT pg_catalog.pg_replication_slot_advance('sluice_mk'::name, pg_current_wal_lsn()) FROM t",
			[]string{"replication slot pg_replication_slot_advance() sluice_mk"}},
		{"SELECT count(*) FROM t, pg_logical_slot_get_binary_changes('sluice_mk', NULL, NULL, 'proto_version', '1')",
			[]string{"replication slot pg_logical_slot_get_binary_changes() sluice_mk"}},
		{"SELECT * FROM pg_logical_slot_peek_changes(slot_name => 'a' COLLATE \"C\", upto_lsn => NULL, upto_nchanges => 1)",
			[]string{"replication slot pg_logical_slot_peek_changes() a"}},
		{"SELECT pg_logical_slot_get_changes(upto_lsn => NULL, upto_nchanges => NULL, slot_name => 'b')",
			[]string{"replication slot pg_logical_slot_get_changes() b"}},
		{"SELECT pg_copy_logical_replication_slot('sluice_mk', 'mine')",
			[]string{"replication slot pg_copy_logical_replication_slot() sluice_mk",
				"replication slot pg_copy_logical_replication_slot() mine"}},
		{"SELECT pg_copy_physical_replication_slot('p', 'q', true)",
			[]string{"replication slot pg_copy_physical_replication_slot() p",
				"replication slot pg_copy_physical_replication_slot() q"}},
		{"SELECT pg_create_logical_replication_slot('evil', 'pgoutput')",
			[]string{"replication slot pg_create_logical_replication_slot() evil"}},
		{"SELECT pg_create_physical_replication_slot('phys')",
			[]string{"replication slot pg_create_physical_replication_slot() phys"}},
		// Not constants: cannot be shown to spare a mirror's slot.
		{"SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots",
			[]string{"replication slot pg_drop_replication_slot() ?"}},
		{"SELECT pg_drop_replication_slot('sluice_' || 'mk')",
			[]string{"replication slot pg_drop_replication_slot() ?"}},
		{"SELECT pg_peek(1), pg_logical_slot_peek_binary_changes($1, NULL, NULL)",
			[]string{"replication slot pg_logical_slot_peek_binary_changes() ?"}},
		// NULL: the strict function does nothing.
		{"SELECT pg_drop_replication_slot(NULL)", nil},
		// Another schema's function of the same name is not Postgres'.
		{"SELECT myschema.pg_drop_replication_slot('sluice_mk')", nil},
		// Inside a view, a prepared statement, a CTE, EXPLAIN.
		{"CREATE VIEW v AS SELECT pg_drop_replication_slot('sluice_mk')",
			[]string{"replication slot pg_drop_replication_slot() sluice_mk"}},
		{"PREPARE p AS SELECT pg_replication_slot_advance('sluice_mk', '0/0')",
			[]string{"replication slot pg_replication_slot_advance() sluice_mk"}},
		{"EXPLAIN ANALYZE WITH x AS (SELECT * FROM pg_logical_slot_get_changes('s', NULL, NULL)) SELECT 1",
			[]string{"replication slot pg_logical_slot_get_changes() s"}},
		// Publications.
		{"DROP PUBLICATION sluice_mk, \"Other\"",
			[]string{"publication DROP PUBLICATION sluice_mk", "publication DROP PUBLICATION Other"}},
		{"ALTER PUBLICATION sluice_mk ADD TABLE t",
			[]string{"publication ALTER PUBLICATION sluice_mk"}},
		{"ALTER PUBLICATION sluice_mk SET (publish = 'insert')",
			[]string{"publication ALTER PUBLICATION sluice_mk"}},
		{"ALTER PUBLICATION sluice_mk RENAME TO x",
			[]string{"publication ALTER PUBLICATION ... RENAME sluice_mk"}},
		{"ALTER PUBLICATION sluice_mk OWNER TO someone",
			[]string{"publication ALTER PUBLICATION ... OWNER TO sluice_mk"}},
		{"DROP TABLE sluice_mk", nil},
		{"CREATE PUBLICATION mine FOR TABLE t", nil},
		// A subscription streaming from a slot consumes it.
		{"CREATE SUBSCRIPTION s CONNECTION 'host=x' PUBLICATION p WITH (slot_name = 'sluice_mk', create_slot = false)",
			[]string{"replication slot CREATE SUBSCRIPTION sluice_mk"}},
		{"ALTER SUBSCRIPTION s SET (slot_name = 'sluice_mk')",
			[]string{"replication slot ALTER SUBSCRIPTION sluice_mk"}},
		// Bodies are read as text.
		{"DO $$ BEGIN PERFORM PG_DROP_REPLICATION_SLOT('x'); END $$",
			[]string{"replication slot pg_drop_replication_slot() ? in a function body"}},
		{"CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN EXECUTE 'drop  publication ' || 'x'; END $$",
			[]string{"publication DROP or ALTER PUBLICATION ? in a function body"}},
		{"CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'", nil},
		// A SQL-standard body is parsed.
		{"CREATE FUNCTION f() RETURNS void LANGUAGE sql BEGIN ATOMIC SELECT pg_drop_replication_slot('sluice_mk'); END",
			[]string{"replication slot pg_drop_replication_slot() sluice_mk"}},
		// Every statement of a string.
		{"SELECT 1; SELECT pg_drop_replication_slot('a'); DROP PUBLICATION b",
			[]string{"replication slot pg_drop_replication_slot() a", "publication DROP PUBLICATION b"}},
	}
	for _, tt := range tests {
		t.Run(tt.sql, func(t *testing.T) {
			var got []string
			for _, u := range plan(t, tt.sql).uses {
				got = append(got, useString(u))
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("uses\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestPlanUnparsable(t *testing.T) {
	p := executePlan("FROBNICATE x; SELECT pg_replication_slot_advance('sluice_mk', NULL)", nil)
	if len(p.uses) != 1 || useString(p.uses[0]) !=
		"replication slot pg_replication_slot_advance() ? in a statement Sluice cannot parse" {
		t.Fatalf("uses = %+v", p.uses)
	}
	if p := executePlan("FROBNICATE x", nil); len(p.uses) != 0 {
		t.Fatalf("uses = %+v", p.uses)
	}
}

func TestPlanCalls(t *testing.T) {
	tests := []struct {
		sql  string
		want []string
	}{
		{"SELECT 1", nil},
		{"SELECT count(*), lower(a), now() FROM t", []string{"count()", "lower()", "now()"}},
		{"SELECT pg_catalog.upper(a), \"Odd\".\"Name\"(1) FROM t", []string{"pg_catalog.upper()", "Odd.Name()"}},
		// SQL syntax is Postgres' own, its arguments still count.
		{"SELECT extract(year FROM now()), substring('abc' FROM 2), a AT TIME ZONE 'UTC' FROM t", []string{"now()"}},
		{"SELECT * FROM generate_series(1, 3) g JOIN t ON t.a = g", []string{"generate_series()"}},
		{"SELECT (SELECT max(b) FROM u WHERE u.a = nextval('s')) FROM t", []string{"max()", "nextval()"}},
		{"EXPLAIN SELECT add_row() FROM t", []string{"add_row()"}},
	}
	for _, tt := range tests {
		t.Run(tt.sql, func(t *testing.T) {
			var got []string
			for _, f := range plan(t, tt.sql).calls {
				got = append(got, f.display())
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("calls\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestJudge(t *testing.T) {
	builtin := func(name, vol string) procRow {
		return procRow{name: name, schema: "pg_catalog", builtin: true, volatility: vol[0]}
	}
	user := func(schema, name, vol string) procRow {
		return procRow{name: name, schema: schema, volatility: vol[0]}
	}
	tests := []struct {
		name string
		f    funcRef
		rows []procRow
		ok   bool
		why  string // part of the reason, when refused
	}{
		{"immutable built-in", funcRef{name: "lower"}, []procRow{builtin("lower", "i")}, true, ""},
		{"stable built-in", funcRef{name: "now"}, []procRow{builtin("now", "s")}, true, ""},
		{"overloads, all safe", funcRef{name: "date_trunc"},
			[]procRow{builtin("date_trunc", "i"), builtin("date_trunc", "s")}, true, ""},
		{"volatile built-in", funcRef{name: "nextval"}, []procRow{builtin("nextval", "v")}, false, "pg_catalog.nextval is volatile"},
		{"slot function", funcRef{name: "pg_replication_slot_advance"},
			[]procRow{builtin("pg_replication_slot_advance", "v")}, false, "volatile"},
		{"harmless volatile", funcRef{name: "random"}, []procRow{builtin("random", "v")}, true, ""},
		{"harmless volatile, WAL position", funcRef{name: "pg_current_wal_lsn"},
			[]procRow{builtin("pg_current_wal_lsn", "v")}, true, ""},
		{"harmless volatile name, user schema", funcRef{name: "random"},
			[]procRow{builtin("random", "v"), user("public", "random", "v")}, false, "public.random is not one of"},
		{"user function, even immutable", funcRef{name: "add_row"}, []procRow{user("public", "add_row", "i")},
			false, "public.add_row is not one of Postgres' built-in functions"},
		{"built-in shadowed by a user function of the same name", funcRef{name: "lower"},
			[]procRow{builtin("lower", "i"), user("app", "lower", "i")}, false, "app.lower"},
		{"qualified: only that schema counts", funcRef{schema: "pg_catalog", name: "lower"},
			[]procRow{builtin("lower", "i"), user("app", "lower", "v")}, true, ""},
		{"qualified user schema", funcRef{schema: "app", name: "lower"},
			[]procRow{builtin("lower", "i"), user("app", "lower", "i")}, false, "app.lower"},
		{"other names ignored", funcRef{name: "lower"}, []procRow{builtin("lower", "i"), builtin("nextval", "v")}, true, ""},
		{"no such function: a cast or a column, left to the peer", funcRef{name: "mood"}, nil, true, ""},
		{"none in that schema", funcRef{schema: "app", name: "lower"}, []procRow{builtin("lower", "i")}, true, ""},
		{"case matters", funcRef{name: "Lower"}, []procRow{builtin("lower", "i")}, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := judge(tt.f, tt.rows)
			if v.ok != tt.ok || !strings.Contains(v.why, tt.why) {
				t.Errorf("judge = %+v, want ok %v, reason with %q", v, tt.ok, tt.why)
			}
			if v.ok && v.why != "" {
				t.Errorf("an allowed function has a reason: %q", v.why)
			}
		})
	}
}

func TestTextArray(t *testing.T) {
	if got, want := textArray([]string{"lower", `we"ird\`, "a,b"}), `{"lower","we\"ird\\","a,b"}`; got != want {
		t.Fatalf("textArray = %s, want %s", got, want)
	}
}
