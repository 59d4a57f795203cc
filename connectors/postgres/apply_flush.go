package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sluicedb/sluice/connectors"
)

// Flush: from a window's entries to set-based statements.
//
// The entries are binary-COPYed into the table's staging table, each row
// tagged with its group: the operation, the soft-delete flag to write, the
// set of columns it writes, and for upserts whether the key is fresh. Then
// one statement per group, in this order (see apply_reduce.go for why
// deletes go first):
//
//	delete            DELETE ... USING staging (soft: UPDATE ... SET deleted)
//	upsert, existing  UPDATE ... FROM staging; if it matched fewer rows than
//	                  it staged, then INSERT ... SELECT the missing ones
//	update            UPDATE ... FROM staging
//	upsert, fresh     COPY straight into the destination when the row is
//	                  complete and the destination's column types are the
//	                  staging ones, else a plain INSERT ... SELECT
//
// All groups touch distinct keys, so their order among themselves does not
// change the result. The split of upserts is only for speed: a plain COPY or
// INSERT is two to three times as fast as INSERT ... ON CONFLICT, and
// UPDATE ... FROM avoids the row lock ON CONFLICT DO UPDATE takes on every
// row. Fresh keys (first seen in the window as an insert, or as a moved
// row's new key) are absent from the destination unless the changes are a
// replay. When the fast path fails for any reason (a unique violation: a
// replay), the flush returns a *freshError and the applier re-runs the whole
// transaction in safe mode, where every upsert is INSERT ... ON CONFLICT (key) DO
// UPDATE, and which reports any other error for real. Round trips: the
// staging COPY, one multi-statement query, the direct COPY, and rarely a
// second query for missing-row inserts.
//
// Group numbers are never reused within a transaction, so a second flush of
// the same table (after a barrier, or the next Add of the transaction)
// needs no TRUNCATE of the staging table: statements filter on the group.
// But every statement scans the whole staging table, so once it holds
// truncateStageAt rows the next flush empties it first.

// truncateStageAt is how many staged rows make a flush truncate the
// staging table before staging more.
const truncateStageAt = 4096

// flushEnv is what flushes of one transaction share.
type flushEnv struct {
	conn *pgx.Conn
	// safe: upsert fresh keys with ON CONFLICT instead of plain inserts.
	safe bool
	// guarded: fast paths run under a savepoint (Applier.flush).
	guarded bool
	// now caches now() (the transaction's time) in binary, by type.
	now map[string][]byte
}

// nowIn returns the transaction's now() in the binary form of type typ.
func (env *flushEnv) nowIn(ctx context.Context, typ string) ([]byte, error) {
	if v, ok := env.now[typ]; ok {
		return v, nil
	}
	res := env.conn.PgConn().ExecParams(ctx, "SELECT now()::"+typ, nil, nil, nil, []int16{1}).Read()
	if res.Err != nil {
		return nil, fmt.Errorf("read transaction time: %w", res.Err)
	}
	if env.now == nil {
		env.now = make(map[string][]byte)
	}
	env.now[typ] = res.Rows[0][0]
	return res.Rows[0][0], nil
}

// freshError reports that a fast path for fresh keys failed; the
// transaction is then applied again in safe mode.
type freshError struct{ err error }

func (e *freshError) Error() string { return e.err.Error() }
func (e *freshError) Unwrap() error { return e.err }

// flushGroup is one set-based statement of a flush.
type flushGroup struct {
	id      int32
	op      opKind
	deleted bool
	fresh   bool   // opUpsert: applied as a plain insert
	known   []bool // columns the statement writes (opDelete: the key)
	rows    int64  // staged rows
}

// flush applies the table's pending entries and empties the window.
func (ts *tableState) flush(ctx context.Context, env *flushEnv) error {
	if ts.red.empty() {
		return nil
	}
	groups := make(map[string]*flushGroup)
	var order []*flushGroup
	staged := make([]stagedRow, 0, len(ts.red.entries))
	var direct []stagedRow
	gk := make([]byte, 0, 3+len(ts.cols))
	for i := range ts.red.entries {
		e := &ts.red.entries[i]
		fresh := e.op == opUpsert && e.fresh && !env.safe
		if fresh && ts.direct && !hasUnchanged(e.vals) {
			direct = append(direct, stagedRow{e: e})
			continue
		}
		gk = append(gk[:0], byte(e.op), boolByte(e.deleted), boolByte(fresh))
		for c := range ts.cols {
			gk = append(gk, boolByte(ts.writes(e, c)))
		}
		g := groups[string(gk)]
		if g == nil {
			g = &flushGroup{id: ts.nextGroup, op: e.op, deleted: e.deleted, fresh: fresh, known: make([]bool, len(ts.cols))}
			ts.nextGroup++
			for c := range ts.cols {
				g.known[c] = gk[3+c] == 1
			}
			groups[string(gk)] = g
			order = append(order, g)
		}
		g.rows++
		staged = append(staged, stagedRow{e: e, group: g})
	}
	n := len(ts.red.entries)
	if len(staged) > 0 && ts.staged >= truncateStageAt {
		if _, err := env.conn.Exec(ctx, "TRUNCATE "+ts.stage); err != nil {
			return fmt.Errorf("empty staging table of %s: %w", ts.Dest, err)
		}
		ts.staged = 0
	}
	if len(staged) > 0 {
		ts.staged += len(staged)
		if err := copyRows(ctx, env.conn.PgConn(), "COPY "+ts.stage+" FROM STDIN (FORMAT binary)", staged, ts.appendRow); err != nil {
			return fmt.Errorf("stage %d changes of %s: %w", len(staged), ts.Dest, err)
		}
	}
	if err := ts.runGroups(ctx, env, order, direct); err != nil {
		return fmt.Errorf("apply %d changes to %s: %w", n, ts.Dest, err)
	}
	ts.red.reset()
	return nil
}

// runGroups runs the statements of a flush's groups and copies the direct
// rows.
func (ts *tableState) runGroups(ctx context.Context, env *flushEnv, groups []*flushGroup, direct []stagedRow) error {
	// First round trip. counted[i] is the group whose UPDATE result i is,
	// or nil.
	var sql []string
	var counted []*flushGroup
	add := func(s string, g *flushGroup) {
		if s != "" {
			sql = append(sql, s)
			counted = append(counted, g)
		}
	}
	var fresh, later []*flushGroup
	for _, g := range groups {
		if g.op == opDelete {
			add(ts.deleteSQL(g), nil)
		}
	}
	for _, g := range groups {
		switch {
		case g.op == opUpsert && g.fresh:
			fresh = append(fresh, g)
		case g.op == opUpsert && env.safe:
			add(ts.insertSQL(g, insertUpsert), nil)
		case g.op == opUpsert:
			if s := ts.updateSQL(g); s != "" {
				add(s, g)
			} else { // nothing to update: insert what is missing
				later = append(later, g)
			}
		}
	}
	for _, g := range groups {
		if g.op == opUpdate {
			add(ts.updateSQL(g), nil)
		}
	}
	firstFresh := len(sql)
	for _, g := range fresh {
		add(ts.insertSQL(g, insertPlain), nil)
	}
	if len(sql) > 0 {
		results, err := env.conn.PgConn().Exec(ctx, strings.Join(sql, ";\n")).ReadAll()
		if err != nil {
			if completed(results) >= firstFresh {
				return &freshError{err}
			}
			return err
		}
		for i, r := range results {
			if g := counted[i]; g != nil && r.CommandTag.RowsAffected() < g.rows {
				later = append(later, g)
			}
		}
	}
	if len(direct) > 0 {
		if err := ts.copyDirect(ctx, env, direct); err != nil {
			return &freshError{err}
		}
	}
	if len(later) > 0 {
		sql = sql[:0]
		for _, g := range later {
			sql = append(sql, ts.insertSQL(g, insertMissing))
		}
		if _, err := env.conn.PgConn().Exec(ctx, strings.Join(sql, ";\n")).ReadAll(); err != nil {
			return err
		}
	}
	return nil
}

// completed counts the statements of a multi-statement query that ran.
func completed(results []*pgconn.Result) int {
	n := 0
	for _, r := range results {
		if r.Err == nil {
			n++
		}
	}
	return n
}

// copyDirect copies complete rows of fresh keys straight into the
// destination, with the soft-delete flag and synced-at time they get.
func (ts *tableState) copyDirect(ctx context.Context, env *flushEnv, rows []stagedRow) error {
	names := make([]string, 0, len(ts.cols)+2)
	for _, c := range ts.cols {
		names = append(names, ident(c.Name))
	}
	var now []byte
	if ts.SoftDeleteColumn != "" {
		names = append(names, ident(ts.SoftDeleteColumn))
	}
	if ts.SyncedAtColumn != "" {
		names = append(names, ident(ts.SyncedAtColumn))
		var err error
		if now, err = env.nowIn(ctx, ts.syncedType); err != nil {
			return err
		}
	}
	return copyRows(ctx, env.conn.PgConn(), "COPY "+ts.Dest.Quoted()+" ("+strings.Join(names, ", ")+") FROM STDIN (FORMAT binary)",
		rows, func(b []byte, r stagedRow) []byte { return ts.appendDirectRow(b, r, now) })
}

// writes reports whether entry e's statement writes (or, for a delete,
// matches on) column c.
func (ts *tableState) writes(e *entry, c int) bool {
	if e.op == opDelete {
		return ts.isKey[c]
	}
	return e.vals[c].Kind != connectors.Unchanged
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

func ident(s string) string { return pgx.Identifier{s}.Sanitize() }

// fromStage is the FROM/USING tail of a statement joining group g's staged
// rows to the destination rows d by key.
func (ts *tableState) fromStage(g *flushGroup) string {
	var b strings.Builder
	b.WriteString(ts.stage + " s WHERE s." + stageGroupColumn + " = " + strconv.Itoa(int(g.id)))
	for _, i := range ts.keyIdx {
		n := ident(ts.cols[i].Name)
		b.WriteString(" AND d." + n + " = s." + n)
	}
	return b.String()
}

// extraSet is the SET list for the soft-delete and synced-at columns.
func (ts *tableState) extraSet(deleted bool) []string {
	var set []string
	if ts.SoftDeleteColumn != "" {
		set = append(set, ident(ts.SoftDeleteColumn)+" = "+strconv.FormatBool(deleted))
	}
	if ts.SyncedAtColumn != "" {
		set = append(set, ident(ts.SyncedAtColumn)+" = now()")
	}
	return set
}

// deleteSQL deletes group g's keys, or with soft delete flags their rows.
func (ts *tableState) deleteSQL(g *flushGroup) string {
	if ts.SoftDeleteColumn == "" {
		return "DELETE FROM " + ts.Dest.Quoted() + " AS d USING " + ts.fromStage(g)
	}
	return "UPDATE " + ts.Dest.Quoted() + " AS d SET " + strings.Join(ts.extraSet(true), ", ") +
		" FROM " + ts.fromStage(g) + " AND d." + ident(ts.SoftDeleteColumn) + " IS NOT TRUE"
}

// updateSQL updates the existing rows of group g's keys with the columns
// the group writes; "" when there is nothing to set.
func (ts *tableState) updateSQL(g *flushGroup) string {
	var set []string
	for i, c := range ts.cols {
		if g.known[i] && !ts.isKey[i] {
			n := ident(c.Name)
			set = append(set, n+" = s."+n)
		}
	}
	set = append(set, ts.extraSet(g.deleted)...)
	if len(set) == 0 {
		return ""
	}
	return "UPDATE " + ts.Dest.Quoted() + " AS d SET " + strings.Join(set, ", ") + " FROM " + ts.fromStage(g)
}

// How insertSQL inserts.
type insertMode int

const (
	insertPlain   insertMode = iota // INSERT: fails on an existing key
	insertMissing                   // only the keys the destination lacks
	insertUpsert                    // ON CONFLICT (key) DO UPDATE
)

// insertSQL inserts group g's rows as mode says.
func (ts *tableState) insertSQL(g *flushGroup, mode insertMode) string {
	var names, vals, set, keys []string
	for i, c := range ts.cols {
		if !g.known[i] {
			continue
		}
		n := ident(c.Name)
		names = append(names, n)
		vals = append(vals, "s."+n)
		if !ts.isKey[i] {
			set = append(set, n+" = excluded."+n)
		}
	}
	for _, e := range ts.extraSet(g.deleted) {
		n, v, _ := strings.Cut(e, " = ")
		names = append(names, n)
		vals = append(vals, v)
		set = append(set, n+" = excluded."+n)
	}
	sql := "INSERT INTO " + ts.Dest.Quoted() + " AS d (" + strings.Join(names, ", ") + ") SELECT " +
		strings.Join(vals, ", ") + " FROM " + ts.stage + " s WHERE s." + stageGroupColumn + " = " + strconv.Itoa(int(g.id))
	if mode == insertPlain {
		return sql
	}
	var match []string
	for _, i := range ts.keyIdx {
		n := ident(ts.cols[i].Name)
		keys = append(keys, n)
		match = append(match, "x."+n+" = s."+n)
	}
	if mode == insertMissing {
		sql += " AND NOT EXISTS (SELECT FROM " + ts.Dest.Quoted() + " x WHERE " + strings.Join(match, " AND ") + ")"
	}
	sql += " ON CONFLICT (" + strings.Join(keys, ", ") + ") DO "
	if len(set) == 0 {
		return sql + "NOTHING"
	}
	return sql + "UPDATE SET " + strings.Join(set, ", ")
}

// truncateSQL is the statement for a source TRUNCATE: the destination is
// truncated too, or, with soft delete, every live row is marked deleted.
func (ts *tableState) truncateSQL() string {
	if ts.SoftDeleteColumn == "" {
		return "TRUNCATE " + ts.Dest.Quoted()
	}
	set := strings.Join(ts.extraSet(true), ", ")
	return "UPDATE " + ts.Dest.Quoted() + " SET " + set + " WHERE " + ident(ts.SoftDeleteColumn) + " IS NOT TRUE"
}
