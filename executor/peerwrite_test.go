package executor_test

import (
	"encoding/binary"
	"reflect"
	"strings"
	"testing"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/internal/testbed"
)

// TestPeerWritesExtended runs writes by peer name in the extended protocol,
// with parameters: the peer's tags, row counts, RETURNING rows and errors
// reach the client, and the peer has the rows. (regress/sql/peerwrite.sql
// covers the simple protocol.)
func TestPeerWritesExtended(t *testing.T) {
	s := startSluice(t, testbed.Options{})
	conn := connect(t, s.URL())
	ctx := testCtx(t)
	db := peerCluster.NewDB(t)
	direct := connect(t, db)
	mustExec(t, conn, "CREATE PEER src FROM POSTGRES WITH ("+peerOptions(db)+")")

	tag, err := conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS src.public.w (id int PRIMARY KEY, v text NOT NULL)")
	if err != nil || tag.String() != "CREATE TABLE" {
		t.Fatalf("CREATE TABLE: %q, %v", tag, err)
	}
	var id int
	var v string
	err = conn.QueryRow(ctx, "INSERT INTO src.public.w VALUES ($1, $2), ($1 + 1, $2) RETURNING id, upper(v)", 1, "one").Scan(&id, &v)
	if err != nil || id != 1 || v != "ONE" {
		t.Fatalf("INSERT ... RETURNING: %d %q, %v", id, v, err)
	}
	tag, err = conn.Exec(ctx, "UPDATE src.public.w SET v = $1 WHERE id >= $2", "two", 1)
	if err != nil || tag.String() != "UPDATE 2" {
		t.Fatalf("UPDATE: %q, %v", tag, err)
	}
	// The write went to the peer, committed.
	var n int
	if err := direct.QueryRow(ctx, "SELECT count(*) FROM w WHERE v = 'two'").Scan(&n); err != nil || n != 2 {
		t.Fatalf("peer has %d updated rows, %v", n, err)
	}
	_, err = conn.Exec(ctx, "INSERT INTO src.public.w VALUES ($1, $2)", 1, "dup")
	pe := wantError(t, err, pgerrcode.UniqueViolation)
	if pe.ConstraintName != "w_pkey" || pe.TableName != "w" {
		t.Errorf("error fields %+v", pe)
	}
	tag, err = conn.Exec(ctx, "DELETE FROM src.public.w WHERE id = $1", 2)
	if err != nil || tag.String() != "DELETE 1" {
		t.Fatalf("DELETE: %q, %v", tag, err)
	}
	// A query by peer name stays on the read-only connection.
	_, err = conn.Exec(ctx, "SELECT id, nextval('s') FROM src.public.w WHERE id = $1", 1)
	wantError(t, err, pgerrcode.InsufficientPrivilege)
	var ro string
	if err := conn.QueryRow(ctx, "SELECT current_setting('transaction_read_only') FROM src.public.w WHERE id = $1", 1).Scan(&ro); err != nil || ro != "on" {
		t.Fatalf("transaction_read_only = %q, %v", ro, err)
	}
	// Two peers, and a ClickHouse-free unknown one.
	_, err = conn.Exec(ctx, "INSERT INTO src.public.w SELECT * FROM nosuch.public.w WHERE id = $1", 1)
	wantError(t, err, pgerrcode.FeatureNotSupported)
	tag, err = conn.Exec(ctx, "TRUNCATE src.public.w")
	if err != nil || tag.String() != "TRUNCATE TABLE" {
		t.Fatalf("TRUNCATE: %q, %v", tag, err)
	}
	tag, err = conn.Exec(ctx, "DROP TABLE src.public.w")
	if err != nil || tag.String() != "DROP TABLE" {
		t.Fatalf("DROP TABLE: %q, %v", tag, err)
	}
}

// TestPeerCursorsExtended declares a cursor over a peer with a parameter in
// the extended protocol and fetches it in pieces across a transaction
// block, as psycopg 3's server-side cursors do; COMMIT in the extended
// protocol closes it on the peer too. A BINARY cursor returns the peer's
// binary values.
func TestPeerCursorsExtended(t *testing.T) {
	s := startSluice(t, testbed.Options{})
	conn := connect(t, s.URL())
	ctx := testCtx(t)
	db := peerCluster.NewDB(t)
	mustExec(t, conn, "CREATE PEER src FROM POSTGRES WITH ("+peerOptions(db)+")")
	mustExec(t, conn, "EXECUTE src('CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 10) g')")

	ids := func(sql string) []int32 {
		t.Helper()
		rows, err := conn.Query(ctx, sql)
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return got
	}
	pc := conn.PgConn()
	extended := func(sql string) error {
		return pc.ExecParams(ctx, sql, nil, nil, nil, nil).Read().Err
	}
	if err := extended("BEGIN"); err != nil {
		t.Fatal(err)
	}
	mustExec(t, conn, "DECLARE c CURSOR FOR SELECT id FROM src.public.t WHERE id > $1 ORDER BY id", 3)
	if got := ids("FETCH 4 FROM c"); !reflect.DeepEqual(got, []int32{4, 5, 6, 7}) {
		t.Fatalf("first FETCH: %v", got)
	}
	if got := ids("FETCH 4 FROM c"); !reflect.DeepEqual(got, []int32{8, 9, 10}) {
		t.Fatalf("second FETCH: %v", got)
	}
	if got := ids("FETCH 4 FROM c"); len(got) != 0 {
		t.Fatalf("third FETCH: %v", got)
	}
	// A binary cursor, in the simple protocol.
	res, err := pc.Exec(ctx, "DECLARE b BINARY CURSOR FOR SELECT id FROM src.public.t ORDER BY id; FETCH 2 FROM b").ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	fetch := res[len(res)-1]
	if len(fetch.FieldDescriptions) != 1 || fetch.FieldDescriptions[0].Format != 1 || len(fetch.Rows) != 2 ||
		binary.BigEndian.Uint32(fetch.Rows[1][0]) != 2 {
		t.Fatalf("binary FETCH: %+v %q", fetch.FieldDescriptions, fetch.Rows)
	}
	if err := extended("COMMIT"); err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, "FETCH 1 FROM c")
	pe := wantError(t, err, pgerrcode.InvalidCursorName)
	if !strings.Contains(pe.Message, `"c"`) {
		t.Errorf("message %q", pe.Message)
	}
	// In the simple protocol, where now() = statement_timestamp() only in a
	// transaction of the statement's own.
	got := rawResult(t, pc, "SELECT count(*), now() = statement_timestamp() FROM src.pg_catalog.pg_cursors")
	if len(got.rows) != 1 || string(got.rows[0][0]) != "0" || string(got.rows[0][1]) != "t" {
		t.Fatalf("after COMMIT the peer's cursors and own transaction: %q", got.rows)
	}
}
