package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sluicedb/sluice/connectors"
)

// Dependent is an object outside a set of tables that depends on one of
// them, so that a DROP TABLE without CASCADE of the set fails.
type Dependent struct {
	// Kind is "view", "materialized view", "rule", "foreign key" or
	// "inheriting table".
	Kind string
	// Name is the object as Postgres would quote it (a foreign key or a rule
	// is named with its table: "fk_name on schema.table").
	Name string
	// On is the table of the set it depends on, quoted.
	On string
}

// String renders d for messages: `view public.v depends on public.t`.
func (d Dependent) String() string { return d.Kind + " " + d.Name + " depends on " + d.On }

// Dependents lists the objects outside tables that depend on one of them:
// views, materialized views and rules that read a table, foreign keys of
// other tables that reference one, and tables that inherit from one. Objects
// among tables (a foreign key between two of them) are not listed: a DROP
// TABLE of all of them in one statement drops those too. Names of tables
// that do not exist are ignored. It only reads.
func Dependents(ctx context.Context, q Querier, tables []connectors.TableName) ([]Dependent, error) {
	schemas, names := make([]string, len(tables)), make([]string, len(tables))
	for i, t := range tables {
		schemas[i], names[i] = t.Schema, t.Name
	}
	rows, err := q.Query(ctx, `
WITH t AS (
	SELECT c.oid FROM pg_class c
	JOIN pg_namespace n ON n.oid = c.relnamespace
	JOIN unnest($1::text[], $2::text[]) AS x(s, r) ON n.nspname = x.s AND c.relname = x.r
	WHERE c.relkind IN ('r', 'p'))
SELECT DISTINCT kind, name, what FROM (
	SELECT CASE v.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' ELSE 'rule' END AS kind,
	       CASE WHEN v.relkind IN ('v', 'm') THEN format('%I.%I', vn.nspname, v.relname)
	            ELSE format('%I on %I.%I', rw.rulename, vn.nspname, v.relname) END AS name,
	       format('%I.%I', tn.nspname, tc.relname) AS what
	FROM pg_depend d
	JOIN pg_rewrite rw ON rw.oid = d.objid
	JOIN pg_class v ON v.oid = rw.ev_class
	JOIN pg_namespace vn ON vn.oid = v.relnamespace
	JOIN pg_class tc ON tc.oid = d.refobjid
	JOIN pg_namespace tn ON tn.oid = tc.relnamespace
	WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
	  AND d.refobjid IN (SELECT oid FROM t) AND rw.ev_class NOT IN (SELECT oid FROM t)
	UNION ALL
	SELECT 'foreign key', format('%I on %I.%I', con.conname, cn.nspname, cc.relname), format('%I.%I', tn.nspname, tc.relname)
	FROM pg_constraint con
	JOIN pg_class cc ON cc.oid = con.conrelid
	JOIN pg_namespace cn ON cn.oid = cc.relnamespace
	JOIN pg_class tc ON tc.oid = con.confrelid
	JOIN pg_namespace tn ON tn.oid = tc.relnamespace
	WHERE con.contype = 'f' AND con.confrelid IN (SELECT oid FROM t) AND con.conrelid NOT IN (SELECT oid FROM t)
	UNION ALL
	SELECT 'inheriting table', format('%I.%I', cn.nspname, cc.relname), format('%I.%I', tn.nspname, tc.relname)
	FROM pg_inherits i
	JOIN pg_class cc ON cc.oid = i.inhrelid
	JOIN pg_namespace cn ON cn.oid = cc.relnamespace
	JOIN pg_class tc ON tc.oid = i.inhparent
	JOIN pg_namespace tn ON tn.oid = tc.relnamespace
	WHERE i.inhparent IN (SELECT oid FROM t) AND i.inhrelid NOT IN (SELECT oid FROM t) AND NOT cc.relispartition
) d ORDER BY 3, 1, 2`, schemas, names)
	if err != nil {
		return nil, fmt.Errorf("list objects depending on the destination tables: %w", err)
	}
	deps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Dependent, error) {
		var d Dependent
		err := r.Scan(&d.Kind, &d.Name, &d.On)
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("list objects depending on the destination tables: %w", err)
	}
	return deps, nil
}

// DropTablesSQL returns one DROP TABLE IF EXISTS of every table, without
// CASCADE: foreign keys among the tables go with them, and an object
// outside the set that depends on one (see Dependents) makes it fail with
// 2BP01. "" when tables is empty.
func DropTablesSQL(tables []connectors.TableName) string {
	if len(tables) == 0 {
		return ""
	}
	q := make([]string, len(tables))
	for i, t := range tables {
		q[i] = t.Quoted()
	}
	return "DROP TABLE IF EXISTS " + strings.Join(q, ", ")
}

// ErrDropUncertain wraps a failure of DropSlotAndPublication's commit:
// the slot may be dropped (its drop is not transactional) while the
// publication is not.
var ErrDropUncertain = connectors.ErrTeardownUncertain

// DropSlotAndPublication drops the publication and then the slot, each if
// it exists, in one transaction on the source, after ending a walsender
// still using the slot. The slot's drop is not transactional, so it is the
// last statement before the commit: an error wrapping anything but
// ErrDropUncertain means both are as they were. Idempotent.
func DropSlotAndPublication(ctx context.Context, conn *pgx.Conn, slot, publication string) error {
	for attempt := 0; ; attempt++ {
		_, err := conn.Exec(ctx, `
SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL`, slot)
		if err != nil {
			return fmt.Errorf("drop replication slot %q: %w", slot, err)
		}
		tx, err := conn.Begin(ctx)
		if err != nil {
			return fmt.Errorf("drop replication slot %q: %w", slot, err)
		}
		if _, err := tx.Exec(ctx, "DROP PUBLICATION IF EXISTS "+quoteIdent(publication)); err != nil {
			_ = tx.Rollback(ctx)
			return fmt.Errorf("drop publication %q: %w", publication, err)
		}
		_, err = tx.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, slot)
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "55006" && attempt < 50 { // object_in_use: still active
			_ = tx.Rollback(ctx)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if err != nil {
			_ = tx.Rollback(ctx)
			return fmt.Errorf("drop replication slot %q: %w", slot, err)
		}
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("drop publication %q: %w: %w", publication, ErrDropUncertain, err)
		}
		return nil
	}
}
