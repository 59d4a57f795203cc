package executor_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sluicedb/sluice/internal/testbed"
)

// TestMySQLPeer makes a MYSQL peer on a throwaway MariaDB through Sluice:
// CREATE PEER reports the server and its binlog settings, the peers view
// shows it without its password, queries on it are refused clearly (no
// federated reads of MySQL peers yet), it cannot be a destination, and a
// server that cannot be reached is an error naming the peer.
func TestMySQLPeer(t *testing.T) {
	ctx := testCtx(t)
	m, err := testbed.StartMariaDB(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	m.Exec(t, "", "CREATE DATABASE app", "CREATE TABLE app.t (id int PRIMARY KEY)")
	s := startSluice(t, testbed.Options{})
	conn := connect(t, s.URL())

	var notices []string
	cfg := conn.Config().Copy()
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { notices = append(notices, n.Severity+": "+n.Message) }
	nconn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer nconn.Close(context.Background())
	mustExec(t, nconn, fmt.Sprintf("CREATE PEER my FROM MYSQL WITH (host = '127.0.0.1', port = %d, user = '%s', "+
		"password = '%s', database = 'app', flavor = 'mariadb')", m.Port(), testbed.MariaDBUser, testbed.MariaDBPassword))
	all := strings.Join(notices, "\n")
	if !strings.Contains(all, `peer "my": MariaDB `) || !strings.Contains(all, "binlog_format=ROW") ||
		!strings.Contains(all, "keeps binlogs") || strings.Contains(all, "WARNING") {
		t.Errorf("CREATE PEER's notices:\n%s", all)
	}

	var typ, host, port, db, user, text string
	if err := conn.QueryRow(ctx, `SELECT type, host, port, database, "user" FROM peers WHERE name = 'my'`).
		Scan(&typ, &host, &port, &db, &user); err != nil {
		t.Fatal(err)
	}
	if typ != "MYSQL" || host != "127.0.0.1" || port != fmt.Sprint(m.Port()) || db != "app" || user != testbed.MariaDBUser {
		t.Errorf("peers row: %s %s %s %s %s", typ, host, port, db, user)
	}
	if err := conn.QueryRow(ctx, "SELECT string_agg(p::text, ';') FROM peers p").Scan(&text); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(text, testbed.MariaDBPassword) {
		t.Fatalf("peers view shows the password: %s", text)
	}

	for _, sql := range []string{"SELECT * FROM my.app.t", "EXECUTE my('SELECT 1')"} {
		_, err := conn.Exec(ctx, sql)
		pe := wantError(t, err, pgerrcode.FeatureNotSupported)
		if !strings.Contains(pe.Message, "MYSQL") || !strings.Contains(pe.Message, `"my"`) {
			t.Errorf("%s: %q does not name the peer and its type", sql, pe.Message)
		}
	}
	// The session still works.
	var one int
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("after the refused queries: %v", err)
	}

	dst := peerCluster.NewDB(t)
	mustExec(t, conn, "CREATE PEER dst FROM POSTGRES WITH ("+peerOptions(dst)+")")
	_, err = conn.Exec(ctx, "CREATE MIRROR back FROM dst TO my WITH TABLE MAPPING (public.t:app.t)")
	pe := wantError(t, err, pgerrcode.FeatureNotSupported)
	if !strings.Contains(pe.Message, "MYSQL") {
		t.Errorf("MySQL as a destination: %q", pe.Message)
	}

	_, err = conn.Exec(ctx, fmt.Sprintf("CREATE PEER bad FROM MYSQL WITH (host = '127.0.0.1', port = %d, user = 'x', password = 'y')", m.Port()))
	pe = wantError(t, err, pgerrcode.SQLClientUnableToEstablishSQLConnection)
	if !strings.Contains(pe.Message, `"bad"`) || !strings.Contains(pe.Message, "Access denied") {
		t.Errorf("wrong password: %q", pe.Message)
	}
	// A mirror from it loads the table, then streams its changes.
	m.Exec(t, "", "INSERT INTO app.t VALUES (1), (2), (3)")
	// A table named without its database is in the peer's (app); a peer
	// without a database option needs it named.
	mustExec(t, conn, fmt.Sprintf("CREATE PEER nodb FROM MYSQL WITH (host = '127.0.0.1', port = %d, user = '%s', password = '%s')",
		m.Port(), testbed.MariaDBUser, testbed.MariaDBPassword))
	_, err = conn.Exec(ctx, "CREATE MIRROR nm FROM nodb TO dst WITH TABLE MAPPING (t:public.t)")
	if pe = wantError(t, err, pgerrcode.InvalidParameterValue); !strings.Contains(pe.Message, `"nodb" has no database`) {
		t.Errorf("unqualified table on a peer without a database: %q", pe.Message)
	}
	// A MySQL server keeps no publication or slot per mirror.
	_, err = conn.Exec(ctx, "CREATE MIRROR pm FROM my TO dst WITH TABLE MAPPING (t:public.t) WITH (publication_name = 'p')")
	if pe = wantError(t, err, pgerrcode.InvalidParameterValue); !strings.Contains(pe.Message, `"publication_name" does not apply`) {
		t.Errorf("publication_name for a MySQL source: %q", pe.Message)
	}
	mustExec(t, conn, "CREATE MIRROR mm FROM my TO dst WITH TABLE MAPPING (t:public.t)")
	var slotName, pubName *string
	if err := conn.QueryRow(ctx, "SELECT slot_name, publication_name FROM mirrors WHERE name = 'mm'").Scan(&slotName, &pubName); err != nil ||
		slotName != nil || pubName != nil {
		t.Errorf("a MySQL mirror's slot and publication: %v %v (%v), want NULL", slotName, pubName, err)
	}
	dconn := connect(t, dst)
	waitRows := func(want string) {
		t.Helper()
		var got string
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			err := dconn.QueryRow(ctx, "SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '') FROM public.t").Scan(&got)
			if err == nil && got == want {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		var status, lastErr string
		_ = conn.QueryRow(ctx, "SELECT status, coalesce(error, '') FROM mirrors WHERE name = 'mm'").Scan(&status, &lastErr)
		t.Fatalf("destination has %q, want %q (mirror %s, error %q)", got, want, status, lastErr)
	}
	waitRows("1,2,3")
	m.Exec(t, "app", "INSERT INTO t VALUES (4)", "DELETE FROM t WHERE id = 1", "UPDATE t SET id = 30 WHERE id = 3")
	waitRows("2,4,30")
	// The status view shows where the mirror stands, as MySQL names it,
	// and the monitor measures its lag in binlog bytes.
	var position string
	var lag *int64
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if err := conn.QueryRow(ctx, "SELECT coalesce(position, ''), lag_bytes FROM mirrors WHERE name = 'mm'").Scan(&position, &lag); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(position, "binlog.") && lag != nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.HasPrefix(position, "binlog.") || !strings.Contains(position, ":") || lag == nil || *lag < 0 {
		t.Errorf("mirrors shows position %q, lag_bytes %v", position, lag)
	}
	mustExec(t, conn, "DROP MIRROR mm")
	mustExec(t, conn, "DROP PEER my")
}
