package mysql

import (
	"context"
	"fmt"
	"strings"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/sluicedb/sluice/connectors"
)

// Reading some columns of every row, for a destination that fills in the
// columns a source added (connectors.ColumnReader). A destination asks
// whenever a mirror's stream starts, so this is needed before any column
// is ever added.

var _ connectors.ColumnReader = (*Source)(nil)

// ReadColumns implements connectors.ColumnReader: key and then cols of
// every row of table, in a consistent snapshot on a connection of its own,
// encoded as the initial load encodes them (encodeText).
func (s *Source) ReadColumns(ctx context.Context, table connectors.TableName, key, cols []string, batch int,
	fn func(rows [][]connectors.Value) error) (int64, error) {
	conn, err := s.peer.Connect(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	if err := beginSnapshot(conn); err != nil {
		return 0, err
	}
	all, err := describeColumns(conn, s.flavor, table)
	if err != nil {
		return 0, err
	}
	names := append(append([]string{}, key...), cols...)
	types := make([]colType, len(names))
	exprs := make([]string, len(names))
	for i, name := range names {
		found := false
		for _, c := range all {
			if c.Name == name {
				types[i], found = c, true
				break
			}
		}
		if !found {
			return 0, fmt.Errorf("read columns of %s: no column %q", table, name)
		}
		if err := mapType(&types[i]); err != nil {
			return 0, fmt.Errorf("read columns of %s: %w", table, err)
		}
		exprs[i] = selectExpr(&types[i])
	}
	if batch <= 0 {
		batch = 1000
	}
	var n int64
	rows := make([][]connectors.Value, 0, batch)
	var result gomysql.Result
	err = conn.ExecuteSelectStreaming("SELECT "+strings.Join(exprs, ", ")+" FROM "+quoteTable(table), &result,
		func(row []gomysql.FieldValue) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			vals := make([]connectors.Value, len(types))
			for i := range types {
				v, err := encodeText(&types[i], row[i])
				if err != nil {
					return err
				}
				vals[i] = v
			}
			rows = append(rows, vals)
			n++
			if len(rows) == batch {
				if err := fn(rows); err != nil {
					return err
				}
				rows = make([][]connectors.Value, 0, batch)
			}
			return nil
		}, nil)
	if err != nil {
		return n, fmt.Errorf("read columns of %s: %w", table, err)
	}
	if len(rows) > 0 {
		if err := fn(rows); err != nil {
			return n, err
		}
	}
	return n, nil
}

// CurrentValues implements connectors.ColumnReader: MySQL does not tell
// which rows hold a column's default from before it was added (ALTER
// TABLE ... ADD COLUMN ... DEFAULT rewrites or instantly fills them alike),
// so no column has a single value: none is returned, and the destination
// reads every row (ReadColumns).
func (s *Source) CurrentValues(context.Context, connectors.TableName, []string) (map[string]connectors.Value, error) {
	return map[string]connectors.Value{}, nil
}
