package clickhouse

import (
	"context"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/sluicedb/sluice/connectors"
)

// A Postgres bytea column becomes a ClickHouse String of the raw bytes, which
// a federated read could not tell from text. So the column carries the
// comment ByteaMarker: CreateTableDDL writes it, AddMissingColumns and
// AddColumnsLike add it, and MarkBytea adds it to the tables of a mirror
// made by an older Sluice when the mirror starts streaming. Sluice's
// federated reads send a String column so marked as bytea.

// ByteaMarker is the comment of a ClickHouse column made for a Postgres
// bytea column.
const ByteaMarker = "sluice:bytea"

// isBytea reports whether m is a scalar bytea column (arrays of bytea are
// not marked).
func (m colMapping) isBytea() bool { return m.kind == kBytes && !m.array }

// commentBytea marks column col of table t as made for a bytea column.
func commentBytea(ctx context.Context, conn driver.Conn, t connectors.TableName, col string) error {
	if err := conn.Exec(ctx, "ALTER TABLE "+qualified(t)+" COMMENT COLUMN "+quoteIdent(col)+" "+quoteString(ByteaMarker)); err != nil {
		return fmt.Errorf("mark column %s of %s as bytea: %w", col, t, err)
	}
	return nil
}

// columnComments returns the comments of table t's columns, by name.
func columnComments(ctx context.Context, conn driver.Conn, t connectors.TableName) (map[string]string, error) {
	rows, err := conn.Query(ctx, "SELECT name, comment FROM system.columns WHERE database = ? AND table = ?", t.Schema, t.Name)
	if err != nil {
		return nil, fmt.Errorf("read column comments of %s: %w", t, err)
	}
	defer rows.Close()
	out := make(map[string]string)
	for rows.Next() {
		var n, c string
		if err := rows.Scan(&n, &c); err != nil {
			return nil, fmt.Errorf("read column comments of %s: %w", t, err)
		}
		out[n] = c
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read column comments of %s: %w", t, err)
	}
	return out, nil
}

// MarkBytea gives every column of the mirrored table dest made for a
// scalar bytea column of source table ts the comment ByteaMarker, where it
// has no comment yet and is a String (a table made by an older Sluice, whose
// columns were not marked). Columns dest lacks, or whose comment is another
// (an ownership marker, a user's), are left alone. Idempotent; it writes
// only when a column is unmarked.
func MarkBytea(ctx context.Context, conn driver.Conn, dest connectors.TableName, ts *connectors.TableSchema) error {
	var want []string
	for _, c := range ts.Columns {
		if m, err := mapColumn(c, false, ServerInfo{}); err == nil && m.isBytea() {
			want = append(want, c.Name)
		}
	}
	if len(want) == 0 {
		return nil
	}
	comments, err := columnComments(ctx, conn, dest)
	if err != nil {
		return err
	}
	names, types, _, err := tableColumns(ctx, conn, dest)
	if err != nil {
		return err
	}
	typeOf := make(map[string]string, len(names))
	for i, n := range names {
		typeOf[n] = types[i]
	}
	for _, c := range want {
		if typ, ok := typeOf[c]; !ok || baseOf(typ) != "String" || comments[c] != "" {
			continue
		}
		if err := commentBytea(ctx, conn, dest, c); err != nil {
			return err
		}
	}
	return nil
}
