package clickhouse

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/sluicedb/sluice/connectors"
)

// Default names of the columns Sluice adds to every mirrored table.
const (
	DefaultVersionColumn  = "_sluice_version"    // UInt64: the source commit position of the row's last change
	DefaultDeletedColumn  = "_sluice_is_deleted" // UInt8: 0 live, 1 deleted, 2 moved (see DeletedMoved)
	DefaultSyncedAtColumn = "_sluice_synced_at"  // DateTime: when Sluice wrote the row
)

// Values of the deleted column. A live row has 0 and a deleted row 1. A
// row whose sorting key changed (a table whose order_by has columns outside
// the primary key, the row updated in one of them) is written under its new
// sorting key, and its old version is superseded by a row with
// DeletedMoved: the old values, the deleted column 2 and the update's
// version. ReplacingMergeTree keeps that row in place of the old one; it is
// neither a live row nor a deleted one. A deleted row whose key is inserted
// again under another sorting key is superseded so too: as with a sorting
// key of the primary key, a key has at most one row that is live or
// deleted.
const (
	DeletedLive  = 0
	DeletedRow   = 1
	DeletedMoved = 2
)

// TableOptions shapes a mirrored table. The zero value is valid: ORDER BY
// the primary key and the default column names.
type TableOptions struct {
	// OrderBy is the sorting key; empty means the primary key. It must
	// contain every primary-key column (ReplacingMergeTree collapses rows by
	// sorting key, so a key without them would merge distinct rows).
	OrderBy []string
	// VersionColumn, DeletedColumn and SyncedAtColumn name the added
	// columns; empty means the defaults above.
	VersionColumn, DeletedColumn, SyncedAtColumn string
	// Marker, when set, is the comment of the version column (see
	// OwnedTable), and the table is created with CREATE TABLE, which fails
	// when the name is taken, instead of CREATE TABLE IF NOT EXISTS.
	Marker string
}

// withDefaults fills empty names with the defaults.
func (o TableOptions) withDefaults() TableOptions {
	if o.VersionColumn == "" {
		o.VersionColumn = DefaultVersionColumn
	}
	if o.DeletedColumn == "" {
		o.DeletedColumn = DefaultDeletedColumn
	}
	if o.SyncedAtColumn == "" {
		o.SyncedAtColumn = DefaultSyncedAtColumn
	}
	return o
}

// layout is a mirrored table's columns as ClickHouse has them.
type layout struct {
	dest    connectors.TableName
	schema  *connectors.TableSchema
	opts    TableOptions // with defaults
	cols    []colMapping // per schema column
	orderBy []string
	keyIdx  []int // schema indexes of the primary key
	sortIdx []int // schema indexes of the sorting key
	// moves: the sorting key has columns outside the primary key, so an
	// update can move a row to another sorting key.
	moves bool
}

// newLayout maps ts's columns for server v and checks the options.
func newLayout(dest connectors.TableName, ts *connectors.TableSchema, v ServerInfo, opts TableOptions) (*layout, error) {
	if ts == nil {
		return nil, fmt.Errorf("table %s: no schema", dest)
	}
	if dest.Schema == "" || dest.Name == "" {
		return nil, fmt.Errorf("table %s: destination needs a database and a table name", ts.Name)
	}
	if len(ts.PrimaryKey) == 0 {
		return nil, fmt.Errorf("table %s: no primary key (ClickHouse tables are keyed by it)", ts.Name)
	}
	l := &layout{dest: dest, schema: ts, opts: opts.withDefaults()}
	extra := []string{l.opts.VersionColumn, l.opts.DeletedColumn, l.opts.SyncedAtColumn}
	for i, e := range extra {
		if ts.ColumnIndex(e) >= 0 {
			return nil, fmt.Errorf("table %s: column %q is replicated and cannot be a version, deleted or synced-at column", ts.Name, e)
		}
		if slices.Contains(extra[:i], e) {
			return nil, fmt.Errorf("table %s: version, deleted and synced-at columns must differ (%q twice)", ts.Name, e)
		}
	}
	for _, k := range ts.PrimaryKey {
		i := ts.ColumnIndex(k)
		if i < 0 {
			return nil, fmt.Errorf("table %s: primary key column %q is not replicated", ts.Name, k)
		}
		l.keyIdx = append(l.keyIdx, i)
	}
	l.orderBy = ts.PrimaryKey
	if len(opts.OrderBy) > 0 {
		l.orderBy = opts.OrderBy
		for _, c := range opts.OrderBy {
			if ts.ColumnIndex(c) < 0 {
				return nil, fmt.Errorf("table %s: order_by column %q is not a replicated column", ts.Name, c)
			}
		}
		for _, k := range ts.PrimaryKey {
			if !slices.Contains(opts.OrderBy, k) {
				return nil, fmt.Errorf("table %s: order_by must contain every primary key column; %q is missing", ts.Name, k)
			}
		}
	}
	for _, c := range l.orderBy {
		i := ts.ColumnIndex(c)
		l.sortIdx = append(l.sortIdx, i)
		if !slices.Contains(l.keyIdx, i) {
			l.moves = true
		}
	}
	for _, c := range ts.Columns {
		key := slices.Contains(l.orderBy, c.Name)
		m, err := mapColumn(c, key, v)
		if err != nil {
			return nil, fmt.Errorf("table %s: %w", ts.Name, err)
		}
		if key && m.array {
			return nil, fmt.Errorf("table %s: order_by column %q is an array, which cannot be in the sorting key", ts.Name, c.Name)
		}
		// ClickHouse sorting keys cannot be Nullable (18.16 has no
		// allow_nullable_key): a column nullable in the source is created
		// non-Nullable and a NULL stored as the type's default, counted.
		m.nullKey = key && !c.NotNull
		l.cols = append(l.cols, m)
	}
	return l, nil
}

// NullableKeyColumns returns the columns of orderBy (a sorting key; the
// primary key when the table has no order_by) that are nullable in source
// table ts. In ClickHouse they are created non-Nullable, as sorting-key
// columns must be: a NULL the source sends for one is stored as the type's
// default (0, the empty string, the zero UUID, 1970-01-01, ...) and counted
// (see Writer.NullKeys, Applier.NullKeys). Pure.
func NullableKeyColumns(ts *connectors.TableSchema, orderBy []string) []string {
	var out []string
	for _, name := range orderBy {
		if i := ts.ColumnIndex(name); i >= 0 && !ts.Columns[i].NotNull {
			out = append(out, name)
		}
	}
	return out
}

// takeNullKeys returns the NULLs stored as defaults in sorting-key columns
// since the last call, by column name (nil when none), and resets them.
func (l *layout) takeNullKeys(cols []colMapping) map[string]int64 {
	var out map[string]int64
	for i := range cols {
		if cols[i].nulls > 0 {
			if out == nil {
				out = make(map[string]int64)
			}
			out[l.colName(i)] += cols[i].nulls
			cols[i].nulls = 0
		}
	}
	return out
}

// columnList renders the quoted names of every column, added ones last.
func (l *layout) columnList() string {
	names := make([]string, 0, len(l.cols)+3)
	for _, c := range l.schema.Columns {
		names = append(names, quoteIdent(c.Name))
	}
	names = append(names, quoteIdent(l.opts.VersionColumn), quoteIdent(l.opts.DeletedColumn), quoteIdent(l.opts.SyncedAtColumn))
	return strings.Join(names, ", ")
}

// insertSQL is the batch insert statement (18.16 needs the column list).
func (l *layout) insertSQL() string { return l.insertInto(l.dest) }

// insertInto is insertSQL into table, of the same columns (a stage).
func (l *layout) insertInto(table connectors.TableName) string {
	return "INSERT INTO " + qualified(table) + " (" + l.columnList() + ")"
}

// CreateTableDDL returns the CREATE TABLE IF NOT EXISTS statement of the
// mirrored table dest (dest.Schema is the ClickHouse database) for source
// table ts on a server of version v:
//
//	CREATE TABLE IF NOT EXISTS `db`.`t` (<columns>, `_sluice_version` UInt64,
//	  `_sluice_is_deleted` UInt8, `_sluice_synced_at` DateTime)
//	ENGINE = ReplacingMergeTree(`_sluice_version`) ORDER BY (<order by>)
//
// Column types come from ColumnType; a bytea column has the comment
// ByteaMarker; sorting-key columns are never
// Nullable (a column nullable in the source is created non-Nullable, see
// NullableKeyColumns). Errors name the table and the column at fault: a
// type with no mapping, an order_by that lacks a primary-key column or
// names an array or unknown one, an added column that clashes with a replicated one. It is
// pure; running the statement is idempotent.
func CreateTableDDL(dest connectors.TableName, ts *connectors.TableSchema, v ServerInfo, opts TableOptions) (string, error) {
	l, err := newLayout(dest, ts, v, opts)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	create, comment := "CREATE TABLE IF NOT EXISTS ", ""
	if opts.Marker != "" {
		create, comment = "CREATE TABLE ", " COMMENT "+quoteString(opts.Marker)
	}
	b.WriteString(create + qualified(dest) + " (")
	for i, c := range ts.Columns {
		colComment := ""
		if l.cols[i].isBytea() {
			colComment = " COMMENT " + quoteString(ByteaMarker)
		}
		fmt.Fprintf(&b, "%s %s%s, ", quoteIdent(c.Name), l.cols[i].sql, colComment)
	}
	fmt.Fprintf(&b, "%s UInt64%s, %s UInt8, %s DateTime) ENGINE = ReplacingMergeTree(%s) ORDER BY (",
		quoteIdent(l.opts.VersionColumn), comment, quoteIdent(l.opts.DeletedColumn), quoteIdent(l.opts.SyncedAtColumn),
		quoteIdent(l.opts.VersionColumn))
	for i, c := range l.orderBy {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quoteIdent(c))
	}
	b.WriteString(")")
	return b.String(), nil
}

// CreateTable creates destination table dest for source table ts
// (CreateTableDDL, whose errors it returns wrapped with the table's name).
// Idempotent: a table of that name is left as it is.
func CreateTable(ctx context.Context, conn driver.Conn, dest connectors.TableName, ts *connectors.TableSchema, v ServerInfo, opts TableOptions) error {
	ddl, err := CreateTableDDL(dest, ts, v, opts)
	if err != nil {
		return fmt.Errorf("destination table %s: %w", dest, err)
	}
	if err := conn.Exec(ctx, ddl); err != nil {
		return fmt.Errorf("create destination table %s: %w", dest, err)
	}
	return nil
}

// TableExists reports whether table name (Schema is the database) exists.
// It only reads.
func TableExists(ctx context.Context, conn driver.Conn, name connectors.TableName) (bool, error) {
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name = ?",
		name.Schema, name.Name).Scan(&n); err != nil {
		return false, fmt.Errorf("look up table %s: %w", name, err)
	}
	return n > 0, nil
}

// DropTable drops table name (Schema is the database) if it exists.
// Idempotent.
func DropTable(ctx context.Context, conn driver.Conn, name connectors.TableName) error {
	if err := conn.Exec(ctx, "DROP TABLE IF EXISTS "+qualified(name)); err != nil {
		return fmt.Errorf("drop table %s: %w", name, err)
	}
	return nil
}
