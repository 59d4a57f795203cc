package executor_test

import (
	"bytes"
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sluicedb/sluice/internal/testbed"
)

// allTypesSQL creates a table with every common column type, one row of
// values and one of NULLs.
const allTypesSQL = `
CREATE TYPE mood AS ENUM ('happy', 'sad');
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE TABLE all_types (
  id serial PRIMARY KEY, b boolean, i2 smallint, i4 integer, i8 bigint, n numeric(20,6), nn numeric,
  r real, d double precision, t text, vc varchar(10), c char(3), by bytea, dt date, tm time, tmtz timetz,
  ts timestamp, tstz timestamptz, iv interval, u uuid, j json, jb jsonb, ia integer[], ta text[],
  ip inet, cidr_ cidr, mac macaddr, m mood, pi posint, x xml, pt point, bits bit varying(8), o oid,
  money_ money, tsr tsrange
);
INSERT INTO all_types (b, i2, i4, i8, n, nn, r, d, t, vc, c, by, dt, tm, tmtz, ts, tstz, iv, u, j, jb, ia, ta,
  ip, cidr_, mac, m, pi, x, pt, bits, o, money_, tsr) VALUES
 (true, -32768, 2147483647, -9223372036854775808, 12345678901234.123456, 'NaN', 1.5, -2.25e-300,
  E'multi\nline ''quoted'' \\ text', 'short', 'ab', '\xdeadbeef00', '2024-02-29', '23:59:59.999999',
  '12:00+05:30', '2024-01-02 03:04:05.678901', '2024-01-02 03:04:05.678901+00', '1 year 2 mons 3 days 04:05:06',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": [1, 2]}', '{"b": {"c": null}}', '{1,NULL,3}',
  '{"x y","NULL",""}', '192.168.0.1/24', '10.0.0.0/8', '08:00:2b:01:02:03', 'sad', 7, '<a>b</a>',
  '(1.5,-2)', B'101', 4242, '12.34', '[2024-01-01,2024-02-01)');
INSERT INTO all_types DEFAULT VALUES;
`

func TestFederatedQueries(t *testing.T) {
	s := startSluice(t, testbed.Options{})
	conn := connect(t, s.URL())
	ctx := testCtx(t)
	db := peerCluster.NewDB(t)
	mustExec(t, conn, "CREATE PEER src FROM POSTGRES WITH ("+peerOptions(db)+")")
	// EXECUTE runs raw SQL, several statements at once, on the peer.
	mustExec(t, conn, "EXECUTE src('"+strings.ReplaceAll(allTypesSQL, "'", "''")+"')")

	direct := connect(t, db)
	const q = "SELECT * FROM %spublic.all_types ORDER BY id"

	t.Run("simple protocol, text", func(t *testing.T) {
		want := rawResult(t, direct.PgConn(), strings.Replace(q, "%s", "", 1))
		got := rawResult(t, conn.PgConn(), strings.Replace(q, "%s", "src.", 1))
		compareRaw(t, got, want)
	})
	t.Run("extended protocol, binary where pgx can", func(t *testing.T) {
		want := decoded(t, direct, "SELECT * FROM public.all_types WHERE id >= $1 ORDER BY id", 1)
		got := decoded(t, conn, "SELECT * FROM src.public.all_types WHERE id >= $1 ORDER BY id", 1)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("decoded rows differ:\n got %v\nwant %v", got, want)
		}
	})
	t.Run("joins, aggregates, quoted names and CTEs", func(t *testing.T) {
		var n int64
		err := conn.QueryRow(ctx, `WITH x AS (SELECT id FROM "src".public.all_types)
			SELECT count(*) FROM x JOIN src . public . all_types a USING (id) WHERE a.b IS NOT DISTINCT FROM a.b`).Scan(&n)
		if err != nil || n != 2 {
			t.Fatalf("count = %d, %v", n, err)
		}
	})
	t.Run("EXECUTE returns rows", func(t *testing.T) {
		got := rawResult(t, conn.PgConn(), "EXECUTE src('SELECT t, by FROM all_types ORDER BY id')")
		want := rawResult(t, direct.PgConn(), "SELECT t, by FROM all_types ORDER BY id")
		compareRaw(t, got, want)
	})
	t.Run("EXECUTE of a prepared statement", func(t *testing.T) {
		mustExec(t, conn, "PREPARE q(text) AS SELECT upper($1)")
		got := rawResult(t, conn.PgConn(), "EXECUTE q('abc')")
		if len(got.rows) != 1 || string(got.rows[0][0]) != "ABC" {
			t.Fatalf("EXECUTE q('abc') = %q", got.rows)
		}
	})
	t.Run("errors", func(t *testing.T) {
		_, err := conn.Exec(ctx, "SELECT * FROM nosuch.public.all_types")
		pe := wantError(t, err, pgerrcode.UndefinedObject)
		if !strings.Contains(pe.Message, `"nosuch"`) {
			t.Errorf("message %q", pe.Message)
		}
		_, err = conn.Exec(ctx, "SELECT * FROM src.public.missing")
		wantError(t, err, pgerrcode.UndefinedTable)
		_, err = conn.Exec(ctx, "CREATE VIEW src.public.v AS SELECT 1")
		wantError(t, err, pgerrcode.FeatureNotSupported)
		_, err = conn.Exec(ctx, "EXECUTE nosuch('SELECT 1')")
		wantError(t, err, pgerrcode.UndefinedObject)
		// The session survives all of it.
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM src.public.all_types").Scan(&n); err != nil || n != 2 {
			t.Fatalf("count = %d, %v", n, err)
		}
	})
	t.Run("dropped peer", func(t *testing.T) {
		mustExec(t, conn, "DROP PEER src")
		_, err := conn.Exec(ctx, "SELECT 1 FROM src.public.all_types")
		wantError(t, err, pgerrcode.UndefinedObject)
	})
}

type rawRes struct {
	fields []pgconn.FieldDescription
	rows   [][][]byte
}

func rawResult(t *testing.T, pc *pgconn.PgConn, sql string) rawRes {
	t.Helper()
	res, err := pc.Exec(context.Background(), sql).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	last := res[len(res)-1]
	if last.Err != nil {
		t.Fatalf("%s: %v", sql, last.Err)
	}
	return rawRes{fields: last.FieldDescriptions, rows: last.Rows}
}

func compareRaw(t *testing.T, got, want rawRes) {
	t.Helper()
	if len(got.fields) != len(want.fields) {
		t.Fatalf("got %d columns, want %d", len(got.fields), len(want.fields))
	}
	for i := range want.fields {
		g, w := got.fields[i], want.fields[i]
		if w.DataTypeOID >= 16384 {
			// The peer's own types (the enum mood) mean nothing to the
			// client: they are described as text.
			w.DataTypeOID, w.DataTypeSize, w.TypeModifier = 25, -1, -1
		}
		if g.Name != w.Name || g.DataTypeOID != w.DataTypeOID || g.TypeModifier != w.TypeModifier || g.DataTypeSize != w.DataTypeSize {
			t.Errorf("column %d: got %+v, want %+v", i, g, w)
		}
	}
	if len(got.rows) != len(want.rows) {
		t.Fatalf("got %d rows, want %d", len(got.rows), len(want.rows))
	}
	for r := range want.rows {
		for c := range want.rows[r] {
			g, w := got.rows[r][c], want.rows[r][c]
			if (g == nil) != (w == nil) || !bytes.Equal(g, w) {
				t.Errorf("row %d column %s: got %q, want %q", r, want.fields[c].Name, g, w)
			}
		}
	}
}

func decoded(t *testing.T, conn *pgx.Conn, sql string, args ...any) [][]any {
	t.Helper()
	rows, err := conn.Query(context.Background(), sql, args...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	var out [][]any
	for rows.Next() {
		v, err := rows.Values()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}
