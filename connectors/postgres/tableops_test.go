package postgres_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/postgres"
)

// indexesAndKeys lists the indexes of table and the foreign keys that
// involve it, as "index name" and "fk name on table (validated)" lines.
func indexesAndKeys(t *testing.T, conn *pgx.Conn, table string) []string {
	t.Helper()
	return strs(t, conn, `
SELECT 'index ' || indexname FROM pg_indexes WHERE schemaname = 'public' AND tablename = $1
UNION ALL
SELECT format('fk %s on %s (%s)', conname, conrelid::regclass, CASE WHEN convalidated THEN 'valid' ELSE 'not valid' END)
FROM pg_constraint WHERE contype = 'f' AND (conrelid = $1::regclass OR confrelid = $1::regclass)
ORDER BY 1`, table)
}

// TestEmptyAndRestore checks the truncate strategy's operations:
// SaveObjects lists a table's indexes and the foreign keys that involve
// it, EmptyTable drops them and empties the table (and can run again with
// the same list), RestoreSaved puts them back, foreign keys NOT VALID, and
// can run again.
func TestEmptyAndRestore(t *testing.T) {
	ctx := testCtx(t)
	conn := connect(t, dstCluster.NewDB(t))
	mustExec(t, conn, `
CREATE TABLE parent (id int PRIMARY KEY);
CREATE TABLE t (id int PRIMARY KEY, pid int CONSTRAINT t_parent REFERENCES parent, val text CONSTRAINT t_val UNIQUE,
                up int CONSTRAINT t_self REFERENCES t);
CREATE INDEX t_pid ON t (pid);
CREATE TABLE child (tid int CONSTRAINT child_t REFERENCES t);
INSERT INTO parent VALUES (1);
INSERT INTO t VALUES (1, 1, 'a', NULL), (2, 1, 'b', 1);`)
	live := publicTable("t")
	before := indexesAndKeys(t, conn, "t")
	want := []string{"fk child_t on child (valid)", "fk t_parent on t (valid)", "fk t_self on t (valid)",
		"index t_pid", "index t_pkey", "index t_val"}
	if !slices.Equal(before, want) {
		t.Fatalf("test table has %q, want %q", before, want)
	}
	saved, err := postgres.SaveObjects(ctx, conn, live)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, ix := range saved.Indexes {
		names = append(names, "index "+ix.Name)
	}
	for _, fk := range saved.ForeignKeys {
		names = append(names, "fk "+fk.Name+" on "+fk.Table.Name)
	}
	slices.Sort(names)
	if want := []string{"fk child_t on child", "fk t_parent on t", "fk t_self on t", "index t_pid", "index t_pkey", "index t_val"}; !slices.Equal(names, want) {
		t.Fatalf("SaveObjects = %q, want %q", names, want)
	}
	for range 2 { // the second run is a retry with the same list
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error { return postgres.EmptyTable(ctx, tx, live, saved) })
		if err != nil {
			t.Fatalf("EmptyTable: %v", err)
		}
		if got := indexesAndKeys(t, conn, "t"); len(got) != 0 {
			t.Fatalf("after EmptyTable, t still has %q", got)
		}
		if n := scalar[int64](t, conn, "SELECT count(*) FROM t"); n != 0 {
			t.Fatalf("after EmptyTable, t has %d rows", n)
		}
	}
	mustExec(t, conn, "INSERT INTO t VALUES (1, 1, 'a', NULL), (2, 1, 'b', 1)")
	for range 2 { // RestoreSaved is idempotent
		if err := postgres.RestoreSaved(ctx, conn, live, saved); err != nil {
			t.Fatalf("RestoreSaved: %v", err)
		}
		got := indexesAndKeys(t, conn, "t")
		want := []string{"fk child_t on child (not valid)", "fk t_parent on t (not valid)", "fk t_self on t (not valid)",
			"index t_pid", "index t_pkey", "index t_val"}
		if !slices.Equal(got, want) {
			t.Fatalf("after RestoreSaved, t has %q, want %q", got, want)
		}
	}
	if kind := scalar[string](t, conn, "SELECT contype::text FROM pg_constraint WHERE conname = 't_val'"); kind != "u" {
		t.Fatalf("t_val restored as constraint type %q, want a unique constraint", kind)
	}
	if _, err := postgres.SaveObjects(ctx, conn, publicTable("missing")); !errors.Is(err, postgres.ErrTableNotFound) {
		t.Fatalf("SaveObjects of a missing table: %v, want ErrTableNotFound", err)
	}
}

// TestTableOperations checks the destination table operations the flows
// run: CreateTable, EnsurePrimaryKey, AnalyzeTable, CreateIndexes,
// CreateForeignKeys, CountRows, DropTableIfExists and DropTables.
func TestTableOperations(t *testing.T) {
	ctx := testCtx(t)
	conn := connect(t, dstCluster.NewDB(t))
	mustExec(t, conn, "CREATE TYPE mood AS ENUM ('ok', 'sad'); CREATE TABLE src (id int PRIMARY KEY, m mood, note text)")
	ts, err := postgres.DescribeTable(ctx, conn, publicTable("src"), nil)
	if err != nil {
		t.Fatal(err)
	}
	dest := connectors.TableName{Schema: "public", Name: "dst"}
	mustExec(t, conn, "CREATE SCHEMA other")
	other := connectors.TableName{Schema: "other", Name: "dst"}
	for _, name := range []connectors.TableName{dest, other} {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			return postgres.CreateTable(ctx, tx, name, ts, "_deleted", "_synced_at")
		})
		if err != nil {
			t.Fatalf("CreateTable %s: %v", name, err)
		}
	}
	cols := strs(t, conn, "SELECT attname::text FROM pg_attribute WHERE attrelid = 'dst'::regclass AND attnum > 0 ORDER BY attnum")
	if want := []string{"id", "m", "note", "_deleted", "_synced_at"}; !slices.Equal(cols, want) {
		t.Fatalf("CreateTable made columns %q, want %q", cols, want)
	}
	if err := postgres.CreateTable(ctx, conn, dest, ts, "", ""); err == nil || strings.Contains(err.Error(), "create") {
		t.Fatalf("CreateTable of a taken name: %v, want Postgres's error unwrapped", err)
	}
	pk := func() int64 {
		return scalar[int64](t, conn, "SELECT count(*) FROM pg_constraint WHERE conrelid = 'dst'::regclass AND contype = 'p'")
	}
	if pk() != 0 {
		t.Fatal("CreateTable made a primary key; the loader adds it after the load")
	}
	for range 2 {
		if err := postgres.EnsurePrimaryKey(ctx, conn, dest, ts); err != nil {
			t.Fatalf("EnsurePrimaryKey: %v", err)
		}
		if pk() != 1 {
			t.Fatalf("dst has %d primary keys after EnsurePrimaryKey, want 1", pk())
		}
	}
	mustExec(t, conn, "INSERT INTO dst (id, note) SELECT g, 'n' || g FROM generate_series(1, 500) g")
	if n, err := postgres.CountRows(ctx, conn, dest); err != nil || n != 500 {
		t.Fatalf("CountRows = %d, %v; want 500", n, err)
	}
	if err := postgres.AnalyzeTable(ctx, conn, dest); err != nil {
		t.Fatal(err)
	}
	if n := scalar[float64](t, conn, "SELECT reltuples::float8 FROM pg_class WHERE oid = 'dst'::regclass"); n != 500 {
		t.Fatalf("after AnalyzeTable reltuples = %v, want 500", n)
	}
	if err := postgres.AnalyzeTable(ctx, conn, publicTable("missing")); err == nil || !strings.Contains(err.Error(), "analyze public.missing") {
		t.Fatalf("AnalyzeTable of a missing table: %v", err)
	}
	idx := []string{"CREATE INDEX IF NOT EXISTS dst_note ON public.dst (note)"}
	for range 2 {
		if err := postgres.CreateIndexes(ctx, conn, dest, idx); err != nil {
			t.Fatalf("CreateIndexes: %v", err)
		}
	}
	if got := indexesAndKeys(t, conn, "dst"); !slices.Contains(got, "index dst_note") {
		t.Fatalf("after CreateIndexes dst has %q", got)
	}
	if err := postgres.CreateIndexes(ctx, conn, dest, []string{"CREATE INDEX x ON public.dst (nope)"}); err == nil ||
		!strings.Contains(err.Error(), "create index on public.dst") {
		t.Fatalf("CreateIndexes with a bad statement: %v", err)
	}
	fk := postgres.ForeignKeyDef{Table: other, Name: "other_dst", Definition: "FOREIGN KEY (id) REFERENCES public.dst(id)"}
	for range 2 {
		if err := postgres.CreateForeignKeys(ctx, conn, other, []string{fk.AddDDL(false)}); err != nil {
			t.Fatalf("CreateForeignKeys: %v", err)
		}
	}
	if got := indexesAndKeys(t, conn, "dst"); !slices.Contains(got, "fk other_dst on other.dst (valid)") {
		t.Fatalf("after CreateForeignKeys dst has %q", got)
	}
	if err := postgres.CreateForeignKeys(ctx, conn, other, []string{"ALTER TABLE other.dst ADD FOREIGN KEY (nope) REFERENCES public.dst"}); err == nil ||
		!strings.Contains(err.Error(), "create foreign key on other.dst") {
		t.Fatalf("CreateForeignKeys with a bad statement: %v", err)
	}
	// The foreign key of other.dst makes dst alone undroppable (no CASCADE).
	if err := postgres.DropTables(ctx, conn, []connectors.TableName{dest}); err == nil || !strings.Contains(err.Error(), "2BP01") {
		t.Fatalf("DropTables of a referenced table: %v, want 2BP01", err)
	}
	if err := postgres.DropTables(ctx, conn, nil); err != nil {
		t.Fatalf("DropTables of no table: %v", err)
	}
	for range 2 {
		if err := postgres.DropTables(ctx, conn, []connectors.TableName{dest, other}); err != nil {
			t.Fatalf("DropTables: %v", err)
		}
	}
	mustExec(t, conn, "CREATE TABLE gone (id int)")
	for range 2 {
		if err := postgres.DropTableIfExists(ctx, conn, publicTable("gone")); err != nil {
			t.Fatalf("DropTableIfExists: %v", err)
		}
	}
	if n := scalar[int64](t, conn, "SELECT count(*) FROM pg_class WHERE relname IN ('dst', 'gone')"); n != 0 {
		t.Fatalf("%d tables left after the drops", n)
	}
}

// TestSwapSteps checks the steps around a swap: SetLockTimeout,
// CarrySoftDeleted, RenameOwned and ValidateForeignKeys.
func TestSwapSteps(t *testing.T) {
	ctx := testCtx(t)
	conn := connect(t, dstCluster.NewDB(t))
	const meta = "_sluice"
	if err := postgres.EnsureMetadata(ctx, conn, meta); err != nil {
		t.Fatal(err)
	}
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if err := postgres.SetLockTimeout(ctx, tx, 5*time.Second); err != nil {
			return err
		}
		var got string
		if err := tx.QueryRow(ctx, "SELECT current_setting('lock_timeout')").Scan(&got); err != nil {
			return err
		}
		if got != "5s" {
			t.Errorf("lock_timeout in the transaction = %q, want 5s", got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := scalar[string](t, conn, "SELECT current_setting('lock_timeout')"); got != "0" {
		t.Fatalf("lock_timeout after the transaction = %q, want 0 (SET LOCAL)", got)
	}

	// Soft-deleted rows of the live table that the shadow lacks are carried.
	mustExec(t, conn, `
CREATE TABLE live (a int, b int, note text, gone boolean NOT NULL DEFAULT false, only_live int, PRIMARY KEY (a, b));
CREATE TABLE shadow (a int, b int, note text, gone boolean NOT NULL DEFAULT false, PRIMARY KEY (a, b));
INSERT INTO live VALUES (1, 1, 'kept', false, 9), (1, 2, 'deleted', true, 9), (2, 1, 'deleted twice', true, 9);
INSERT INTO shadow VALUES (1, 1, 'new', false), (2, 1, 'back again', false);`)
	for range 2 { // repeatable
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			return postgres.CarrySoftDeleted(ctx, tx, publicTable("live"), publicTable("shadow"), []string{"a", "b"}, "gone")
		})
		if err != nil {
			t.Fatalf("CarrySoftDeleted: %v", err)
		}
		got := strs(t, conn, "SELECT format('%s,%s %s %s', a, b, note, gone) FROM shadow ORDER BY a, b")
		if want := []string{"1,1 new f", "1,2 deleted t", "2,1 back again f"}; !slices.Equal(got, want) {
			t.Fatalf("shadow after CarrySoftDeleted: %q, want %q", got, want)
		}
	}

	// RenameOwned puts a recorded table at its live table's free name.
	gone := publicTable("gone")
	o, err := postgres.CreateOwned(ctx, conn, meta, "m", gone, nil, func(tx pgx.Tx, name connectors.TableName) error {
		_, err := tx.Exec(ctx, "CREATE TABLE "+name.Quoted()+" (id int)")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error { return postgres.RenameOwned(ctx, tx, o) })
	if err != nil {
		t.Fatalf("RenameOwned: %v", err)
	}
	if oid := scalar[uint32](t, conn, "SELECT 'gone'::regclass::oid"); oid != o.OID {
		t.Fatalf("gone has OID %d, want the recorded table's %d", oid, o.OID)
	}
	// A table at the recorded name that is not the recorded one (a user's)
	// is refused and left where it is.
	mustExec(t, conn, "DROP TABLE gone; CREATE TABLE "+o.Name.Quoted()+" (mine text)")
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error { return postgres.RenameOwned(ctx, tx, o) })
	if !errors.Is(err, postgres.ErrNoShadow) {
		t.Fatalf("RenameOwned of a replaced table: %v, want ErrNoShadow", err)
	}
	if n := scalar[int64](t, conn, "SELECT count(*) FROM pg_class WHERE relname = $1", o.Name.Name); n != 1 {
		t.Fatal("RenameOwned moved a table that is not the recorded one")
	}

	// ValidateForeignKeys reports a failing statement and goes on.
	mustExec(t, conn, `
CREATE TABLE p (id int PRIMARY KEY); CREATE TABLE c1 (pid int); CREATE TABLE c2 (pid int);
INSERT INTO p VALUES (1); INSERT INTO c1 VALUES (2); INSERT INTO c2 VALUES (1);
ALTER TABLE c1 ADD CONSTRAINT c1_p FOREIGN KEY (pid) REFERENCES p NOT VALID;
ALTER TABLE c2 ADD CONSTRAINT c2_p FOREIGN KEY (pid) REFERENCES p NOT VALID;`)
	stmts := []string{"ALTER TABLE c1 VALIDATE CONSTRAINT c1_p", "ALTER TABLE c2 VALIDATE CONSTRAINT c2_p"}
	var failed []string
	err = postgres.ValidateForeignKeys(ctx, conn, stmts, func(s string, err error) error {
		failed = append(failed, s)
		return nil
	})
	if err != nil || !slices.Equal(failed, stmts[:1]) {
		t.Fatalf("ValidateForeignKeys = %v, failed %q; want c1's statement failed only", err, failed)
	}
	if got := strs(t, conn, "SELECT conname::text FROM pg_constraint WHERE contype = 'f' AND convalidated ORDER BY 1"); !slices.Equal(got, []string{"c2_p"}) {
		t.Fatalf("validated foreign keys %q, want c2_p", got)
	}
	stop := errors.New("stop")
	err = postgres.ValidateForeignKeys(ctx, conn, stmts, func(string, error) error { return stop })
	if !errors.Is(err, stop) {
		t.Fatalf("ValidateForeignKeys with a failing callback: %v, want its error", err)
	}
}
