package main

import (
	"context"
	"fmt"
	"runtime"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/internal/testbed"
)

// The initial load by node count (-nodes; docs/cluster.md): the same
// table loaded by CREATE MIRROR while 1, 2 and 3 Sluice nodes share the
// catalog. Every node runs in this process, on this machine's cores, as
// do the source and destination servers: the figure says what spreading
// the load's partitions over nodes costs, not what nodes on machines of
// their own would gain.

// parseNodes parses -nodes: node counts, comma-separated, each 1 to 9.
func parseNodes(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 || n > 9 {
			return nil, fmt.Errorf("-nodes: %q is not a node count from 1 to 9", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// benchNodes times the initial load with each node count of counts,
// starting nodes that join first's catalog as needed, beside pipeSecs.
// nodesPartitionRows is the partition size of the nodes' loads: the
// automatic size copies pgbench_accounts whole, in one partition, which
// one node would copy alone.
const nodesPartitionRows = 250_000

func benchNodes(ctx context.Context, first *testbed.Sluice, sl *pgx.Conn, catC, dstC *testbed.Cluster, rows int64, counts []int,
	pipeSecs float64) error {
	fmt.Printf("\n== initial load by Sluice nodes on one catalog, %d rows in partitions of %d (COPY pipe + primary key: %.2f s) ==\n",
		rows, nodesPartitionRows, pipeSecs)
	var extra []*testbed.Sluice
	defer func() {
		for _, s := range extra {
			_ = s.Stop()
		}
	}()
	for _, n := range counts {
		for len(extra) < n-1 {
			s, err := testbed.StartSluice(ctx, catC, testbed.Options{Password: "bench", Join: first})
			if err != nil {
				return err
			}
			extra = append(extra, s)
		}
		for len(extra) > n-1 {
			if err := extra[len(extra)-1].Stop(); err != nil {
				return err
			}
			extra = extra[:len(extra)-1]
		}
		if err := waitFor(ctx, sl, fmt.Sprintf("SELECT count(*) = %d FROM nodes WHERE status = 'alive'", n)); err != nil {
			return err
		}
		name := fmt.Sprintf("nodes%d", n)
		secs, cpu, err := timeLoad(ctx, sl, dstC, name, fmt.Sprintf(" WITH (snapshot_num_rows_per_partition = %d)", nodesPartitionRows))
		if err != nil {
			return err
		}
		byNode, err := partitionsByNode(ctx, sl, name)
		if err != nil {
			return err
		}
		fmt.Printf("%d node(s): %7.2f s  %9.0f rows/s  ratio %.2f  CPU %5.2f s  partitions by node: %s\n", n, secs,
			float64(rows)/secs, pipeSecs/secs, cpu.servers+cpu.self, byNode)
		if _, err := sl.Exec(ctx, "DROP MIRROR "+name); err != nil {
			return err
		}
		if _, err := sl.Exec(ctx, "DROP PEER "+name); err != nil {
			return err
		}
		if err := exec1(ctx, dstC.URL("postgres"), "DROP DATABASE "+name); err != nil {
			return err
		}
	}
	fmt.Printf("(every node, both servers and the bench share this machine's %s)\n", cores())
	return nil
}

// partitionsByNode returns how many of mirror's load partitions each node
// completed, from the jobs status table, as "node=count ...".
func partitionsByNode(ctx context.Context, sl *pgx.Conn, mirror string) (string, error) {
	rows, err := sl.Query(ctx, `SELECT coalesce(node, '?'), count(*) FROM jobs WHERE mirror = $1 AND state = 'completed' GROUP BY 1`, mirror)
	if err != nil {
		return "", err
	}
	var parts []string
	var node string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&node, &n}, func() error {
		parts = append(parts, fmt.Sprintf("%s=%d", node, n))
		return nil
	})
	sort.Strings(parts)
	return strings.Join(parts, " "), err
}

// cores says how many CPU cores this machine has.
func cores() string { return fmt.Sprintf("%d cores", runtime.NumCPU()) }
