package postgres_test

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/postgres"
)

// allTypesDDL creates public.all_types with a column of every common type,
// enums and domains, a generated column and a dropped one.
const allTypesDDL = `
CREATE TYPE mood AS ENUM ('sad', 'happy');
ALTER TYPE mood ADD VALUE 'ok' BEFORE 'happy';
CREATE SCHEMA "Other";
CREATE TYPE "Other"."Color" AS ENUM ('red', 'green''s', 'blue\', 'Ünï');
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE DOMAIN short AS varchar(10);
CREATE DOMAIN shorter AS short;
CREATE DOMAIN price AS numeric(12,2);
CREATE DOMAIN happiness AS mood;
CREATE TABLE all_types (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	c_smallint smallint,
	c_int integer NOT NULL DEFAULT 0,
	c_bigint bigint,
	c_dropped integer,
	c_numeric numeric(20,6),
	c_numeric_plain numeric,
	c_real real,
	c_double double precision,
	c_bool boolean,
	c_text text,
	c_varchar varchar(10),
	c_char char(5),
	c_bytea bytea,
	c_date date,
	c_time time,
	c_timetz timetz,
	c_ts timestamp,
	c_tstz timestamptz(3),
	c_interval interval,
	c_uuid uuid,
	c_json json,
	c_jsonb jsonb,
	c_inet inet,
	c_cidr cidr,
	c_macaddr macaddr,
	c_bit bit(3),
	c_varbit varbit,
	c_tsvector tsvector,
	c_point point,
	c_int4range int4range,
	c_tstzrange tstzrange,
	c_int4multirange int4multirange,
	c_xml xml,
	c_int_arr integer[],
	c_text_arr text[],
	c_numeric_arr numeric(10,2)[],
	c_int_2d integer[][],
	c_mood mood,
	c_mood_arr mood[],
	c_color "Other"."Color",
	c_happiness happiness,
	c_posint posint,
	c_posint_arr posint[],
	c_short short,
	c_shorter shorter,
	c_shorter_arr shorter[],
	c_price price,
	"Mixed Case" text,
	c_gen bigint GENERATED ALWAYS AS (c_int::bigint * 2) STORED
);
ALTER TABLE all_types DROP COLUMN c_dropped;
`

// allTypesRows fills all_types: a row of NULLs, rows of edge values, and
// :n generated rows (see allTypesInsert).
const allTypesRows = `
INSERT INTO all_types (c_int) VALUES (0);
INSERT INTO all_types (c_smallint, c_int, c_bigint, c_numeric, c_numeric_plain, c_real, c_double, c_bool, c_text,
	c_varchar, c_char, c_bytea, c_date, c_time, c_timetz, c_ts, c_tstz, c_interval, c_uuid, c_json, c_jsonb, c_inet,
	c_cidr, c_macaddr, c_bit, c_varbit, c_tsvector, c_point, c_int4range, c_tstzrange, c_int4multirange, c_xml,
	c_int_arr, c_text_arr, c_numeric_arr, c_int_2d, c_mood, c_mood_arr, c_color, c_happiness, c_posint, c_posint_arr,
	c_short, c_shorter, c_shorter_arr, c_price, "Mixed Case")
VALUES
	(-32768, -2147483648, -9223372036854775808, -99999999999999.999999, 'NaN', '-Infinity', 'NaN', false, '',
	 '', '', '\x', '-infinity', '00:00', '00:00+14', '-infinity', 'infinity', '-178000000 years', '00000000-0000-0000-0000-000000000000',
	 'null', '{}', '::', '0.0.0.0/0', '00:00:00:00:00:00', B'000', B'', '', '(0,0)', 'empty', 'empty', '{}', '<a/>',
	 '{}', '{}', '{}', '{{1,2},{3,4}}', 'sad', '{}', 'green''s', 'ok', 1, '{}',
	 '', '', '{}', -9999999999.99, ''),
	(32767, 2147483647, 9223372036854775807, 99999999999999.999999, 1e-300, 'Infinity', 1.7976931348623157e308, true,
	 'tab	quote'' backslash\ unicode ✓ ' || repeat('long text ', 20000),
	 'ünïcödé✓', 'ab', '\xdeadbeef00', '294276-12-31', '24:00', '23:59:59.999999-12', '294276-12-31 23:59:59.999999',
	 '2024-02-29 12:34:56.789+05:30', '1 year 2 mons 3 days 04:05:06.789', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
	 '{"b": [1, 2.50, "x"], "a": null}', '{"b": [1, 2.50, "x"], "a": null}', '2001:db8::1/64', '10.1.0.0/16',
	 '08:00:2b:01:02:03', B'101', B'1100110011', 'a fat cat sat on a mat', '(-1.5,2.25)', '[1,10)',
	 '[2020-01-01 00:00+00,2021-01-01 00:00+00)', '{[1,3),[5,9)}', '<doc x="1">text &amp; more</doc>',
	 '{1,NULL,-3}', '{"a","b,c","","NULL",NULL,"q\"uote"}', '{1.50,NULL,-2.25}', '{{1,NULL},{3,4}}', 'happy',
	 '{sad,ok,NULL,happy}', 'blue\', 'happy', 2147483647, '{1,2,3}', 'ten chars!', 'shorter', '{a,NULL,bb}', 1234567890.12,
	 'Mixed');
INSERT INTO all_types (c_smallint, c_int, c_bigint, c_numeric, c_real, c_double, c_bool, c_text, c_varchar, c_bytea,
	c_date, c_tstz, c_uuid, c_jsonb, c_int_arr, c_mood, c_mood_arr, c_color, c_posint, c_posint_arr, c_shorter_arr, c_price)
SELECT i % 30000, i, i::bigint * 1000003, i / 7.0, i / 3.0, i / 11.0, i % 2 = 0, md5(i::text), left(md5(i::text), 10),
	decode(md5(i::text), 'hex'), date '2000-01-01' + i, timestamptz '2000-01-01 00:00+00' + i * interval '1 minute',
	md5(i::text)::uuid, jsonb_build_object('i', i, 'arr', jsonb_build_array(i, i * 2)), ARRAY[i, i + 1],
	(ARRAY['sad','ok','happy'])[i % 3 + 1]::mood, ARRAY[(ARRAY['sad','ok','happy'])[i % 3 + 1]::mood, 'ok'],
	(ARRAY['red','green''s','blue\','Ünï'])[i % 4 + 1]::"Other"."Color", i, ARRAY[i, i + 1]::posint[],
	ARRAY[left(md5(i::text), 3)]::shorter[], i * 1.25
FROM generate_series(1, :n) i;
`

// allTypesInsert returns allTypesRows for n generated rows.
func allTypesInsert(n int) string {
	return strings.Replace(allTypesRows, ":n", strconv.Itoa(n), 1)
}

// columnSummary is what the describe tests compare.
type columnSummary struct {
	Name    string
	Type    string
	NotNull bool
}

var allTypesColumns = []columnSummary{
	{"id", "bigint", true},
	{"c_smallint", "smallint", false},
	{"c_int", "integer", true},
	{"c_bigint", "bigint", false},
	{"c_numeric", "numeric(20,6)", false},
	{"c_numeric_plain", "numeric", false},
	{"c_real", "real", false},
	{"c_double", "double precision", false},
	{"c_bool", "boolean", false},
	{"c_text", "text", false},
	{"c_varchar", "character varying(10)", false},
	{"c_char", "character(5)", false},
	{"c_bytea", "bytea", false},
	{"c_date", "date", false},
	{"c_time", "time without time zone", false},
	{"c_timetz", "time with time zone", false},
	{"c_ts", "timestamp without time zone", false},
	{"c_tstz", "timestamp(3) with time zone", false},
	{"c_interval", "interval", false},
	{"c_uuid", "uuid", false},
	{"c_json", "json", false},
	{"c_jsonb", "jsonb", false},
	{"c_inet", "inet", false},
	{"c_cidr", "cidr", false},
	{"c_macaddr", "macaddr", false},
	{"c_bit", "bit(3)", false},
	{"c_varbit", "bit varying", false},
	{"c_tsvector", "tsvector", false},
	{"c_point", "point", false},
	{"c_int4range", "int4range", false},
	{"c_tstzrange", "tstzrange", false},
	{"c_int4multirange", "int4multirange", false},
	{"c_xml", "xml", false},
	{"c_int_arr", "integer[]", false},
	{"c_text_arr", "text[]", false},
	{"c_numeric_arr", "numeric(10,2)[]", false},
	{"c_int_2d", "integer[]", false},
	{"c_mood", `"public"."mood"`, false},
	{"c_mood_arr", `"public"."mood"[]`, false},
	{"c_color", `"Other"."Color"`, false},
	{"c_happiness", `"public"."mood"`, false},
	{"c_posint", "integer", false},
	{"c_posint_arr", "integer[]", false},
	{"c_short", "character varying(10)", false},
	{"c_shorter", "character varying(10)", false},
	{"c_shorter_arr", "character varying(10)[]", false},
	{"c_price", "numeric(12,2)", false},
	{"Mixed Case", "text", false},
}

func summarize(cols []connectors.Column) []columnSummary {
	out := make([]columnSummary, len(cols))
	for i, c := range cols {
		out[i] = columnSummary{c.Name, c.Type, c.NotNull}
	}
	return out
}

func diffColumns(t *testing.T, got, want []columnSummary) {
	t.Helper()
	if slices.Equal(got, want) {
		return
	}
	for i := range max(len(got), len(want)) {
		var g, w columnSummary
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			t.Errorf("column %d: got %+v, want %+v", i, g, w)
		}
	}
}

func publicTable(name string) connectors.TableName {
	return connectors.TableName{Schema: "public", Name: name}
}

func TestDescribeTableTypes(t *testing.T) {
	ctx := testCtx(t)
	conn := connect(t, srcCluster.NewDB(t))
	mustExec(t, conn, allTypesDDL)

	ts, err := postgres.DescribeTable(ctx, conn, publicTable("all_types"), nil)
	if err != nil {
		t.Fatal(err)
	}
	diffColumns(t, summarize(ts.Columns), allTypesColumns)

	// Positions are attnums: the dropped column leaves a gap, the generated
	// column is skipped.
	if got := ts.Columns[4]; got.Name != "c_numeric" || got.Position != 6 {
		t.Errorf("column 4 = %s at %d, want c_numeric at attnum 6", got.Name, got.Position)
	}
	// The generated column is listed apart, with its expression and the
	// columns it reads.
	if len(ts.Generated) != 1 {
		t.Fatalf("generated columns = %+v, want c_gen", ts.Generated)
	}
	if g := ts.Generated[0]; g.Name != "c_gen" || g.Type != "bigint" || g.Expression != "((c_int)::bigint * 2)" ||
		g.Virtual || !slices.Equal(g.DependsOn, []string{"c_int"}) || g.Position <= ts.Columns[len(ts.Columns)-1].Position {
		t.Errorf("generated column = %+v", g)
	}
	if ts.ColumnIndex("c_gen") >= 0 {
		t.Errorf("c_gen is among the replicated columns")
	}
	oid := func(sql string) uint32 {
		var o uint32
		if err := conn.QueryRow(ctx, sql).Scan(&o); err != nil {
			t.Fatal(err)
		}
		return o
	}
	wantOIDs := map[string]uint32{
		"c_int":         23,
		"c_int_arr":     1007,
		"c_posint":      23,
		"c_posint_arr":  1007,
		"c_shorter":     1043,
		"c_shorter_arr": 1015,
		"c_mood":        oid(`SELECT 'mood'::regtype::oid`),
		"c_happiness":   oid(`SELECT 'mood'::regtype::oid`),
		"c_mood_arr":    oid(`SELECT 'mood[]'::regtype::oid`),
		"c_numeric":     1700,
	}
	for name, want := range wantOIDs {
		if got := ts.Columns[ts.ColumnIndex(name)].TypeOID; got != want {
			t.Errorf("TypeOID of %s = %d, want %d", name, got, want)
		}
	}
	wantEnums := []connectors.EnumType{
		{Schema: "public", Name: "mood", Labels: []string{"sad", "ok", "happy"}},
		{Schema: "Other", Name: "Color", Labels: []string{"red", "green's", `blue\`, "Ünï"}},
	}
	if len(ts.Enums) != len(wantEnums) {
		t.Fatalf("enums = %+v, want %+v", ts.Enums, wantEnums)
	}
	for i, e := range wantEnums {
		if g := ts.Enums[i]; g.Schema != e.Schema || g.Name != e.Name || !slices.Equal(g.Labels, e.Labels) {
			t.Errorf("enum %d = %+v, want %+v", i, g, e)
		}
	}
	if !slices.Equal(ts.PrimaryKey, []string{"id"}) || ts.ReplicaIdentityFull {
		t.Errorf("key = %v, full = %v", ts.PrimaryKey, ts.ReplicaIdentityFull)
	}
}

func TestDescribeTableKeyExcludeAndStats(t *testing.T) {
	ctx := testCtx(t)
	conn := connect(t, srcCluster.NewDB(t))
	mustExec(t, conn, `
CREATE TABLE t (a int, b text, secret text, c int, PRIMARY KEY (b, a) INCLUDE (c));
INSERT INTO t SELECT i, 'b' || i, 'x', i FROM generate_series(1, 5000) i;`)

	ts, err := postgres.DescribeTable(ctx, conn, publicTable("t"), []string{"secret"})
	if err != nil {
		t.Fatal(err)
	}
	diffColumns(t, summarize(ts.Columns), []columnSummary{{"a", "integer", true}, {"b", "text", true}, {"c", "integer", false}})
	if !slices.Equal(ts.PrimaryKey, []string{"b", "a"}) {
		t.Errorf("primary key = %v, want [b a] (key order, INCLUDE columns left out)", ts.PrimaryKey)
	}
	if !ts.Excluded("secret") || ts.ColumnIndex("secret") >= 0 {
		t.Errorf("secret should be excluded: exclude %v, columns %v", ts.Exclude, ts.Columns)
	}
	// Before ANALYZE, reltuples is -1 and relpages 0; Pages is measured.
	if ts.EstimatedRows != 0 || ts.Pages == 0 {
		t.Errorf("before analyze: rows %d pages %d, want 0 and > 0", ts.EstimatedRows, ts.Pages)
	}
	mustExec(t, conn, `ANALYZE t`)
	// Inside a snapshot transaction too (Querier is satisfied by pgx.Tx).
	tx, err := postgres.BeginSnapshot(ctx, conn, "")
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	ts, err = postgres.DescribeTable(ctx, tx, publicTable("t"), []string{"secret"})
	if err != nil {
		t.Fatal(err)
	}
	var pages int64
	if err := conn.QueryRow(ctx, `SELECT relpages FROM pg_class WHERE oid = 't'::regclass`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if ts.EstimatedRows != 5000 || ts.Pages != pages {
		t.Errorf("after analyze: rows %d pages %d, want 5000 and %d", ts.EstimatedRows, ts.Pages, pages)
	}
}

func TestDescribeTableErrors(t *testing.T) {
	ctx := testCtx(t)
	conn := connect(t, srcCluster.NewDB(t))
	mustExec(t, conn, `
CREATE TABLE t (id int PRIMARY KEY, v text);
CREATE VIEW v AS SELECT * FROM t;
CREATE MATERIALIZED VIEW mv AS SELECT * FROM t;
CREATE TABLE parted (id int PRIMARY KEY) PARTITION BY RANGE (id);
CREATE SEQUENCE seq;
CREATE TABLE nokey (v text);
CREATE TABLE full_identity (v text);
ALTER TABLE full_identity REPLICA IDENTITY FULL;
CREATE TYPE pair AS (a int, b int);
CREATE TYPE floatrange AS RANGE (subtype = float8);
CREATE TABLE composite (id int PRIMARY KEY, p pair);
CREATE TABLE composite_arr (id int PRIMARY KEY, ps pair[]);
CREATE TABLE user_range (id int PRIMARY KEY, r floatrange);
CREATE TABLE gen_key (a int, b int GENERATED ALWAYS AS (a + 1) STORED PRIMARY KEY);`)

	tests := []struct {
		table     string
		exclude   []string
		sentinel  error
		unsupport bool
		contains  string
	}{
		{table: "missing", sentinel: postgres.ErrTableNotFound, contains: "public.missing"},
		{table: "v", sentinel: postgres.ErrTableNotFound, contains: "public.v is a view, not a table"},
		{table: "mv", sentinel: postgres.ErrTableNotFound, contains: "materialized view"},
		{table: "parted", sentinel: postgres.ErrTableNotFound, contains: "partitioned table"},
		{table: "seq", sentinel: postgres.ErrTableNotFound, contains: "sequence"},
		{table: "t", exclude: []string{"nope"}, contains: `excluded column "nope" does not exist`},
		{table: "t", exclude: []string{"id"}, contains: `cannot exclude column "id": it is part of the primary key`},
		{table: "nokey", sentinel: postgres.ErrNoPrimaryKey, contains: "public.nokey"},
		{table: "full_identity"},
		{table: "composite", unsupport: true, contains: "type pair of column p is not supported yet"},
		{table: "composite", exclude: []string{"p"}},
		{table: "composite_arr", unsupport: true, contains: "type pair[] of column ps is not supported yet"},
		{table: "user_range", unsupport: true, contains: "type floatrange of column r"},
		{table: "gen_key", contains: `primary key column "b" is generated`},
	}
	for _, tt := range tests {
		t.Run(tt.table+strings.Join(tt.exclude, ","), func(t *testing.T) {
			ts, err := postgres.DescribeTable(ctx, conn, publicTable(tt.table), tt.exclude)
			if tt.contains == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if tt.table == "full_identity" && (!ts.ReplicaIdentityFull || len(ts.PrimaryKey) != 0) {
					t.Errorf("full identity: %+v", ts)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want one containing %q", tt.contains)
			}
			if !strings.Contains(err.Error(), tt.contains) {
				t.Errorf("error %q does not contain %q", err, tt.contains)
			}
			if tt.sentinel != nil && !errors.Is(err, tt.sentinel) {
				t.Errorf("error %q is not %v", err, tt.sentinel)
			}
			var ute *postgres.UnsupportedTypeError
			if errors.As(err, &ute) != tt.unsupport {
				t.Errorf("error %q: UnsupportedTypeError = %v, want %v", err, !tt.unsupport, tt.unsupport)
			}
		})
	}
}

// Querier must be satisfied by both connections and transactions.
var (
	_ postgres.Querier = (*pgx.Conn)(nil)
	_ postgres.Querier = pgx.Tx(nil)
)
