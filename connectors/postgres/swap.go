package postgres

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/connectors"
)

// Resyncing one destination table with the swap strategy, all on the
// destination database:
//
//  1. CheckSwappable, to fail before a long copy when SwapTable would;
//  2. CreateShadow makes an empty copy of the live table's definition
//     (ShadowName names it), which the caller loads;
//  3. BuildShadowIndexes gives the shadow the live table's indexes and
//     index-backed constraints under temporary names, after the load;
//  4. SwapTable, in the caller's transaction, puts the shadow in the live
//     table's place: readers wait for its lock, then see the new rows.
//
// The truncate strategy uses ReferencingForeignKeys and TableIndexes to
// save what it drops before emptying the table, to put it back after.

// ErrNoShadow is wrapped by SwapTable's and BuildShadowIndexes' error when
// the shadow table does not exist: after a crash, the swap was either
// committed (the shadow is gone) or never happened.
var ErrNoShadow = errors.New("shadow table not found")

// ErrNotSwappable is wrapped by CheckSwappable's and SwapTable's error when
// the table has something SwapTable cannot carry over to the new table (a
// dependent object it cannot recreate faithfully, partitioning...). The
// error lists what and says that the table was left as it was; the truncate
// strategy still works for such a table.
var ErrNotSwappable = errors.New("table cannot be swapped")

// maxIdentLen is the longest identifier Postgres keeps (NAMEDATALEN - 1),
// in bytes.
const maxIdentLen = 63

// tempSuffix marks the shadow table and its indexes' temporary names.
const tempSuffix = "_resync"

// ShadowName returns the name of the shadow table of t: same schema, the
// name with "_resync" appended. When that exceeds 63 bytes the base name is
// cut at a character boundary to fit, and the result always differs from
// t's name. Pure.
func ShadowName(t connectors.TableName) connectors.TableName {
	return connectors.TableName{Schema: t.Schema, Name: suffixIdent(t.Name, tempSuffix)}
}

// suffixIdent appends suffix to base, cutting base at a UTF-8 character
// boundary so that the result fits in maxIdentLen bytes. The result never
// equals base (a base that already ends with suffix and fills the limit
// loses one more character).
func suffixIdent(base, suffix string) string {
	cut := func(n int) int {
		for n > 0 && n < len(base) && !utf8.RuneStart(base[n]) {
			n--
		}
		return n
	}
	n := len(base)
	if n+len(suffix) > maxIdentLen {
		n = cut(maxIdentLen - len(suffix))
	}
	s := base[:n] + suffix
	if s == base {
		s = base[:cut(n-1)] + suffix
	}
	return s
}

// CreateShadow creates shadow, the table to load before swapping it in for
// live: an empty table with live's columns, NOT NULLs, defaults, generated
// and identity columns (with new sequences), CHECK constraints, column
// storage, compression and comments, live's storage parameters,
// persistence (UNLOGGED) and tablespace, but no index, primary key, unique
// or exclusion constraint (BuildShadowIndexes adds them after the load,
// which is faster), no foreign key, trigger or policy (SwapTable recreates
// them). The shadow belongs to the current user.
//
// An existing table named shadow is dropped first (plain DROP TABLE, never
// CASCADE: when something depends on it, that is the error), so
// CreateShadow is idempotent and re-running it starts the load afresh. It
// runs in a transaction of its own on conn. A live table that is missing,
// or is not an ordinary table, is an error wrapping ErrTableNotFound.
func CreateShadow(ctx context.Context, conn *pgx.Conn, live, shadow connectors.TableName) error {
	if live == shadow {
		return fmt.Errorf("create shadow table of %s: the shadow must have another name", live)
	}
	if live.Schema != shadow.Schema {
		return fmt.Errorf("create shadow table of %s: %s is in another schema", live, shadow)
	}
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		var relkind, persistence, spc string
		var opts []string
		err := tx.QueryRow(ctx, `
SELECT c.relkind::text, c.relpersistence::text, coalesce(quote_ident(sp.spcname), ''),
       coalesce(c.reloptions, '{}') || ARRAY(SELECT 'toast.' || o FROM unnest(t.reloptions) o)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
LEFT JOIN pg_tablespace sp ON sp.oid = c.reltablespace
WHERE n.nspname = $1 AND c.relname = $2`, live.Schema, live.Name).Scan(&relkind, &persistence, &spc, &opts)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("create shadow table of %s: %w", live, ErrTableNotFound)
		}
		if err != nil {
			return fmt.Errorf("create shadow table of %s: %w", live, err)
		}
		if relkind != "r" {
			return fmt.Errorf("create shadow table of %s: %w: it is %s, not an ordinary table", live, ErrTableNotFound, relkindName(relkind))
		}
		if _, err := tx.Exec(ctx, "DROP TABLE IF EXISTS "+shadow.Quoted()); err != nil {
			return fmt.Errorf("drop previous shadow table %s: %w", shadow, err)
		}
		create := "CREATE TABLE "
		if persistence == "u" {
			create = "CREATE UNLOGGED TABLE "
		}
		create += shadow.Quoted() + " (LIKE " + live.Quoted() + " INCLUDING DEFAULTS INCLUDING GENERATED" +
			" INCLUDING IDENTITY INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMMENTS INCLUDING COMPRESSION)"
		if len(opts) > 0 {
			w, err := withOptions(opts)
			if err != nil {
				return fmt.Errorf("create shadow table of %s: %w", live, err)
			}
			create += " WITH (" + w + ")"
		}
		if spc != "" {
			create += " TABLESPACE " + spc
		}
		if _, err := tx.Exec(ctx, create); err != nil {
			return fmt.Errorf("create shadow table %s: %w", shadow, err)
		}
		return nil
	})
}

var optionKey = regexp.MustCompile(`^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$`)

// withOptions turns reloptions entries ("fillfactor=70") into the body of a
// WITH or SET clause, values quoted as literals.
func withOptions(opts []string) (string, error) {
	out := make([]string, len(opts))
	for i, o := range opts {
		k, v, ok := strings.Cut(o, "=")
		if !ok || !optionKey.MatchString(k) {
			return "", fmt.Errorf("unexpected storage parameter %q", o)
		}
		out[i] = k + "=" + quoteLiteral(v)
	}
	return strings.Join(out, ", "), nil
}

// IndexDef is an index of a table, as TableIndexes lists it. It marshals to
// JSON (a caller stores it to rebuild the index after a crash).
type IndexDef struct {
	Name string `json:"name"`
	// Primary: the index backs the primary key (Constraint is then set).
	Primary bool `json:"primary"`
	// Constraint: the index backs a constraint (primary key, unique or
	// exclusion), dropped and added with ALTER TABLE ... CONSTRAINT.
	Constraint bool `json:"constraint"`
	// Create recreates it on the same table: ALTER TABLE ... ADD CONSTRAINT
	// for a constraint, CREATE INDEX otherwise. Function, operator and
	// operator class names in it are qualified as the search_path in effect
	// when it was read requires.
	Create string `json:"create"`
}

// tableIndex is an index with what BuildShadowIndexes and SwapTable need.
type tableIndex struct {
	IndexDef
	table     uint32 // indrelid
	contype   string // "p", "u", "x", or "" for a plain index
	unique    bool
	clustered bool
	// def is pg_get_constraintdef for a constraint, the part of
	// pg_get_indexdef after "ON table " for a plain index: equal for an
	// index and its copy on another table.
	def                 string
	comment, conComment string
}

// indexSelect reads tableIndex rows; the caller adds a WHERE clause.
const indexSelect = `
SELECT i.indrelid, ic.relname::text, i.indisprimary, i.indisunique, i.indisclustered, coalesce(con.contype::text, ''),
       CASE WHEN con.oid IS NULL THEN pg_get_indexdef(i.indexrelid) ELSE pg_get_constraintdef(con.oid) END,
       format('CREATE %sINDEX %s ON %s ', CASE WHEN i.indisunique THEN 'UNIQUE ' END, quote_ident(ic.relname),
              quote_ident(n.nspname) || '.' || quote_ident(c.relname)),
       coalesce(obj_description(ic.oid, 'pg_class'), ''), coalesce(obj_description(con.oid, 'pg_constraint'), ''),
       coalesce(con.condeferrable, false), coalesce(con.condeferred, false), coalesce(pg_get_expr(i.indpred, i.indrelid), ''),
       coalesce(ic.reloptions, '{}'), coalesce(quote_ident(sp.spcname), '')
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid AND con.contype IN ('p', 'u', 'x')
LEFT JOIN pg_tablespace sp ON sp.oid = ic.reltablespace
`

// readIndexes returns the valid indexes of table (OID oid), the primary
// key first, then constraints, then plain indexes, each group by name.
func readIndexes(ctx context.Context, q Querier, table connectors.TableName, oid uint32) ([]tableIndex, error) {
	rows, err := q.Query(ctx, indexSelect+`
WHERE i.indrelid = $1 AND i.indisvalid AND i.indislive
ORDER BY NOT i.indisprimary, con.oid IS NULL, ic.relname`, oid)
	if err != nil {
		return nil, fmt.Errorf("list indexes of %s: %w", table, err)
	}
	idxs, err := pgx.CollectRows(rows, scanIndex)
	if err != nil {
		return nil, fmt.Errorf("list indexes of %s: %w", table, err)
	}
	for i := range idxs {
		x := &idxs[i]
		if x.Constraint {
			x.Create = "ALTER TABLE " + table.Quoted() + " ADD CONSTRAINT " + quoteIdent(x.Name) + " " + x.def
		}
	}
	return idxs, nil
}

// scanIndex reads a row of indexSelect. Neither pg_get_indexdef nor
// pg_get_constraintdef shows the index's tablespace, and the latter not
// the storage parameters of a primary key's or unique constraint's index:
// they are put in.
func scanIndex(r pgx.CollectableRow) (tableIndex, error) {
	var x tableIndex
	var prefix, pred, spc string
	var deferrable, deferred bool
	var opts []string
	if err := r.Scan(&x.table, &x.Name, &x.Primary, &x.unique, &x.clustered, &x.contype, &x.def, &prefix,
		&x.comment, &x.conComment, &deferrable, &deferred, &pred, &opts, &spc); err != nil {
		return x, err
	}
	// The definition ends with tail; what is missing goes before it.
	var params, tail string
	if deferrable {
		tail = " DEFERRABLE"
		if deferred {
			tail += " INITIALLY DEFERRED"
		}
	}
	if spc != "" {
		params = " USING INDEX TABLESPACE " + spc
	}
	switch x.contype {
	case "p", "u":
		if len(opts) > 0 {
			w, err := withOptions(opts)
			if err != nil {
				return x, fmt.Errorf("index %s: %w", x.Name, err)
			}
			params = " WITH (" + w + ")" + params
		}
	case "x":
		if pred != "" {
			tail = " WHERE (" + pred + ")" + tail
		}
	case "":
		if spc != "" {
			params = " TABLESPACE " + spc
		}
		if pred != "" {
			tail = " WHERE " + pred
		}
	}
	body, ok := strings.CutSuffix(x.def, tail)
	if !ok {
		return x, fmt.Errorf("index %s: unexpected definition %q", x.Name, x.def)
	}
	x.def = body + params + tail
	x.Constraint = x.contype != ""
	if !x.Constraint {
		x.Create = x.def
		rest, ok := strings.CutPrefix(x.def, prefix)
		if !ok || !strings.HasPrefix(rest, "USING ") {
			return x, fmt.Errorf("index %s: unexpected definition %q", x.Name, x.def)
		}
		x.def = rest
	}
	return x, nil
}

// TableIndexes returns the valid indexes of table, those backing its
// primary key, unique and exclusion constraints included, each with the
// statement that recreates it on table: the primary key first, then the
// other constraints, then plain indexes, each group by name. A table that
// is missing or not an ordinary table is an error wrapping
// ErrTableNotFound. Read-only.
func TableIndexes(ctx context.Context, q Querier, table connectors.TableName) ([]IndexDef, error) {
	oid, err := tableOID(ctx, q, table)
	if err != nil {
		return nil, fmt.Errorf("list indexes of %s: %w", table, err)
	}
	idxs, err := readIndexes(ctx, q, table, oid)
	if err != nil {
		return nil, err
	}
	out := make([]IndexDef, len(idxs))
	for i, x := range idxs {
		out[i] = x.IndexDef
	}
	return out, nil
}

// tableOID returns the OID of the ordinary table name; anything else is an
// error wrapping ErrTableNotFound.
func tableOID(ctx context.Context, q Querier, name connectors.TableName) (uint32, error) {
	var oid uint32
	var relkind string
	err := q.QueryRow(ctx, `
SELECT c.oid, c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2`, name.Schema, name.Name).Scan(&oid, &relkind)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, ErrTableNotFound
	}
	if err != nil {
		return 0, err
	}
	if relkind != "r" {
		return 0, fmt.Errorf("%w: it is %s, not an ordinary table", ErrTableNotFound, relkindName(relkind))
	}
	return oid, nil
}

// shadowIndex is an index of the live table and its copy's temporary name
// on the shadow table.
type shadowIndex struct {
	tableIndex
	temp   string
	exists bool // the copy is on the shadow already
}

// planShadowIndexes names, for each index of live, its copy on shadow: the
// index's name with "_resync" appended (cut to fit), or with "_resync1",
// "_resync2"... when that name is taken in the schema by something other
// than an equivalent index (same kind, same definition) of shadow not
// claimed by another index of live. The same state gives the same plan, so
// BuildShadowIndexes and SwapTable agree.
func planShadowIndexes(ctx context.Context, q Querier, live, shadow connectors.TableName, liveOID, shadowOID uint32) ([]shadowIndex, error) {
	idxs, err := readIndexes(ctx, q, live, liveOID)
	if err != nil {
		return nil, err
	}
	claimed := make(map[string]bool)
	plan := make([]shadowIndex, len(idxs))
	for i, x := range idxs {
		plan[i].tableIndex = x
		for k := 0; ; k++ {
			if k == 100 {
				return nil, fmt.Errorf("name the copy of index %s of %s: %s%s..%s99 are all taken", x.Name, live, x.Name, tempSuffix, tempSuffix)
			}
			suffix := tempSuffix
			if k > 0 {
				suffix = fmt.Sprintf("%s%d", tempSuffix, k)
			}
			name := suffixIdent(x.Name, suffix)
			if claimed[name] {
				continue
			}
			free, same, err := indexCandidate(ctx, q, live.Schema, name, shadowOID, x)
			if err != nil {
				return nil, fmt.Errorf("name the copy of index %s of %s: %w", x.Name, live, err)
			}
			if free || same {
				claimed[name] = true
				plan[i].temp, plan[i].exists = name, same
				break
			}
		}
	}
	return plan, nil
}

// indexCandidate reports whether name is free in schema (no relation, no
// constraint of shadow) or names an index of shadow equivalent to x.
func indexCandidate(ctx context.Context, q Querier, schema, name string, shadowOID uint32, x tableIndex) (free, same bool, err error) {
	var relOID uint32
	var relkind string
	var conTaken bool
	err = q.QueryRow(ctx, `
SELECT coalesce(c.oid, 0), coalesce(c.relkind::text, ''),
       EXISTS (SELECT FROM pg_constraint k WHERE k.conrelid = $3 AND k.conname = $2)
FROM (SELECT) one
LEFT JOIN (pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = $1) ON c.relname = $2`,
		schema, name, shadowOID).Scan(&relOID, &relkind, &conTaken)
	if err != nil {
		return false, false, err
	}
	if relOID == 0 {
		return !conTaken, false, nil
	}
	if relkind != "i" {
		return false, false, nil
	}
	rows, err := q.Query(ctx, indexSelect+"WHERE i.indexrelid = $1", relOID)
	if err != nil {
		return false, false, err
	}
	found, err := pgx.CollectRows(rows, scanIndex)
	if err != nil || len(found) != 1 {
		return false, false, err
	}
	y := found[0]
	return false, y.table == shadowOID && y.contype == x.contype && y.unique == x.unique && y.def == x.def, nil
}

// BuildShadowIndexes creates on shadow a copy of each index of live (see
// TableIndexes) under a temporary name, the original's with "_resync"
// appended (planShadowIndexes): constraints as constraints of the same kind,
// with their comments. SwapTable renames them back.
//
// A primary key the shadow has already (a loader's, to upsert into it)
// becomes the copy of live's when its definition is the same (it is
// renamed), and is dropped otherwise.
//
// Each copy is built in a transaction of its own on conn, and a copy that
// already exists is skipped, so a run killed half-way can be re-run; run it
// again just before the swap to pick up indexes created on live meanwhile.
// A missing live table is an error wrapping ErrTableNotFound, a missing
// shadow one wrapping ErrNoShadow.
func BuildShadowIndexes(ctx context.Context, conn *pgx.Conn, live, shadow connectors.TableName) error {
	liveOID, err := tableOID(ctx, conn, live)
	if err != nil {
		return fmt.Errorf("build indexes of %s: %w", shadow, err)
	}
	shadowOID, err := tableOID(ctx, conn, shadow)
	if errors.Is(err, ErrTableNotFound) {
		return fmt.Errorf("build indexes of %s: %w", shadow, ErrNoShadow)
	}
	if err != nil {
		return fmt.Errorf("build indexes of %s: %w", shadow, err)
	}
	plan, err := planShadowIndexes(ctx, conn, live, shadow, liveOID, shadowOID)
	if err != nil {
		return err
	}
	for _, x := range plan {
		if x.exists {
			continue
		}
		var stmts []string
		adopted := false
		if x.Primary {
			// The loader may have given the shadow a primary key of its own
			// (to upsert into it): keep it if it is the same, else replace it.
			rows, err := conn.Query(ctx, indexSelect+"WHERE i.indrelid = $1 AND i.indisprimary", shadowOID)
			if err != nil {
				return fmt.Errorf("look up primary key of %s: %w", shadow, err)
			}
			pk, err := pgx.CollectRows(rows, scanIndex)
			if err != nil {
				return fmt.Errorf("look up primary key of %s: %w", shadow, err)
			}
			if len(pk) == 1 {
				if pk[0].def == x.def {
					stmts = append(stmts, "ALTER TABLE "+shadow.Quoted()+" RENAME CONSTRAINT "+quoteIdent(pk[0].Name)+" TO "+quoteIdent(x.temp))
					adopted = true
				} else {
					stmts = append(stmts, "ALTER TABLE "+shadow.Quoted()+" DROP CONSTRAINT "+quoteIdent(pk[0].Name))
				}
			}
		}
		switch {
		case adopted:
		case x.Constraint:
			stmts = append(stmts, "ALTER TABLE "+shadow.Quoted()+" ADD CONSTRAINT "+quoteIdent(x.temp)+" "+x.def)
		default:
			create := "CREATE INDEX "
			if x.unique {
				create = "CREATE UNIQUE INDEX "
			}
			stmts = append(stmts, create+quoteIdent(x.temp)+" ON "+shadow.Quoted()+" "+x.def)
		}
		if x.conComment != "" {
			stmts = append(stmts, "COMMENT ON CONSTRAINT "+quoteIdent(x.temp)+" ON "+shadow.Quoted()+" IS "+quoteLiteral(x.conComment))
		}
		if x.comment != "" {
			stmts = append(stmts, "COMMENT ON INDEX "+pgx.Identifier{shadow.Schema, x.temp}.Sanitize()+" IS "+quoteLiteral(x.comment))
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			for _, s := range stmts {
				if _, err := tx.Exec(ctx, s); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("build copy %s of index %s on %s: %w", x.temp, x.Name, shadow, err)
		}
	}
	return nil
}

// ForeignKeyDef is a foreign key constraint, as ReferencingForeignKeys
// lists it. It marshals to JSON (a caller stores it to re-add the
// constraint after a crash).
type ForeignKeyDef struct {
	Name string `json:"name"`
	// Table is the referencing table, the one the constraint is on.
	Table connectors.TableName `json:"table"`
	// Definition is pg_get_constraintdef's text ("FOREIGN KEY (a)
	// REFERENCES s.t(id) ..."), with the referenced table qualified.
	Definition string `json:"definition"`
}

// DropDDL returns the ALTER TABLE that drops the constraint if it exists.
// Idempotent.
func (d ForeignKeyDef) DropDDL() string {
	return "ALTER TABLE " + d.Table.Quoted() + " DROP CONSTRAINT IF EXISTS " + quoteIdent(d.Name)
}

// AddDDL returns a statement that adds the constraint unless d.Table has a
// constraint of that name already, so it is idempotent. With notValid the
// constraint is added NOT VALID (no scan of the table; VALIDATE CONSTRAINT
// can check it later), except on a partitioned table, which does not
// allow it, and except when Definition says NOT VALID already. A missing
// d.Table is an error when it runs.
func (d ForeignKeyDef) AddDDL(notValid bool) string {
	add := "ALTER TABLE " + d.Table.Quoted() + " ADD CONSTRAINT " + quoteIdent(d.Name) + " " + d.Definition
	addNotValid := add
	if notValid && !strings.HasSuffix(d.Definition, " NOT VALID") {
		addNotValid += " NOT VALID"
	}
	return doBlock(fmt.Sprintf(`
DECLARE
	rel regclass := %s::regclass;
BEGIN
	IF EXISTS (SELECT FROM pg_constraint WHERE conrelid = rel AND conname = %s) THEN
		RETURN;
	END IF;
	IF (SELECT relkind FROM pg_class WHERE oid = rel) = 'p' THEN
		%s;
	ELSE
		%s;
	END IF;
END
`, quoteLiteral(d.Table.Quoted()), quoteLiteral(d.Name), add, addNotValid))
}

// ReferencingForeignKeys returns the foreign keys that reference table:
// those of other tables and table's own self-references, by table and
// name. A foreign key inherited by a partition is left out (its parent's
// is listed). A missing table is an error wrapping ErrTableNotFound.
// Read-only.
func ReferencingForeignKeys(ctx context.Context, q Querier, table connectors.TableName) ([]ForeignKeyDef, error) {
	oid, err := tableOID(ctx, q, table)
	if err != nil {
		return nil, fmt.Errorf("list foreign keys referencing %s: %w", table, err)
	}
	fks, err := readForeignKeys(ctx, q, "con.confrelid = $1 AND con.conparentid = 0", oid)
	if err != nil {
		return nil, fmt.Errorf("list foreign keys referencing %s: %w", table, err)
	}
	out := make([]ForeignKeyDef, len(fks))
	for i, f := range fks {
		out[i] = f.ForeignKeyDef
	}
	return out, nil
}

// foreignKey is a foreign key with what SwapTable needs.
type foreignKey struct {
	ForeignKeyDef
	validated   bool
	partitioned bool // the referencing table is partitioned
	comment     string
}

// readForeignKeys reads the foreign keys matching where ($1 is an OID).
// pg_get_constraintdef qualifies the referenced table only when the
// search_path does not make it visible; the definition gets it qualified
// in any case.
func readForeignKeys(ctx context.Context, q Querier, where string, oid uint32) ([]foreignKey, error) {
	rows, err := q.Query(ctx, `
SELECT con.conname::text, n.nspname::text, c.relname::text, c.relkind = 'p', con.convalidated,
       pg_get_constraintdef(con.oid), quote_ident(rc.relname), quote_ident(rn.nspname) || '.' || quote_ident(rc.relname),
       pg_table_is_visible(rc.oid), coalesce(obj_description(con.oid, 'pg_constraint'), '')
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_class rc ON rc.oid = con.confrelid
JOIN pg_namespace rn ON rn.oid = rc.relnamespace
WHERE con.contype = 'f' AND `+where+`
ORDER BY n.nspname, c.relname, con.conname`, oid)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (foreignKey, error) {
		var f foreignKey
		var short, qualified string
		var visible bool
		err := r.Scan(&f.Name, &f.Table.Schema, &f.Table.Name, &f.partitioned, &f.validated,
			&f.Definition, &short, &qualified, &visible, &f.comment)
		if err == nil && visible {
			f.Definition = strings.Replace(f.Definition, " REFERENCES "+short+"(", " REFERENCES "+qualified+"(", 1)
		}
		return f, err
	})
}

// SwapReport is what SwapTable did that its caller may want to follow up
// on or tell the user.
type SwapReport struct {
	// ForeignKeys names (schema.table.constraint) the foreign keys that
	// were valid and were re-added NOT VALID, on the new table or on tables
	// that reference it.
	ForeignKeys []string
	// Validate holds, for each of ForeignKeys, the ALTER TABLE ... VALIDATE
	// CONSTRAINT that checks it again: run them after the commit, outside
	// the swap's transaction (they scan tables without blocking readers).
	Validate []string
	// Views names (schema.name) the views and materialized views that
	// depend on the table, dropped and recreated, in creation order.
	Views []string
}

// swapPlan is what analyzeSwap found about a table to swap.
type swapPlan struct {
	live    connectors.TableName
	liveOID uint32
	// views depend on live, directly or through one another, each after
	// the views it uses.
	views []viewRef
	// children are tables with foreign keys referencing live; parents are
	// the tables live's foreign keys reference (live itself excluded) that
	// the current user may lock.
	children, parents []connectors.TableName
	problems          []string
}

type viewRef struct {
	oid   uint32
	name  connectors.TableName
	kind  string // "v" or "m"
	owner string // quoted role name
}

func (p *swapPlan) problem(format string, args ...any) {
	if s := fmt.Sprintf(format, args...); !slices.Contains(p.problems, s) {
		p.problems = append(p.problems, s)
	}
}

// err returns the error for p's problems, or nil.
func (p *swapPlan) err() error {
	if len(p.problems) == 0 {
		return nil
	}
	return fmt.Errorf("swap %s: %w: %s; the table was left as it was", p.live, ErrNotSwappable, strings.Join(p.problems, "; "))
}

// CheckSwappable reports whether SwapTable could replace live, with the
// same checks SwapTable makes before it changes anything, so a caller can
// fail before a long copy: nil, or an error wrapping ErrNotSwappable that
// names each obstacle (a dependent object SwapTable cannot recreate
// faithfully: a rule, a function with a SQL-standard body, a column
// default or a policy of another table, a column of live's row type...; a
// partitioned, partition, inheritance or typed table; a view or
// referencing table the current user does not own...). A missing live
// table, or one that is not an ordinary table, is an error wrapping
// ErrTableNotFound. Read-only; q needs no transaction.
func CheckSwappable(ctx context.Context, q Querier, live connectors.TableName) error {
	p, err := analyzeSwap(ctx, q, live)
	if err != nil {
		return err
	}
	return p.err()
}

// analyzeSwap finds what depends on live and what SwapTable cannot carry
// over (p.problems).
func analyzeSwap(ctx context.Context, q Querier, live connectors.TableName) (*swapPlan, error) {
	p := &swapPlan{live: live}
	var relkind string
	var partition, typed, inherits, owned bool
	err := q.QueryRow(ctx, `
SELECT c.oid, c.relkind::text, c.relispartition, c.reloftype <> 0,
       EXISTS (SELECT FROM pg_inherits WHERE inhrelid = c.oid OR inhparent = c.oid),
       pg_has_role(c.relowner, 'USAGE')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2`, live.Schema, live.Name).Scan(&p.liveOID, &relkind, &partition, &typed, &inherits, &owned)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("swap %s: %w", live, ErrTableNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("swap %s: %w", live, err)
	}
	switch {
	case relkind == "p":
		p.problem("it is a partitioned table")
	case relkind != "r":
		return nil, fmt.Errorf("swap %s: %w: it is %s, not a table", live, ErrTableNotFound, relkindName(relkind))
	case partition:
		p.problem("it is a partition")
	case inherits:
		p.problem("it has inheritance parents or children")
	case typed:
		p.problem("it is a typed table (CREATE TABLE ... OF)")
	}
	if !owned {
		p.problem("the current user does not own it")
	}
	if err := p.walk(ctx, q); err != nil {
		return nil, fmt.Errorf("swap %s: list dependent objects: %w", live, err)
	}
	if err := p.checkRelations(ctx, q); err != nil {
		return nil, fmt.Errorf("swap %s: %w", live, err)
	}
	return p, nil
}

// dependent is a pg_depend entry on a relation or its row type, with what
// classify needs to know about the dependent object.
type dependent struct {
	objid                         uint32
	class, desc, relkind          string
	indrel, evClass               uint32
	rule, evKind, contype         string
	conrel, confrel               uint32
	tgrel                         uint32
	tgInternal                    bool
	tgContype                     string
	tgConrel, tgConfrel           uint32
	polrel, adrel, stxrel, typrel uint32
	elemTyprel                    uint32
}

// dependentsSQL lists the objects that depend on relation $1 or on its
// row type (or that type's array type).
const dependentsSQL = `
WITH refs AS (
	SELECT 'pg_class'::regclass AS refclassid, $1::oid AS refobjid
	UNION ALL SELECT 'pg_type'::regclass, t.oid FROM pg_type t WHERE t.typrelid = $1
	UNION ALL SELECT 'pg_type'::regclass, t.typarray FROM pg_type t WHERE t.typrelid = $1 AND t.typarray <> 0
), deps AS (
	SELECT DISTINCT d.classid, d.objid, d.objsubid FROM pg_depend d JOIN refs USING (refclassid, refobjid)
	WHERE d.deptype IN ('n', 'a', 'i')
)
SELECT d.classid::regclass::text, d.objid, pg_describe_object(d.classid, d.objid, d.objsubid),
       coalesce(c.relkind::text, ''), coalesce(i.indrelid, 0),
       coalesce(rw.ev_class, 0), coalesce(rw.rulename::text, ''), coalesce(rc.relkind::text, ''),
       coalesce(con.contype::text, ''), coalesce(con.conrelid, 0), coalesce(con.confrelid, 0),
       coalesce(tg.tgrelid, 0), coalesce(tg.tgisinternal, false),
       coalesce(tc.contype::text, ''), coalesce(tc.conrelid, 0), coalesce(tc.confrelid, 0),
       coalesce(pol.polrelid, 0), coalesce(ad.adrelid, 0), coalesce(st.stxrelid, 0),
       coalesce(ty.typrelid, 0), coalesce(ety.typrelid, 0)
FROM deps d
LEFT JOIN pg_class c ON d.classid = 'pg_class'::regclass AND c.oid = d.objid
LEFT JOIN pg_index i ON i.indexrelid = c.oid
LEFT JOIN pg_rewrite rw ON d.classid = 'pg_rewrite'::regclass AND rw.oid = d.objid
LEFT JOIN pg_class rc ON rc.oid = rw.ev_class
LEFT JOIN pg_constraint con ON d.classid = 'pg_constraint'::regclass AND con.oid = d.objid
LEFT JOIN pg_trigger tg ON d.classid = 'pg_trigger'::regclass AND tg.oid = d.objid
LEFT JOIN pg_constraint tc ON tc.oid = tg.tgconstraint
LEFT JOIN pg_policy pol ON d.classid = 'pg_policy'::regclass AND pol.oid = d.objid
LEFT JOIN pg_attrdef ad ON d.classid = 'pg_attrdef'::regclass AND ad.oid = d.objid
LEFT JOIN pg_statistic_ext st ON d.classid = 'pg_statistic_ext'::regclass AND st.oid = d.objid
LEFT JOIN pg_type ty ON d.classid = 'pg_type'::regclass AND ty.oid = d.objid
LEFT JOIN pg_type ety ON ety.oid = ty.typelem
ORDER BY 2`

// walk finds the views that depend on live, directly or through other
// views, orders them, and records the dependents it cannot recreate.
func (p *swapPlan) walk(ctx context.Context, q Querier) error {
	uses := make(map[uint32][]uint32) // view -> the relations of the walk it depends on
	seen := map[uint32]bool{p.liveOID: true}
	var found []uint32
	for queue := []uint32{p.liveOID}; len(queue) > 0; queue = queue[1:] {
		x := queue[0]
		rows, err := q.Query(ctx, dependentsSQL, x)
		if err != nil {
			return err
		}
		deps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (dependent, error) {
			var d dependent
			err := r.Scan(&d.class, &d.objid, &d.desc, &d.relkind, &d.indrel, &d.evClass, &d.rule, &d.evKind,
				&d.contype, &d.conrel, &d.confrel, &d.tgrel, &d.tgInternal, &d.tgContype, &d.tgConrel, &d.tgConfrel,
				&d.polrel, &d.adrel, &d.stxrel, &d.typrel, &d.elemTyprel)
			return d, err
		})
		if err != nil {
			return err
		}
		for _, d := range deps {
			v := p.classify(x, d)
			if v == 0 {
				continue
			}
			if !slices.Contains(uses[v], x) {
				uses[v] = append(uses[v], x)
			}
			if !seen[v] {
				seen[v] = true
				found = append(found, v)
				queue = append(queue, v)
			}
		}
	}
	// Creation order: each view after the views it uses.
	done := make(map[uint32]bool)
	var order []uint32
	var visit func(v uint32)
	visit = func(v uint32) {
		if done[v] {
			return
		}
		done[v] = true
		for _, u := range uses[v] {
			if u != p.liveOID {
				visit(u)
			}
		}
		order = append(order, v)
	}
	for _, v := range found {
		visit(v)
	}
	for _, v := range order {
		p.views = append(p.views, viewRef{oid: v})
	}
	return nil
}

// classify decides what becomes of d, a dependent of relation x (live or
// a view of the walk), when live is swapped: it returns the OID of a view
// to recreate, or 0 for an object that goes with its relation and is
// rebuilt or carried over elsewhere, or that is a problem (recorded).
func (p *swapPlan) classify(x uint32, d dependent) uint32 {
	isLive := x == p.liveOID
	switch d.class {
	case "pg_class":
		switch d.relkind {
		case "i", "I":
			if d.indrel == x { // live's: BuildShadowIndexes; a materialized view's: recreated
				return 0
			}
		case "t":
			return 0 // TOAST table
		case "S":
			if isLive { // identity or owned sequence, handled by SwapTable
				return 0
			}
		case "v", "m":
			return d.objid // a view column of x's row type
		}
	case "pg_rewrite":
		if d.rule == "_RETURN" && (d.evKind == "v" || d.evKind == "m") {
			if d.evClass == x {
				return 0 // x's own definition
			}
			return d.evClass
		}
	case "pg_type":
		if d.typrel == x || d.elemTyprel == x {
			return 0 // x's row type and its array type
		}
	case "pg_constraint":
		if d.conrel == x && isLive {
			return 0 // live's own: copied, rebuilt or re-added
		}
		if d.contype == "f" && d.confrel == p.liveOID {
			return 0 // a referencing foreign key, re-added
		}
	case "pg_trigger":
		if d.tgrel == x {
			return 0 // x's own: recreated, or internal to a constraint
		}
		if d.tgInternal && d.tgContype == "f" && (d.tgConrel == p.liveOID || d.tgConfrel == p.liveOID) {
			return 0 // part of a foreign key that is re-added
		}
	case "pg_policy":
		if d.polrel == x && isLive {
			return 0
		}
	case "pg_attrdef":
		if d.adrel == x && isLive {
			return 0
		}
	case "pg_statistic_ext":
		if d.stxrel == x {
			return 0
		}
	}
	p.problem("%s depends on it and cannot be recreated", d.desc)
	return 0
}

// checkRelations fills in the views' names and checks what must hold of
// live, its views and the tables its foreign keys involve.
func (p *swapPlan) checkRelations(ctx context.Context, q Querier) error {
	oids := make([]uint32, len(p.views))
	for i, v := range p.views {
		oids[i] = v.oid
	}
	rows, err := q.Query(ctx, `
SELECT c.oid, n.nspname::text, c.relname::text, c.relkind::text, quote_ident(pg_get_userbyid(c.relowner)),
       c.relpersistence = 't', pg_has_role(c.relowner, 'USAGE'),
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
       OR (pg_has_role(c.relowner, 'MEMBER') AND has_schema_privilege(c.relowner, c.relnamespace, 'CREATE')
           AND has_schema_privilege(c.relnamespace, 'CREATE'))
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = ANY($1)`, oids)
	if err != nil {
		return fmt.Errorf("describe dependent views: %w", err)
	}
	type viewInfo struct {
		ref                     viewRef
		temp, owned, restorable bool
	}
	infos, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (viewInfo, error) {
		var v viewInfo
		err := r.Scan(&v.ref.oid, &v.ref.name.Schema, &v.ref.name.Name, &v.ref.kind, &v.ref.owner, &v.temp, &v.owned, &v.restorable)
		return v, err
	})
	if err != nil {
		return fmt.Errorf("describe dependent views: %w", err)
	}
	for i := range p.views {
		k := slices.IndexFunc(infos, func(v viewInfo) bool { return v.ref.oid == p.views[i].oid })
		if k < 0 {
			return fmt.Errorf("describe dependent views: view %d vanished", p.views[i].oid)
		}
		v := infos[k]
		p.views[i] = v.ref
		what := "view " + v.ref.name.String()
		if v.ref.kind == "m" {
			what = "materialized " + what
		}
		switch {
		case v.temp:
			p.problem("temporary %s depends on it and cannot be recreated", what)
		case !v.owned:
			p.problem("%s depends on it and the current user does not own it", what)
		case !v.restorable:
			p.problem("%s depends on it and the current user cannot recreate it with its owner", what)
		}
	}
	rows, err = q.Query(ctx, `
SELECT pg_describe_object(d.classid, d.objid, 0), pg_describe_object(d.refclassid, d.refobjid, 0)
FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = ANY($1) AND d.deptype = 'e'
ORDER BY 1`, append(oids, p.liveOID))
	if err != nil {
		return fmt.Errorf("look up extension membership: %w", err)
	}
	var obj, ext string
	_, err = pgx.ForEachRow(rows, []any{&obj, &ext}, func() error {
		p.problem("%s belongs to %s", obj, ext)
		return nil
	})
	if err != nil {
		return fmt.Errorf("look up extension membership: %w", err)
	}
	rows, err = q.Query(ctx, `
SELECT DISTINCT n.nspname::text, c.relname::text, con.conrelid = $1, pg_has_role(c.relowner, 'USAGE'),
       has_table_privilege(c.oid, 'UPDATE, DELETE, TRUNCATE')
FROM pg_constraint con
JOIN pg_class c ON c.oid = CASE WHEN con.conrelid = $1 THEN con.confrelid ELSE con.conrelid END
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE con.contype = 'f' AND (con.conrelid = $1 OR con.confrelid = $1) AND c.oid <> $1
ORDER BY 1, 2`, p.liveOID)
	if err != nil {
		return fmt.Errorf("list tables related by foreign keys: %w", err)
	}
	var t connectors.TableName
	var parent, owned, lockable bool
	_, err = pgx.ForEachRow(rows, []any{&t.Schema, &t.Name, &parent, &owned, &lockable}, func() error {
		if parent {
			if lockable {
				p.parents = append(p.parents, t)
			}
		} else {
			p.children = append(p.children, t)
			if !owned {
				p.problem("table %s has a foreign key referencing it and the current user does not own it", t)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list tables related by foreign keys: %w", err)
	}
	return nil
}

// SwapTable replaces live by shadow inside tx, the caller's READ
// COMMITTED transaction, which the caller commits (or rolls back: then
// nothing happened). Other sessions see the old table until the commit and
// the new one after it; readers of live wait for its lock meanwhile (see
// below), never see it missing or empty. Not idempotent: once committed,
// shadow is gone, and a second call fails with ErrNoShadow, which is how a
// caller recognizes a swap committed before a crash.
//
// Before changing anything it runs CheckSwappable's checks (an error wraps
// ErrNotSwappable) and takes its locks: ACCESS EXCLUSIVE on the dependent
// views (the outermost first, as their readers lock them), on the tables
// whose foreign keys reference live, then on live and shadow; SHARE ROW
// EXCLUSIVE on the tables live's foreign keys reference. Lock order follows
// readers of views and writers of referencing tables, so that they wait
// rather than deadlock. SwapTable does not wait for locks with a timeout:
// set lock_timeout in tx for that (a long reader of live otherwise holds
// the swap, and every reader queued behind it, until it ends).
//
// Then, carrying over everything live has that shadow lacks:
//   - the views and materialized views that depend on live, directly or
//     through one another, are dropped and recreated with the same
//     definition (pg_get_viewdef), options, owner, grants, comments,
//     INSTEAD OF triggers, indexes and extended statistics; a materialized
//     view that was populated is refreshed, which runs its query;
//   - foreign keys of other tables that reference live are dropped and
//     re-added on the same table, with their names and options, NOT VALID
//     (no scan under the lock), except on a partitioned table (which
//     requires them valid); so are live's own foreign keys, self-references
//     included, re-added on the new table;
//   - live is renamed away, shadow takes its name, and the old table is
//     dropped (plain DROP, no CASCADE); the indexes BuildShadowIndexes made
//     are renamed back to live's index and constraint names (all must
//     exist: an error says to run BuildShadowIndexes otherwise);
//   - sequences owned by live's columns (serial) are handed to the new
//     table; identity sequences get the old ones' names and positions;
//   - live's owner (when the current user may set it), table and column
//     privileges, comments (table and column), storage parameters, replica
//     identity, row level security and policies, triggers (enabled state
//     included), extended statistics and CLUSTER index.
//
// What is not carried over: column statistics targets and options,
// security labels, publication membership (a problem for CheckSwappable),
// the grantor of a privilege (grants are re-issued by the current user),
// the owner of extended statistics. Planner statistics start empty:
// ANALYZE shadow before the swap.
//
// Readers: a statement that queued for the lock of live (or of a dependent
// view) while SwapTable held it looks the name up again once it gets the
// lock (Postgres notices the relation it waited for was dropped) and reads
// the new table, without error, with the simple and extended protocols,
// prepared statements and PL/pgSQL alike. Renaming the old table away
// before dropping it (as here) and dropping it first behave the same. But
// Postgres DDL is not MVCC-safe: a REPEATABLE READ or SERIALIZABLE
// transaction whose snapshot was taken before shadow's rows were committed
// reads the new table without them (empty, if it began before the load).
//
// Deferred constraint checks that tx has pending on the tables involved
// make the ALTERs fail: run SET CONSTRAINTS ALL IMMEDIATE first if tx wrote
// to them. A missing shadow is an error wrapping ErrNoShadow; a missing
// live table one wrapping ErrTableNotFound.
func SwapTable(ctx context.Context, tx pgx.Tx, live, shadow connectors.TableName) (SwapReport, error) {
	var rep SwapReport
	if live == shadow || live.Schema != shadow.Schema {
		return rep, fmt.Errorf("swap %s: shadow %s must be another table of the same schema", live, shadow)
	}
	var isolation string
	if err := tx.QueryRow(ctx, "SELECT current_setting('transaction_isolation')").Scan(&isolation); err != nil {
		return rep, fmt.Errorf("swap %s: %w", live, err)
	}
	if isolation != "read committed" {
		return rep, fmt.Errorf("swap %s: the transaction must be READ COMMITTED, not %s", live, strings.ToUpper(isolation))
	}
	if _, err := tableOID(ctx, tx, shadow); err != nil {
		return rep, shadowError(live, shadow, err)
	}
	p, err := analyzeSwap(ctx, tx, live)
	if err != nil {
		return rep, err
	}
	if err := p.err(); err != nil {
		return rep, err
	}
	if err := lockForSwap(ctx, tx, p, nil); err != nil {
		return rep, err
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE "+live.Quoted()+" IN ACCESS EXCLUSIVE MODE"); err != nil {
		return rep, fmt.Errorf("swap %s: lock it: %w", live, err)
	}
	// The live table is locked: what depends on it can no longer change.
	// Look again, and lock what appeared meanwhile.
	shadowOID, err := tableOID(ctx, tx, shadow)
	if err != nil {
		return rep, shadowError(live, shadow, err)
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE "+shadow.Quoted()+" IN ACCESS EXCLUSIVE MODE"); err != nil {
		return rep, fmt.Errorf("swap %s: lock %s: %w", live, shadow, err)
	}
	locked := p
	if p, err = analyzeSwap(ctx, tx, live); err != nil {
		return rep, err
	}
	if err := p.err(); err != nil {
		return rep, err
	}
	if err := lockForSwap(ctx, tx, p, locked); err != nil {
		return rep, err
	}

	c, err := captureSwap(ctx, tx, p, shadow, shadowOID)
	if err != nil {
		return rep, fmt.Errorf("swap %s: %w", live, err)
	}
	run := func(what, sql string) error {
		if _, err := tx.Exec(ctx, sql); err != nil {
			return fmt.Errorf("swap %s: %s: %w", live, what, err)
		}
		return nil
	}

	for i := len(c.views) - 1; i >= 0; i-- {
		v := c.views[i]
		if err := run("drop view "+v.name.String(), "DROP "+v.keyword()+" "+v.name.Quoted()); err != nil {
			return rep, err
		}
	}
	for _, f := range c.childFKs {
		if err := run("drop foreign key "+f.Name+" of "+f.Table.String(), f.DropDDL()); err != nil {
			return rep, err
		}
	}
	if c.rel.owner != c.shadowOwner && c.rel.canOwn {
		if err := run("give "+shadow.String()+" to "+c.rel.owner, "ALTER TABLE "+shadow.Quoted()+" OWNER TO "+c.rel.owner); err != nil {
			return rep, err
		}
	}
	for _, s := range c.ownedSeqs {
		if err := run("hand sequence "+s.seq+" to "+shadow.String(),
			"ALTER SEQUENCE "+s.seq+" OWNED BY "+shadow.Quoted()+"."+quoteIdent(s.column)); err != nil {
			return rep, err
		}
	}
	old := connectors.TableName{Schema: live.Schema, Name: c.oldName}
	if err := run("rename it away", "ALTER TABLE "+live.Quoted()+" RENAME TO "+quoteIdent(c.oldName)); err != nil {
		return rep, err
	}
	if err := run("rename "+shadow.String()+" to "+live.Name, "ALTER TABLE "+shadow.Quoted()+" RENAME TO "+quoteIdent(live.Name)); err != nil {
		return rep, err
	}
	if err := run("drop the old table", "DROP TABLE "+old.Quoted()); err != nil {
		return rep, err
	}

	for _, x := range c.indexes {
		sql := "ALTER INDEX " + pgx.Identifier{live.Schema, x.temp}.Sanitize() + " RENAME TO " + quoteIdent(x.Name)
		if x.Constraint {
			sql = "ALTER TABLE " + live.Quoted() + " RENAME CONSTRAINT " + quoteIdent(x.temp) + " TO " + quoteIdent(x.Name)
		}
		if err := run("rename index "+x.temp+" back to "+x.Name, sql); err != nil {
			return rep, err
		}
	}
	for _, s := range c.identity {
		if err := run("rename sequence "+s.seq+" to "+s.oldName, "ALTER SEQUENCE "+s.seq+" RENAME TO "+quoteIdent(s.oldName)); err != nil {
			return rep, err
		}
		if s.last != nil {
			if _, err := tx.Exec(ctx, "SELECT setval($1::oid::regclass, $2)", s.oid, *s.last); err != nil {
				return rep, fmt.Errorf("swap %s: set sequence %s: %w", live, s.oldName, err)
			}
		}
	}
	have, err := readACL(ctx, tx, live)
	if err != nil {
		return rep, fmt.Errorf("swap %s: read privileges of the new table: %w", live, err)
	}
	for _, s := range c.tableDDL(live, have) {
		if err := run("restore table properties", s); err != nil {
			return rep, err
		}
	}
	for _, f := range append(c.ownFKs, c.childFKs...) {
		add := "ALTER TABLE " + f.Table.Quoted() + " ADD CONSTRAINT " + quoteIdent(f.Name) + " " + f.Definition
		notValid := !f.partitioned && !strings.HasSuffix(f.Definition, " NOT VALID")
		if notValid {
			add += " NOT VALID"
		}
		if err := run("re-add foreign key "+f.Name+" of "+f.Table.String(), add); err != nil {
			return rep, err
		}
		if f.comment != "" {
			if err := run("comment on foreign key "+f.Name, "COMMENT ON CONSTRAINT "+quoteIdent(f.Name)+" ON "+
				f.Table.Quoted()+" IS "+quoteLiteral(f.comment)); err != nil {
				return rep, err
			}
		}
		if notValid && f.validated {
			rep.ForeignKeys = append(rep.ForeignKeys, f.Table.String()+"."+f.Name)
			rep.Validate = append(rep.Validate, "ALTER TABLE "+f.Table.Quoted()+" VALIDATE CONSTRAINT "+quoteIdent(f.Name))
		}
	}
	for _, s := range c.rel.objectDDL(live, true) {
		if err := run("restore triggers, policies and statistics", s); err != nil {
			return rep, err
		}
	}
	for _, v := range c.views {
		for _, s := range v.createDDL(c.currentUser) {
			if err := run("recreate view "+v.name.String(), s); err != nil {
				return rep, err
			}
		}
		var have []privItem
		if have, err = readACL(ctx, tx, v.name); err != nil {
			return rep, fmt.Errorf("swap %s: read privileges of view %s: %w", live, v.name, err)
		}
		for _, s := range v.rel.accessDDL(v.name, have, nil) {
			if err := run("restore privileges of view "+v.name.String(), s); err != nil {
				return rep, err
			}
		}
		rep.Views = append(rep.Views, v.name.String())
	}
	return rep, nil
}

// shadowError turns a failed look-up of the shadow table into SwapTable's
// error.
func shadowError(live, shadow connectors.TableName, err error) error {
	if errors.Is(err, ErrTableNotFound) {
		return fmt.Errorf("swap %s: %w: %s", live, ErrNoShadow, shadow)
	}
	return fmt.Errorf("swap %s: look up shadow table: %w", live, err)
}

// lockForSwap locks p's views (the outermost first) and referencing tables
// in ACCESS EXCLUSIVE mode and the tables live references in SHARE ROW
// EXCLUSIVE mode, but not those of done, locked before.
func lockForSwap(ctx context.Context, tx pgx.Tx, p, done *swapPlan) error {
	for i := len(p.views) - 1; i >= 0; i-- {
		v := p.views[i]
		if done != nil && slices.ContainsFunc(done.views, func(w viewRef) bool { return w.oid == v.oid }) {
			continue
		}
		// LOCK TABLE on a view also locks the tables it reads; a no-op
		// ALTER takes the view's lock alone.
		if _, err := tx.Exec(ctx, "ALTER "+viewKeyword(v.kind)+" "+v.name.Quoted()+" OWNER TO "+v.owner); err != nil {
			return fmt.Errorf("swap %s: lock view %s: %w", p.live, v.name, err)
		}
	}
	lock := func(tables []connectors.TableName, mode string, skip []connectors.TableName) error {
		var names []string
		for _, t := range tables {
			if !slices.Contains(skip, t) {
				names = append(names, t.Quoted())
			}
		}
		if len(names) == 0 {
			return nil
		}
		if _, err := tx.Exec(ctx, "LOCK TABLE "+strings.Join(names, ", ")+" IN "+mode+" MODE"); err != nil {
			return fmt.Errorf("swap %s: lock tables related by foreign keys: %w", p.live, err)
		}
		return nil
	}
	var children, parents []connectors.TableName
	if done != nil {
		children, parents = done.children, done.parents
	}
	if err := lock(p.children, "ACCESS EXCLUSIVE", children); err != nil {
		return err
	}
	return lock(p.parents, "SHARE ROW EXCLUSIVE", parents)
}

func viewKeyword(kind string) string {
	if kind == "m" {
		return "MATERIALIZED VIEW"
	}
	return "VIEW"
}

// privItem is one privilege of an ACL: of the relation, or of one of its
// columns.
type privItem struct {
	column    string // "" for the relation
	grantee   string // quoted role name, or PUBLIC
	priv      string // SELECT, INSERT...
	grantable bool
}

// readACL returns the privileges on rel and its columns, the owner's
// implicit ones included.
func readACL(ctx context.Context, q Querier, rel connectors.TableName) ([]privItem, error) {
	rows, err := q.Query(ctx, `
SELECT '', coalesce(quote_ident(r.rolname), 'PUBLIC'), a.privilege_type, a.is_grantable
FROM pg_class c CROSS JOIN LATERAL aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
LEFT JOIN pg_roles r ON r.oid = a.grantee
WHERE c.oid = $1::regclass
UNION ALL
SELECT at.attname::text, coalesce(quote_ident(r.rolname), 'PUBLIC'), a.privilege_type, a.is_grantable
FROM pg_attribute at CROSS JOIN LATERAL aclexplode(at.attacl) a
LEFT JOIN pg_roles r ON r.oid = a.grantee
WHERE at.attrelid = $1::regclass AND at.attnum > 0 AND NOT at.attisdropped
ORDER BY 1, 2, 3`, rel.Quoted())
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (privItem, error) {
		var p privItem
		return p, r.Scan(&p.column, &p.grantee, &p.priv, &p.grantable)
	})
}

type triggerDef struct{ name, def, enabled, comment string }

type statDef struct{ name, def, comment string } // name qualified and quoted

// relState is what SwapTable carries over from a relation (the live table
// or a view) to its replacement.
type relState struct {
	owner   string // quoted role name
	canOwn  bool   // the current user may give a relation to owner
	comment *string
	// colComments are column names and comments, in column order.
	colComments          [][2]string
	acl                  []privItem
	options              string // WITH/SET clause body, "" for none
	replident, replIndex string
	rls, forceRLS        bool
	populated            bool
	viewDef              string
	triggers             []triggerDef
	policies             []string // statements: CREATE POLICY, COMMENT ON POLICY
	stats                []statDef
}

// captureRel reads rel's relState (OID oid).
func captureRel(ctx context.Context, q Querier, rel connectors.TableName, oid uint32) (relState, error) {
	var s relState
	var opts []string
	err := q.QueryRow(ctx, `
SELECT quote_ident(pg_get_userbyid(c.relowner)),
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
       OR (pg_has_role(c.relowner, 'MEMBER') AND has_schema_privilege(c.relowner, c.relnamespace, 'CREATE')),
       obj_description(c.oid, 'pg_class'),
       coalesce(c.reloptions, '{}') || ARRAY(SELECT 'toast.' || o FROM unnest(t.reloptions) o),
       c.relreplident::text,
       coalesce((SELECT ic.relname::text FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
                 WHERE i.indrelid = c.oid AND i.indisreplident), ''),
       c.relrowsecurity, c.relforcerowsecurity, c.relispopulated,
       CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid, true) ELSE '' END
FROM pg_class c LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
WHERE c.oid = $1`, oid).Scan(&s.owner, &s.canOwn, &s.comment, &opts, &s.replident, &s.replIndex,
		&s.rls, &s.forceRLS, &s.populated, &s.viewDef)
	if err != nil {
		return s, fmt.Errorf("describe %s: %w", rel, err)
	}
	if s.options, err = withOptions(opts); err != nil {
		return s, fmt.Errorf("describe %s: %w", rel, err)
	}
	s.viewDef = strings.TrimSuffix(strings.TrimSpace(s.viewDef), ";")
	if s.acl, err = readACL(ctx, q, rel); err != nil {
		return s, fmt.Errorf("read privileges of %s: %w", rel, err)
	}
	rows, err := q.Query(ctx, `
SELECT a.attname::text, d.description
FROM pg_attribute a
JOIN pg_description d ON d.objoid = a.attrelid AND d.classoid = 'pg_class'::regclass AND d.objsubid = a.attnum
WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum`, oid)
	if err != nil {
		return s, fmt.Errorf("read column comments of %s: %w", rel, err)
	}
	if s.colComments, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) ([2]string, error) {
		var c [2]string
		return c, r.Scan(&c[0], &c[1])
	}); err != nil {
		return s, fmt.Errorf("read column comments of %s: %w", rel, err)
	}
	rows, err = q.Query(ctx, `
SELECT t.tgname::text, pg_get_triggerdef(t.oid), t.tgenabled::text, coalesce(obj_description(t.oid, 'pg_trigger'), '')
FROM pg_trigger t WHERE t.tgrelid = $1 AND NOT t.tgisinternal
ORDER BY t.tgname`, oid)
	if err != nil {
		return s, fmt.Errorf("read triggers of %s: %w", rel, err)
	}
	if s.triggers, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (triggerDef, error) {
		var t triggerDef
		return t, r.Scan(&t.name, &t.def, &t.enabled, &t.comment)
	}); err != nil {
		return s, fmt.Errorf("read triggers of %s: %w", rel, err)
	}
	rows, err = q.Query(ctx, `
SELECT quote_ident(n.nspname) || '.' || quote_ident(s.stxname), pg_get_statisticsobjdef(s.oid),
       coalesce(obj_description(s.oid, 'pg_statistic_ext'), '')
FROM pg_statistic_ext s JOIN pg_namespace n ON n.oid = s.stxnamespace
WHERE s.stxrelid = $1 ORDER BY s.stxname`, oid)
	if err != nil {
		return s, fmt.Errorf("read extended statistics of %s: %w", rel, err)
	}
	if s.stats, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (statDef, error) {
		var d statDef
		return d, r.Scan(&d.name, &d.def, &d.comment)
	}); err != nil {
		return s, fmt.Errorf("read extended statistics of %s: %w", rel, err)
	}
	rows, err = q.Query(ctx, `
SELECT pol.polname::text, pol.polpermissive, pol.polcmd::text,
       ARRAY(SELECT CASE WHEN r = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(r)) END FROM unnest(pol.polroles) r),
       coalesce(pg_get_expr(pol.polqual, pol.polrelid), ''), coalesce(pg_get_expr(pol.polwithcheck, pol.polrelid), ''),
       coalesce(obj_description(pol.oid, 'pg_policy'), '')
FROM pg_policy pol WHERE pol.polrelid = $1 ORDER BY pol.polname`, oid)
	if err != nil {
		return s, fmt.Errorf("read policies of %s: %w", rel, err)
	}
	var name, cmd, using, check, comment string
	var permissive bool
	var roles []string
	_, err = pgx.ForEachRow(rows, []any{&name, &permissive, &cmd, &roles, &using, &check, &comment}, func() error {
		stmt := "CREATE POLICY " + quoteIdent(name) + " ON " + rel.Quoted()
		if !permissive {
			stmt += " AS RESTRICTIVE"
		}
		stmt += " FOR " + map[string]string{"r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE"}[cmd]
		if cmd == "*" {
			stmt += "ALL"
		}
		stmt += " TO " + strings.Join(roles, ", ")
		if using != "" {
			stmt += " USING (" + using + ")"
		}
		if check != "" {
			stmt += " WITH CHECK (" + check + ")"
		}
		s.policies = append(s.policies, stmt)
		if comment != "" {
			s.policies = append(s.policies, "COMMENT ON POLICY "+quoteIdent(name)+" ON "+rel.Quoted()+" IS "+quoteLiteral(comment))
		}
		return nil
	})
	if err != nil {
		return s, fmt.Errorf("read policies of %s: %w", rel, err)
	}
	return s, nil
}

// commentDDL sets the comments of rel (of kind "TABLE", "VIEW"...) and of
// its columns in cols (all when cols is nil).
func (s *relState) commentDDL(kind string, rel connectors.TableName, cols []string) []string {
	c := "NULL"
	if s.comment != nil {
		c = quoteLiteral(*s.comment)
	}
	out := []string{"COMMENT ON " + kind + " " + rel.Quoted() + " IS " + c}
	for _, cc := range s.colComments {
		if cols == nil || slices.Contains(cols, cc[0]) {
			out = append(out, "COMMENT ON COLUMN "+rel.Quoted()+"."+quoteIdent(cc[0])+" IS "+quoteLiteral(cc[1]))
		}
	}
	return out
}

// accessDDL turns the privileges of rel, have, into s.acl: REVOKEs and
// GRANTs for the relation, GRANTs for its columns in cols (all when cols
// is nil; rel is assumed to have no column privileges).
func (s *relState) accessDDL(rel connectors.TableName, have []privItem, cols []string) []string {
	type key struct{ grantee, priv string }
	haveRel := make(map[key]bool)
	for _, h := range have {
		if h.column == "" {
			haveRel[key{h.grantee, h.priv}] = h.grantable
		}
	}
	wantRel := make(map[key]bool)
	for _, w := range s.acl {
		if w.column == "" {
			wantRel[key{w.grantee, w.priv}] = w.grantable
		}
	}
	on := " ON TABLE " + rel.Quoted()
	var out []string
	for _, h := range have {
		if g, ok := wantRel[key{h.grantee, h.priv}]; h.column == "" && (!ok || g != h.grantable) {
			out = append(out, "REVOKE "+h.priv+on+" FROM "+h.grantee)
		}
	}
	for _, w := range s.acl {
		grant := ""
		switch g, ok := haveRel[key{w.grantee, w.priv}]; {
		case w.column == "" && (!ok || g != w.grantable):
			grant = "GRANT " + w.priv + on + " TO " + w.grantee
		case w.column != "" && (cols == nil || slices.Contains(cols, w.column)):
			grant = "GRANT " + w.priv + " (" + quoteIdent(w.column) + ")" + on + " TO " + w.grantee
		default:
			continue
		}
		if w.grantable {
			grant += " WITH GRANT OPTION"
		}
		out = append(out, grant)
	}
	return out
}

// objectDDL recreates on rel the triggers (with their enabled state on a
// table), policies and extended statistics s lists.
func (s *relState) objectDDL(rel connectors.TableName, table bool) []string {
	var out []string
	for _, t := range s.triggers {
		out = append(out, t.def)
		if state := map[string]string{"D": "DISABLE", "R": "ENABLE REPLICA", "A": "ENABLE ALWAYS"}[t.enabled]; table && state != "" {
			out = append(out, "ALTER TABLE "+rel.Quoted()+" "+state+" TRIGGER "+quoteIdent(t.name))
		}
		if t.comment != "" {
			out = append(out, "COMMENT ON TRIGGER "+quoteIdent(t.name)+" ON "+rel.Quoted()+" IS "+quoteLiteral(t.comment))
		}
	}
	out = append(out, s.policies...)
	for _, st := range s.stats {
		out = append(out, st.def)
		if st.comment != "" {
			out = append(out, "COMMENT ON STATISTICS "+st.name+" IS "+quoteLiteral(st.comment))
		}
	}
	return out
}

// viewState is a dependent view as SwapTable recreates it.
type viewState struct {
	viewRef
	rel     relState
	indexes []string // a materialized view's: CREATE INDEX, COMMENT ON INDEX
}

func (v *viewState) keyword() string { return viewKeyword(v.kind) }

// createDDL recreates v, without its privileges (accessDDL).
func (v *viewState) createDDL(currentUser string) []string {
	create := "CREATE " + v.keyword() + " " + v.name.Quoted()
	if v.rel.options != "" {
		create += " WITH (" + v.rel.options + ")"
	}
	create += " AS " + v.rel.viewDef
	if v.kind == "m" {
		create += " WITH NO DATA"
	}
	out := []string{create}
	if v.rel.owner != currentUser {
		out = append(out, "ALTER "+v.keyword()+" "+v.name.Quoted()+" OWNER TO "+v.rel.owner)
	}
	if v.kind == "m" && v.rel.populated {
		out = append(out, "REFRESH MATERIALIZED VIEW "+v.name.Quoted())
	}
	out = append(out, v.indexes...)
	out = append(out, v.rel.commentDDL(v.keyword(), v.name, nil)...)
	return append(out, v.rel.objectDDL(v.name, false)...)
}

// identitySeq is an identity sequence of the new table and the old one's
// name and position.
type identitySeq struct {
	seq     string // the new sequence, qualified and quoted
	oid     uint32 // the new sequence's
	oldName string
	last    *int64 // the old sequence's last value, nil if never used
}

// ownedSeq is a sequence owned by a column of live (serial).
type ownedSeq struct {
	seq    string // qualified and quoted
	column string // also a column of shadow
}

// swapCapture is everything SwapTable reads before it changes anything.
type swapCapture struct {
	rel         relState // the live table's
	shadowOwner string
	shadowCols  []string
	currentUser string
	oldName     string // a free name to rename live to before dropping it
	clusterOn   string
	indexes     []shadowIndex
	identity    []identitySeq
	ownedSeqs   []ownedSeq
	ownFKs      []foreignKey // live's own foreign keys, self-references included
	childFKs    []foreignKey // other tables' referencing live
	views       []viewState  // in creation order
}

// captureSwap reads what SwapTable needs, with an empty search_path so that
// definitions come with every name qualified; tx's search_path is restored
// after, unless tx failed.
func captureSwap(ctx context.Context, tx pgx.Tx, p *swapPlan, shadow connectors.TableName, shadowOID uint32) (c *swapCapture, err error) {
	var path string
	if err := tx.QueryRow(ctx, "SELECT current_setting('search_path')").Scan(&path); err != nil {
		return nil, fmt.Errorf("read search_path: %w", err)
	}
	if _, err := tx.Exec(ctx, "SELECT set_config('search_path', '', true)"); err != nil {
		return nil, fmt.Errorf("clear search_path: %w", err)
	}
	defer func() {
		if _, rerr := tx.Exec(ctx, "SELECT set_config('search_path', $1, true)", path); rerr != nil && err == nil {
			c, err = nil, fmt.Errorf("restore search_path: %w", rerr)
		}
	}()
	return capture(ctx, tx, p, shadow, shadowOID)
}

func capture(ctx context.Context, tx pgx.Tx, p *swapPlan, shadow connectors.TableName, shadowOID uint32) (*swapCapture, error) {
	live := p.live
	c := &swapCapture{}
	var err error
	if c.rel, err = captureRel(ctx, tx, live, p.liveOID); err != nil {
		return nil, err
	}
	err = tx.QueryRow(ctx, `
SELECT quote_ident(pg_get_userbyid(c.relowner)), quote_ident(current_user),
       ARRAY(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)
FROM pg_class c WHERE c.oid = $1`, shadowOID).Scan(&c.shadowOwner, &c.currentUser, &c.shadowCols)
	if err != nil {
		return nil, fmt.Errorf("describe %s: %w", shadow, err)
	}
	for k := 0; c.oldName == ""; k++ {
		name := suffixIdent(live.Name, fmt.Sprintf("_swapped%d", k))
		var taken bool
		err := tx.QueryRow(ctx, `
SELECT EXISTS (SELECT FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2)
    OR EXISTS (SELECT FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = $1 AND t.typname = $2)`,
			live.Schema, name).Scan(&taken)
		if err != nil {
			return nil, fmt.Errorf("find a free table name: %w", err)
		}
		if !taken {
			c.oldName = name
		}
	}

	if c.indexes, err = planShadowIndexes(ctx, tx, live, shadow, p.liveOID, shadowOID); err != nil {
		return nil, err
	}
	for _, x := range c.indexes {
		if !x.exists {
			return nil, fmt.Errorf("index %s has no copy on %s (the copy would be named %s): run BuildShadowIndexes first",
				x.Name, shadow, x.temp)
		}
		if x.clustered {
			c.clusterOn = x.Name
		}
	}

	rows, err := tx.Query(ctx, `
SELECT x.ns, x.ns::regclass::oid, os.relname::text, pg_sequence_last_value(os.oid)
FROM pg_attribute a
CROSS JOIN LATERAL (
	SELECT CASE WHEN EXISTS (SELECT FROM pg_attribute b WHERE b.attrelid = $2 AND b.attname = a.attname AND NOT b.attisdropped)
	            THEN pg_get_serial_sequence($3, a.attname) END AS ns,
	       pg_get_serial_sequence($4, a.attname)::regclass AS os) x
JOIN pg_class os ON os.oid = x.os
WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped AND a.attidentity <> '' AND x.ns IS NOT NULL
ORDER BY a.attnum`, p.liveOID, shadowOID, shadow.Quoted(), live.Quoted())
	if err != nil {
		return nil, fmt.Errorf("list identity sequences: %w", err)
	}
	if c.identity, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (identitySeq, error) {
		var s identitySeq
		return s, r.Scan(&s.seq, &s.oid, &s.oldName, &s.last)
	}); err != nil {
		return nil, fmt.Errorf("list identity sequences: %w", err)
	}
	rows, err = tx.Query(ctx, `
SELECT quote_ident(sn.nspname) || '.' || quote_ident(s.relname), a.attname::text
FROM pg_depend d
JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
JOIN pg_namespace sn ON sn.oid = s.relnamespace
JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.refobjid = $1 AND d.deptype = 'a'
  AND EXISTS (SELECT FROM pg_attribute b WHERE b.attrelid = $2 AND b.attname = a.attname AND NOT b.attisdropped)
ORDER BY 1`, p.liveOID, shadowOID)
	if err != nil {
		return nil, fmt.Errorf("list owned sequences: %w", err)
	}
	if c.ownedSeqs, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (ownedSeq, error) {
		var s ownedSeq
		return s, r.Scan(&s.seq, &s.column)
	}); err != nil {
		return nil, fmt.Errorf("list owned sequences: %w", err)
	}

	if c.ownFKs, err = readForeignKeys(ctx, tx, "con.conrelid = $1", p.liveOID); err != nil {
		return nil, fmt.Errorf("list foreign keys: %w", err)
	}
	if c.childFKs, err = readForeignKeys(ctx, tx, "con.confrelid = $1 AND con.conrelid <> $1 AND con.conparentid = 0", p.liveOID); err != nil {
		return nil, fmt.Errorf("list referencing foreign keys: %w", err)
	}

	for _, ref := range p.views {
		v := viewState{viewRef: ref}
		if v.rel, err = captureRel(ctx, tx, ref.name, ref.oid); err != nil {
			return nil, err
		}
		rows, err := tx.Query(ctx, `
SELECT pg_get_indexdef(i.indexrelid), quote_ident(n.nspname) || '.' || quote_ident(ic.relname),
       coalesce(obj_description(ic.oid, 'pg_class'), '')
FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_namespace n ON n.oid = ic.relnamespace
WHERE i.indrelid = $1 ORDER BY ic.relname`, ref.oid)
		if err != nil {
			return nil, fmt.Errorf("list indexes of %s: %w", ref.name, err)
		}
		var def, name, comment string
		_, err = pgx.ForEachRow(rows, []any{&def, &name, &comment}, func() error {
			v.indexes = append(v.indexes, def)
			if comment != "" {
				v.indexes = append(v.indexes, "COMMENT ON INDEX "+name+" IS "+quoteLiteral(comment))
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("list indexes of %s: %w", ref.name, err)
		}
		c.views = append(c.views, v)
	}
	return c, nil
}

// tableDDL restores on the new table, now named live, the properties of
// the old one: comments, storage parameters, replica identity, row level
// security, CLUSTER index, privileges (have: the new table's).
func (c *swapCapture) tableDDL(live connectors.TableName, have []privItem) []string {
	t := live.Quoted()
	out := c.rel.commentDDL("TABLE", live, c.shadowCols)
	if c.rel.options != "" {
		out = append(out, "ALTER TABLE "+t+" SET ("+c.rel.options+")")
	}
	switch c.rel.replident {
	case "f":
		out = append(out, "ALTER TABLE "+t+" REPLICA IDENTITY FULL")
	case "n":
		out = append(out, "ALTER TABLE "+t+" REPLICA IDENTITY NOTHING")
	case "i":
		out = append(out, "ALTER TABLE "+t+" REPLICA IDENTITY USING INDEX "+quoteIdent(c.rel.replIndex))
	}
	if c.rel.rls {
		out = append(out, "ALTER TABLE "+t+" ENABLE ROW LEVEL SECURITY")
	}
	if c.rel.forceRLS {
		out = append(out, "ALTER TABLE "+t+" FORCE ROW LEVEL SECURITY")
	}
	if c.clusterOn != "" {
		out = append(out, "ALTER TABLE "+t+" CLUSTER ON "+quoteIdent(c.clusterOn))
	}
	return append(out, c.rel.accessDDL(live, have, c.shadowCols)...)
}
