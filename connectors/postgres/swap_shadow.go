package postgres

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

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
// Around the swap, in its transaction: SetLockTimeout, CarrySoftDeleted,
// and RenameOwned for a live table that is gone; after it,
// ValidateForeignKeys (swap_steps.go). The truncate strategy uses
// SaveObjects, EmptyTable and RestoreSaved instead (truncate.go).

// ErrNoShadow is wrapped by SwapTable's and BuildShadowIndexes' error when
// the shadow table does not exist: after a crash, the swap was either
// committed (the shadow is gone) or never happened. It is
// connectors.ErrShadowLost, so errors.Is matches either name.
var ErrNoShadow = connectors.ErrShadowLost

// ErrNotSwappable is wrapped by CheckSwappable's and SwapTable's error when
// the table has something SwapTable cannot carry over to the new table (a
// dependent object it cannot recreate faithfully, partitioning...). The
// error lists what and says that the table was left as it was; the truncate
// strategy still works for such a table. It is connectors.ErrNotSwappable,
// so errors.Is matches either name.
var ErrNotSwappable = connectors.ErrNotSwappable

// maxIdentLen is the longest identifier Postgres keeps (NAMEDATALEN - 1),
// in bytes.
const maxIdentLen = 63

// tempSuffix marks the shadow table and its indexes' temporary names.
const tempSuffix = connectors.ShadowSuffix

// ShadowName returns the first name tried for the shadow table of t (see
// CreateOwned for the others): same schema, the name with "_resync"
// appended (connectors.ShadowName). When that exceeds 63 bytes the base
// name is cut at a character boundary to fit, and the result always
// differs from t's name. Pure.
func ShadowName(t connectors.TableName) connectors.TableName {
	return connectors.ShadowName(t, 0, maxIdentLen)
}

// suffixIdent appends suffix to base, cut to fit in maxIdentLen bytes
// (connectors.SuffixName). The result never equals base.
func suffixIdent(base, suffix string) string {
	return connectors.SuffixName(base, suffix, maxIdentLen)
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
// A name that is taken is an error (42P07 from Postgres): CreateShadow
// never drops or reuses a table; the resync flows use CreateOwnedShadow,
// which picks a free name and records the table as Sluice's own. It runs
// in a transaction of its own on conn. A live table that is missing, or is
// not an ordinary table, is an error wrapping ErrTableNotFound.
func CreateShadow(ctx context.Context, conn *pgx.Conn, live, shadow connectors.TableName) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error { return createShadow(ctx, tx, live, shadow) })
}

// createShadow is CreateShadow in tx.
func createShadow(ctx context.Context, tx pgx.Tx, live, shadow connectors.TableName) error {
	if live == shadow {
		return fmt.Errorf("create shadow table of %s: the shadow must have another name", live)
	}
	if live.Schema != shadow.Schema {
		return fmt.Errorf("create shadow table of %s: %s is in another schema", live, shadow)
	}
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
	// Build and Attach, set for a primary key or unique constraint, do what
	// Create does in two steps that keep the table readable: Build makes the
	// index alone (CREATE UNIQUE INDEX, which lets readers in), Attach then
	// turns it into the constraint (ADD CONSTRAINT ... USING INDEX, which
	// locks the table only for a moment: the primary key's columns are NOT
	// NULL already). RestoreIndex uses them.
	Build  string `json:"build,omitempty"`
	Attach string `json:"attach,omitempty"`
}

// RestoreIndex recreates ix on table unless it is there. Idempotent: after
// a crash between Build and Attach, it only attaches.
func RestoreIndex(ctx context.Context, db interface {
	Querier
	Execer
}, table connectors.TableName, ix IndexDef) error {
	var hasIndex, hasConstraint bool
	err := db.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL,
		EXISTS (SELECT FROM pg_constraint WHERE conrelid = $2::regclass AND conname = $3)`,
		pgx.Identifier{table.Schema, ix.Name}.Sanitize(), table.Quoted(), ix.Name).Scan(&hasIndex, &hasConstraint)
	if err != nil {
		return fmt.Errorf("look up index %s: %w", ix.Name, err)
	}
	steps := []string{ix.Create}
	switch {
	case ix.Build == "" && hasIndex:
		return nil
	case ix.Build != "" && hasConstraint:
		return nil
	case ix.Build != "" && hasIndex:
		steps = []string{ix.Attach}
	case ix.Build != "":
		steps = []string{ix.Build, ix.Attach}
	}
	for _, sql := range steps {
		if _, err := db.Exec(ctx, sql); err != nil {
			return fmt.Errorf("rebuild index %s on %s: %w", ix.Name, table, err)
		}
	}
	return nil
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
	indexDef            string // pg_get_indexdef, for a constraint's index
	tablespace          string // quoted; "" for the default
	deferTail           string // " DEFERRABLE [INITIALLY DEFERRED]" of a constraint
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
       coalesce(ic.reloptions, '{}'), coalesce(quote_ident(sp.spcname), ''), pg_get_indexdef(i.indexrelid)
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
		if !x.Constraint {
			continue
		}
		add := "ALTER TABLE " + table.Quoted() + " ADD CONSTRAINT " + quoteIdent(x.Name) + " "
		x.Create = add + x.def
		kind := map[string]string{"p": "PRIMARY KEY", "u": "UNIQUE"}[x.contype]
		if kind == "" {
			continue // an exclusion constraint cannot take an index built before it
		}
		x.Build = x.indexDef
		if x.tablespace != "" {
			x.Build += " TABLESPACE " + x.tablespace
		}
		x.Attach = add + kind + " USING INDEX " + quoteIdent(x.Name) + x.deferTail
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
		&x.comment, &x.conComment, &deferrable, &deferred, &pred, &opts, &spc, &x.indexDef); err != nil {
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
	x.tablespace, x.deferTail = spc, tail
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
	return buildShadowIndexes(ctx, conn, live, shadow, nil)
}

// buildShadowIndexes is BuildShadowIndexes with a fence: when not nil,
// each index's transaction calls fence(tx, false) before its statements
// and fence(tx, true) after them, just before it commits; an error rolls
// that index back and ends the build (see Destination.fencedBuild).
func buildShadowIndexes(ctx context.Context, conn *pgx.Conn, live, shadow connectors.TableName, fence func(tx pgx.Tx, lock bool) error) error {
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
			if fence != nil {
				if err := fence(tx, false); err != nil {
					return err
				}
			}
			for _, s := range stmts {
				if _, err := tx.Exec(ctx, s); err != nil {
					return err
				}
			}
			if fence != nil {
				return fence(tx, true)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("build copy %s of index %s on %s: %w", x.temp, x.Name, shadow, err)
		}
	}
	return nil
}
