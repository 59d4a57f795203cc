package clickhouse_test

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/shopspring/decimal"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/clickhouse"
)

var dbSeq atomic.Int64

// newDB creates a fresh database on the test server and returns a
// connection to it (closed, and the database dropped, by cleanup).
func newDB(t *testing.T) (driver.Conn, string) {
	t.Helper()
	ctx := testCtx(t)
	admin, err := server.Open("default")
	if err != nil {
		t.Fatal(err)
	}
	db := fmt.Sprintf("t_%d", dbSeq.Add(1))
	if err := admin.Exec(ctx, "CREATE DATABASE "+db); err != nil {
		t.Fatal(err)
	}
	conn, err := server.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		_ = admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db)
		admin.Close()
	})
	return conn, db
}

func oldServer(t *testing.T) clickhouse.ServerInfo {
	t.Helper()
	cfg, err := clickhouse.ParsePeerOptions(peer())
	if err != nil {
		t.Fatal(err)
	}
	info, err := cfg.Inspect(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	return info
}

var pgMap = pgtype.NewMap()

// bin returns the Postgres binary encoding of v as type oid.
func bin(t testing.TB, oid uint32, v any) connectors.Value {
	t.Helper()
	b, err := pgMap.Encode(oid, pgtype.BinaryFormatCode, v, nil)
	if err != nil {
		t.Fatalf("encode %v as %d: %v", v, oid, err)
	}
	return connectors.Value{Kind: connectors.Binary, Data: b}
}

func num(t testing.TB, s string) pgtype.Numeric {
	t.Helper()
	var n pgtype.Numeric
	if err := n.Scan(s); err != nil {
		t.Fatal(err)
	}
	return n
}

var null = connectors.Value{Kind: connectors.Null}
var unchanged = connectors.Value{Kind: connectors.Unchanged}

// show renders a value read from ClickHouse for comparisons.
func show(x any) string {
	switch v := x.(type) {
	case nil:
		return "NULL"
	case decimal.Decimal:
		return v.String()
	case time.Time:
		if v.Hour() == 0 && v.Minute() == 0 && v.Second() == 0 && v.Nanosecond() == 0 {
			return v.Format(time.DateOnly)
		}
		return v.UTC().Format("2006-01-02 15:04:05.000000")
	case uuid.UUID:
		return v.String()
	}
	rv := reflect.ValueOf(x)
	switch rv.Kind() {
	case reflect.Pointer:
		if rv.IsNil() {
			return "NULL"
		}
		return show(rv.Elem().Interface())
	case reflect.Slice:
		parts := make([]string, rv.Len())
		for i := range parts {
			parts[i] = show(rv.Index(i).Interface())
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	return fmt.Sprint(x)
}

// query returns the rows of q, each rendered as "col=value ..." in column
// order, sorted.
func query(t *testing.T, conn driver.Conn, q string) []string {
	t.Helper()
	rows, err := conn.Query(testCtx(t), q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	types := rows.ColumnTypes()
	var out []string
	for rows.Next() {
		ptrs := make([]any, len(types))
		for i, ct := range types {
			ptrs[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		parts := make([]string, len(ptrs))
		for i, p := range ptrs {
			parts[i] = types[i].Name() + "=" + show(reflect.ValueOf(p).Elem().Interface())
		}
		out = append(out, strings.Join(parts, " "))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func equalRows(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("%s:\ngot:\n  %s\nwant:\n  %s", what, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}
