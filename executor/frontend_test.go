package executor_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sluicedb/sluice/internal/testbed"
)

func TestLogin(t *testing.T) {
	s := startSluice(t, testbed.Options{})
	ctx := testCtx(t)

	conn := connect(t, s.URL())
	var one int
	if err := conn.QueryRow(ctx, "SELECT $1::int + 1", 0).Scan(&one); err != nil || one != 1 {
		t.Fatalf("SELECT $1::int + 1 = %d, %v", one, err)
	}

	bad := strings.Replace(s.URL(), testPassword, "wrong", 1)
	_, err := pgx.Connect(ctx, bad)
	wantError(t, err, pgerrcode.InvalidPassword)

	other := strings.Replace(s.URL(), "sluice:", "postgres:", 1)
	_, err = pgx.Connect(ctx, other)
	wantError(t, err, pgerrcode.InvalidPassword)

	// No TLS configured: sslmode=require is refused cleanly, prefer falls back.
	if _, err := pgx.Connect(ctx, strings.Replace(s.URL(), "sslmode=disable", "sslmode=require", 1)); err == nil {
		t.Fatal("sslmode=require succeeded without TLS")
	}
	c2 := connect(t, strings.Replace(s.URL(), "sslmode=disable", "sslmode=prefer", 1))
	if err := c2.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestParameterStatus(t *testing.T) {
	s := startSluice(t, testbed.Options{})
	conn := connect(t, s.URL())
	pc := conn.PgConn()
	for key, want := range map[string]string{
		"client_encoding":             "UTF8",
		"DateStyle":                   "ISO, MDY",
		"integer_datetimes":           "on",
		"standard_conforming_strings": "on",
	} {
		if got := pc.ParameterStatus(key); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	if v := pc.ParameterStatus("server_version"); v == "" {
		t.Error("server_version not reported")
	}
	// A SET on the session is reported back.
	mustExec(t, conn, "SET DateStyle = 'German'")
	if got := pc.ParameterStatus("DateStyle"); got != "German, DMY" {
		t.Errorf("after SET, DateStyle = %q", got)
	}
}

func TestSyntaxErrorKeepsSession(t *testing.T) {
	s := startSluice(t, testbed.Options{})
	conn := connect(t, s.URL())
	ctx := testCtx(t)
	_, err := conn.Exec(ctx, "SELEC 1")
	pe := wantError(t, err, pgerrcode.SyntaxError)
	if pe.Position != 1 {
		t.Errorf("position = %d, want 1", pe.Position)
	}
	_, err = conn.Exec(ctx, "CREATE PEER p FROM POSTGRES WITH (host = 'x',, port = 1)")
	pe = wantError(t, err, pgerrcode.SyntaxError)
	if pe.Position == 0 {
		t.Error("no position for a syntax error in our grammar")
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT 42").Scan(&n); err != nil || n != 42 {
		t.Fatalf("session unusable after syntax error: %d, %v", n, err)
	}
}

func TestPeers(t *testing.T) {
	s := startSluice(t, testbed.Options{})
	conn := connect(t, s.URL())
	ctx := testCtx(t)
	db := peerCluster.NewDB(t)

	mustExec(t, conn, "CREATE PEER src FROM POSTGRES WITH ("+peerOptions(db)+")")
	// Quoted numbers, as PeerDB's own scripts write them, work too.
	mustExec(t, conn, "CREATE PEER src2 FROM POSTGRES WITH ("+
		strings.Replace(peerOptions(db), fmt.Sprintf("port = %d", peerCluster.Port()), fmt.Sprintf("port = '%d'", peerCluster.Port()), 1)+")")
	mustExec(t, conn, "CREATE PEER IF NOT EXISTS src FROM POSTGRES WITH ("+peerOptions(db)+")")

	_, err := conn.Exec(ctx, "CREATE PEER src FROM POSTGRES WITH ("+peerOptions(db)+")")
	wantError(t, err, pgerrcode.DuplicateObject)

	rows, err := conn.Query(ctx, "SELECT name, type, host, port, database, \"user\" FROM peers ORDER BY name")
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct{ Name, Type, Host, Port, Database, User string }])
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "src" || got[1].Name != "src2" || got[0].Type != "POSTGRES" ||
		got[0].Host != "127.0.0.1" || got[0].Port != fmt.Sprint(peerCluster.Port()) ||
		got[0].Database != testbed.DBName(db) || got[0].User != "postgres" {
		t.Fatalf("peers = %+v", got)
	}
	// No secret anywhere in the view.
	var text string
	if err := conn.QueryRow(ctx, "SELECT string_agg(p::text, ';') FROM peers p").Scan(&text); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(text, peerCluster.Password()) {
		t.Fatalf("peers view shows the password: %s", text)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM peers WHERE type = $1", "POSTGRES").Scan(&n); err != nil || n != 2 {
		t.Fatalf("count = %d, %v", n, err)
	}

	mustExec(t, conn, "DROP PEER src2")
	_, err = conn.Exec(ctx, "DROP PEER src2")
	wantError(t, err, pgerrcode.UndefinedObject)
	mustExec(t, conn, "DROP PEER IF EXISTS src2")
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM peers").Scan(&n); err != nil || n != 1 {
		t.Fatalf("after drop, count = %d, %v", n, err)
	}
}

func TestPeerValidation(t *testing.T) {
	s := startSluice(t, testbed.Options{})
	conn := connect(t, s.URL())
	ctx := testCtx(t)
	db := peerCluster.NewDB(t)

	tests := []struct {
		name, sql, code, mention string
	}{
		{"unreachable", "CREATE PEER bad FROM POSTGRES WITH (host = '127.0.0.1', port = 1, user = 'u', database = 'd')",
			pgerrcode.SQLClientUnableToEstablishSQLConnection, `"bad"`},
		{"wrong password", "CREATE PEER bad FROM POSTGRES WITH (" + strings.Replace(peerOptions(db), peerCluster.Password(), "nope", 1) + ")",
			pgerrcode.InvalidPassword, "password authentication failed"},
		{"unknown option", "CREATE PEER bad FROM POSTGRES WITH (" + peerOptions(db) + ", colour = 'blue')",
			pgerrcode.SyntaxError, `"colour"`},
		{"missing host", "CREATE PEER bad FROM POSTGRES WITH (user = 'u', database = 'd')",
			pgerrcode.InvalidParameterValue, `"host"`},
		{"bad port", "CREATE PEER bad FROM POSTGRES WITH (host = 'h', port = 'x', user = 'u', database = 'd')",
			pgerrcode.InvalidParameterValue, `"port"`},
		{"not yet supported type", "CREATE PEER bad FROM SNOWFLAKE WITH (account_id = 'a')",
			pgerrcode.FeatureNotSupported, "SNOWFLAKE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := conn.Exec(ctx, tt.sql)
			pe := wantError(t, err, tt.code)
			if !strings.Contains(pe.Message, tt.mention) {
				t.Errorf("message %q does not mention %s", pe.Message, tt.mention)
			}
		})
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM peers").Scan(&n); err != nil || n != 0 {
		t.Fatalf("a failed CREATE PEER stored something: count = %d, %v", n, err)
	}
}

func TestCatalogIsReadOnly(t *testing.T) {
	s := startSluice(t, testbed.Options{})
	conn := connect(t, s.URL())
	ctx := testCtx(t)
	for _, sql := range []string{"CREATE TABLE x (a int)", "DELETE FROM peers", "SELECT 1 INTO x"} {
		_, err := conn.Exec(ctx, sql)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != pgerrcode.ReadOnlySQLTransaction {
			t.Errorf("%s: want read-only error, got %v", sql, err)
		}
	}
	// Our statements refuse to run in a transaction block.
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tx.Exec(ctx, "DROP PEER IF EXISTS p")
	wantError(t, err, pgerrcode.ActiveSQLTransaction)
	_ = tx.Rollback(ctx)
	mustExec(t, conn, "DROP PEER IF EXISTS p")
}

func TestQueryReplicationRefused(t *testing.T) {
	s := startSluice(t, testbed.Options{})
	conn := connect(t, s.URL())
	_, err := conn.Exec(testCtx(t), "EXECUTE MIRROR m")
	pe := wantError(t, err, pgerrcode.FeatureNotSupported)
	if !strings.Contains(pe.Message, "EXECUTE MIRROR") {
		t.Errorf("message %q", pe.Message)
	}
}

func TestCancel(t *testing.T) {
	s := startSluice(t, testbed.Options{})
	conn := connect(t, s.URL())
	ctx, cancel := context.WithTimeout(testCtx(t), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := conn.Exec(ctx, "SELECT pg_sleep(20)")
	if err == nil {
		t.Fatal("pg_sleep(20) was not cancelled")
	}
	if time.Since(start) > 10*time.Second {
		t.Fatalf("cancel took %s", time.Since(start))
	}
	// pgx closes a connection whose context was cancelled mid-query; a new
	// one must work, and a CancelRequest sent explicitly must cancel.
	conn2 := connect(t, s.URL())
	wantCancelled(t, conn2, "SELECT pg_sleep(20)")
	var n int
	if err := conn2.QueryRow(testCtx(t), "SELECT 7").Scan(&n); err != nil || n != 7 {
		t.Fatalf("session unusable after cancel: %v", err)
	}
}

func TestConcurrentSessions(t *testing.T) {
	s := startSluice(t, testbed.Options{MaxMessageSize: 4096})
	ctx := testCtx(t)
	// A session that sends an oversized message is ended; others go on.
	bad := connect(t, s.URL())
	_, err := bad.Exec(ctx, "SELECT '"+strings.Repeat("x", 8192)+"'")
	if err == nil {
		t.Fatal("oversized message accepted")
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			conn, err := pgx.Connect(ctx, s.URL())
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close(ctx)
			for j := 0; j < 20; j++ {
				var got int
				if err := conn.QueryRow(ctx, "SELECT $1::int * 2", i*100+j).Scan(&got); err != nil {
					errs <- err
					return
				}
				if got != (i*100+j)*2 {
					errs <- fmt.Errorf("session %d got %d", i, got)
					return
				}
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// wantCancelled runs sql, which must run for seconds, on conn, sends a
// CancelRequest 300 ms later and checks that the query ends with 57014.
func wantCancelled(t *testing.T, conn *pgx.Conn, sql string) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := conn.Exec(testCtx(t), sql)
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	if err := conn.PgConn().CancelRequest(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		wantError(t, err, pgerrcode.QueryCanceled)
	case <-time.After(10 * time.Second):
		t.Fatal("CancelRequest did not cancel")
	}
}
