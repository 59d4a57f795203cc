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
