package mysqlmirror_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/jackc/pgx/v5"
)

// col renders one column as text on both sides: my on MariaDB, other on
// the destination (Postgres or ClickHouse), each a format with one %s for
// the column's name. Equal values render equal text.
type col struct {
	name, my, other string
}

// text is a column whose value is text on both sides.
func text(name string) col { return col{name, "%s", "%s"} }

// rows are a table's rows rendered as text, one []string a row (NULL
// renders as the word NULL), ordered by key.
type rows [][]string

// myRows reads table of the MariaDB connection c, ordered by key.
func myRows(t *testing.T, c *client.Conn, table, key string, cols []col) rows {
	t.Helper()
	exprs := make([]string, len(cols))
	for i, cl := range cols {
		exprs[i] = fmt.Sprintf("CAST("+cl.my+" AS CHAR)", "`"+cl.name+"`")
	}
	q := fmt.Sprintf("SELECT %s FROM %s ORDER BY %s", strings.Join(exprs, ", "), table, key)
	r, err := c.Execute(q)
	if err != nil {
		t.Fatalf("MariaDB: %s: %v", q, err)
	}
	defer r.Close()
	out := make(rows, 0, len(r.Values))
	for _, vals := range r.Values {
		row := make([]string, len(vals))
		for i, v := range vals {
			switch x := v.Value().(type) {
			case nil:
				row[i] = "NULL"
			case []byte:
				row[i] = string(x)
			default:
				row[i] = fmt.Sprint(x)
			}
		}
		out = append(out, row)
	}
	return out
}

// pgRows reads table of the Postgres connection c, ordered by key.
func pgRows(t *testing.T, c *pgx.Conn, table, key string, cols []col) rows {
	t.Helper()
	exprs := make([]string, len(cols))
	for i, cl := range cols {
		exprs[i] = "(" + fmt.Sprintf(cl.other, pgx.Identifier{cl.name}.Sanitize()) + ")::text"
	}
	q := fmt.Sprintf("SELECT %s FROM %s ORDER BY %s", strings.Join(exprs, ", "), table, key)
	rs, err := c.Query(testCtx(t), q)
	if err != nil {
		return rows{{fmt.Sprintf("Postgres: %s: %v", q, err)}}
	}
	out, err := pgx.CollectRows(rs, func(r pgx.CollectableRow) ([]string, error) {
		vals := make([]*string, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := r.Scan(ptrs...); err != nil {
			return nil, err
		}
		row := make([]string, len(cols))
		for i, v := range vals {
			row[i] = "NULL"
			if v != nil {
				row[i] = *v
			}
		}
		return row, nil
	})
	if err != nil {
		return rows{{fmt.Sprintf("Postgres: %s: %v", q, err)}}
	}
	return out
}

// chRows reads a ClickHouse table of database db with FINAL and without
// soft-deleted rows, ordered by key.
func chRows(t *testing.T, db, table, key string, cols []col) rows {
	t.Helper()
	conn, err := ch.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	exprs := make([]string, len(cols))
	for i, cl := range cols {
		exprs[i] = "ifNull(toString(" + fmt.Sprintf(cl.other, "`"+cl.name+"`") + "), 'NULL')"
	}
	q := fmt.Sprintf("SELECT %s FROM `%s` FINAL WHERE _sluice_is_deleted = 0 ORDER BY %s", strings.Join(exprs, ", "), table, key)
	rs, err := conn.Query(testCtx(t), q)
	if err != nil {
		// A column not added yet: the caller waits.
		return rows{{fmt.Sprintf("ClickHouse: %s: %v", q, err)}}
	}
	defer rs.Close()
	var out rows
	for rs.Next() {
		row := make([]string, len(cols))
		ptrs := make([]any, len(cols))
		for i := range row {
			ptrs[i] = &row[i]
		}
		if err := rs.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		out = append(out, row)
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// diff describes the first differences of two row sets, matched by their
// first column (the key), naming the columns that differ; "" when they
// are equal.
func diff(src, dst rows, cols []col) string {
	var d []string
	byKey := make(map[string][]string, len(dst))
	for _, r := range dst {
		byKey[r[0]] = r
	}
	seen := make(map[string]bool, len(src))
	missing, extra := 0, 0
	for _, r := range src {
		seen[r[0]] = true
		o, ok := byKey[r[0]]
		if !ok {
			if missing++; missing <= 3 {
				d = append(d, fmt.Sprintf("key %s only on the source: %q", r[0], r))
			}
			continue
		}
		for j := range cols {
			if r[j] != o[j] && len(d) < 12 {
				d = append(d, fmt.Sprintf("key %s column %s: source %q, destination %q", r[0], cols[j].name, r[j], o[j]))
			}
		}
	}
	for _, r := range dst {
		if !seen[r[0]] {
			if extra++; extra <= 3 {
				d = append(d, fmt.Sprintf("key %s only on the destination: %q", r[0], r))
			}
		}
	}
	if len(d) > 0 || len(src) != len(dst) {
		d = append(d, fmt.Sprintf("source has %d rows, destination %d (%d keys only on the source, %d only on the destination)",
			len(src), len(dst), missing, extra))
	}
	return strings.Join(d, "\n")
}

// waitSame waits until read() on the destination equals the MariaDB table
// (both ordered by key), and fails with the differences otherwise.
func waitSame(t *testing.T, sl *pgx.Conn, my *client.Conn, srcTable, key string, cols []col, read func() rows) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var d string
	for time.Now().Before(deadline) {
		d = diff(myRows(t, my, srcTable, key, cols), read(), cols)
		if d == "" {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s differs:\n%s\n%s", srcTable, d, mirrorState(sl))
}

// waitSamePG is waitSame with a Postgres destination table.
func waitSamePG(t *testing.T, sl, dst *pgx.Conn, my *client.Conn, srcTable, dstTable, key string, cols []col) {
	t.Helper()
	waitSame(t, sl, my, srcTable, key, cols, func() rows { return pgRows(t, dst, dstTable, key, cols) })
}

// mirrorState renders the mirrors' status and the newest events of the
// Sluice server sl is connected to, for a failure message.
func mirrorState(sl *pgx.Conn) string {
	if sl == nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []string
	for _, q := range []string{
		`SELECT name || ': ' || status || ' ' || coalesce(error, '') FROM mirrors ORDER BY name`,
		`SELECT line FROM (SELECT mirror || ' ' || kind || ': ' || message AS line, at FROM mirror_events ORDER BY at DESC LIMIT 12) e ORDER BY at`,
	} {
		rs, err := sl.Query(ctx, q)
		if err != nil {
			out = append(out, err.Error())
			continue
		}
		lines, err := pgx.CollectRows(rs, pgx.RowTo[string])
		if err != nil {
			out = append(out, err.Error())
		}
		out = append(out, lines...)
	}
	return strings.Join(out, "\n")
}
