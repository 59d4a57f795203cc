package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/connectors"
)

// Staging tables.
//
// Each destination table gets a session-private staging table:
//
//	CREATE TEMP TABLE pg_temp._sluice_stage_N (<replicated columns>, _sluice_group int4)
//	    ON COMMIT DELETE ROWS
//
// created once per connection, by the first transaction that touches the
// table (when that one rolls back, so does the creation, and the next one
// creates it again), with the source's column types, so the source's
// binary values always load; moving them into the destination
// applies ordinary assignment casts. ON COMMIT DELETE ROWS empties it at
// commit (and a rollback discards its rows); Postgres then truncates every
// such table of the session at each commit that touched any temporary
// table, a small cost per mirrored table. How a flush uses it is in
// apply_flush.go.

// stageGroupColumn is the staging column holding a row's group number.
const stageGroupColumn = "_sluice_group"

var stageSeq atomic.Int64

const boolOID = 16

// tableState is the applier's view of one mirrored table.
type tableState struct {
	DestTable
	err error // invalid configuration: every batch touching the table fails

	// cols is the column list the staging table was built for (a copy of
	// Schema.Columns, which the stream may extend in place).
	cols   []connectors.Column
	pk     []string // Schema.PrimaryKey when staged
	keyIdx []int
	isKey  []bool
	// stage is the quoted staging table, "" until created.
	stage string
	// types are the staging column types (the source's).
	types []string
	// elemOID is, per column, the staging array element type OID when the
	// column is an array, else 0.
	elemOID []uint32
	// direct: every replicated column has the same type (and modifier) on
	// the destination as in staging, so rows can be copied straight in.
	direct bool
	// syncedType is the destination type of SyncedAtColumn.
	syncedType string

	red       reducer
	nextGroup int32

	// In the applier's open transaction: whether it touched the table, the
	// rows staged since the staging table was last emptied, and the
	// changes applied.
	used   bool
	staged int
	counts TableCounts
}

// stale reports whether Schema.Columns no longer matches the staging table.
func (ts *tableState) stale() bool {
	if ts.stage == "" || len(ts.cols) != len(ts.Schema.Columns) || !slices.Equal(ts.pk, ts.Schema.PrimaryKey) {
		return true
	}
	for i, c := range ts.Schema.Columns {
		if c.Name != ts.cols[i].Name || c.Type != ts.cols[i].Type {
			return true
		}
	}
	return false
}

// attr is one column of a relation as the catalog describes it.
type attr struct {
	typ    string // format_type
	typid  uint32
	typmod int32
	elem   uint32 // element type of an array type, else 0
}

// describeRel returns the columns of rel (a quoted name) by name; empty
// when rel does not exist.
func describeRel(ctx context.Context, conn *pgx.Conn, rel string) (map[string]attr, error) {
	rows, err := conn.Query(ctx, `
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.atttypid, a.atttypmod,
	CASE WHEN t.typcategory = 'A' THEN t.typelem ELSE 0 END
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`, rel)
	if err != nil {
		return nil, err
	}
	out := make(map[string]attr)
	var name string
	var at attr
	_, err = pgx.ForEachRow(rows, []any{&name, &at.typ, &at.typid, &at.typmod, &at.elem}, func() error {
		out[name] = at
		return nil
	})
	return out, err
}

// createStage builds a staging table for the current schema after checking
// that the destination has every column the applier writes. The caller drops
// the previous one.
func (ts *tableState) createStage(ctx context.Context, conn *pgx.Conn) error {
	cols := append([]connectors.Column(nil), ts.Schema.Columns...)
	dest, err := describeRel(ctx, conn, ts.Dest.Quoted())
	if err != nil {
		return fmt.Errorf("describe destination table %s: %w", ts.Dest, err)
	}
	if len(dest) == 0 {
		return fmt.Errorf("destination table %s does not exist: %w", ts.Dest, errTableShape)
	}
	for _, c := range cols {
		if _, ok := dest[c.Name]; !ok {
			return fmt.Errorf("destination table %s has no column %q: %w", ts.Dest, c.Name, errTableShape)
		}
	}
	for _, c := range []string{ts.SoftDeleteColumn, ts.SyncedAtColumn} {
		if _, ok := dest[c]; c != "" && !ok {
			return fmt.Errorf("destination table %s has no column %q: %w", ts.Dest, c, errTableShape)
		}
	}
	if c := ts.SoftDeleteColumn; c != "" && dest[c].typid != boolOID {
		return fmt.Errorf("soft delete column %q of %s is %s, not boolean", c, ts.Dest, dest[c].typ)
	}

	name := fmt.Sprintf("_sluice_stage_%d", stageSeq.Add(1))
	stage := pgx.Identifier{"pg_temp", name}.Sanitize()
	var b strings.Builder
	b.WriteString("CREATE TEMP TABLE " + pgx.Identifier{name}.Sanitize() + " (")
	types := make([]string, len(cols))
	for i, c := range cols {
		types[i] = c.Type
		if types[i] == "" {
			types[i] = dest[c.Name].typ
		}
		b.WriteString(ident(c.Name) + " " + types[i] + ", ")
	}
	b.WriteString(stageGroupColumn + " int4) ON COMMIT DELETE ROWS")
	if _, err := conn.Exec(ctx, b.String()); err != nil {
		return fmt.Errorf("create staging table for %s: %w", ts.Dest, err)
	}
	staged, err := describeRel(ctx, conn, stage)
	if err != nil {
		return fmt.Errorf("describe staging table for %s: %w", ts.Dest, err)
	}
	elem := make([]uint32, len(cols))
	// The values load into the destination as they are when every column
	// has the staging (source) type there too.
	direct := true
	for i, c := range cols {
		st, dt := staged[c.Name], dest[c.Name]
		elem[i] = st.elem
		direct = direct && st.typid == dt.typid && st.typmod == dt.typmod
	}
	ts.cols, ts.types, ts.stage, ts.elemOID, ts.direct = cols, types, stage, elem, direct
	ts.syncedType = ""
	if ts.SyncedAtColumn != "" {
		ts.syncedType = dest[ts.SyncedAtColumn].typ
	}
	ts.initKeys()
	return nil
}

// readRow returns, for the columns need of the destination row with key
// keyVals, their values in the staging (source) types, binary. ok is false
// when the row does not exist.
func (ts *tableState) readRow(ctx context.Context, conn *pgx.Conn, keyVals []connectors.Value, need []int) (vals []connectors.Value, ok bool, err error) {
	var b strings.Builder
	b.WriteString("SELECT ")
	for j, i := range need {
		if j > 0 {
			b.WriteString(", ")
		}
		b.WriteString("d." + ident(ts.cols[i].Name) + "::" + ts.types[i])
	}
	if len(need) == 0 {
		b.WriteString("1")
	}
	b.WriteString(" FROM " + ts.Dest.Quoted() + " d WHERE ")
	params := make([][]byte, len(ts.keyIdx))
	formats := make([]int16, len(ts.keyIdx))
	for j, i := range ts.keyIdx {
		if j > 0 {
			b.WriteString(" AND ")
		}
		fmt.Fprintf(&b, "d.%s = $%d::%s", ident(ts.cols[i].Name), j+1, ts.types[i])
		params[j] = keyVals[i].Data
		formats[j] = 1
	}
	res := conn.PgConn().ExecParams(ctx, b.String(), params, nil, formats, []int16{1}).Read()
	if res.Err != nil {
		return nil, false, fmt.Errorf("read row of %s: %w", ts.Dest, res.Err)
	}
	if len(res.Rows) == 0 {
		return nil, false, nil
	}
	vals = make([]connectors.Value, len(ts.cols))
	for j, i := range need {
		if d := res.Rows[0][j]; d == nil {
			vals[i] = connectors.Value{Kind: connectors.Null}
		} else {
			vals[i] = connectors.Value{Kind: connectors.Binary, Data: d}
		}
	}
	return vals, true, nil
}
