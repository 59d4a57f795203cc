package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/internal/testbed"
)

// benchMySQL measures a mirror from MariaDB into Postgres: the initial
// load of a table of rows rows shaped like pgbench_accounts, then the
// catch-up of changes rows updated in one transaction while the mirror was
// paused. There is no MariaDB-to-Postgres pipe to set beside them (a
// mariadb-dump | mysql copy does not load Postgres), so the baselines are
// the Postgres figures of the same run on the same number of rows:
// pipeSecs, the binary COPY pipe plus primary key, and nativeSecs, native
// logical replication's catch-up of the same number of updates. The
// mirror pgMirror is paused meanwhile.
func benchMySQL(ctx context.Context, sl *pgx.Conn, dstC *testbed.Cluster, rows int64, changes, workers int,
	pipeSecs, nativeSecs float64, pgMirror string) error {
	fmt.Printf("\n== MariaDB source: %d rows shaped like pgbench_accounts, into Postgres ==\n", rows)
	if _, err := sl.Exec(ctx, "PAUSE MIRROR "+pgMirror); err != nil {
		return err
	}
	// A buffer pool that holds the table, as the Postgres source's OS cache
	// holds pgbench_accounts.
	m, err := testbed.StartMariaDBWith(ctx, map[string]string{"innodb_buffer_pool_size": "1G", "innodb_log_file_size": "256M"})
	if err != nil {
		return err
	}
	defer m.Stop()
	conn, err := m.Connect(ctx, "")
	if err != nil {
		return err
	}
	defer conn.Close()
	fill := fmt.Sprintf("INSERT INTO app.pgbench_accounts SELECT seq, (seq - 1) DIV 100000 + 1, 0, REPEAT('x', 84) FROM seq_1_to_%d", rows)
	for _, q := range []string{"CREATE DATABASE app", "USE app",
		// filler: varchar(84) with 84 characters, so that rows are as wide
		// as pgbench's blank-padded char(84) (MySQL strips a CHAR's
		// trailing spaces).
		"CREATE TABLE app.pgbench_accounts (aid int NOT NULL PRIMARY KEY, bid int, abalance int, filler varchar(84))",
		fill, "ANALYZE TABLE app.pgbench_accounts"} {
		if _, err := conn.Execute(q); err != nil {
			return fmt.Errorf("MariaDB: %s: %w", q, err)
		}
	}
	if err := exec1(ctx, dstC.URL("postgres"), "CREATE DATABASE frommaria"); err != nil {
		return err
	}
	if _, err := sl.Exec(ctx, fmt.Sprintf("CREATE PEER maria FROM MYSQL WITH (host = '127.0.0.1', port = %d, user = '%s', password = '%s')",
		m.Port(), testbed.MariaDBUser, testbed.MariaDBPassword)); err != nil {
		return err
	}
	if _, err := sl.Exec(ctx, fmt.Sprintf("CREATE PEER frommaria FROM POSTGRES WITH (host='127.0.0.1', port=%d, user='postgres', password='%s', database='frommaria')",
		dstC.Port(), dstC.Password())); err != nil {
		return err
	}

	loadPhase, err := startPhase("mysql-load", profileDir)
	if err != nil {
		return err
	}
	start := time.Now()
	if _, err := sl.Exec(ctx, fmt.Sprintf(`CREATE MIRROR maria FROM maria TO frommaria WITH TABLE MAPPING
		(app.pgbench_accounts:public.pgbench_accounts)%s`, withWorkers(workers))); err != nil {
		return err
	}
	if err := waitFor(ctx, sl, `SELECT status = 'RUNNING' FROM mirrors WHERE name = 'maria'`); err != nil {
		return err
	}
	loadSecs := time.Since(start).Seconds()
	loadRSS, err := loadPhase.stop()
	if err != nil {
		return err
	}
	fmt.Printf("Postgres binary COPY pipe + primary key (same rows): %7.2f s  %9.0f rows/s\n", pipeSecs, float64(rows)/pipeSecs)
	fmt.Printf("sluice CREATE MIRROR from MariaDB:                   %7.2f s  %9.0f rows/s\n", loadSecs, float64(rows)/loadSecs)
	fmt.Printf("ratio (sluice / Postgres pipe speed):                %7.2f\n", pipeSecs/loadSecs)
	fmt.Println(loadRSS)

	n := int64(changes)
	if n > rows {
		n = rows
	}
	dst, err := pgx.Connect(ctx, dstC.URL("frommaria"))
	if err != nil {
		return err
	}
	defer dst.Close(ctx)
	if _, err := sl.Exec(ctx, "PAUSE MIRROR maria"); err != nil {
		return err
	}
	if _, err := conn.Execute(fmt.Sprintf("UPDATE app.pgbench_accounts SET abalance = abalance + 1 WHERE aid <= %d", n)); err != nil {
		return err
	}
	cdcPhase, err := startPhase("mysql-cdc", profileDir)
	if err != nil {
		return err
	}
	start = time.Now()
	if _, err := sl.Exec(ctx, "RESUME MIRROR maria"); err != nil {
		return err
	}
	if err := waitFor(ctx, dst, fmt.Sprintf("SELECT abalance = 1 FROM pgbench_accounts WHERE aid = %d", n)); err != nil {
		return err
	}
	cdcSecs := time.Since(start).Seconds()
	cdcRSS, err := cdcPhase.stop()
	if err != nil {
		return err
	}
	fmt.Printf("\n== MariaDB source: catch-up of %d updates in one transaction, into Postgres ==\n", n)
	fmt.Printf("native logical replication, Postgres to Postgres (%d changes): %7.2f s  %9.0f rows/s\n", changes, nativeSecs, float64(changes)/nativeSecs)
	fmt.Printf("sluice from MariaDB:                                        %7.2f s  %9.0f rows/s\n", cdcSecs, float64(n)/cdcSecs)
	fmt.Printf("ratio (sluice rows/s / native rows/s):                      %7.2f\n", (float64(n)/cdcSecs)/(float64(changes)/nativeSecs))
	fmt.Println(cdcRSS)
	for _, q := range []string{"DROP MIRROR maria", "RESUME MIRROR " + pgMirror} {
		if _, err := sl.Exec(ctx, q); err != nil {
			return err
		}
	}
	return nil
}
