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
	return swapTable(ctx, tx, live, shadow, 0, nil)
}

// SwapOwned is SwapTable with shadow, a temporary table Sluice recorded as
// its own (CreateOwnedShadow): once locked, the table at shadow.Name must
// still have the recorded OID, or the error wraps ErrNoShadow and nothing
// changed. The caller forgets the record (ForgetOwned) in tx.
func SwapOwned(ctx context.Context, tx pgx.Tx, shadow OwnedTable) (SwapReport, error) {
	return swapTable(ctx, tx, shadow.Live, shadow.Name, shadow.OID, nil)
}

// swapTable is SwapTable; a shadow whose OID is not wantOID (unless 0) is
// an error wrapping ErrNoShadow. With retire, the old table, renamed away,
// is handed to it instead of dropped.
func swapTable(ctx context.Context, tx pgx.Tx, live, shadow connectors.TableName, wantOID uint32,
	retire func(old connectors.TableName) error) (SwapReport, error) {
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
	if wantOID != 0 {
		// Locked: the name can no longer move to another table.
		if shadowOID, err = tableOID(ctx, tx, shadow); err != nil {
			return rep, shadowError(live, shadow, err)
		}
		if shadowOID != wantOID {
			return rep, fmt.Errorf("swap %s: %w: %s is not the table Sluice created (OID %d, recorded %d)", live, ErrNoShadow, shadow, shadowOID, wantOID)
		}
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
	if retire != nil {
		if err := retire(old); err != nil {
			return rep, fmt.Errorf("swap %s: %w", live, err)
		}
	} else if err := run("drop the old table", "DROP TABLE "+old.Quoted()); err != nil {
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
