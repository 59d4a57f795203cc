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
// MIRROR with each of configs, each into a fresh database,
// next to a COPY pipe run in the same round, for rounds rounds: the
// figures of one round were taken minutes apart at most, so their ratios
// compare even on a machine that others share. Each mirror is dropped
// once loaded, and each database after its round.
func compareWorkers(ctx context.Context, sl *pgx.Conn, srcURL string, dstC *testbed.Cluster, rows int64, configs []loadConfig, rounds int) error {
	fmt.Printf("\n== initial load by worker count, %d rows, %d rounds ==\n", rows, rounds)
	for r := 1; r <= rounds; r++ {
		var line strings.Builder
		db := fmt.Sprintf("wpipe%d", r)
		if err := exec1(ctx, dstC.URL("postgres"), "CREATE DATABASE "+db); err != nil {
			return err
		}
		if err := checkpoint(ctx); err != nil {
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
		for i, c := range configs {
			name := fmt.Sprintf("w%d_%d", i, r)
			dbs = append(dbs, name)
			secs, cpu, err := timeLoad(ctx, sl, dstC, name, c.with())
			if err != nil {
				return err
			}
			fmt.Fprintf(&line, ", %s %.2f s (%.2f; %s)", c, secs, pipe/secs, cpu)
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
	}
	return nil
}

// loadConfig is one load of -compare-workers: its workers (0: the
// mirror's default) and, when not 0, snapshot_num_partitions_override.
type loadConfig struct{ workers, partitions int }

// with is the WITH clause of the load's CREATE MIRROR.
func (c loadConfig) with() string {
	var opts []string
	if c.workers > 0 {
		opts = append(opts, fmt.Sprintf("snapshot_max_parallel_workers = %d", c.workers))
	}
	if c.partitions > 0 {
		opts = append(opts, fmt.Sprintf("snapshot_num_partitions_override = %d", c.partitions))
	}
	if len(opts) == 0 {
		return ""
	}
	return " WITH (" + strings.Join(opts, ", ") + ")"
}

// String names the load in the report.
func (c loadConfig) String() string {
	w := "default workers"
	if c.workers > 0 {
		w = fmt.Sprintf("up to %d workers", c.workers)
	}
	if c.partitions > 0 {
		w += fmt.Sprintf(", %d partitions", c.partitions)
	}
	return w
}

// parseConfigs parses -compare-workers: loads separated by commas, each a
// worker count (0 for the default), optionally followed by a slash and a
// snapshot_num_partitions_override ("1/1": one worker, one partition).
func parseConfigs(s string) ([]loadConfig, error) {
	var out []loadConfig
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		w, p, slash := strings.Cut(f, "/")
		var c loadConfig
		var err error
		if c.workers, err = strconv.Atoi(w); err != nil || c.workers < 0 {
			return nil, fmt.Errorf("-compare-workers: %q is not a worker count (0 for the default)", f)
		}
		if slash {
			if c.partitions, err = strconv.Atoi(p); err != nil || c.partitions < 1 {
				return nil, fmt.Errorf("-compare-workers: %q: after the slash, a number of partitions of at least 1", f)
			}
		}
		out = append(out, c)
	}
	return out, nil
}

// timeLoad makes database name on dstC with a peer of that name, and times
// CREATE MIRROR name of pgbench_accounts into it (with the mirror options
// clause with) until it runs, after a checkpoint: the seconds and the CPU
// time it took.
func timeLoad(ctx context.Context, sl *pgx.Conn, dstC *testbed.Cluster, name, with string) (float64, cpuTimes, error) {
	if err := exec1(ctx, dstC.URL("postgres"), "CREATE DATABASE "+name); err != nil {
		return 0, cpuTimes{}, err
	}
	if _, err := sl.Exec(ctx, fmt.Sprintf(
		"CREATE PEER %s FROM POSTGRES WITH (host='127.0.0.1', port=%d, user='postgres', password='%s', database='%s')",
		name, dstC.Port(), dstC.Password(), name)); err != nil {
		return 0, cpuTimes{}, err
	}
	if err := checkpoint(ctx); err != nil {
		return 0, cpuTimes{}, err
	}
	cpu0, err := cpuNow(servers...)
	if err != nil {
		return 0, cpuTimes{}, err
	}
	start := time.Now()
	if _, err := sl.Exec(ctx, fmt.Sprintf(`CREATE MIRROR %s FROM src TO %s WITH TABLE MAPPING
		(pgbench_accounts:pgbench_accounts)%s`, name, name, with)); err != nil {
		return 0, cpuTimes{}, err
	}
	if err := waitFor(ctx, sl, fmt.Sprintf(`SELECT status = 'RUNNING' FROM mirrors WHERE name = '%s'`, name)); err != nil {
		return 0, cpuTimes{}, err
	}
	secs := time.Since(start).Seconds()
	cpu, err := cpuSince(cpu0)
	return secs, cpu, err
}
