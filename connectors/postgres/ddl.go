package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/connectors"
)

// CreateTableDDL returns the statements that create the destination table
// dest for the source table ts, to run in order in one transaction:
// CREATE SCHEMA IF NOT EXISTS for dest's schema and every enum's schema;
// each enum of ts created unless a type of that name exists (an existing
// type that is not an enum is an error; labels an existing enum lacks are
// not added); then a plain CREATE TABLE — the caller checks first that the
// name is free (see TableExists) — with ts's columns and their NOT NULL,
// but without the primary key, which PrimaryKeyDDL adds after the initial
// load because loading into an unindexed table is faster.
//
// Generated columns are created as the source has them, with the same
// expression, among the other columns in source order: the destination
// computes their values, as nothing replicates them.
//
// When softDeleteCol is set, a "boolean NOT NULL DEFAULT false" column of
// that name is added; when syncedAtCol is set, a "timestamptz DEFAULT
// now()" column. The caller makes sure they do not clash with a source
// column (Postgres would refuse the table, naming the column).
//
// Enums keep their source schema and name on the destination, which is how
// Column.Type names them. The statements are idempotent except CREATE TABLE.
func CreateTableDDL(dest connectors.TableName, ts *connectors.TableSchema, softDeleteCol, syncedAtCol string) []string {
	stmts := []string{"CREATE SCHEMA IF NOT EXISTS " + quoteIdent(dest.Schema)}
	schemas := []string{dest.Schema}
	for _, e := range ts.Enums {
		if !slices.Contains(schemas, e.Schema) {
			schemas = append(schemas, e.Schema)
			stmts = append(stmts, "CREATE SCHEMA IF NOT EXISTS "+quoteIdent(e.Schema))
		}
	}
	for _, e := range ts.Enums {
		stmts = append(stmts, createEnumDDL(e))
	}
	var cols []string
	gen := ts.Generated
	for _, c := range ts.Columns {
		for len(gen) > 0 && gen[0].Position < c.Position {
			cols = append(cols, generatedColumnDDL(gen[0]))
			gen = gen[1:]
		}
		def := quoteIdent(c.Name) + " " + c.Type
		if c.NotNull {
			def += " NOT NULL"
		}
		cols = append(cols, def)
	}
	for _, g := range gen {
		cols = append(cols, generatedColumnDDL(g))
	}
	if softDeleteCol != "" {
		cols = append(cols, quoteIdent(softDeleteCol)+" boolean NOT NULL DEFAULT false")
	}
	if syncedAtCol != "" {
		cols = append(cols, quoteIdent(syncedAtCol)+" timestamptz DEFAULT now()")
	}
	stmts = append(stmts, "CREATE TABLE "+dest.Quoted()+" (\n\t"+strings.Join(cols, ",\n\t")+"\n)")
	return stmts
}

// generatedColumnDDL is the definition of generated column g.
func generatedColumnDDL(g connectors.GeneratedColumn) string {
	kind := " STORED"
	if g.Virtual {
		kind = " VIRTUAL"
	}
	def := quoteIdent(g.Name) + " " + g.Type + " GENERATED ALWAYS AS (" + g.Expression + ")" + kind
	if g.NotNull {
		def += " NOT NULL"
	}
	return def
}

// createEnumDDL creates enum e unless a type of its name exists. CREATE TYPE
// has no IF NOT EXISTS, so a DO block checks the catalog, and also absorbs
// losing a race with a concurrent creation of the same type.
func createEnumDDL(e connectors.EnumType) string {
	labels := make([]string, len(e.Labels))
	for i, l := range e.Labels {
		labels[i] = quoteLiteral(l)
	}
	name := pgx.Identifier{e.Schema, e.Name}.Sanitize()
	lookup := fmt.Sprintf(`SELECT t.typtype FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
	          WHERE n.nspname = %s AND t.typname = %s`, quoteLiteral(e.Schema), quoteLiteral(e.Name))
	body := fmt.Sprintf(`
DECLARE
	kind "char";
BEGIN
	%s INTO kind;
	IF NOT FOUND THEN
		BEGIN
			CREATE TYPE %s AS ENUM (%s);
		EXCEPTION WHEN duplicate_object OR unique_violation THEN
			NULL; -- created concurrently
		END;
	ELSIF kind <> 'e' THEN
		RAISE EXCEPTION USING ERRCODE = 'duplicate_object',
			MESSAGE = %s;
	END IF;
END
`, lookup, name, strings.Join(labels, ", "),
		quoteLiteral(fmt.Sprintf("type %s.%s exists on the destination and is not an enum", e.Schema, e.Name)))
	return doBlock(body)
}

// PrimaryKeyDDL returns the ALTER TABLE that adds ts's primary key to the
// destination table dest, or "" when ts has none (a REPLICA IDENTITY FULL
// table). It is not idempotent: check HasPrimaryKey first.
func PrimaryKeyDDL(dest connectors.TableName, ts *connectors.TableSchema) string {
	if len(ts.PrimaryKey) == 0 {
		return ""
	}
	return "ALTER TABLE " + dest.Quoted() + " ADD PRIMARY KEY (" + quoteIdents(ts.PrimaryKey) + ")"
}

// HasPrimaryKey reports whether table name has a primary key. A missing
// table is an error wrapping ErrTableNotFound.
func HasPrimaryKey(ctx context.Context, q Querier, name connectors.TableName) (bool, error) {
	var has bool
	err := q.QueryRow(ctx, `
SELECT EXISTS (SELECT FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`, name.Schema, name.Name).Scan(&has)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, fmt.Errorf("look up primary key of %s: %w", name, ErrTableNotFound)
	}
	if err != nil {
		return false, fmt.Errorf("look up primary key of %s: %w", name, err)
	}
	return has, nil
}

// TableExists reports whether a table (ordinary or partitioned) named name
// exists. Another kind of relation holding the name (a view, a sequence,
// an index...) is an error saying so: the name is neither free nor a table.
func TableExists(ctx context.Context, q Querier, name connectors.TableName) (bool, error) {
	var relkind string
	err := q.QueryRow(ctx, `
SELECT c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2`, name.Schema, name.Name).Scan(&relkind)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("look up table %s: %w", name, err)
	case relkind == "r" || relkind == "p":
		return true, nil
	}
	return false, fmt.Errorf("look up table %s: the name is taken by %s", name, relkindName(relkind))
}

// IndexDDL returns CREATE INDEX IF NOT EXISTS statements that recreate on
// the destination table dest the indexes of the source table ts.Name, read
// through q (the source). The primary key is left out (PrimaryKeyDDL adds
// it), and so are invalid indexes and indexes that use a column the
// destination does not have (an excluded column, in a key, an expression or
// a WHERE clause). Generated columns are on the destination (see
// CreateTableDDL), so their indexes are recreated.
//
// An index keeps its source name; IF NOT EXISTS skips it when a relation of
// that name exists in dest's schema, so the statements are idempotent. Its
// tablespace is dropped. Unique indexes are created as plain indexes:
// a destination keeps soft-deleted rows and may apply a batch of changes in
// another order than the source made them, so uniqueness that holds on the
// source can fail on the destination and would stall the mirror.
// Expressions and operator classes are copied as the source has them, so a
// function or extension missing on the destination fails the statement.
func IndexDDL(ctx context.Context, q Querier, ts *connectors.TableSchema, dest connectors.TableName) ([]string, error) {
	rows, err := q.Query(ctx, `
SELECT ic.relname::text, quote_ident(ic.relname), i.indisunique, pg_get_indexdef(i.indexrelid),
       quote_ident(n.nspname) || '.' || quote_ident(c.relname),
       coalesce(quote_ident(sp.spcname), ''),
       ARRAY(SELECT k::int FROM unnest(i.indkey::int2[]) k WHERE k > 0
             UNION
             SELECT d.refobjsubid FROM pg_depend d
             WHERE d.classid = 'pg_class'::regclass AND d.objid = i.indexrelid
               AND d.refclassid = 'pg_class'::regclass AND d.refobjid = i.indrelid AND d.refobjsubid > 0)
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_tablespace sp ON sp.oid = ic.reltablespace
WHERE i.indrelid = $1 AND NOT i.indisprimary AND i.indisvalid AND i.indislive
ORDER BY ic.relname`, ts.OID)
	if err != nil {
		return nil, fmt.Errorf("list indexes of %s: %w", ts.Name, err)
	}
	type index struct {
		name, quotedName string
		unique           bool
		def, table, spc  string
		cols             []int32
	}
	idxs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (index, error) {
		var x index
		err := r.Scan(&x.name, &x.quotedName, &x.unique, &x.def, &x.table, &x.spc, &x.cols)
		return x, err
	})
	if err != nil {
		return nil, fmt.Errorf("list indexes of %s: %w", ts.Name, err)
	}
	var stmts []string
	for _, x := range idxs {
		if !replicatedColumns(ts, x.cols) {
			continue
		}
		prefix := "CREATE INDEX "
		if x.unique {
			prefix = "CREATE UNIQUE INDEX "
		}
		prefix += x.quotedName + " ON " + x.table + " "
		rest, ok := strings.CutPrefix(x.def, prefix)
		if !ok || !strings.HasPrefix(rest, "USING ") {
			return nil, fmt.Errorf("recreate index %s of %s: unexpected definition %q", x.name, ts.Name, x.def)
		}
		if x.spc != "" {
			rest = strings.Replace(rest, " TABLESPACE "+x.spc, "", 1)
		}
		if x.unique {
			rest = strings.Replace(rest, " NULLS NOT DISTINCT", "", 1)
		}
		stmts = append(stmts, "CREATE INDEX IF NOT EXISTS "+quoteIdent(x.name)+" ON "+dest.Quoted()+" "+rest)
	}
	return stmts, nil
}

// replicatedColumns reports whether every attnum is a column of ts.
func replicatedColumns(ts *connectors.TableSchema, attnums []int32) bool {
	for _, n := range attnums {
		if !slices.ContainsFunc(ts.Columns, func(c connectors.Column) bool { return c.Position == int(n) }) &&
			!slices.ContainsFunc(ts.Generated, func(g connectors.GeneratedColumn) bool { return g.Position == int(n) }) {
			return false
		}
	}
	return true
}

// ForeignKeyDDL returns statements that recreate on the destination table
// dest the foreign keys of the source table ts.Name, read through q (the
// source), for those that reference the primary key of a table that is
// mirrored too: mirrored maps source table names to their destination
// names. Foreign keys that reference another table, a unique key other than
// the primary key (the destination has no unique indexes, see IndexDDL) or
// use a column the destination lacks are skipped.
//
// Each constraint keeps its source name and its MATCH FULL, and is added
//
//   - NOT VALID: adding it is instant and does not check rows already on the
//     destination (the initial load was consistent; VALIDATE CONSTRAINT can
//     check it later);
//   - DEFERRABLE INITIALLY DEFERRED, with no ON DELETE/UPDATE action: the
//     source already ran its actions and streams their effects, and the
//     destination may apply a transaction's changes to its tables in any
//     order, so checks must wait for the commit of the destination
//     transaction.
//
// Run them after the primary keys of the referenced tables exist, and only
// if the apply commits each source transaction atomically. Each statement
// skips a constraint of the same name already on dest, so they are
// idempotent.
func ForeignKeyDDL(ctx context.Context, q Querier, ts *connectors.TableSchema, dest connectors.TableName,
	mirrored map[connectors.TableName]connectors.TableName) ([]string, error) {
	rows, err := q.Query(ctx, `
SELECT con.conname::text, rn.nspname::text, rc.relname::text, con.confmatchtype = 'f',
       EXISTS (SELECT FROM pg_index pi WHERE pi.indexrelid = con.conindid AND pi.indisprimary),
       con.conkey::int4[],
       ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, o)
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.o),
       ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, o)
             JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.o)
FROM pg_constraint con
JOIN pg_class rc ON rc.oid = con.confrelid
JOIN pg_namespace rn ON rn.oid = rc.relnamespace
WHERE con.conrelid = $1 AND con.contype = 'f'
ORDER BY con.conname`, ts.OID)
	if err != nil {
		return nil, fmt.Errorf("list foreign keys of %s: %w", ts.Name, err)
	}
	type fkey struct {
		name              string
		refSchema, refRel string
		matchFull, toPK   bool
		attnums           []int32
		cols, refCols     []string
	}
	fks, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (fkey, error) {
		var f fkey
		err := r.Scan(&f.name, &f.refSchema, &f.refRel, &f.matchFull, &f.toPK, &f.attnums, &f.cols, &f.refCols)
		return f, err
	})
	if err != nil {
		return nil, fmt.Errorf("list foreign keys of %s: %w", ts.Name, err)
	}
	var stmts []string
	for _, f := range fks {
		refDest, ok := mirrored[connectors.TableName{Schema: f.refSchema, Name: f.refRel}]
		if !ok || !f.toPK || !replicatedColumns(ts, f.attnums) {
			continue
		}
		match := ""
		if f.matchFull {
			match = " MATCH FULL"
		}
		add := fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s FOREIGN KEY (%s) REFERENCES %s (%s)%s DEFERRABLE INITIALLY DEFERRED NOT VALID",
			dest.Quoted(), quoteIdent(f.name), quoteIdents(f.cols), refDest.Quoted(), quoteIdents(f.refCols), match)
		stmts = append(stmts, doBlock(fmt.Sprintf(`
BEGIN
	IF NOT EXISTS (SELECT FROM pg_constraint WHERE conrelid = %s::regclass AND conname = %s) THEN
		%s;
	END IF;
END
`, quoteLiteral(dest.Quoted()), quoteLiteral(f.name), add)))
	}
	return stmts, nil
}

// ident quotes one identifier.
func quoteIdent(s string) string { return pgx.Identifier{s}.Sanitize() }

// identList quotes identifiers and joins them with commas.
func quoteIdents(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = quoteIdent(n)
	}
	return strings.Join(q, ", ")
}

// literal quotes s as an SQL string literal, whatever
// standard_conforming_strings says (as quote_literal does).
func quoteLiteral(s string) string {
	s = strings.ReplaceAll(s, "'", "''")
	if strings.Contains(s, `\`) {
		return `E'` + strings.ReplaceAll(s, `\`, `\\`) + `'`
	}
	return "'" + s + "'"
}

// doBlock wraps a PL/pgSQL body in DO with a dollar quote tag that does not
// occur in it.
func doBlock(body string) string {
	tag := "$sluice$"
	for i := 0; strings.Contains(body, tag[:len(tag)-1]); i++ {
		tag = fmt.Sprintf("$sluice%d$", i)
	}
	return "DO " + tag + body + tag
}
