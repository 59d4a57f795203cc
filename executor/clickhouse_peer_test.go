package executor_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sluicedb/sluice/internal/testbed"
)

func TestClickHousePeer(t *testing.T) {
	ch := startClickHouse(t)
	s := startSluice(t, testbed.Options{})
	conn := connect(t, s.URL())
	ctx := testCtx(t)

	// The options of the example, with the test server's port.
	var notices []string
	cfg := conn.Config().Copy()
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { notices = append(notices, n.Message) }
	nconn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer nconn.Close(context.Background())
	mustExec(t, nconn, fmt.Sprintf("CREATE PEER ch FROM CLICKHOUSE WITH (host = '127.0.0.1', port = '%d', "+
		"user = '%s', password = '%s', database = 'system')", ch.Port(), testbed.ClickHouseUser, testbed.ClickHousePassword))
	if len(notices) != 1 || !strings.Contains(notices[0], "ClickHouse "+ch.Version()) || !strings.Contains(notices[0], `"ch"`) {
		t.Fatalf("notices = %q, want the server version %s", notices, ch.Version())
	}
	// user and database take their defaults, stored so the view shows them.
	mustExec(t, conn, fmt.Sprintf("CREATE PEER ch_min FROM CLICKHOUSE WITH (host = '127.0.0.1', port = %d)", ch.Port()))
	mustExec(t, conn, fmt.Sprintf("CREATE PEER IF NOT EXISTS ch_min FROM CLICKHOUSE WITH (host = '127.0.0.1', port = %d)", ch.Port()))
	_, err = conn.Exec(ctx, fmt.Sprintf("CREATE PEER ch_min FROM CLICKHOUSE WITH (host = '127.0.0.1', port = %d)", ch.Port()))
	wantError(t, err, pgerrcode.DuplicateObject)

	rows, err := conn.Query(ctx, `SELECT name, type, host, port, database, "user" FROM peers ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct{ Name, Type, Host, Port, Database, User string }])
	if err != nil {
		t.Fatal(err)
	}
	port := fmt.Sprint(ch.Port())
	want := []struct{ Name, Type, Host, Port, Database, User string }{
		{"ch", "CLICKHOUSE", "127.0.0.1", port, "system", testbed.ClickHouseUser},
		{"ch_min", "CLICKHOUSE", "127.0.0.1", port, "default", "default"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("peers = %+v\nwant %+v", got, want)
	}
	var text string
	if err := conn.QueryRow(ctx, "SELECT string_agg(p::text, ';') FROM peers p").Scan(&text); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(text, testbed.ClickHousePassword) {
		t.Fatalf("peers view shows the password: %s", text)
	}

	// ClickHouse is a destination, not a source: refused, clearly.
	src := peerCluster.NewDB(t)
	mustExec(t, conn, "CREATE PEER src FROM POSTGRES WITH ("+peerOptions(src)+")")
	peerCluster.Exec(t, testbed.DBName(src), "CREATE TABLE t (id int PRIMARY KEY)")
	for _, sql := range []string{
		"CREATE MIRROR m FROM ch TO src WITH TABLE MAPPING (public.t:public.t)",
	} {
		_, err = conn.Exec(ctx, sql)
		pe := wantError(t, err, pgerrcode.FeatureNotSupported)
		if !strings.Contains(pe.Message, "CLICKHOUSE") || !strings.Contains(pe.Message, `"ch"`) {
			t.Errorf("%s: message %q does not name the peer and its type", sql, pe.Message)
		}
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM mirrors").Scan(&n); err != nil || n != 0 {
		t.Fatalf("a refused mirror was stored: count = %d, %v", n, err)
	}
	// Queries on a ClickHouse peer run there (federated_ch_test.go).
	var one int
	if err := conn.QueryRow(ctx, "EXECUTE ch('SELECT 1')").Scan(&one); err != nil || one != 1 {
		t.Fatalf("EXECUTE ch('SELECT 1') = %d, %v", one, err)
	}

	mustExec(t, conn, "DROP PEER ch")
	mustExec(t, conn, "DROP PEER ch_min")
	_, err = conn.Exec(ctx, "DROP PEER ch")
	wantError(t, err, pgerrcode.UndefinedObject)
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM peers WHERE type = 'CLICKHOUSE'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("after drop, count = %d, %v", n, err)
	}
}

func TestClickHousePeerValidation(t *testing.T) {
	ch := startClickHouse(t)
	s := startSluice(t, testbed.Options{})
	conn := connect(t, s.URL())
	ctx := testCtx(t)
	closed := closedPort(t)

	tests := []struct {
		name, sql, code string
		mention         []string
	}{
		{"wrong port", fmt.Sprintf("CREATE PEER bad FROM CLICKHOUSE WITH (host = '127.0.0.1', port = %d)", closed),
			pgerrcode.SQLClientUnableToEstablishSQLConnection, []string{`"bad"`, "cannot connect", "connection refused"}},
		{"wrong password", fmt.Sprintf("CREATE PEER bad FROM CLICKHOUSE WITH (host = '127.0.0.1', port = %d, user = '%s', password = 'nope')",
			ch.Port(), testbed.ClickHouseUser), pgerrcode.SQLClientUnableToEstablishSQLConnection, []string{`"bad"`, "password"}},
		{"missing database", fmt.Sprintf("CREATE PEER bad FROM CLICKHOUSE WITH (host = '127.0.0.1', port = %d, database = 'analytics')", ch.Port()),
			pgerrcode.SQLClientUnableToEstablishSQLConnection, []string{`"bad"`, `"analytics" does not exist`}},
		{"tls required, none offered", fmt.Sprintf("CREATE PEER bad FROM CLICKHOUSE WITH (host = '127.0.0.1', port = %d, require_tls = true)", ch.Port()),
			pgerrcode.SQLClientUnableToEstablishSQLConnection, []string{`"bad"`}},
		{"unknown option", fmt.Sprintf("CREATE PEER bad FROM CLICKHOUSE WITH (host = '127.0.0.1', port = %d, colour = 'blue')", ch.Port()),
			pgerrcode.SyntaxError, []string{`"colour"`}},
		{"staging option", fmt.Sprintf("CREATE PEER bad FROM CLICKHOUSE WITH (host = '127.0.0.1', port = %d, s3_path = 's3://b/p')", ch.Port()),
			pgerrcode.SyntaxError, []string{`"s3_path"`, "staging"}},
		{"missing host", "CREATE PEER bad FROM CLICKHOUSE WITH (port = 9000)",
			pgerrcode.InvalidParameterValue, []string{`"host"`}},
		{"bad port", "CREATE PEER bad FROM CLICKHOUSE WITH (host = 'h', port = 'x')",
			pgerrcode.InvalidParameterValue, []string{`"port"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := conn.Exec(ctx, tt.sql)
			pe := wantError(t, err, tt.code)
			for _, m := range tt.mention {
				if !strings.Contains(pe.Message, m) {
					t.Errorf("message %q does not mention %s", pe.Message, m)
				}
			}
			t.Logf("%s: %s (hint: %s)", pe.Code, pe.Message, pe.Hint)
		})
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM peers").Scan(&n); err != nil || n != 0 {
		t.Fatalf("a failed CREATE PEER stored something: count = %d, %v", n, err)
	}
}

// closedPort returns a loopback port nothing listens on: that of a
// ClickHouse server started and stopped for the purpose.
func closedPort(t *testing.T) int {
	t.Helper()
	ch, err := testbed.StartClickHouse(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	port := ch.Port()
	ch.Stop()
	return port
}
