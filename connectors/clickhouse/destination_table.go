package clickhouse

import (
	"context"
	"fmt"
	"strings"

	"github.com/sluicedb/sluice/connectors"
)

// PlanTable implements connectors.TablePlanner: it refuses a table
// CreateTableDDL cannot make of d (a type without a mapping, a sorting key
// ClickHouse cannot have, a column that clashes with Sluice's own), with
// an error naming the table and the column, and returns the notices of
// what differs from the source: sorting-key columns nullable in the source
// (made non-Nullable) and the source's generated columns (left out). No
// I/O.
func (d *Destination) PlanTable(t connectors.DestTable) ([]string, error) {
	if _, err := CreateTableDDL(t.Dest, t.Schema, d.info, tableOptions(t)); err != nil {
		return nil, fmt.Errorf("destination table %s cannot be made: %w", t.Dest, err)
	}
	var out []string
	if n := nullableKeyNotice(t.Schema, t.Source, d.SortsBy(t)); n != "" {
		out = append(out, n)
	}
	// A ClickHouse table does not get the source's generated columns.
	// Logical replication does not send their values, and a Postgres
	// expression is not a ClickHouse one, so Sluice leaves them out and
	// says so, naming each.
	for _, g := range t.Schema.Generated {
		from := ""
		if len(g.DependsOn) > 0 {
			from = " from " + strings.Join(quoteEach(g.DependsOn), ", ")
		}
		out = append(out, fmt.Sprintf("column %q of %s is generated on the source (as %s) and is not replicated to ClickHouse: "+
			"logical replication does not send generated columns, so %s has no column %q; compute it%s in your queries",
			g.Name, t.Source, g.Expression, t.Dest, g.Name, from))
	}
	return out, nil
}

// nullableKeyNotice is the notice for the columns of sorting key orderBy
// that are nullable in source table ts (see NullableKeyColumns), or ""
// when there are none.
func nullableKeyNotice(ts *connectors.TableSchema, table connectors.TableName, orderBy []string) string {
	cols := NullableKeyColumns(ts, orderBy)
	if len(cols) == 0 {
		return ""
	}
	return fmt.Sprintf("order_by column(s) %s of %s are nullable in the source, and ClickHouse sorting keys cannot be Nullable: "+
		"they are created non-Nullable, and a NULL the source sends is stored as the type's default (0, '', 1970-01-01, ...) "+
		"and reported as a warning in mirror_events", strings.Join(quoteEach(cols), ", "), table)
}

// quoteEach renders each name as a double-quoted string.
func quoteEach(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = fmt.Sprintf("%q", n)
	}
	return out
}

// SortsBy implements connectors.SortingKeys: d.OrderBy, or the primary
// key.
func (d *Destination) SortsBy(t connectors.DestTable) []string {
	if len(t.OrderBy) > 0 {
		return t.OrderBy
	}
	return t.Schema.PrimaryKey
}

// AddColumns implements connectors.SchemaFollower: it adds to t.Dest the
// columns of cols it lacks (AddMissingColumns; cols may be the table's
// full column list), each with the value src's rows that predate it read
// (ColumnReader.CurrentValues) as its DEFAULT, which the rows already there
// then read. A column without such a value, or whose value has no
// ClickHouse literal, reads NULL (or the type's zero): the event says so,
// and RESYNC TABLE loads the source's values. It returns one event line,
// none when nothing was added. src must be a connectors.ColumnReader.
// Idempotent.
func (d *Destination) AddColumns(ctx context.Context, src connectors.Source, t connectors.DestTable, cols []connectors.Column) ([]string, error) {
	cr, ok := src.(connectors.ColumnReader)
	if !ok {
		return nil, fmt.Errorf("add columns to %s: the source cannot read the values of existing rows (%T is not a column reader)", t.Dest, src)
	}
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name
	}
	existing, err := cr.CurrentValues(ctx, t.Source, names)
	if err != nil {
		return nil, err
	}
	added, skipped, err := AddMissingColumns(ctx, d.conn, d.info, t.Dest, cols, existing)
	if err != nil {
		return nil, tableFault(t.Source, err) // the table gone: the table's
	}
	if len(added) == 0 {
		return nil, nil
	}
	list := make([]string, len(added))
	for i, c := range added {
		list[i] = c.Name
		if _, ok := existing[c.Name]; !ok {
			list[i] += " (existing rows: NULL)"
		}
	}
	for _, s := range skipped {
		for i, c := range added {
			if c.Name == s.Column {
				list[i] = c.Name + " (existing rows: NULL or zero; " + s.Reason + ")"
			}
		}
	}
	return []string{fmt.Sprintf("%s gained column(s) %s; added on ClickHouse table %s", t.Source, strings.Join(list, ", "), t.Dest)}, nil
}

// TypeChangeError is CheckTables' error for a column whose type changed on
// the source: retrying cannot cure it; the user must resync.
type TypeChangeError struct {
	Mirror string
	Table  connectors.DestTable
	Column ChangedColumn
}

// Error says what changed and what to do.
// Unwrap makes the error match connectors.ErrTableChanged.
func (e *TypeChangeError) Unwrap() error { return connectors.ErrTableChanged }

func (e *TypeChangeError) Error() string {
	c := e.Column
	return fmt.Sprintf("column %q of %s changed type on the source to %s, which maps to ClickHouse %s, but %s has %s: "+
		"Sluice does not follow a column's type change; RESYNC MIRROR %s rebuilds the ClickHouse tables with the new types",
		c.Name, e.Table.Source, c.SourceType, c.Want, e.Table.Dest, c.Have, connectors.QuoteIdent(e.Mirror))
}

// CheckTables implements connectors.TableChecker. It fails with a
// *TypeChangeError when a column of a table has a ClickHouse type other
// than the one the source's current type maps to (ChangedColumns): Sluice
// does not follow a type change (writing the new values into the old
// column would truncate or misread them). It also marks the bytea columns
// of tables an older Sluice made (MarkBytea), so that federated reads send
// them as bytea; only reads need that, so a failure there is ignored
// (unless ctx ended).
func (d *Destination) CheckTables(ctx context.Context, tables []connectors.DestTable) error {
	for _, t := range tables {
		changed, err := ChangedColumns(ctx, d.conn, d.info, t.Dest, t.Schema, t.OrderBy)
		if err != nil {
			return err
		}
		if len(changed) > 0 {
			return &TypeChangeError{Mirror: d.mirror, Table: t, Column: changed[0]}
		}
		if err := MarkBytea(ctx, d.conn, t.Dest, t.Schema); err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}
