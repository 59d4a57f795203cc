package mysql

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/sluicedb/sluice/connectors"
)

// Describing a table from information_schema. A MySQL database is a
// TableName's Schema: app.users is table users of database app.

// describeTable reads table's columns (minus exclude) with their mappings,
// its primary key and its estimated rows. A missing table (or a view) wraps
// connectors.ErrTableNotFound, one without a primary key
// connectors.ErrNoPrimaryKey, a column of a type with no mapping
// connectors.ErrUnsupportedType.
func describeTable(conn *client.Conn, flavor string, table connectors.TableName, exclude []string) (*connectors.TableSchema, []colType, error) {
	r, err := conn.Execute(`SELECT TABLE_TYPE, COALESCE(TABLE_ROWS, 0) FROM information_schema.TABLES
		WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?`, table.Schema, table.Name)
	if err != nil {
		return nil, nil, fmt.Errorf("describe %s: %w", table, err)
	}
	if r.RowNumber() == 0 {
		return nil, nil, fmt.Errorf("table %s: %w", table, connectors.ErrTableNotFound)
	}
	if typ, _ := r.GetString(0, 0); typ != "BASE TABLE" && typ != "SYSTEM VERSIONED" {
		// Worded as the Postgres source's: CREATE MIRROR reports it as
		// the wrong kind of object, not a missing one.
		return nil, nil, fmt.Errorf("describe table %s: %w: %s is a %s, not a table", table, connectors.ErrTableNotFound, table, strings.ToLower(typ))
	}
	rows, _ := r.GetInt(0, 1)
	cols, err := describeColumns(conn, flavor, table)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range exclude {
		if !slices.ContainsFunc(cols, func(c colType) bool { return c.Name == e }) {
			// Worded as the Postgres source's, which CREATE MIRROR
			// reports as an undefined column.
			return nil, nil, &connectors.MissingExcludeError{Table: table, Column: e}
		}
	}
	key, err := primaryKey(conn, table)
	if err != nil {
		return nil, nil, err
	}
	if len(key) == 0 {
		return nil, nil, fmt.Errorf("table %s: %w (a MySQL source needs a primary key to identify rows in the binlog)",
			table, connectors.ErrNoPrimaryKey)
	}
	ts := &connectors.TableSchema{Name: table, Exclude: slices.Clone(exclude), PrimaryKey: key, EstimatedRows: rows}
	kept := cols[:0]
	for i, c := range cols {
		if slices.Contains(exclude, c.Name) {
			if slices.Contains(key, c.Name) {
				return nil, nil, fmt.Errorf("describe table %s: cannot exclude column %q: it is part of the primary key", table, c.Name)
			}
			continue
		}
		if err := mapType(&cols[i]); err != nil {
			return nil, nil, fmt.Errorf("table %s: %w", table, err)
		}
		ts.Columns = append(ts.Columns, cols[i].column(len(ts.Columns)+1))
		kept = append(kept, cols[i])
	}
	return ts, kept, nil
}

// describeColumns reads table's columns in order, unmapped.
func describeColumns(conn *client.Conn, flavor string, table connectors.TableName) ([]colType, error) {
	r, err := conn.Execute(`SELECT COLUMN_NAME, LOWER(DATA_TYPE), LOWER(COLUMN_TYPE), IS_NULLABLE,
		COALESCE(NUMERIC_PRECISION, 0), COALESCE(NUMERIC_SCALE, 0), COALESCE(DATETIME_PRECISION, 0),
		COALESCE(CHARACTER_MAXIMUM_LENGTH, 0), COALESCE(CHARACTER_SET_NAME, '')
		FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`,
		table.Schema, table.Name)
	if err != nil {
		return nil, fmt.Errorf("describe columns of %s: %w", table, err)
	}
	cols := make([]colType, r.RowNumber())
	for i := range cols {
		c := &cols[i]
		c.Name, _ = r.GetString(i, 0)
		c.DataType, _ = r.GetString(i, 1)
		c.ColumnType, _ = r.GetString(i, 2)
		nullable, _ := r.GetString(i, 3)
		c.NotNull = nullable == "NO"
		p, _ := r.GetInt(i, 4)
		s, _ := r.GetInt(i, 5)
		fsp, _ := r.GetInt(i, 6)
		c.Length, _ = r.GetInt(i, 7)
		c.Charset, _ = r.GetString(i, 8)
		c.Precision, c.Scale, c.FSP = int(p), int(s), int(fsp)
		if err := parseColumnType(c); err != nil {
			return nil, fmt.Errorf("describe %s: %w", table, err)
		}
	}
	if flavor == FlavorMariaDB {
		if err := markMariaDBJSON(conn, table, cols); err != nil {
			return nil, err
		}
	}
	return cols, nil
}

// markMariaDBJSON marks MariaDB's JSON columns: MariaDB's JSON is LONGTEXT
// with the check json_valid(`col`), which information_schema.COLUMNS does
// not tell from a LONGTEXT.
func markMariaDBJSON(conn *client.Conn, table connectors.TableName, cols []colType) error {
	r, err := conn.Execute(`SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS
		WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?`, table.Schema, table.Name)
	if err != nil {
		return fmt.Errorf("describe the checks of %s: %w", table, err)
	}
	for i := range r.RowNumber() {
		clause, _ := r.GetString(i, 0)
		for j := range cols {
			if cols[j].DataType == "longtext" && clause == "json_valid("+quoteIdent(cols[j].Name)+")" {
				cols[j].JSON = true
			}
		}
	}
	return nil
}

// primaryKey returns table's primary key columns in key order (none when
// it has no primary key).
func primaryKey(conn *client.Conn, table connectors.TableName) ([]string, error) {
	r, err := conn.Execute(`SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE
		WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION`,
		table.Schema, table.Name)
	if err != nil {
		return nil, fmt.Errorf("read the primary key of %s: %w", table, err)
	}
	key := make([]string, r.RowNumber())
	for i := range key {
		key[i], _ = r.GetString(i, 0)
	}
	return key, nil
}

// Describe implements connectors.Source from information_schema (see
// describeTable; the type mapping is in types.go).
func (s *Source) Describe(_ context.Context, table connectors.TableName, exclude []string) (*connectors.TableSchema, error) {
	ts, _, err := describeTable(s.conn, s.flavor, table, exclude)
	return ts, err
}
