package executor_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sluicedb/sluice/internal/testbed"
)

// peerSession starts a server with a peer src on a fresh database holding
// table t (id, m mood, x text) and returns a session to it.
func peerSession(t *testing.T, notices *[]*pgconn.Notice) (*testbed.Sluice, *pgx.Conn) {
	t.Helper()
	s := startSluice(t, testbed.Options{})
	cfg, err := pgx.ParseConfig(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	if notices != nil {
		cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { *notices = append(*notices, n) }
	}
	conn, err := pgx.ConnectConfig(testCtx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(testCtx(t)) })
	db := peerCluster.NewDB(t)
	mustExec(t, conn, "CREATE PEER src FROM POSTGRES WITH ("+peerOptions(db)+")")
	mustExec(t, conn, `EXECUTE src($$
CREATE TYPE mood AS ENUM ('happy', 'sad');
CREATE TABLE t (id int PRIMARY KEY, m mood, x text, at timestamptz);
INSERT INTO t VALUES (1, 'sad', 'one', '2024-01-02 03:04:05+00');
$$)`)
	return s, conn
}

func TestNoticesAndErrorFields(t *testing.T) {
	var notices []*pgconn.Notice
	_, conn := peerSession(t, &notices)
	ctx := testCtx(t)

	notices = nil
	mustExec(t, conn, `EXECUTE src($q$DO $$ BEGIN RAISE WARNING 'careful' USING HINT = 'Look both ways.', DETAIL = 'Cars.'; END $$$q$)`)
	if len(notices) != 1 {
		t.Fatalf("notices = %v", notices)
	}
	n := notices[0]
	if n.Severity != "WARNING" || n.Code != pgerrcode.Warning || n.Message != "careful" || n.Hint != "Look both ways." ||
		n.Detail != "Cars." || !strings.Contains(n.Where, "PL/pgSQL") {
		t.Errorf("notice = %+v", *n)
	}
	notices = nil
	mustExec(t, conn, "DROP PEER IF EXISTS nosuch")
	if len(notices) != 1 || notices[0].Code != pgerrcode.SuccessfulCompletion || notices[0].Severity != "NOTICE" {
		t.Errorf("our notice: %+v", notices)
	}

	_, err := conn.Exec(ctx, "EXECUTE src('INSERT INTO t VALUES (1)')")
	pe := wantError(t, err, pgerrcode.UniqueViolation)
	if pe.SchemaName != "public" || pe.TableName != "t" || pe.ConstraintName != "t_pkey" || pe.Detail == "" {
		t.Errorf("error fields: %+v", *pe)
	}
	_, err = conn.Exec(ctx, "EXECUTE src('INSERT INTO t (m) VALUES (''sad'')')")
	pe = wantError(t, err, pgerrcode.NotNullViolation)
	if pe.ColumnName != "id" || pe.TableName != "t" {
		t.Errorf("error fields: %+v", *pe)
	}
	_, err = conn.Exec(ctx, `EXECUTE src($q$DO $$ BEGIN RAISE EXCEPTION 'boom'; END $$$q$)`)
	pe = wantError(t, err, pgerrcode.RaiseException)
	if !strings.Contains(pe.Where, "PL/pgSQL function inline_code_block") || pe.File == "" || pe.Routine == "" {
		t.Errorf("error fields: %+v", *pe)
	}
	_, err = conn.Exec(ctx, `EXECUTE src($q$DO $$ BEGIN EXECUTE 'SELECT nope'; END $$$q$)`)
	pe = wantError(t, err, pgerrcode.UndefinedColumn)
	if pe.InternalQuery != "SELECT nope" || pe.InternalPosition != 8 {
		t.Errorf("internal query: %q at %d", pe.InternalQuery, pe.InternalPosition)
	}
}

func TestErrorPositions(t *testing.T) {
	_, conn := peerSession(t, nil)
	pc := conn.PgConn()
	tests := []struct {
		sql, at string // at: the text the position must point at
	}{
		{"SELECT * FROM src.public.missing", "src.public.missing"},
		{"SELECT id FROM src.public.t WHERE nope = 1", "nope"},
		{`SELECT 'ünï' AS x; SELECT id FROM "src" . public.t WHERE nope`, "nope"},
		{"SELECT src.public.t.nope FROM src.public.t", "src.public.t.nope"},
		{"SELECT 1; SELECT * FROM nosuch.public.t", "nosuch"},
		{"SELECT 1 AS x; SELECT nope", "nope"},
		{"EXECUTE src('SELECT * FROM missing')", "missing"},
		{"EXECUTE src('SELECT ''it''''s'', nope')", "nope"},
		{"EXECUTE src('SELECT 1;'\n'SELECT nope')", "nope"},
		{"EXECUTE src($x$SELECT 'ü', nope$x$)", "nope"},
		{"/* lead */ EXECUTE src($$SELECT nope$$)", "nope"},
		{"EXECUTE src('COPY t TO STDOUT')", "COPY"},
		{"EXECUTE src(E'SELECT \\'x\\', nope')", ""}, // escapes: no position
	}
	for _, tt := range tests {
		t.Run(tt.sql, func(t *testing.T) {
			_, err := pc.Exec(testCtx(t), tt.sql).ReadAll()
			var pe *pgconn.PgError
			if !errors.As(err, &pe) {
				t.Fatalf("want an error, got %v", err)
			}
			want := 0
			if tt.at != "" {
				want = len([]rune(tt.sql[:strings.LastIndex(tt.sql, tt.at)])) + 1
			}
			if int(pe.Position) != want {
				t.Errorf("%s: position %d, want %d", pe.Message, pe.Position, want)
			}
		})
	}
}

func TestErrorAbortsTransactionBlock(t *testing.T) {
	_, conn := peerSession(t, nil)
	ctx := testCtx(t)
	for _, bad := range []struct{ sql, code string }{
		{"CREATE PEER p FROM POSTGRES WITH (host = 'h', user = 'u', database = 'd')", pgerrcode.ActiveSQLTransaction},
		{"EXECUTE src('SELECT 1')", pgerrcode.ActiveSQLTransaction},
		{"DELETE FROM peers", pgerrcode.ReadOnlySQLTransaction},
		{"SELECT * FROM nosuch.public.t", pgerrcode.UndefinedObject},
		{"SELECT nope FROM src.public.t", pgerrcode.UndefinedColumn},
		{"CREATE VIEW src.public.v AS SELECT 1", pgerrcode.FeatureNotSupported},
		{"INSERT INTO src.public.nosuch VALUES (1)", pgerrcode.UndefinedTable},
		{"SELEC 1", pgerrcode.SyntaxError},
	} {
		t.Run(bad.sql, func(t *testing.T) {
			mustExec(t, conn, "BEGIN")
			_, err := conn.Exec(ctx, bad.sql)
			wantError(t, err, bad.code)
			if got := conn.PgConn().TxStatus(); got != 'E' {
				t.Errorf("status after the error = %c", got)
			}
			_, err = conn.Exec(ctx, "SELECT 1")
			wantError(t, err, pgerrcode.InFailedSQLTransaction)
			_, err = conn.Exec(ctx, "SELECT 1 FROM src.public.t WHERE $1", true) // extended protocol
			wantError(t, err, pgerrcode.InFailedSQLTransaction)
			mustExec(t, conn, "ROLLBACK")
		})
	}
	// Extended protocol: an error at Parse or Execute aborts too.
	mustExec(t, conn, "BEGIN")
	_, err := conn.Exec(ctx, "SELECT nope FROM src.public.t WHERE $1", true)
	wantError(t, err, pgerrcode.UndefinedColumn)
	_, err = conn.Exec(ctx, "SELECT 1")
	wantError(t, err, pgerrcode.InFailedSQLTransaction)
	mustExec(t, conn, "ROLLBACK")

	// EXECUTE of a prepared statement runs in a block, in both protocols.
	mustExec(t, conn, "PREPARE greet(text) AS SELECT 'hello ' || $1")
	mustExec(t, conn, "BEGIN")
	var got string
	if err := conn.QueryRow(ctx, "EXECUTE greet('block')", pgx.QueryExecModeSimpleProtocol).Scan(&got); err != nil || got != "hello block" {
		t.Fatalf("simple: %q, %v", got, err)
	}
	if err := conn.QueryRow(ctx, "EXECUTE greet('extended')").Scan(&got); err != nil || got != "hello extended" {
		t.Fatalf("extended: %q, %v", got, err)
	}
	mustExec(t, conn, "COMMIT")
	// With neither a peer nor a prepared statement of that name.
	_, err = conn.Exec(ctx, "EXECUTE nosuch('x')")
	wantError(t, err, pgerrcode.UndefinedObject)
}

func TestSettingsReachPeers(t *testing.T) {
	_, conn := peerSession(t, nil)
	ctx := testCtx(t)
	both := func() (string, string) {
		t.Helper()
		var fed string
		if err := conn.QueryRow(ctx, "SELECT current_setting('TimeZone') FROM src.public.t").Scan(&fed); err != nil {
			t.Fatal(err)
		}
		rows, err := conn.Query(ctx, "EXECUTE src('SHOW TimeZone')", pgx.QueryExecModeSimpleProtocol)
		if err != nil {
			t.Fatal(err)
		}
		vals, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil || len(vals) != 1 {
			t.Fatalf("SHOW TimeZone on the peer: %v, %v", vals, err)
		}
		return fed, vals[0]
	}
	start, _ := both() // opens both peer connections
	mustExec(t, conn, "SET TimeZone = 'Asia/Kolkata'")
	if fed, exec := both(); fed != "Asia/Kolkata" || exec != "Asia/Kolkata" {
		t.Fatalf("after SET: federated %s, EXECUTE %s", fed, exec)
	}
	// Rolled back: not applied; committed: applied.
	mustExec(t, conn, "BEGIN")
	mustExec(t, conn, "SET TimeZone = 'Europe/Paris'")
	mustExec(t, conn, "ROLLBACK")
	if fed, exec := both(); fed != "Asia/Kolkata" || exec != "Asia/Kolkata" {
		t.Fatalf("after ROLLBACK: federated %s, EXECUTE %s", fed, exec)
	}
	mustExec(t, conn, "BEGIN")
	mustExec(t, conn, "SET TimeZone = 'Europe/Paris'")
	mustExec(t, conn, "COMMIT")
	if fed, exec := both(); fed != "Europe/Paris" || exec != "Europe/Paris" {
		t.Fatalf("after COMMIT: federated %s, EXECUTE %s", fed, exec)
	}
	// SET LOCAL is not replayed.
	mustExec(t, conn, "BEGIN")
	mustExec(t, conn, "SET LOCAL TimeZone = 'America/Lima'")
	mustExec(t, conn, "COMMIT")
	// New connections get the settings: re-creating the peer forces them.
	mustExec(t, conn, "SET DateStyle = 'SQL, DMY'")
	db := dbOfPeer(t, conn)
	mustExec(t, conn, "DROP PEER src")
	mustExec(t, conn, "CREATE PEER src FROM POSTGRES WITH ("+peerOptions(peerCluster.URL(db))+")")
	if fed, exec := both(); fed != "Europe/Paris" || exec != "Europe/Paris" {
		t.Fatalf("new connections: federated %s, EXECUTE %s", fed, exec)
	}
	var ds string
	if err := conn.QueryRow(ctx, "SELECT current_setting('DateStyle') FROM src.public.t").Scan(&ds); err != nil || ds != "SQL, DMY" {
		t.Fatalf("DateStyle on a new connection = %q, %v", ds, err)
	}
	// A setting the peer refuses is ignored there; the session goes on. With
	// PL/pgSQL loaded, a peer's session refuses unknown plpgsql.* settings,
	// which the catalog's session (which has not loaded it) accepts.
	mustExec(t, conn, "EXECUTE src($q$DO $$ BEGIN END $$$q$)")
	mustExec(t, conn, "SET plpgsql.no_such_setting = 'x'")
	mustExec(t, conn, "EXECUTE src('SELECT 1')")
	if fed, exec := both(); fed != "Europe/Paris" || exec != "Europe/Paris" {
		t.Fatalf("after a refused setting: federated %s, EXECUTE %s", fed, exec)
	}
	mustExec(t, conn, "RESET ALL")
	if fed, exec := both(); fed != start || exec != start {
		t.Fatalf("after RESET ALL: federated %s, EXECUTE %s, want %s", fed, exec, start)
	}
	// A federated connection stays read-only after RESET ALL.
	var ro string
	if err := conn.QueryRow(ctx, "SELECT current_setting('transaction_read_only') FROM src.public.t").Scan(&ro); err != nil || ro != "on" {
		t.Fatalf("transaction_read_only = %q, %v", ro, err)
	}
}

// dbOfPeer returns the database the peer src points at.
func dbOfPeer(t *testing.T, conn *pgx.Conn) string {
	t.Helper()
	var db string
	if err := conn.QueryRow(testCtx(t), "SELECT database FROM peers WHERE name = 'src'").Scan(&db); err != nil {
		t.Fatal(err)
	}
	return db
}

func TestFederatedUserTypesAndColumns(t *testing.T) {
	_, conn := peerSession(t, nil)
	ctx := testCtx(t)
	// A four-part column name loses its peer part too.
	var m, x string
	if err := conn.QueryRow(ctx, "SELECT src.public.t.m, src.public.t.x FROM src.public.t").Scan(&m, &x); err != nil || m != "sad" || x != "one" {
		t.Fatalf("four-part columns: %q %q %v", m, x, err)
	}
	rr := conn.PgConn().Exec(ctx, "SELECT src.public.t.* FROM src.public.t")
	res, err := rr.ReadAll()
	if err != nil || len(res) != 1 || len(res[0].Rows) != 1 || len(res[0].FieldDescriptions) != 4 {
		t.Fatalf("src.public.t.*: %v %v", res, err)
	}
	// The enum is described as text, in both protocols, and sent as text
	// even when the client asks for binary.
	if fd := res[0].FieldDescriptions[1]; fd.DataTypeOID != 25 || fd.DataTypeSize != -1 || fd.TypeModifier != -1 {
		t.Errorf("simple protocol: m is %+v", fd)
	}
	er := conn.PgConn().ExecParams(ctx, "SELECT m, id FROM src.public.t WHERE id = $1", [][]byte{[]byte("1")},
		nil, nil, []int16{1}).Read()
	if er.Err != nil {
		t.Fatal(er.Err)
	}
	if fd := er.FieldDescriptions[0]; fd.DataTypeOID != 25 || fd.Format != 1 {
		t.Errorf("extended protocol: m is %+v", fd)
	}
	if string(er.Rows[0][0]) != "sad" || len(er.Rows[0][1]) != 4 {
		t.Errorf("binary row = %q", er.Rows[0])
	}
	// A parameter of the peer's own type is described as text and may be
	// sent as text in either format.
	sd, err := conn.PgConn().Prepare(ctx, "by_mood", "SELECT id FROM src.public.t WHERE m = $1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(sd.ParamOIDs) != 1 || sd.ParamOIDs[0] != 25 {
		t.Errorf("parameter types %v", sd.ParamOIDs)
	}
	er = conn.PgConn().ExecPrepared(ctx, "by_mood", [][]byte{[]byte("sad")}, []int16{1}, nil).Read()
	if er.Err != nil || len(er.Rows) != 1 || string(er.Rows[0][0]) != "1" {
		t.Errorf("binary text parameter: %q, %v", er.Rows, er.Err)
	}
	// COPY is refused clearly, not silently.
	for _, sql := range []string{"COPY (SELECT * FROM src.public.t) TO STDOUT", "EXECUTE src('COPY t TO STDOUT')",
		"EXECUTE src('COPY t FROM STDIN')", "COPY peers TO STDOUT"} {
		_, err := conn.Exec(ctx, sql)
		pe := wantError(t, err, pgerrcode.FeatureNotSupported)
		if !strings.Contains(pe.Message, "COPY") {
			t.Errorf("%s: %s", sql, pe.Message)
		}
	}
}

func TestCommandNames(t *testing.T) {
	s := startSluice(t, testbed.Options{})
	conn := connect(t, s.URL())
	for sql, name := range map[string]string{
		"CREATE TABLE x (a int)":       "CREATE TABLE",
		"CREATE VIEW v AS SELECT 1":    "CREATE VIEW",
		"CREATE INDEX ON peers (name)": "CREATE INDEX",
		"CREATE SCHEMA s":              "CREATE SCHEMA",
		"CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'": "CREATE FUNCTION",
		"DROP VIEW peers":                        "DROP VIEW",
		"DROP TABLE x":                           "DROP TABLE",
		"DROP MATERIALIZED VIEW m":               "DROP MATERIALIZED VIEW",
		"ALTER TABLE x ADD COLUMN b int":         "ALTER TABLE",
		"ALTER TABLE x RENAME COLUMN a TO b":     "ALTER TABLE",
		"TRUNCATE peers":                         "TRUNCATE TABLE",
		"GRANT SELECT ON peers TO PUBLIC":        "GRANT",
		"REVOKE SELECT ON peers FROM PUBLIC":     "REVOKE",
		"CREATE MATERIALIZED VIEW m AS SELECT 1": "CREATE MATERIALIZED VIEW",
		"VACUUM":                                 "VACUUM",
	} {
		_, err := conn.Exec(testCtx(t), sql)
		pe := wantError(t, err, pgerrcode.ReadOnlySQLTransaction)
		if want := "read-only: " + name + " is not allowed here"; !strings.HasSuffix(pe.Message, want) {
			t.Errorf("%s: %q, want ...%q", sql, pe.Message, want)
		}
	}
}
