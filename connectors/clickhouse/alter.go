package clickhouse

import (
	"context"
	"fmt"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/sluicedb/sluice/connectors"
)

// tableColumns lists the columns of table t (Schema is the database) in
// order, with their type and default ("" when none).
func tableColumns(ctx context.Context, conn driver.Conn, t connectors.TableName) (names, types, defaults []string, err error) {
	rows, err := conn.Query(ctx, `SELECT name, type, default_kind, default_expression FROM system.columns
WHERE database = ? AND table = ?`, t.Schema, t.Name)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("list columns of %s: %w", t, err)
	}
	defer rows.Close()
	for rows.Next() {
		var n, typ, kind, expr string
		if err := rows.Scan(&n, &typ, &kind, &expr); err != nil {
			return nil, nil, nil, fmt.Errorf("list columns of %s: %w", t, err)
		}
		def := ""
		if kind != "" && expr != "" {
			def = kind + " " + expr
		}
		names, types, defaults = append(names, n), append(types, typ), append(defaults, def)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, nil, fmt.Errorf("list columns of %s: %w", t, err)
	}
	if len(names) == 0 {
		return nil, nil, nil, fmt.Errorf("list columns of %s: %w", t, errTableGone)
	}
	return names, types, defaults, nil
}

// NoDefault is a column AddMissingColumns added without the value rows
// already in the table should read, and why.
type NoDefault struct {
	Column string
	Reason string
}

// AddMissingColumns adds to the mirrored table dest (Schema is the
// database) every column of cols it lacks, with the type ColumnType gives,
// placed after the replicated columns it has (Sluice's own columns stay
// last). existing gives, by column name, the value the rows already in the
// table take (the source's value of rows that predate the column): it
// becomes the column's DEFAULT, a constant those rows read (FINAL too).
// A column with no entry in existing gets no DEFAULT: its rows read NULL
// (a Nullable column) or the type's zero; so does one whose value has no
// ClickHouse literal (an array), which is returned in skipped with the
// reason. Added columns are never in the sorting key. It returns the
// columns added. Idempotent: a column the table has is left alone.
func AddMissingColumns(ctx context.Context, conn driver.Conn, v ServerInfo, dest connectors.TableName, cols []connectors.Column,
	existing map[string]connectors.Value) (added []connectors.Column, skipped []NoDefault, err error) {
	names, _, _, err := tableColumns(ctx, conn, dest)
	if err != nil {
		return nil, nil, err
	}
	have := make(map[string]bool, len(names))
	for _, n := range names {
		have[n] = true
	}
	// After the last column that is not one of Sluice's: names are in
	// table order, and Sluice's columns come after the replicated ones.
	after := ""
	for _, c := range cols {
		if have[c.Name] {
			after = c.Name
		}
	}
	for _, c := range cols {
		if have[c.Name] {
			continue
		}
		m, err := mapColumn(c, false, v)
		if err != nil {
			return added, skipped, fmt.Errorf("add column to %s: %w", dest, err)
		}
		def := ""
		if val, ok := existing[c.Name]; ok {
			lit, err := defaultLiteral(&m, val)
			if err != nil {
				skipped = append(skipped, NoDefault{Column: c.Name, Reason: err.Error()})
			} else {
				def = " DEFAULT " + lit
			}
		}
		sql := fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s%s", qualified(dest), quoteIdent(c.Name), m.sql, def)
		if after != "" {
			sql += " AFTER " + quoteIdent(after)
		}
		if err := conn.Exec(ctx, sql); err != nil {
			return added, skipped, fmt.Errorf("add column %s to %s: %w", c.Name, dest, err)
		}
		if m.isBytea() {
			if err := commentBytea(ctx, conn, dest, c.Name); err != nil {
				return added, skipped, err
			}
		}
		have[c.Name], after = true, c.Name
		added = append(added, c)
	}
	return added, skipped, nil
}

// defaultLiteral renders val as a ClickHouse literal of column m.
func defaultLiteral(m *colMapping, val connectors.Value) (string, error) {
	if val.Kind != connectors.Binary {
		if m.nullable {
			return "NULL", nil
		}
		return "", fmt.Errorf("a NULL default of a column that is not Nullable")
	}
	if m.array {
		return "", fmt.Errorf("an array default has no ClickHouse literal here")
	}
	x, err := newConverter([]colMapping{*m}).value(m, val)
	if err != nil {
		return "", err
	}
	lit, err := literal(m, x)
	if err != nil {
		return "", fmt.Errorf("a %T default has no ClickHouse literal", x)
	}
	return lit, nil
}

// AddColumnsLike adds to table to every column that table from has and to
// lacks, with from's type, default expression and bytea marker (see
// ByteaMarker), each after the column
// that precedes it in from (a resync's shadow table gains the columns the
// live one gained while it was copied). Both are in Schema's database.
// Idempotent.
func AddColumnsLike(ctx context.Context, conn driver.Conn, from, to connectors.TableName) error {
	names, types, defaults, err := tableColumns(ctx, conn, from)
	if err != nil {
		return err
	}
	have, _, _, err := tableColumns(ctx, conn, to)
	if err != nil {
		return err
	}
	in := make(map[string]bool, len(have))
	for _, n := range have {
		in[n] = true
	}
	comments, err := columnComments(ctx, conn, from)
	if err != nil {
		return err
	}
	for i, n := range names {
		if in[n] {
			continue
		}
		sql := fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s", qualified(to), quoteIdent(n), types[i])
		if defaults[i] != "" {
			sql += " " + defaults[i]
		}
		if i > 0 {
			sql += " AFTER " + quoteIdent(names[i-1])
		}
		if err := conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("add column %s to %s: %w", n, to, err)
		}
		if comments[n] == ByteaMarker {
			if err := commentBytea(ctx, conn, to, n); err != nil {
				return err
			}
		}
		in[n] = true
	}
	return nil
}

// ChangedColumn is a replicated column whose ClickHouse type is not the one
// the source's current type maps to.
type ChangedColumn struct {
	Name       string
	SourceType string // the source's current type
	Want       string // the ClickHouse type it maps to
	Have       string // the ClickHouse table's type
}

// ChangedColumns compares the columns of the mirrored table dest with the
// types ts's columns map to on server v (orderBy as for CreateTableDDL),
// and lists those that differ other than by Nullable: a source column
// whose type changed, whose values the table cannot hold as they are.
// Columns dest lacks are not listed (AddMissingColumns adds them). It only
// reads.
func ChangedColumns(ctx context.Context, conn driver.Conn, v ServerInfo, dest connectors.TableName, ts *connectors.TableSchema,
	orderBy []string) ([]ChangedColumn, error) {
	l, err := newLayout(dest, ts, v, TableOptions{OrderBy: orderBy})
	if err != nil {
		return nil, err
	}
	names, types, _, err := tableColumns(ctx, conn, dest)
	if err != nil {
		return nil, err
	}
	have := make(map[string]string, len(names))
	for i, n := range names {
		have[n] = types[i]
	}
	var out []ChangedColumn
	for i, c := range ts.Columns {
		h, ok := have[c.Name]
		if ok && baseOf(h) != baseOf(l.cols[i].sql) {
			out = append(out, ChangedColumn{Name: c.Name, SourceType: c.Type, Want: l.cols[i].sql, Have: h})
		}
	}
	return out, nil
}

// baseOf strips Nullable(...) and spaces from a ClickHouse type.
func baseOf(typ string) string {
	typ = strings.ReplaceAll(typ, " ", "")
	if s, ok := strings.CutPrefix(typ, "Nullable("); ok {
		typ = strings.TrimSuffix(s, ")")
	}
	return typ
}
