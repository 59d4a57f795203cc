// Command sluice-bench measures Sluice against baselines on the same
// machine and the same data, in one run, and prints rows/s and ratios:
//
//  1. initial load of pgbench_accounts by CREATE MIRROR, against a plain
//     binary COPY pipe, psql -c 'COPY ... TO STDOUT' | psql -c 'COPY ...
//     FROM STDIN', into an index-less table followed by the primary key
//     build; each runs twice (pipe, mirror, pipe, mirror) and its faster
//     run counts;
//  2. CDC catch-up of the same changes (one transaction updating or
//     inserting -changes rows), against native logical replication (a
//     subscription), each run alone while the other is idle, until the
//     transaction is visible on the destination;
//  3. with -resync (the default), RESYNC TABLE of pgbench_accounts with each
//     strategy and RESYNC MIRROR, timed until done, next to a COPY pipe
//     of the table as the catch-up of (2) left it, run before and after
//     them (the faster counts): twice alone, as the pipe ran (the faster
//     is the ratio's figure, with the mirror's events during it as a
//     timeline), then again while a reader
//     polls the table and records the longest any of its queries waited,
//     and whether it ever saw no rows or an error;
//  4. with -mysql (the default), a mirror from MariaDB into Postgres: the
//     initial load of a table of as many rows shaped like
//     pgbench_accounts, and the catch-up of -changes updates in one
//     transaction (mysql.go), beside the Postgres figures of (1) and (2)
//     on the same number of rows (no MariaDB-to-Postgres pipe exists to
//     compare with);
//  5. with -clickhouse (the default), the initial load of the same table
//     into ClickHouse by CREATE MIRROR (next to the COPY pipe of (1)) and
//     the CDC catch-up of the same changes;
//  6. with -big (1M and 5M rows by default), for each size one source
//     transaction of that many changes, caught up by each mirror alone
//     (bigtx.go), with the peak memory of each;
//  7. with -nodes (1,2,3 by default), after (1), the same initial load
//     in partitions of 250,000 rows while that many Sluice nodes share the
//     catalog, with the partitions each node loaded (nodes.go).
//
// Sluice runs in this process: after each of the loads and catch-ups the
// program prints the process's peak resident memory during it, and with
// -profile DIR it writes a CPU and an allocation profile of each
// (load, cdc, mysql-load, mysql-cdc, ch-load, ch-cdc) into DIR for go tool
// pprof.
//
// It is a program, not a test: it asserts nothing about time.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/internal/pgcluster"
	"github.com/sluicedb/sluice/internal/testbed"
)

func main() {
	scale := flag.Int("scale", 30, "pgbench scale of the source (100,000 accounts per unit)")
	changes := flag.Int("changes", 400000, "row changes for the CDC catch-up")
	workers := flag.Int("workers", 0, "snapshot_max_parallel_workers of the mirrors (0: not set, the mirror's default)")
	workload := flag.String("workload", "update", "the CDC catch-up transaction: update (existing rows) or insert (new rows)")
	resync := flag.Bool("resync", true, "also time the resyncs")
	ch := flag.Bool("clickhouse", true, "also measure a mirror into ClickHouse")
	big := flag.String("big", "1M,5M", "sizes of the single large transactions each mirror catches up (\"\" for none)")
	my := flag.Bool("mysql", true, "also measure a mirror from MariaDB into Postgres (needs mariadb-server)")
	flag.StringVar(&compare, "compare-workers", "", "also time the initial load with each of these worker counts (0: the default; N/P: N workers, P partitions), next to a pipe, in -compare-rounds rounds")
	flag.IntVar(&compareRounds, "compare-rounds", 2, "rounds of -compare-workers")
	flag.BoolVar(&loadOnly, "load-only", false, "stop after the initial load (and -compare-workers, -nodes)")
	flag.StringVar(&nodeCounts, "nodes", "1,2,3", "also time the initial load with this many Sluice nodes on one catalog, each count in turn (\"\" for none)")
	flag.StringVar(&profileDir, "profile", "", "write CPU and allocation profiles of each measured phase of Sluice into this directory")
	flag.Parse()
	sizes, err := parseSizes(*big)
	if err == nil {
		nodes, err = parseNodes(nodeCounts)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sluice-bench:", err)
		os.Exit(2)
	}
	if err := run(*scale, *changes, *workers, *workload, *resync, *ch, *my, sizes); err != nil {
		fmt.Fprintln(os.Stderr, "sluice-bench:", err)
		os.Exit(1)
	}
}

// profileDir is where -profile writes the phases' profiles ("" for none).
var profileDir string

// servers are the clusters whose CPU time the bench reports (cpuNow).
var servers []*testbed.Cluster

// checkpoint runs CHECKPOINT on the source and destination clusters:
// each measured step starts right after one, so none pays for a
// checkpoint that the write-ahead log of the step before it triggered
// (a load writes about 370 MB, and the servers checkpoint every 500 MB
// or so), and each pays for the same full-page images.
//
// Then the kernel writes every dirty page out (sync): the servers run
// with fsync off, so a step's files stay in the page cache, dirty (about
// 0.9 GB a load with its write-ahead log), and the kernel's writeback
// would start in the middle of a later step, which would pay for the
// steps before it.
func checkpoint(ctx context.Context) error {
	for _, c := range servers[:2] {
		if err := exec1(ctx, c.URL("postgres"), "CHECKPOINT"); err != nil {
			return err
		}
	}
	syscall.Sync()
	return nil
}

// cpuSince returns the CPU time spent by servers and this process since
// before.
func cpuSince(before cpuTimes) (cpuTimes, error) {
	now, err := cpuNow(servers...)
	return now.sub(before), err
}

// compare, compareRounds, loadOnly and nodeCounts are -compare-workers,
// -compare-rounds, -load-only and -nodes; nodes is -nodes parsed.
var (
	compare       string
	compareRounds int
	loadOnly      bool
	nodeCounts    string
	nodes         []int
)

// withWorkers is the WITH clause of a CREATE MIRROR that sets
// snapshot_max_parallel_workers to workers, or nothing for 0 (the
// mirror's default).
func withWorkers(workers int) string {
	if workers == 0 {
		return ""
	}
	return fmt.Sprintf(" WITH (snapshot_max_parallel_workers = %d)", workers)
}

func run(scale, changes, workers int, workload string, resync, ch, my bool, sizes []int64) error {
	ctx := context.Background()
	if workload != "update" && workload != "insert" {
		return fmt.Errorf("unknown workload %q", workload)
	}
	setMemoryLimit()
	fmt.Printf("starting clusters (source, destination, catalog)...\n")
	srcC, err := testbed.Start(ctx, "bench-src")
	if err != nil {
		return err
	}
	defer srcC.Stop()
	dstC, err := testbed.Start(ctx, "bench-dst")
	if err != nil {
		return err
	}
	defer dstC.Stop()
	catC, err := testbed.Start(ctx, "bench-cat")
	if err != nil {
		return err
	}
	defer catC.Stop()
	// A subscription's worker restarts no sooner than
	// wal_retrieve_retry_interval (5 s) after it last started: make that
	// short, so the native figure does not include a wait that depends on
	// how long ago the copy before it ended. And no autovacuum: each load
	// would otherwise share the CPU with the vacuum of the table loaded
	// before it (3M rows inserted call for one), and the second CDC run
	// with the dead rows of the first. And no checkpoint in the middle of
	// a step: each starts with one (checkpoint), and a load writes about
	// 460 MB of write-ahead log, near the 540 MB at which the default
	// max_wal_size (1 GB) starts one, so that a step that happened to
	// cross it paid for a checkpoint the ones before it caused.
	for _, c := range []*testbed.Cluster{srcC, dstC} {
		for _, sql := range []string{"ALTER SYSTEM SET wal_retrieve_retry_interval = '10ms'",
			"ALTER SYSTEM SET autovacuum = off", "ALTER SYSTEM SET max_wal_size = '8GB'", "SELECT pg_reload_conf()"} {
			if err := exec1(ctx, c.URL("postgres"), sql); err != nil {
				return err
			}
		}
	}
	for _, db := range []string{"app"} {
		if err := exec1(ctx, srcC.URL("postgres"), "CREATE DATABASE "+db); err != nil {
			return err
		}
	}
	for _, db := range []string{"pipe", "mirror", "native"} {
		if err := exec1(ctx, dstC.URL("postgres"), "CREATE DATABASE "+db); err != nil {
			return err
		}
	}
	srcURL := srcC.URL("app")
	fmt.Printf("pgbench -i -s %d ...\n", scale)
	if err := pgbench(srcURL, "-i", "-s", fmt.Sprint(scale), "-q"); err != nil {
		return err
	}
	src, err := pgx.Connect(ctx, srcURL)
	if err != nil {
		return err
	}
	defer src.Close(ctx)
	var rows int64
	if err := src.QueryRow(ctx, "SELECT count(*) FROM pgbench_accounts").Scan(&rows); err != nil {
		return err
	}
	for _, sql := range []string{"VACUUM ANALYZE pgbench_accounts", "CHECKPOINT"} {
		if _, err := src.Exec(ctx, sql); err != nil {
			return err
		}
	}

	servers = []*testbed.Cluster{srcC, dstC, catC}
	// 1a. Baseline: binary COPY pipe, then the primary key.
	if err := checkpoint(ctx); err != nil {
		return err
	}
	cpu0, err := cpuNow(servers...)
	if err != nil {
		return err
	}
	pipeSecs, err := copyPipe(ctx, srcURL, dstC.URL("pipe"))
	if err != nil {
		return err
	}
	pipeCPU, err := cpuSince(cpu0)
	if err != nil {
		return err
	}
	// 1b. Sluice: CREATE MIRROR until the table is loaded and keyed.
	s, err := testbed.StartSluice(ctx, catC, testbed.Options{Password: "bench"})
	if err != nil {
		return err
	}
	defer s.Stop()
	sl, err := pgx.Connect(ctx, s.URL())
	if err != nil {
		return err
	}
	defer sl.Close(ctx)
	peer := func(name string, c *testbed.Cluster, db string) string {
		return fmt.Sprintf("CREATE PEER %s FROM POSTGRES WITH (host='127.0.0.1', port=%d, user='postgres', password='%s', database='%s')",
			name, c.Port(), c.Password(), db)
	}
	if _, err := sl.Exec(ctx, peer("src", srcC, "app")); err != nil {
		return err
	}
	if _, err := sl.Exec(ctx, peer("dst", dstC, "mirror")); err != nil {
		return err
	}
	loadPhase, err := startPhase("load", profileDir)
	if err != nil {
		return err
	}
	if err := checkpoint(ctx); err != nil {
		return err
	}
	if cpu0, err = cpuNow(servers...); err != nil {
		return err
	}
	var t0 time.Time
	if err := sl.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&t0); err != nil {
		return err
	}
	start := time.Now()
	if _, err := sl.Exec(ctx, fmt.Sprintf(`CREATE MIRROR bench FROM src TO dst WITH TABLE MAPPING
		(pgbench_accounts:pgbench_accounts)%s`, withWorkers(workers))); err != nil {
		return err
	}
	if err := waitFor(ctx, sl, `SELECT status = 'RUNNING' FROM mirrors WHERE name = 'bench'`); err != nil {
		return err
	}
	mirrorSecs := time.Since(start).Seconds()
	mirrorCPU, err := cpuSince(cpu0)
	if err != nil {
		return err
	}
	loadRSS, err := loadPhase.stop()
	if err != nil {
		return err
	}
	loadEvents, err := timeline(ctx, sl, "bench", t0)
	if err != nil {
		return err
	}

	// The pipe again, into a fresh database, now that caches are as warm
	// for it as they were for the mirror; the faster run counts.
	if err := exec1(ctx, dstC.URL("postgres"), "CREATE DATABASE pipe2"); err != nil {
		return err
	}
	if err := checkpoint(ctx); err != nil {
		return err
	}
	if cpu0, err = cpuNow(servers...); err != nil {
		return err
	}
	pipeFirst := pipeSecs
	again, err := copyPipe(ctx, srcURL, dstC.URL("pipe2"))
	if err != nil {
		return err
	}
	againCPU, err := cpuSince(cpu0)
	if err != nil {
		return err
	}
	if again < pipeSecs {
		pipeSecs = again
	}
	// And the mirror again, into a fresh database: the faster run counts,
	// as the pipe's does.
	mirrorAgain, mirrorAgainCPU, err := timeLoad(ctx, sl, dstC, "bench2", withWorkers(workers))
	if err != nil {
		return err
	}
	for _, sql := range []string{"DROP MIRROR bench2", "DROP PEER bench2"} {
		if _, err := sl.Exec(ctx, sql); err != nil {
			return err
		}
	}
	if err := exec1(ctx, dstC.URL("postgres"), "DROP DATABASE bench2"); err != nil {
		return err
	}
	mirrorFirst := mirrorSecs
	mirrorSecs = min(mirrorSecs, mirrorAgain)

	fmt.Printf("\n== initial load: pgbench_accounts, %d rows ==\n", rows)
	fmt.Printf("binary COPY pipe + primary key: %7.2f s  %9.0f rows/s\n", pipeSecs, float64(rows)/pipeSecs)
	fmt.Printf("sluice CREATE MIRROR:           %7.2f s  %9.0f rows/s\n", mirrorSecs, float64(rows)/mirrorSecs)
	fmt.Printf("ratio (sluice / pipe speed):    %7.2f\n", pipeSecs/mirrorSecs)
	fmt.Printf("each the faster of two runs: pipe %.2f s and %.2f s, sluice %.2f s and %.2f s\n", pipeFirst, again, mirrorFirst, mirrorAgain)
	fmt.Printf("pipe runs:   %s\n             %s\n", pipeCPU, againCPU)
	fmt.Printf("sluice runs: %s\n             %s\n", mirrorCPU, mirrorAgainCPU)
	fmt.Printf("(servers: source + destination + Sluice's catalog)\n")
	fmt.Println(loadRSS)
	fmt.Printf("sluice's events:%s\n", loadEvents)
	if configs, err := parseConfigs(compare); err != nil {
		return err
	} else if len(configs) > 0 {
		if err := compareWorkers(ctx, sl, srcURL, dstC, rows, configs, compareRounds); err != nil {
			return err
		}
	}
	if len(nodes) > 0 {
		if err := benchNodes(ctx, s, sl, catC, dstC, rows, nodes, pipeSecs); err != nil {
			return err
		}
	}
	if loadOnly {
		return nil
	}

	// 2. CDC: the same changes for both, each catching up alone.
	native, err := pgx.Connect(ctx, dstC.URL("native"))
	if err != nil {
		return err
	}
	defer native.Close(ctx)
	if err := copyTableDef(ctx, native); err != nil {
		return err
	}
	if _, err := src.Exec(ctx, "CREATE PUBLICATION native_pub FOR TABLE pgbench_accounts"); err != nil {
		return err
	}
	if _, err := native.Exec(ctx, fmt.Sprintf(`CREATE SUBSCRIPTION native_sub CONNECTION 'host=127.0.0.1 port=%d user=postgres password=%s dbname=app'
		PUBLICATION native_pub WITH (copy_data = false)`, srcC.Port(), srcC.Password())); err != nil {
		return err
	}
	// Both start from the same state: copy the source's rows into the
	// native destination with a plain COPY, then pause both.
	if _, err := copyPipe(ctx, srcURL, dstC.URL("native")); err != nil {
		return err
	}
	if _, err := native.Exec(ctx, "ALTER SUBSCRIPTION native_sub DISABLE"); err != nil {
		return err
	}
	if _, err := sl.Exec(ctx, "PAUSE MIRROR bench"); err != nil {
		return err
	}
	fmt.Printf("\n== CDC catch-up: %d changes (%s) ==\n", changes, workload)
	// One transaction. Each replica applies it in one transaction too, so
	// its last row becomes visible with all the others: the catch-up ends
	// when doneSQL sees it. (The slot's confirmed_flush_lsn would add the
	// subscriber's feedback delay, up to seconds.)
	workSQL := fmt.Sprintf("UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= %d", changes)
	doneSQL := fmt.Sprintf("SELECT abalance = 1 FROM pgbench_accounts WHERE aid = %d", changes)
	if workload == "insert" {
		workSQL = fmt.Sprintf("INSERT INTO pgbench_accounts SELECT g, 1, 0, '' FROM generate_series(%d, %d) g", rows+1, rows+int64(changes))
		doneSQL = fmt.Sprintf("SELECT EXISTS (SELECT FROM pgbench_accounts WHERE aid = %d)", rows+int64(changes))
	} else if int64(changes) > rows {
		return fmt.Errorf("%d changes: the update workload changes at most the %d rows there are", changes, rows)
	}
	if _, err := src.Exec(ctx, workSQL); err != nil {
		return err
	}
	if err := checkpoint(ctx); err != nil {
		return err
	}
	if cpu0, err = cpuNow(servers...); err != nil {
		return err
	}
	start = time.Now()
	if _, err := native.Exec(ctx, "ALTER SUBSCRIPTION native_sub ENABLE"); err != nil {
		return err
	}
	if err := waitFor(ctx, native, doneSQL); err != nil {
		return err
	}
	nativeSecs := time.Since(start).Seconds()
	nativeCPU, err := cpuSince(cpu0)
	if err != nil {
		return err
	}
	if _, err := native.Exec(ctx, "ALTER SUBSCRIPTION native_sub DISABLE"); err != nil {
		return err
	}
	mirrored, err := pgx.Connect(ctx, dstC.URL("mirror"))
	if err != nil {
		return err
	}
	defer mirrored.Close(ctx)
	if err := checkpoint(ctx); err != nil {
		return err
	}
	cdcPhase, err := startPhase("cdc", profileDir)
	if err != nil {
		return err
	}
	if cpu0, err = cpuNow(servers...); err != nil {
		return err
	}
	start = time.Now()
	if _, err := sl.Exec(ctx, "RESUME MIRROR bench"); err != nil {
		return err
	}
	if err := waitFor(ctx, mirrored, doneSQL); err != nil {
		return err
	}
	sluiceSecs := time.Since(start).Seconds()
	sluiceCPU, err := cpuSince(cpu0)
	if err != nil {
		return err
	}
	cdcRSS, err := cdcPhase.stop()
	if err != nil {
		return err
	}
	fmt.Printf("native logical replication: %7.2f s  %9.0f rows/s\n", nativeSecs, float64(changes)/nativeSecs)
	fmt.Printf("sluice:                     %7.2f s  %9.0f rows/s\n", sluiceSecs, float64(changes)/sluiceSecs)
	fmt.Printf("ratio (sluice / native):    %7.2f\n", nativeSecs/sluiceSecs)
	fmt.Printf("native:    %s\nsluice:    %s\n", nativeCPU, sluiceCPU)
	fmt.Println(cdcRSS)
	if resync {
		if err := benchResync(ctx, sl, srcURL, dstC, rows, pipeSecs); err != nil {
			return err
		}
	}
	if my && workload == "update" {
		if err := benchMySQL(ctx, sl, dstC, rows, changes, workers, pipeSecs, nativeSecs, "bench"); err != nil {
			return err
		}
	}
	pgTarget := bigTarget{label: "postgres", mirror: "bench",
		wait: func(q string) error { return waitFor(ctx, mirrored, q) },
		updated: func(aid, abalance int64) string {
			return fmt.Sprintf("SELECT abalance = %d FROM pgbench_accounts WHERE aid = %d", abalance, aid)
		},
		inserted: func(aid int64) string {
			return fmt.Sprintf("SELECT EXISTS (SELECT FROM pgbench_accounts WHERE aid = %d)", aid)
		}}
	if ch && workload == "update" {
		return benchClickHouse(ctx, sl, src, rows, changes, workers, pipeSecs, nativeSecs, sizes, pgTarget)
	}
	return benchBigTransactions(ctx, sl, src, sizes, []bigTarget{pgTarget})
}

// benchClickHouse loads pgbench_accounts into ClickHouse with CREATE
// MIRROR and times the catch-up of changes rows updated in one
// transaction while the mirror was paused.
// Then it runs the big-transaction phase on pg and the ClickHouse mirror.
func benchClickHouse(ctx context.Context, sl, src *pgx.Conn, rows int64, changes, workers int, pipeSecs, nativeSecs float64,
	sizes []int64, pg bigTarget) error {
	ch, err := testbed.StartClickHouse(ctx)
	if err != nil {
		return err
	}
	defer ch.Stop()
	chConn, err := ch.Open("default")
	if err != nil {
		return err
	}
	defer chConn.Close()
	if _, err := sl.Exec(ctx, fmt.Sprintf("CREATE PEER ch FROM CLICKHOUSE WITH (host = '127.0.0.1', port = %d)", ch.Port())); err != nil {
		return err
	}
	chWait := func(query string) error {
		deadline := time.Now().Add(10 * time.Minute)
		for time.Now().Before(deadline) {
			var ok uint8
			if err := chConn.QueryRow(ctx, query).Scan(&ok); err == nil && ok == 1 {
				return nil
			}
			time.Sleep(20 * time.Millisecond)
		}
		return fmt.Errorf("timed out: %s", query)
	}
	loadPhase, err := startPhase("ch-load", profileDir)
	if err != nil {
		return err
	}
	if err := checkpoint(ctx); err != nil {
		return err
	}
	start := time.Now()
	if _, err := sl.Exec(ctx, fmt.Sprintf(`CREATE MIRROR chbench FROM src TO ch WITH TABLE MAPPING
		(pgbench_accounts:pgbench_accounts)%s`, withWorkers(workers))); err != nil {
		return err
	}
	if err := waitFor(ctx, sl, `SELECT status = 'RUNNING' FROM mirrors WHERE name = 'chbench'`); err != nil {
		return err
	}
	loadSecs := time.Since(start).Seconds()
	loadRSS, err := loadPhase.stop()
	if err != nil {
		return err
	}
	// The load again, into a fresh database: the faster run counts, as
	// the Postgres load's and the pipe's do.
	loadFirst := loadSecs
	again, err := timeCHLoad(ctx, sl, chConn, ch.Port(), workers)
	if err != nil {
		return err
	}
	loadSecs = min(loadSecs, again)
	// Each mirror catches up alone: the Postgres one would take the same
	// changes at the same time.
	for _, m := range []string{"chbench", "bench"} {
		if _, err := sl.Exec(ctx, "PAUSE MIRROR "+m); err != nil {
			return err
		}
	}
	var before int64
	if err := src.QueryRow(ctx, fmt.Sprintf("SELECT abalance FROM pgbench_accounts WHERE aid = %d", changes)).Scan(&before); err != nil {
		return err
	}
	if _, err := src.Exec(ctx, fmt.Sprintf("UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= %d", changes)); err != nil {
		return err
	}
	cdcPhase, err := startPhase("ch-cdc", profileDir)
	if err != nil {
		return err
	}
	start = time.Now()
	if _, err := sl.Exec(ctx, "RESUME MIRROR chbench"); err != nil {
		return err
	}
	if err := chWait(fmt.Sprintf("SELECT toUInt8(abalance = %d) FROM pgbench_accounts FINAL WHERE aid = %d", before+1, changes)); err != nil {
		return err
	}
	cdcSecs := time.Since(start).Seconds()
	cdcRSS, err := cdcPhase.stop()
	if err != nil {
		return err
	}
	fmt.Printf("\n== ClickHouse %s destination ==\n", ch.Version())
	fmt.Printf("binary COPY pipe into Postgres: %7.2f s  %9.0f rows/s\n", pipeSecs, float64(rows)/pipeSecs)
	fmt.Printf("sluice initial load:            %7.2f s  %9.0f rows/s\n", loadSecs, float64(rows)/loadSecs)
	fmt.Printf("ratio (sluice / pipe speed):    %7.2f\n", pipeSecs/loadSecs)
	fmt.Printf("the faster of two runs: sluice %.2f s and %.2f s\n", loadFirst, again)
	fmt.Println(loadRSS)
	fmt.Printf("native logical replication into Postgres, %d updates: %7.2f s  %9.0f rows/s\n", changes, nativeSecs, float64(changes)/nativeSecs)
	fmt.Printf("sluice CDC catch-up, %d updates:  %7.2f s  %9.0f rows/s\n", changes, cdcSecs, float64(changes)/cdcSecs)
	fmt.Printf("ratio (sluice / native):        %7.2f\n", nativeSecs/cdcSecs)
	fmt.Println(cdcRSS)
	chTarget := bigTarget{label: "clickhouse", mirror: "chbench", wait: chWait,
		updated: func(aid, abalance int64) string {
			return fmt.Sprintf("SELECT toUInt8(abalance = %d) FROM pgbench_accounts FINAL WHERE aid = %d", abalance, aid)
		},
		inserted: func(aid int64) string {
			return fmt.Sprintf("SELECT toUInt8(count() = 1) FROM pgbench_accounts FINAL WHERE aid = %d", aid)
		}}
	return benchBigTransactions(ctx, sl, src, sizes, []bigTarget{pg, chTarget})
}

// timeCHLoad times a second load of pgbench_accounts into ClickHouse, by
// a mirror chbench2 into a database of its own, which it then drops with
// the mirror and its peer.
func timeCHLoad(ctx context.Context, sl *pgx.Conn, chConn clickhouse.Conn, port, workers int) (float64, error) {
	if err := chConn.Exec(ctx, "CREATE DATABASE chbench2"); err != nil {
		return 0, err
	}
	if _, err := sl.Exec(ctx, fmt.Sprintf("CREATE PEER ch2 FROM CLICKHOUSE WITH (host = '127.0.0.1', port = %d, database = 'chbench2')",
		port)); err != nil {
		return 0, err
	}
	if err := checkpoint(ctx); err != nil {
		return 0, err
	}
	start := time.Now()
	if _, err := sl.Exec(ctx, fmt.Sprintf(`CREATE MIRROR chbench2 FROM src TO ch2 WITH TABLE MAPPING
		(pgbench_accounts:pgbench_accounts)%s`, withWorkers(workers))); err != nil {
		return 0, err
	}
	if err := waitFor(ctx, sl, `SELECT status = 'RUNNING' FROM mirrors WHERE name = 'chbench2'`); err != nil {
		return 0, err
	}
	secs := time.Since(start).Seconds()
	for _, sql := range []string{"DROP MIRROR chbench2", "DROP PEER ch2"} {
		if _, err := sl.Exec(ctx, sql); err != nil {
			return 0, err
		}
	}
	return secs, chConn.Exec(ctx, "DROP DATABASE chbench2")
}

func exec1(ctx context.Context, url, sql string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

func pgbench(url string, args ...string) error {
	bin, err := pgcluster.BinDir()
	if err != nil {
		return err
	}
	out, err := exec.Command(filepath.Join(bin, "pgbench"), append(args, url)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgbench: %v\n%s", err, out)
	}
	return nil
}

// copyTableDef creates pgbench_accounts (index-less) on a destination.
func copyTableDef(ctx context.Context, conn *pgx.Conn) error {
	_, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS pgbench_accounts (aid integer NOT NULL, bid integer,
		abalance integer, filler character(84))`)
	return err
}

// copyPipe copies pgbench_accounts with a plain binary COPY pipe, the
// shell's psql -c 'COPY ... TO STDOUT' | psql -c 'COPY ... FROM STDIN', and
// builds the primary key; it returns the seconds taken.
func copyPipe(ctx context.Context, srcURL, dstURL string) (float64, error) {
	dst, err := pgx.Connect(ctx, dstURL)
	if err != nil {
		return 0, err
	}
	defer dst.Close(ctx)
	if err := copyTableDef(ctx, dst); err != nil {
		return 0, err
	}
	bin, err := pgcluster.BinDir()
	if err != nil {
		return 0, err
	}
	psql := filepath.Join(bin, "psql")
	out := exec.CommandContext(ctx, psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", srcURL,
		"-c", "COPY pgbench_accounts TO STDOUT (FORMAT binary)")
	in := exec.CommandContext(ctx, psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dstURL,
		"-c", "COPY pgbench_accounts FROM STDIN (FORMAT binary)")
	var outErr, inErr strings.Builder
	out.Stderr, in.Stderr = &outErr, &inErr
	pipe, err := out.StdoutPipe()
	if err != nil {
		return 0, err
	}
	in.Stdin = pipe
	start := time.Now()
	if err := out.Start(); err != nil {
		return 0, err
	}
	if err := in.Run(); err != nil {
		_ = out.Process.Kill()
		_ = out.Wait()
		return 0, fmt.Errorf("psql COPY FROM STDIN: %v: %s", err, inErr.String())
	}
	if err := out.Wait(); err != nil {
		return 0, fmt.Errorf("psql COPY TO STDOUT: %v: %s", err, outErr.String())
	}
	if _, err := dst.Exec(ctx, "ALTER TABLE pgbench_accounts ADD PRIMARY KEY (aid)"); err != nil {
		return 0, err
	}
	return time.Since(start).Seconds(), nil
}

// waitFor polls a boolean query until it is true (10 minutes at most).
func waitFor(ctx context.Context, conn *pgx.Conn, sql string) error {
	deadline := time.Now().Add(10 * time.Minute)
	for time.Now().Before(deadline) {
		var ok *bool
		if err := conn.QueryRow(ctx, sql).Scan(&ok); err != nil {
			return fmt.Errorf("%s: %w", sql, err)
		}
		if ok != nil && *ok {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("timed out: %s", sql)
}
