package executor_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/sluicedb/sluice/internal/testbed"
)

// TestMySQLAlterMirrorTables adds a table with its initial load to a
// mirror from MariaDB into Postgres while the source changes, then drops
// it: the load converges, and the table's changes after the drop do not
// arrive while the other table's do.
func TestMySQLAlterMirrorTables(t *testing.T) {
	ctx := testCtx(t)
	m, err := testbed.StartMariaDB(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	m.Exec(t, "", "CREATE DATABASE app", "CREATE TABLE app.a (id int PRIMARY KEY, v varchar(40))",
		"CREATE TABLE app.b (id int PRIMARY KEY, v varchar(40))",
		"INSERT INTO app.a VALUES (1, 'a1'), (2, 'a2')",
		"INSERT INTO app.b SELECT seq, concat('b', seq) FROM app.seq_1_to_5000")
	s := startSluice(t, testbed.Options{})
	conn := connect(t, s.URL())
	dstURL := peerCluster.NewDB(t)
	dst := connect(t, dstURL)
	mustExec(t, conn, fmt.Sprintf("CREATE PEER my FROM MYSQL WITH (host = '127.0.0.1', port = %d, user = '%s', "+
		"password = '%s', database = 'app', flavor = 'mariadb')", m.Port(), testbed.MariaDBUser, testbed.MariaDBPassword))
	mustExec(t, conn, "CREATE PEER dst FROM POSTGRES WITH ("+peerOptions(dstURL)+")")
	mustExec(t, conn, "CREATE MIRROR ma FROM my TO dst WITH TABLE MAPPING (a:public.a)")
	waitQuery := func(query, want string) {
		t.Helper()
		var got string
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			if err := dst.QueryRow(ctx, query).Scan(&got); err == nil && got == want {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		var status, lastErr string
		_ = conn.QueryRow(ctx, "SELECT status, coalesce(error, '') FROM mirrors WHERE name = 'ma'").Scan(&status, &lastErr)
		t.Fatalf("%s: %q, want %q (mirror %s, error %q)", query, got, want, status, lastErr)
	}
	const aRows = "SELECT string_agg(id || ':' || v, ',' ORDER BY id) FROM public.a"
	const bRows = "SELECT count(*) || '/' || sum(id) || '/' || count(*) FILTER (WHERE v LIKE 'changed%') FROM public.b"
	waitQuery(aRows, "1:a1,2:a2")
	var status string
	for deadline := time.Now().Add(60 * time.Second); status != "RUNNING" && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		_ = conn.QueryRow(ctx, "SELECT status FROM mirrors WHERE name = 'ma'").Scan(&status)
	}

	mustExec(t, conn, "ALTER MIRROR ma ADD TABLE MAPPING (app.b:public.b)")
	m.Exec(t, "app", "UPDATE b SET v = 'changed' WHERE id <= 10", "INSERT INTO b VALUES (6000, 'new')", "INSERT INTO a VALUES (3, 'a3')")
	waitQuery(bRows, fmt.Sprintf("5001/%d/10", 5000*5001/2+6000))
	waitQuery(aRows, "1:a1,2:a2,3:a3")

	mustExec(t, conn, "ALTER MIRROR ma DROP TABLE b")
	m.Exec(t, "app", "INSERT INTO b VALUES (7000, 'after')", "INSERT INTO a VALUES (4, 'a4')")
	waitQuery(aRows, "1:a1,2:a2,3:a3,4:a4")
	waitQuery(bRows, fmt.Sprintf("5001/%d/10", 5000*5001/2+6000))
}
