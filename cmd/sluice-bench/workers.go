package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/internal/testbed"
)

// compareWorkers times, for -compare-workers, the initial load by CREATE
// MIRROR with each of counts parallel workers, each into a fresh database,
// next to a COPY pipe run in the same round, for rounds rounds: the
// figures of one round were taken minutes apart at most, so their ratios
// compare even on a machine that others share. Each mirror is dropped
// once loaded, and each database after its round.
func compareWorkers(ctx context.Context, sl *pgx.Conn, srcURL string, srcC, dstC *testbed.Cluster, rows int64, counts []int, rounds int) error {
	fmt.Printf("\n== initial load by worker count, %d rows, %d rounds ==\n", rows, rounds)
	for r := 1; r <= rounds; r++ {
		var line strings.Builder
		db := fmt.Sprintf("wpipe%d", r)
		if err := exec1(ctx, dstC.URL("postgres"), "CREATE DATABASE "+db); err != nil {
			return err
		}
		cpu0, err := cpuNow(servers...)
		if err != nil {
			return err
		}
		pipe, err := copyPipe(ctx, srcURL, dstC.URL(db))
		if err != nil {
			return err
		}
		pipeCPU, err := cpuSince(cpu0)
		if err != nil {
			return err
		}
		dbs := []string{db}
		fmt.Fprintf(&line, "round %d: pipe %.2f s (CPU %.2f s)", r, pipe, pipeCPU.servers+pipeCPU.self)
		for _, n := range counts {
			name := fmt.Sprintf("w%d_%d", n, r)
			dbs = append(dbs, name)
			if err := exec1(ctx, dstC.URL("postgres"), "CREATE DATABASE "+name); err != nil {
				return err
			}
			if _, err := sl.Exec(ctx, fmt.Sprintf(
				"CREATE PEER %s FROM POSTGRES WITH (host='127.0.0.1', port=%d, user='postgres', password='%s', database='%s')",
				name, dstC.Port(), dstC.Password(), name)); err != nil {
				return err
			}
			if cpu0, err = cpuNow(servers...); err != nil {
				return err
			}
			start := time.Now()
			if _, err := sl.Exec(ctx, fmt.Sprintf(`CREATE MIRROR %s FROM src TO %s WITH TABLE MAPPING
				(pgbench_accounts:pgbench_accounts)%s`, name, name, withWorkers(n))); err != nil {
				return err
			}
			if err := waitFor(ctx, sl, fmt.Sprintf(`SELECT status = 'RUNNING' FROM mirrors WHERE name = '%s'`, name)); err != nil {
				return err
			}
			secs := time.Since(start).Seconds()
			cpu, err := cpuSince(cpu0)
			if err != nil {
				return err
			}
			label := strconv.Itoa(n)
			if n == 0 {
				label = "default"
			}
			fmt.Fprintf(&line, ", %s workers %.2f s (%.2f; CPU %.2f s)", label, secs, pipe/secs, cpu.servers+cpu.self)
			if _, err := sl.Exec(ctx, "DROP MIRROR "+name); err != nil {
				return err
			}
		}
		fmt.Println(line.String())
		for _, db := range dbs {
			if err := exec1(ctx, dstC.URL("postgres"), "DROP DATABASE "+db); err != nil {
				return err
			}
		}
		for _, c := range []*testbed.Cluster{srcC, dstC} {
			if err := exec1(ctx, c.URL("postgres"), "CHECKPOINT"); err != nil {
				return err
			}
		}
	}
	return nil
}

// parseCounts parses -compare-workers: worker counts separated by commas,
// 0 for the mirror's default.
func parseCounts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("-compare-workers: %q is not a worker count (0 for the default)", f)
		}
		out = append(out, n)
	}
	return out, nil
}
