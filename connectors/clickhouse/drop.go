package clickhouse

import (
	"context"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/sluicedb/sluice/connectors"
)

// Dependents lists the materialized views outside tables that read from
// one of them (Schema is the database), rendered as `materialized view
// db.mv depends on db.t`. ClickHouse drops such a table without a word and
// leaves the view broken, so a caller that must not break a user's objects
// checks first. Tables that do not exist are ignored. It only reads.
func Dependents(ctx context.Context, conn driver.Conn, tables []connectors.TableName) ([]string, error) {
	in := make(map[connectors.TableName]bool, len(tables))
	for _, t := range tables {
		in[t] = true
	}
	var out []string
	for _, t := range tables {
		rows, err := conn.Query(ctx, `SELECT dependencies_database, dependencies_table FROM system.tables
WHERE database = ? AND name = ?`, t.Schema, t.Name)
		if err != nil {
			return nil, fmt.Errorf("list views depending on %s: %w", t, err)
		}
		for rows.Next() {
			var dbs, names []string
			if err := rows.Scan(&dbs, &names); err != nil {
				rows.Close()
				return nil, fmt.Errorf("list views depending on %s: %w", t, err)
			}
			for i := range min(len(dbs), len(names)) {
				dep := connectors.TableName{Schema: dbs[i], Name: names[i]}
				if !in[dep] {
					out = append(out, "materialized view "+qualified(dep)+" depends on "+qualified(t))
				}
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("list views depending on %s: %w", t, err)
		}
	}
	return out, nil
}
