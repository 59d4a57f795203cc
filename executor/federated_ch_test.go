package executor_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sluicedb/sluice/internal/testbed"
)

// chAllTypes is a ClickHouse table with a column of each type the oldest
// supported server (18.16) has, one row of values and one of defaults and
// NULLs. (Bool, Date32, DateTime64, IPv4, IPv6 and Int128 are newer: their
// values are checked in TestCHValues.)
var chAllTypes = []string{`
CREATE TABLE all_types (
  id Int64, i8 Int8, i16 Int16, u8 UInt8, i32 Int32, u16 UInt16, u32 UInt32, u64 UInt64,
  dec Decimal(12, 2), f32 Float32, f64 Float64, s String, fs FixedString(4),
  e8 Enum8('a' = 1, 'b' = 2), e16 Enum16('x' = 1000, 'y' = 2000), d Date, dt DateTime, u UUID,
  ai Array(Int32), ast Array(String), an Array(Nullable(Int64)), ad Array(Decimal(9, 2)),
  n Nullable(Int32), ns Nullable(String), nd Nullable(DateTime), ndec Nullable(Decimal(10, 2)), lc LowCardinality(String),
  tup Tuple(UInt8, String), aa Array(Array(UInt8))
) ENGINE = MergeTree ORDER BY id`, `
INSERT INTO all_types SELECT 1, -128, -32768, 255, -2147483648, 65535, 4294967295, 18446744073709551615,
  toDecimal64('1234567890.12', 2), toFloat32(1.5), -2.25e-300, 'multi\nline \'quoted\' \\ ü', toFixedString('ab', 4),
  'b', 'y', toDate('2024-02-29'), toDateTime('2024-01-02 03:04:05', 'UTC'),
  toUUID('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'), [1, -2, 3], ['x y', '', 'NULL', 'a"b\\c'], [1, NULL],
  [toDecimal32('1.5', 2)], 7, 'str', toDateTime('2024-01-02 03:04:05', 'UTC'), toDecimal64('-3.5', 2), 'low', (1, 'a'), [[1, 2], [3]]`,
	`INSERT INTO all_types (id, e8, e16) SELECT 2, 'a', 'x'`,
}

const allTypesColumns = "id, i8, i16, u8, i32, u16, u32, u64, dec, f32, f64, s, fs, e8, e16, d, dt, u, " +
	"ai, ast, an, ad, n, ns, nd, ndec, lc, tup, aa"

// Postgres types of allTypesColumns, and the text of the two rows.
var (
	allTypesOIDs = []uint32{20, 21, 21, 21, 23, 23, 20, 1700, 1700, 700, 701, 25, 25, 25, 25, 1082, 1184, 2950,
		1007, 1009, 1016, 1231, 23, 25, 1184, 1700, 25, 25, 25}
	allTypesRows = [][]any{
		{"1", "-128", "-32768", "255", "-2147483648", "65535", "4294967295", "18446744073709551615",
			"1234567890.12", "1.5", "-2.25e-300", "multi\nline 'quoted' \\ ü", "ab", "b", "y", "2024-02-29",
			"2024-01-02 03:04:05+00", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "{1,-2,3}", `{"x y","","NULL","a\"b\\c"}`,
			"{1,NULL}", "{1.50}", "7", "str", "2024-01-02 03:04:05+00", "-3.50", "low", "(1,'a')", "[[1,2],[3]]"},
		{"2", "0", "0", "0", "0", "0", "0", "0", "0.00", "0", "0", "", "", "a", "x", "1970-01-01",
			"1970-01-01 00:00:00+00", "00000000-0000-0000-0000-000000000000", "{}", "{}", "{}", "{}", nil, nil, nil,
			nil, "", "(0,'')", "[]"},
	}
)

// chExec runs statements on a ClickHouse server directly.
func chExec(t *testing.T, ch *testbed.ClickHouse, stmts ...string) {
	t.Helper()
	conn, err := ch.Open("default")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := clickhouse.Context(testCtx(t), clickhouse.WithSettings(clickhouse.Settings{"allow_experimental_low_cardinality_type": 1}))
	for _, sql := range stmts {
		if err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
}

func chPeerSQL(ch *testbed.ClickHouse, name string) string {
	return fmt.Sprintf("CREATE PEER %s FROM CLICKHOUSE WITH (host = '127.0.0.1', port = %d, database = 'default')", name, ch.Port())
}

// TestClickHouseFederated reads a ClickHouse peer's tables through Sluice:
// names of two and three parts, every mapped type in text and binary,
// parameters, errors, EXECUTE, and catalog queries that must not change.
func TestClickHouseFederated(t *testing.T) {
	ch := startClickHouse(t)
	chExec(t, ch, chAllTypes...)
	s := startSluice(t, testbed.Options{})
	conn := connect(t, s.URL())
	ctx := testCtx(t)
	mustExec(t, conn, chPeerSQL(ch, "ch"))

	for _, name := range []string{"ch.all_types", "ch.default.all_types", `"ch" . "all_types"`} {
		t.Run("simple protocol "+name, func(t *testing.T) {
			got := rawResult(t, conn.PgConn(), "SELECT "+allTypesColumns+" FROM "+name+" ORDER BY id")
			checkAllTypes(t, got)
		})
	}
	t.Run("column names with the peer", func(t *testing.T) {
		got := rawResult(t, conn.PgConn(), "SELECT ch.all_types.id, ch.default.all_types.s FROM ch.all_types WHERE ch.all_types.id = 2")
		if len(got.rows) != 1 || string(got.rows[0][0]) != "2" || string(got.rows[0][1]) != "" {
			t.Fatalf("rows %q", got.rows)
		}
	})
	t.Run("values are those ClickHouse holds", func(t *testing.T) {
		// Where ClickHouse's text form is Postgres' too.
		for i, col := range strings.Split(allTypesColumns, ", ") {
			switch col {
			case "f64", "d", "dt", "nd", "ndec", "ai", "ast", "an", "ad", "tup", "aa", "fs", "dec", "n", "ns":
				continue
			}
			want := chRows(t, ch, "SELECT toString("+col+") FROM all_types ORDER BY id")
			for r := range allTypesRows {
				if allTypesRows[r][i] != want[r] {
					t.Errorf("%s row %d: expected %q, ClickHouse has %q", col, r, allTypesRows[r][i], want[r])
				}
			}
		}
	})
	t.Run("extended protocol, binary", func(t *testing.T) {
		sql := "SELECT " + allTypesColumns + " FROM ch.all_types WHERE id >= $1 ORDER BY id"
		rows, err := conn.Query(ctx, sql, 1)
		if err != nil {
			t.Fatal(err)
		}
		var binary [][]any
		for rows.Next() {
			for i, fd := range rows.FieldDescriptions() {
				if wantBinary := fd.DataTypeOID != 25; (fd.Format == 1) != wantBinary {
					t.Errorf("column %s (type %d): format %d", fd.Name, fd.DataTypeOID, fd.Format)
				}
				if fd.DataTypeOID != allTypesOIDs[i] {
					t.Errorf("column %s: type %d, want %d", fd.Name, fd.DataTypeOID, allTypesOIDs[i])
				}
			}
			v, err := rows.Values()
			if err != nil {
				t.Fatal(err)
			}
			binary = append(binary, v)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		// The same values read from text (simple protocol).
		text := decodedSimple(t, conn, strings.Replace(sql, "$1", "1", 1))
		if !reflect.DeepEqual(binary, text) {
			t.Fatalf("binary and text differ:\nbinary %v\ntext   %v", binary, text)
		}
		if len(binary) != 2 || binary[1][22] != nil || binary[0][22] != int32(7) {
			t.Fatalf("rows %v", binary)
		}
	})
	t.Run("extended protocol, text", func(t *testing.T) {
		pc := conn.PgConn()
		sd, err := pc.Prepare(ctx, "", "SELECT "+allTypesColumns+" FROM ch.all_types WHERE id >= $1 ORDER BY id", nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(sd.ParamOIDs) != 1 || sd.ParamOIDs[0] != 20 {
			t.Fatalf("parameter types %v, want [20] (id is Int64)", sd.ParamOIDs)
		}
		res := pc.ExecPrepared(ctx, "", [][]byte{[]byte("1")}, nil, nil).Read()
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		checkAllTypes(t, rawRes{fields: res.FieldDescriptions, rows: res.Rows})
	})
	t.Run("parameters", func(t *testing.T) {
		tests := []struct {
			sql  string
			args []any
			want []int64
		}{
			{"SELECT id FROM ch.all_types WHERE id = $1", []any{1}, []int64{1}},
			{"SELECT id FROM ch.all_types WHERE id = $1", []any{int64(2)}, []int64{2}},
			{"SELECT id FROM ch.all_types WHERE id IN ($1, $2) ORDER BY id", []any{1, "2"}, []int64{1, 2}},
			{"SELECT id FROM ch.all_types WHERE s = $1", []any{"multi\nline 'quoted' \\ ü"}, []int64{1}},
			{"SELECT id FROM ch.all_types WHERE u64 = $1", []any{uint64(18446744073709551615)}, []int64{1}},
			{"SELECT id FROM ch.all_types WHERE i8 < $1 AND f32 > $2", []any{0, 1.25}, []int64{1}},
			{"SELECT id FROM ch.all_types WHERE dt = $1", []any{time.Date(2024, 1, 2, 4, 4, 5, 0, time.FixedZone("", 3600))}, []int64{1}},
			{"SELECT id FROM ch.all_types WHERE d = $1", []any{time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC)}, []int64{1}},
			{"SELECT id FROM ch.all_types WHERE u = $1 AND e8 = $2", []any{"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "b"}, []int64{1}},
			{"SELECT id FROM ch.all_types WHERE n = $1 OR ns = $2", []any{nil, nil}, nil},
			{"SELECT id FROM ch.all_types WHERE id = CAST($1 AS Int64) + 1", []any{1}, []int64{2}},
			{"SELECT id FROM ch.all_types ORDER BY id LIMIT $1 OFFSET $2", []any{1, 1}, []int64{2}},
			{"SELECT id FROM ch.all_types WHERE concat(s, $1) = $2", []any{"'", "'"}, []int64{2}},
		}
		for _, tt := range tests {
			rows, err := conn.Query(ctx, tt.sql, tt.args...)
			if err != nil {
				t.Fatalf("%s: %v", tt.sql, err)
			}
			got, err := pgx.CollectRows(rows, pgx.RowTo[int64])
			if err != nil {
				t.Fatalf("%s %v: %v", tt.sql, tt.args, err)
			}
			if !reflect.DeepEqual(got, tt.want) && len(got)+len(tt.want) > 0 {
				t.Errorf("%s %v: %v, want %v", tt.sql, tt.args, got, tt.want)
			}
		}
		var upper string
		if err := conn.QueryRow(ctx, "SELECT upper($1) FROM ch.all_types LIMIT 1", "abc").Scan(&upper); err != nil || upper != "ABC" {
			t.Fatalf("upper($1) = %q, %v", upper, err)
		}
	})
	t.Run("read-only", func(t *testing.T) {
		var ro string
		if err := conn.QueryRow(ctx, "SELECT value FROM ch.system.settings WHERE name = 'readonly'").Scan(&ro); err != nil || ro != "2" {
			t.Fatalf("readonly = %q, %v; want 2", ro, err)
		}
		for _, sql := range []string{"DELETE FROM ch.all_types", "INSERT INTO ch.all_types (id) VALUES (3)",
			"UPDATE ch.all_types SET s = 'x'", "CREATE TABLE ch.t AS SELECT 1"} {
			_, err := conn.Exec(ctx, sql)
			wantError(t, err, pgerrcode.FeatureNotSupported)
		}
	})
	t.Run("errors", func(t *testing.T) {
		tests := []struct{ sql, code, mention string }{
			{"SELECT * FROM ch.nosuch", pgerrcode.UndefinedTable, "nosuch"},
			{"SELECT nosuch FROM ch.all_types", pgerrcode.UndefinedColumn, "nosuch"},
			{"SELECT * FROM ch.nodb.t", pgerrcode.InvalidCatalogName, "nodb"},
			{"SELECT nosuchfn(id) FROM ch.all_types", pgerrcode.UndefinedFunction, "nosuchfn"},
			{"SELECT * FROM ch.all_types WHERE id = 'x'", pgerrcode.DatatypeMismatch, "Int64"},
			{"SELECT * FROM ch.all_types FINAL", pgerrcode.FDWError, "FINAL"}, // not a ReplacingMergeTree
		}
		for _, tt := range tests {
			for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheDescribe} {
				rows, err := conn.Query(ctx, tt.sql, mode)
				if err == nil {
					rows.Close()
					err = rows.Err()
				}
				pe := wantError(t, err, tt.code)
				if !strings.HasPrefix(pe.Message, `clickhouse peer "ch": `) || !strings.Contains(pe.Message, tt.mention) {
					t.Errorf("%s: message %q", tt.sql, pe.Message)
				}
			}
		}
		// Parameters where ClickHouse needs a number are typed by context
		// only: a hint says how to type them.
		_, err := conn.Exec(ctx, "SELECT * FROM ch.all_types WHERE id + 1 = $1", "2")
		pe := wantError(t, err, pgerrcode.DatatypeMismatch)
		if !strings.Contains(pe.Hint, "CAST($1 AS Int64)") {
			t.Errorf("hint %q", pe.Hint)
		}
		_, err = conn.Exec(ctx, "SELECT * FROM ch.all_types a JOIN src.public.t b ON true")
		wantError(t, err, pgerrcode.FeatureNotSupported)
		// A failed statement aborts a transaction block, as in Postgres.
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		if err := tx.QueryRow(ctx, "SELECT count() FROM ch.all_types").Scan(&n); err != nil || n != 2 {
			t.Fatalf("count in a block = %d, %v", n, err)
		}
		_, err = tx.Exec(ctx, "SELECT * FROM ch.nosuch")
		wantError(t, err, pgerrcode.UndefinedTable)
		_, err = tx.Exec(ctx, "SELECT id FROM ch.all_types")
		wantError(t, err, pgerrcode.InFailedSQLTransaction)
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM ch.all_types").Scan(&n); err != nil || n != 2 {
			t.Fatalf("count after errors = %d, %v", n, err)
		}
	})
	t.Run("catalog names of two parts", func(t *testing.T) {
		var n int64
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_catalog.pg_class").Scan(&n); err != nil || n < 100 {
			t.Fatalf("pg_catalog.pg_class: %d, %v", n, err)
		}
		if got := pgRows(t, conn, "SELECT sluice_status.peers.name FROM sluice_status.peers"); fmt.Sprint(got) != "[ch]" {
			t.Fatalf("peers: %v", got)
		}
		if got := pgRows(t, conn, "SELECT n.nspname::text FROM pg_catalog.pg_namespace n WHERE n.nspname = 'public'"); fmt.Sprint(got) != "[public]" {
			t.Fatalf("pg_namespace: %v", got)
		}
		_, err := conn.Exec(ctx, "SELECT 1 FROM public.nope")
		pe := wantError(t, err, pgerrcode.UndefinedTable)
		if strings.Contains(pe.Message, "clickhouse") {
			t.Fatalf("public.nope went to ClickHouse: %s", pe.Message)
		}
	})
	t.Run("EXECUTE", func(t *testing.T) {
		pc := conn.PgConn()
		for _, sql := range []string{
			"EXECUTE ch('CREATE TABLE e (a Int32, s String) ENGINE = Memory')",
			"EXECUTE ch('INSERT INTO e SELECT number, toString(number) FROM system.numbers LIMIT 3')",
		} {
			res, err := pc.Exec(ctx, sql).ReadAll()
			if err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
			if tag := res[0].CommandTag.String(); tag != "EXECUTE" {
				t.Errorf("%s: tag %q", sql, tag)
			}
		}
		got := rawResult(t, pc, "EXECUTE ch('SELECT a, s FROM e ORDER BY a')")
		if fmt.Sprint(got.rows) != "[[[48] [48]] [[49] [49]] [[50] [50]]]" || got.fields[0].DataTypeOID != 23 {
			t.Fatalf("rows %q, fields %+v", got.rows, got.fields)
		}
		// Through the extended protocol.
		rows, err := conn.Query(ctx, "EXECUTE ch('SELECT a FROM e WHERE a > 0 ORDER BY a')")
		if err != nil {
			t.Fatal(err)
		}
		as, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil || fmt.Sprint(as) != "[1 2]" {
			t.Fatalf("EXECUTE, extended: %v, %v", as, err)
		}
		if _, err := conn.Exec(ctx, "EXECUTE ch('DROP TABLE e')", pgx.QueryExecModeCacheDescribe); err != nil {
			t.Fatal(err)
		}
		// EXECUTE is not read-only; federated queries are.
		got = rawResult(t, pc, "EXECUTE ch($$SELECT value FROM system.settings WHERE name = 'readonly'$$)")
		if string(got.rows[0][0]) != "0" {
			t.Fatalf("EXECUTE readonly = %q", got.rows[0][0])
		}
		_, err = conn.Exec(ctx, "EXECUTE ch('INSERT INTO all_types (id) VALUES (9)')")
		wantError(t, err, pgerrcode.FeatureNotSupported)
		_, err = conn.Exec(ctx, "EXECUTE ch('SELEC 1')")
		wantError(t, err, pgerrcode.SyntaxError)
	})
	t.Run("cancel", func(t *testing.T) {
		conn2 := connect(t, s.URL())
		wantCancelled(t, conn2, "SELECT count() FROM ch.system.numbers") // endless
		var n int64
		if err := conn2.QueryRow(testCtx(t), "SELECT count(*) FROM ch.all_types").Scan(&n); err != nil || n != 2 {
			t.Fatalf("session unusable after cancel: %d, %v", n, err)
		}
	})
	t.Run("psql", func(t *testing.T) {
		out := runPsql(t, s.URL(), "SELECT id, e8, an, dt, n FROM ch.all_types ORDER BY id")
		want := "1|b|{1,NULL}|2024-01-02 03:04:05+00|7\n2|a|{}|1970-01-01 00:00:00+00|\n"
		if out != want {
			t.Fatalf("psql printed\n%s\nwant\n%s", out, want)
		}
	})
	t.Run("dropped and re-created peer", func(t *testing.T) {
		mustExec(t, conn, "DROP PEER ch")
		_, err := conn.Exec(ctx, "SELECT id FROM ch.all_types")
		// No ClickHouse peer ch any more: ch.all_types is schema ch on the
		// catalog, which has none.
		wantError(t, err, pgerrcode.UndefinedTable)
		_, err = conn.Exec(ctx, "SELECT id FROM ch.default.all_types")
		wantError(t, err, pgerrcode.UndefinedObject)
		mustExec(t, conn, chPeerSQL(ch, "ch"))
		var n int64
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM ch.all_types").Scan(&n); err != nil || n != 2 {
			t.Fatalf("count = %d, %v", n, err)
		}
	})
	t.Run("server gone", func(t *testing.T) {
		ch.Stop()
		_, err := conn.Exec(ctx, "SELECT 1 FROM ch.all_types")
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || (pe.Code != pgerrcode.ConnectionFailure && pe.Code != pgerrcode.SQLClientUnableToEstablishSQLConnection) {
			t.Fatalf("with the server stopped: %v", err)
		}
		t.Logf("first query: %s %s", pe.Code, pe.Message)
		_, err = conn.Exec(ctx, "SELECT 1 FROM ch.all_types")
		pe = wantError(t, err, pgerrcode.SQLClientUnableToEstablishSQLConnection)
		if !strings.Contains(pe.Message, `"ch"`) {
			t.Errorf("message %q does not name the peer", pe.Message)
		}
		t.Logf("next query: %s %s", pe.Code, pe.Message)
		var one int
		if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
			t.Fatalf("session unusable: %v", err)
		}
	})
}

// checkAllTypes compares a result of allTypesColumns with the expected
// types and text.
func checkAllTypes(t *testing.T, got rawRes) {
	t.Helper()
	names := strings.Split(allTypesColumns, ", ")
	if len(got.fields) != len(names) {
		t.Fatalf("got %d columns, want %d", len(got.fields), len(names))
	}
	for i, fd := range got.fields {
		if fd.Name != names[i] || fd.DataTypeOID != allTypesOIDs[i] {
			t.Errorf("column %d: %s type %d, want %s type %d", i, fd.Name, fd.DataTypeOID, names[i], allTypesOIDs[i])
		}
	}
	if len(got.rows) != len(allTypesRows) {
		t.Fatalf("got %d rows, want %d", len(got.rows), len(allTypesRows))
	}
	for r, row := range allTypesRows {
		for c, want := range row {
			g := got.rows[r][c]
			switch {
			case want == nil && g != nil:
				t.Errorf("row %d %s: got %q, want NULL", r, names[c], g)
			case want != nil && (g == nil || string(g) != want.(string)):
				t.Errorf("row %d %s: got %q, want %q", r, names[c], g, want)
			}
		}
	}
}

// decodedSimple reads a query's rows as pgx decodes them from text.
func decodedSimple(t *testing.T, conn *pgx.Conn, sql string) [][]any {
	t.Helper()
	return decoded(t, conn, sql, pgx.QueryExecModeSimpleProtocol)
}

// runPsql runs one query with psql in unaligned, tuples-only mode.
func runPsql(t *testing.T, url, sql string) string {
	t.Helper()
	psql, err := exec.LookPath("psql")
	if err != nil {
		matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/psql")
		if len(matches) == 0 {
			t.Fatal("psql not found: install postgresql-client (make deps)")
		}
		psql = matches[len(matches)-1]
	}
	cmd := exec.CommandContext(testCtx(t), psql, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("psql: %v\n%s", err, out)
	}
	return string(out)
}

// TestClickHouseFederatedMirror reads, through Sluice, a table a mirror
// writes into ClickHouse: FINAL without the deleted rows is the source.
func TestClickHouseFederatedMirror(t *testing.T) {
	ch := startClickHouse(t)
	f := newMirrorFixture(t)
	ctx := testCtx(t)
	mustExec(t, f.conn, chPeerSQL(ch, "ch"))
	mustExec(t, f.src, `CREATE TABLE orders (id bigint PRIMARY KEY, item text, price numeric(12,2));
INSERT INTO orders SELECT g, 'item ' || g, g * 1.25 FROM generate_series(1, 50) g;`)
	mustExec(t, f.conn, "CREATE MIRROR chm FROM src TO ch WITH TABLE MAPPING (public.orders:orders)")
	f.waitStatus(t, "chm", "RUNNING")
	mustExec(t, f.src, `DELETE FROM orders WHERE id <= 5; UPDATE orders SET item = 'changed', price = 0.5 WHERE id = 10;
INSERT INTO orders VALUES (100, NULL, NULL);`)

	const pgQuery = `SELECT id || '|' || coalesce(item, 'NULL') || '|' || coalesce(price::text, 'NULL') FROM orders ORDER BY id`
	const query = `SELECT id, item, price FROM ch.orders FINAL WHERE _sluice_is_deleted = 0 ORDER BY id`
	want := pgRows(t, f.src, pgQuery)
	var got []string
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		got = nil
		rows, err := f.conn.Query(ctx, query, pgx.QueryExecModeSimpleProtocol)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id int64
			var item, price *string
			if err := rows.Scan(&id, &item, &price); err != nil {
				t.Fatal(err)
			}
			got = append(got, fmt.Sprintf("%d|%s|%s", id, deref(item), deref(price)))
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) == fmt.Sprint(want) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("through sluice:\n%v\nsource:\n%v", got, want)
	}
	// The same with the extended protocol, a parameter and binary numerics.
	var item string
	var price float64
	err := f.conn.QueryRow(ctx, "SELECT item, price FROM ch.orders FINAL WHERE _sluice_is_deleted = 0 AND id = $1", 10).
		Scan(&item, &price)
	if err != nil || item != "changed" || price != 0.5 {
		t.Fatalf("id 10: %q %v, %v", item, price, err)
	}
	var n int64
	if err := f.conn.QueryRow(ctx, "SELECT count(*) FROM ch.orders FINAL WHERE _sluice_is_deleted = $1", 1).Scan(&n); err != nil || n != 5 {
		t.Fatalf("deleted rows: %d, %v", n, err)
	}
}

func deref(s *string) string {
	if s == nil {
		return "NULL"
	}
	return *s
}
