package postgres_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/postgres"
)

// createDest runs CreateTableDDL for ts on dst.
func createDest(t *testing.T, dst *pgx.Conn, dest connectors.TableName, ts *connectors.TableSchema, softDelete, syncedAt string) {
	t.Helper()
	for _, stmt := range postgres.CreateTableDDL(dest, ts, softDelete, syncedAt) {
		mustExec(t, dst, stmt)
	}
}

func TestCreateTableDDLRoundTrip(t *testing.T) {
	ctx := testCtx(t)
	src := connect(t, srcCluster.NewDB(t))
	dst := connect(t, dstCluster.NewDB(t))
	mustExec(t, src, allTypesDDL)
	ts, err := postgres.DescribeTable(ctx, src, publicTable("all_types"), nil)
	if err != nil {
		t.Fatal(err)
	}
	dest := connectors.TableName{Schema: "Mirror Schema", Name: "All Types"}

	exists, err := postgres.TableExists(ctx, dst, dest)
	if err != nil || exists {
		t.Fatalf("TableExists before create = %v, %v", exists, err)
	}
	stmts := postgres.CreateTableDDL(dest, ts, "_sluice_is_deleted", "_sluice_synced_at")
	if last := stmts[len(stmts)-1]; !strings.HasPrefix(last, `CREATE TABLE "Mirror Schema"."All Types" (`) || strings.Contains(last, "PRIMARY KEY") {
		t.Errorf("CREATE TABLE statement:\n%s", last)
	}
	for _, stmt := range stmts {
		mustExec(t, dst, stmt)
	}
	// Everything but CREATE TABLE is idempotent.
	for _, stmt := range stmts[:len(stmts)-1] {
		mustExec(t, dst, stmt)
	}
	if exists, err = postgres.TableExists(ctx, dst, dest); err != nil || !exists {
		t.Fatalf("TableExists after create = %v, %v", exists, err)
	}
	if has, err := postgres.HasPrimaryKey(ctx, dst, dest); err != nil || has {
		t.Fatalf("HasPrimaryKey before PrimaryKeyDDL = %v, %v", has, err)
	}
	mustExec(t, dst, postgres.PrimaryKeyDDL(dest, ts))
	if has, err := postgres.HasPrimaryKey(ctx, dst, dest); err != nil || !has {
		t.Fatalf("HasPrimaryKey after PrimaryKeyDDL = %v, %v", has, err)
	}

	got, err := postgres.DescribeTable(ctx, dst, dest, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := append(slices.Clone(allTypesColumns),
		columnSummary{"_sluice_is_deleted", "boolean", true},
		columnSummary{"_sluice_synced_at", "timestamp with time zone", false})
	diffColumns(t, summarize(got.Columns), want)
	if !slices.Equal(got.PrimaryKey, ts.PrimaryKey) {
		t.Errorf("destination key %v, want %v", got.PrimaryKey, ts.PrimaryKey)
	}
	if len(got.Enums) != len(ts.Enums) {
		t.Fatalf("destination enums %+v, want %+v", got.Enums, ts.Enums)
	}
	for i := range ts.Enums {
		if g, w := got.Enums[i], ts.Enums[i]; g.Schema != w.Schema || g.Name != w.Name || !slices.Equal(g.Labels, w.Labels) {
			t.Errorf("destination enum %+v, want %+v", g, w)
		}
	}
	if len(got.Generated) != 1 || got.Generated[0].Name != "c_gen" || got.Generated[0].Expression != ts.Generated[0].Expression ||
		got.Generated[0].Type != ts.Generated[0].Type {
		t.Errorf("destination generated columns %+v, want %+v", got.Generated, ts.Generated)
	}
	var deleted bool
	mustExec(t, dst, `INSERT INTO "Mirror Schema"."All Types" (id, c_int) VALUES (1, 1)`)
	var gen int64
	if err := dst.QueryRow(ctx, `SELECT c_gen FROM "Mirror Schema"."All Types"`).Scan(&gen); err != nil || gen != 2 {
		t.Errorf("generated c_gen = %d, %v; want 2", gen, err)
	}
	if err := dst.QueryRow(ctx, `SELECT _sluice_is_deleted FROM "Mirror Schema"."All Types"`).Scan(&deleted); err != nil || deleted {
		t.Errorf("soft delete default = %v, %v", deleted, err)
	}

	// A second table of the same source needs no column extras.
	plain := connectors.TableName{Schema: "Mirror Schema", Name: "plain"}
	createDest(t, dst, plain, ts, "", "")
	got, err = postgres.DescribeTable(ctx, dst, plain, nil)
	if err == nil || !errors.Is(err, postgres.ErrNoPrimaryKey) {
		t.Fatalf("describe keyless copy: %v", err)
	}
}

func TestCreateTableDDLEnumClash(t *testing.T) {
	ctx := testCtx(t)
	dst := connect(t, dstCluster.NewDB(t))
	mustExec(t, dst, `CREATE DOMAIN mood AS text`)
	ts := &connectors.TableSchema{
		Columns: []connectors.Column{{Name: "m", Type: `"public"."mood"`}},
		Enums:   []connectors.EnumType{{Schema: "public", Name: "mood", Labels: []string{"a"}}},
	}
	var err error
	for _, stmt := range postgres.CreateTableDDL(publicTable("t"), ts, "", "") {
		if _, err = dst.Exec(ctx, stmt); err != nil {
			break
		}
	}
	if err == nil || !strings.Contains(err.Error(), "type public.mood exists on the destination and is not an enum") {
		t.Fatalf("err = %v", err)
	}
}

func TestTableExistsOtherRelation(t *testing.T) {
	ctx := testCtx(t)
	dst := connect(t, dstCluster.NewDB(t))
	mustExec(t, dst, `CREATE VIEW v AS SELECT 1 AS x`)
	if _, err := postgres.TableExists(ctx, dst, publicTable("v")); err == nil || !strings.Contains(err.Error(), "taken by a view") {
		t.Errorf("TableExists(view) err = %v", err)
	}
	if _, err := postgres.HasPrimaryKey(ctx, dst, publicTable("missing")); !errors.Is(err, postgres.ErrTableNotFound) {
		t.Errorf("HasPrimaryKey(missing) err = %v", err)
	}
}

func TestIndexDDL(t *testing.T) {
	ctx := testCtx(t)
	src := connect(t, srcCluster.NewDB(t))
	dst := connect(t, dstCluster.NewDB(t))
	mustExec(t, src, `
CREATE TABLE t (id int PRIMARY KEY, a int, b text, c jsonb, secret text, d int,
	g int GENERATED ALWAYS AS (a * 2) STORED, UNIQUE NULLS NOT DISTINCT (d));
CREATE INDEX t_a ON t (a);
CREATE UNIQUE INDEX "T b Unique" ON t (b) INCLUDE (a);
CREATE INDEX t_lower_b ON t (lower(b) text_pattern_ops);
CREATE INDEX t_partial ON t (a DESC NULLS LAST, b) WHERE a > 0 AND b <> 'x';
CREATE INDEX t_gin ON t USING gin (c jsonb_path_ops) WITH (fastupdate = off);
CREATE INDEX t_secret ON t (secret);
CREATE INDEX t_secret_expr ON t (a) WHERE secret IS NULL;
CREATE INDEX t_gen ON t (g);`)
	ts, err := postgres.DescribeTable(ctx, src, publicTable("t"), []string{"secret"})
	if err != nil {
		t.Fatal(err)
	}
	dest := connectors.TableName{Schema: "m", Name: "t copy"}
	stmts, err := postgres.IndexDDL(ctx, src, ts, dest)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`CREATE INDEX IF NOT EXISTS "T b Unique" ON "m"."t copy" USING btree (b) INCLUDE (a)`,
		`CREATE INDEX IF NOT EXISTS "t_a" ON "m"."t copy" USING btree (a)`,
		`CREATE INDEX IF NOT EXISTS "t_d_key" ON "m"."t copy" USING btree (d)`,
		`CREATE INDEX IF NOT EXISTS "t_gen" ON "m"."t copy" USING btree (g)`, // the destination has the generated column
		`CREATE INDEX IF NOT EXISTS "t_gin" ON "m"."t copy" USING gin (c jsonb_path_ops) WITH (fastupdate=off)`,
		`CREATE INDEX IF NOT EXISTS "t_lower_b" ON "m"."t copy" USING btree (lower(b) text_pattern_ops)`,
		`CREATE INDEX IF NOT EXISTS "t_partial" ON "m"."t copy" USING btree (a DESC NULLS LAST, b) WHERE ((a > 0) AND (b <> 'x'::text))`,
	}
	if !slices.Equal(stmts, want) {
		t.Errorf("IndexDDL:\n%s\nwant:\n%s", strings.Join(stmts, "\n"), strings.Join(want, "\n"))
	}

	createDest(t, dst, dest, ts, "", "")
	mustExec(t, dst, postgres.PrimaryKeyDDL(dest, ts))
	for range 2 { // idempotent
		for _, s := range stmts {
			mustExec(t, dst, s)
		}
	}
	rows, err := dst.Query(ctx, `SELECT indexname::text FROM pg_indexes WHERE schemaname = 'm' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	wantNames := []string{"T b Unique", "t copy_pkey", "t_a", "t_d_key", "t_gen", "t_gin", "t_lower_b", "t_partial"}
	if !slices.Equal(names, wantNames) {
		t.Errorf("destination indexes %v, want %v", names, wantNames)
	}
	var unique int
	if err := dst.QueryRow(ctx, `SELECT count(*) FROM pg_index WHERE indrelid = '"m"."t copy"'::regclass AND indisunique AND NOT indisprimary`).Scan(&unique); err != nil || unique != 0 {
		t.Errorf("unique non-key indexes on destination: %d, %v", unique, err)
	}
}

func TestForeignKeyDDL(t *testing.T) {
	ctx := testCtx(t)
	src := connect(t, srcCluster.NewDB(t))
	dst := connect(t, dstCluster.NewDB(t))
	mustExec(t, src, `
CREATE TABLE parent (id int PRIMARY KEY, code text UNIQUE);
CREATE TABLE other (id int PRIMARY KEY);
CREATE TABLE pair_target (x int, y int, PRIMARY KEY (x, y));
CREATE TABLE child (
	id int PRIMARY KEY,
	parent_id int CONSTRAINT child_parent REFERENCES parent ON DELETE CASCADE,
	parent_code text CONSTRAINT child_code REFERENCES parent (code),
	other_id int CONSTRAINT child_other REFERENCES other,
	up int CONSTRAINT child_up REFERENCES child,
	secret_id int CONSTRAINT child_secret REFERENCES parent,
	a int, b int,
	CONSTRAINT "Child Pair" FOREIGN KEY (a, b) REFERENCES pair_target MATCH FULL
);`)
	describe := func(name string, exclude ...string) *connectors.TableSchema {
		ts, err := postgres.DescribeTable(ctx, src, publicTable(name), exclude)
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	m := func(name string) connectors.TableName { return connectors.TableName{Schema: "m", Name: name} }
	mirrored := map[connectors.TableName]connectors.TableName{
		publicTable("parent"):      m("parent"),
		publicTable("child"):       m("child"),
		publicTable("pair_target"): m("pair_target"),
	}
	child := describe("child", "secret_id")
	stmts, err := postgres.ForeignKeyDDL(ctx, src, child, m("child"), mirrored)
	if err != nil {
		t.Fatal(err)
	}
	if len(stmts) != 3 {
		t.Fatalf("ForeignKeyDDL returned %d statements, want 3 (Child Pair, child_parent, child_up):\n%s", len(stmts), strings.Join(stmts, "\n"))
	}
	for _, want := range []string{
		`ALTER TABLE "m"."child" ADD CONSTRAINT "Child Pair" FOREIGN KEY ("a", "b") REFERENCES "m"."pair_target" ("x", "y") MATCH FULL DEFERRABLE INITIALLY DEFERRED NOT VALID`,
		`ALTER TABLE "m"."child" ADD CONSTRAINT "child_parent" FOREIGN KEY ("parent_id") REFERENCES "m"."parent" ("id") DEFERRABLE INITIALLY DEFERRED NOT VALID`,
		`ALTER TABLE "m"."child" ADD CONSTRAINT "child_up" FOREIGN KEY ("up") REFERENCES "m"."child" ("id") DEFERRABLE INITIALLY DEFERRED NOT VALID`,
	} {
		if !slices.ContainsFunc(stmts, func(s string) bool { return strings.Contains(s, want) }) {
			t.Errorf("no statement contains %s", want)
		}
	}

	for _, name := range []string{"parent", "pair_target", "child"} {
		ts := child
		if name != "child" {
			ts = describe(name)
		}
		createDest(t, dst, m(name), ts, "", "")
		mustExec(t, dst, postgres.PrimaryKeyDDL(m(name), ts))
	}
	for range 2 { // idempotent
		for _, s := range stmts {
			mustExec(t, dst, s)
		}
	}
	var n int
	err = dst.QueryRow(ctx, `SELECT count(*) FROM pg_constraint WHERE conrelid = 'm.child'::regclass AND contype = 'f'
		AND NOT convalidated AND condeferrable AND condeferred AND confdeltype = 'a'`).Scan(&n)
	if err != nil || n != 3 {
		t.Fatalf("deferred, not valid foreign keys on destination: %d, %v", n, err)
	}
	// Deferred: a child may arrive before its parent within a transaction.
	mustExec(t, dst, `BEGIN; INSERT INTO m.child (id, parent_id) VALUES (1, 10); INSERT INTO m.parent VALUES (10, 'x'); COMMIT;`)
	if _, err := dst.Exec(ctx, `INSERT INTO m.child (id, parent_id) VALUES (2, 99)`); err == nil || !strings.Contains(err.Error(), "child_parent") {
		t.Errorf("orphan insert: %v", err)
	}
}
