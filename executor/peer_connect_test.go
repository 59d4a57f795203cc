package executor_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/sluicedb/sluice/internal/testbed"
)

// A wrong password for a Postgres peer (the peer cluster refuses it with
// scram-sha-256 and has no TLS, so pgconn's TLS attempt fails first) is
// reported with the server's SQLSTATE and message first, by CREATE PEER, a
// federated SELECT, EXECUTE and CREATE MIRROR alike; the refused TLS
// attempt is only in the DETAIL. (Once a mirror found the server without
// TLS, the mirror's and CREATE MIRROR's connections to it try plain text
// first, and the wrong password ends the attempts: no TLS attempt then.)
func TestPeerWrongPasswordLeadsWithCause(t *testing.T) {
	s := startSluice(t, testbed.Options{})
	conn := connect(t, s.URL())
	ctx := testCtx(t)
	srcURL := peerCluster.NewDB(t)
	db := testbed.DBName(srcURL)
	role := "pw_" + strings.ReplaceAll(db, "-", "_")
	peerCluster.Exec(t, db, fmt.Sprintf("CREATE ROLE %s LOGIN REPLICATION PASSWORD 'right-pw'", role))
	t.Cleanup(func() {
		peerCluster.Exec(t, db, "DROP OWNED BY "+role)
		peerCluster.Exec(t, "postgres", "DROP ROLE "+role)
	})
	peerCluster.Exec(t, db, "CREATE TABLE t (id int PRIMARY KEY); ALTER TABLE t OWNER TO "+role+"; GRANT CREATE ON DATABASE "+db+" TO "+role)
	opts := func(pw string) string {
		return fmt.Sprintf("host = '127.0.0.1', port = %d, user = '%s', password = '%s', database = '%s'",
			peerCluster.Port(), role, pw, db)
	}
	wantCause := func(what string, err error, prefix string, tlsTried bool) {
		t.Helper()
		pe := wantError(t, err, pgerrcode.InvalidPassword)
		want := fmt.Sprintf(`%s: connect to 127.0.0.1:%d: password authentication failed for user "%s"`,
			prefix, peerCluster.Port(), role)
		if pe.Message != want {
			t.Fatalf("%s: message = %q\nwant %q", what, pe.Message, want)
		}
		if tried := strings.Contains(pe.Detail, "server refused TLS connection"); tried != tlsTried {
			t.Fatalf("%s: detail = %q, want the TLS attempt in it: %v", what, pe.Detail, tlsTried)
		}
	}

	_, err := conn.Exec(ctx, "CREATE PEER bad FROM POSTGRES WITH ("+opts("wrong-pw")+")")
	wantCause("create peer", err, `create peer "bad": cannot connect`, true)

	mustExec(t, conn, "CREATE PEER src FROM POSTGRES WITH ("+opts("right-pw")+")")
	mustExec(t, conn, "CREATE PEER dst FROM POSTGRES WITH ("+peerOptions(peerCluster.NewDB(t))+")")
	// A running mirror whose source password changes: mirrors.error leads
	// with the cause once the mirror connects again.
	mustExec(t, conn, "CREATE MIRROR live FROM src TO dst WITH TABLE MAPPING (public.t:public.t)")
	f := &mirrorFixture{conn: conn}
	f.waitStatus(t, "live", "RUNNING")
	mustExec(t, conn, "PAUSE MIRROR live")
	f.waitStatus(t, "live", "PAUSED")
	peerCluster.Exec(t, db, fmt.Sprintf("ALTER ROLE %s PASSWORD 'changed-pw'", role))
	mustExec(t, conn, "RESUME MIRROR live")
	wantErr := fmt.Sprintf(`connect to 127.0.0.1:%d: password authentication failed for user "%s"`, peerCluster.Port(), role)
	deadline := time.Now().Add(60 * time.Second)
	var mirrorErr string
	for time.Now().Before(deadline) && !strings.HasPrefix(mirrorErr, wantErr) {
		time.Sleep(100 * time.Millisecond)
		if err := conn.QueryRow(ctx, "SELECT coalesce(error, '') FROM mirrors WHERE name = 'live'").Scan(&mirrorErr); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.HasPrefix(mirrorErr, wantErr) {
		t.Fatalf("mirrors.error = %q, want it to start with %q", mirrorErr, wantErr)
	}
	mustExec(t, conn, "PAUSE MIRROR live")

	_, err = conn.Exec(ctx, "SELECT id FROM src.public.t")
	wantCause("select", err, `peer "src"`, true)
	_, err = conn.Exec(ctx, "EXECUTE src('SELECT 1')")
	wantCause("execute", err, `peer "src"`, true)
	_, err = conn.Exec(ctx, "CREATE MIRROR m FROM src TO dst WITH TABLE MAPPING (public.t:public.t)")
	wantCause("create mirror", err, `create mirror "m": cannot connect to source peer "src"`, false)
}

// A ClickHouse peer pointed at the server's HTTP port fails within 3
// seconds with a hint naming the native port, instead of waiting for the
// native handshake to time out.
func TestClickHousePeerHTTPPort(t *testing.T) {
	ch := startClickHouse(t)
	s := startSluice(t, testbed.Options{})
	conn := connect(t, s.URL())
	start := time.Now()
	_, err := conn.Exec(testCtx(t), fmt.Sprintf("CREATE PEER ch FROM CLICKHOUSE WITH (host = '127.0.0.1', port = %d, "+
		"user = '%s', password = '%s')", ch.HTTPPort(), testbed.ClickHouseUser, testbed.ClickHousePassword))
	elapsed := time.Since(start)
	pe := wantError(t, err, pgerrcode.SQLClientUnableToEstablishSQLConnection)
	if elapsed > 3*time.Second {
		t.Fatalf("CREATE PEER on the HTTP port took %v, want under 3s", elapsed)
	}
	if !strings.Contains(pe.Message, `create peer "ch"`) || !strings.Contains(pe.Message, "ClickHouse's HTTP port") {
		t.Fatalf("message = %q, want the peer and the HTTP port named", pe.Message)
	}
	if !strings.Contains(pe.Hint, "default 9000") {
		t.Fatalf("hint = %q, want the native port", pe.Hint)
	}
	t.Logf("refused in %v: %s (hint: %s)", elapsed, pe.Message, pe.Hint)
}
