package cluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/internal/testbed"
)

// Initial loads as jobs (docs/cluster.md#jobs): each partition of a load
// is a River job, shown in the jobs status table, which any node may run
// and which another node redoes when its node dies.

// jobTables are the source tables of the jobs tests, rows rows each.
var jobTables = []string{"j1", "j2", "j3"}

// jobSource makes the jobs tests' source tables.
func jobSource(t *testing.T, src *pgx.Conn, rows int) {
	t.Helper()
	for _, tbl := range jobTables {
		mustExec(t, src, fmt.Sprintf(`CREATE TABLE %s (id int PRIMARY KEY, v text);
INSERT INTO %[1]s SELECT g, md5(g::text) FROM generate_series(1, %d) g`, tbl, rows))
	}
}

// slowDestination makes every table created later in the destination
// database sleep for sleep at each statement that writes it (each
// partition's COPY), with an event trigger: a load takes long enough to
// watch, and to kill a node in.
func slowDestination(t *testing.T, dst *pgx.Conn, sleep time.Duration) {
	t.Helper()
	mustExec(t, dst, fmt.Sprintf(`
CREATE FUNCTION public.slow_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_sleep(%g); RETURN NULL; END $$;
CREATE FUNCTION public.slow_new_tables() RETURNS event_trigger LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
  FOR r IN SELECT * FROM pg_event_trigger_ddl_commands() WHERE command_tag = 'CREATE TABLE' AND schema_name = 'public' LOOP
    EXECUTE format('CREATE TRIGGER slow BEFORE INSERT ON %%s FOR EACH STATEMENT EXECUTE FUNCTION public.slow_write()', r.object_identity);
  END LOOP;
END $$;
CREATE EVENT TRIGGER slow_new_tables ON ddl_command_end WHEN TAG IN ('CREATE TABLE') EXECUTE FUNCTION public.slow_new_tables()`,
		sleep.Seconds()))
}

// mirrorJobs renders the mirror's jobs by node and state.
func mirrorJobs(t *testing.T, c *pgx.Conn, mirror string) string {
	t.Helper()
	var s string
	err := c.QueryRow(testCtx(t), `SELECT coalesce(string_agg(line, '; ' ORDER BY line), '') FROM (
  SELECT concat_ws(' ', coalesce(node, '-'), state, count(*)) AS line FROM jobs WHERE mirror = $1 GROUP BY node, state) l`,
		mirror).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestJobsShowLoadPartitions: a single node's initial load runs each
// partition as a job, and the jobs table shows them completed by the node,
// one per partition of the plan, as mirror_tables counts them.
func TestJobsShowLoadPartitions(t *testing.T) {
	p := testbed.StartSluiceProcess(t, catalogCluster.NewDB(t), testbed.Password)
	srcURL, dstURL := peerCluster.NewDB(t), peerCluster.NewDB(t)
	src, dst := connect(t, srcURL), connect(t, dstURL)
	jobSource(t, src, 1000)
	conn := connect(t, p.URL())
	mustExec(t, conn, "CREATE PEER src FROM POSTGRES WITH ("+peerCluster.PeerOptions(srcURL)+")")
	mustExec(t, conn, "CREATE PEER dst FROM POSTGRES WITH ("+peerCluster.PeerOptions(dstURL)+")")
	mustExec(t, conn, `CREATE MIRROR jm FROM src TO dst WITH TABLE MAPPING (j1:j1, j2:j2, j3:j3)
		WITH (snapshot_num_rows_per_partition = 100)`)
	p.WaitFor("streaming", func(c *pgx.Conn) bool {
		var status string
		return c.QueryRow(context.Background(), `SELECT status FROM mirrors WHERE name = 'jm'`).Scan(&status) == nil &&
			status == "RUNNING"
	}, nil)
	for _, tbl := range jobTables {
		waitEqual(t, src, dst, tbl, tbl, "id")
	}
	var node string
	if err := conn.QueryRow(testCtx(t), `SELECT id FROM nodes`).Scan(&node); err != nil {
		t.Fatal(err)
	}
	// The load ends as soon as its last partition is loaded; River
	// records the completion of this node's jobs in batches, moments
	// later.
	p.WaitFor("the load's jobs recorded completed", func(c *pgx.Conn) bool {
		var open int
		return c.QueryRow(context.Background(), `SELECT count(*) FROM jobs WHERE mirror = 'jm' AND state <> 'completed'`).Scan(&open) == nil &&
			open == 0
	}, nil)
	rows, err := conn.Query(testCtx(t), `
SELECT t.source_table, t.partitions_total, count(j.*), count(*) FILTER (WHERE j.state = 'completed' AND j.node = $1
         AND j.kind = 'load_partition' AND j.attempt = 1 AND j.error IS NULL AND j.finished_at >= j.started_at),
       count(DISTINCT j.partition), coalesce(min(j.partition), -1), coalesce(max(j.partition), -1)
FROM mirror_tables t LEFT JOIN jobs j ON j.mirror = t.mirror AND j."table" = t.source_table
WHERE t.mirror = 'jm' GROUP BY 1, 2 ORDER BY 1`, node)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		var table string
		var total, jobs, done, distinct, lo, hi int
		if err := rows.Scan(&table, &total, &jobs, &done, &distinct, &lo, &hi); err != nil {
			t.Fatal(err)
		}
		n++
		if total < 2 || jobs != total || done != total || distinct != total || lo != 0 || hi != total-1 {
			t.Errorf("%s: %d partitions planned, %d jobs, %d completed by node %s on their first attempt, partitions %d distinct from %d to %d",
				table, total, jobs, done, node, distinct, lo, hi)
		}
	}
	if err := rows.Err(); err != nil || n != len(jobTables) {
		t.Fatalf("%d tables (%v); jobs: %s", n, err, mirrorJobs(t, conn, "jm"))
	}
}

// TestJobsLoadOnThreeNodes: three nodes share an initial load of three
// tables, its partitions slowed down by the destination: the jobs table
// shows partitions completed by at least two nodes. A node killed (SIGKILL)
// while it runs partitions, not the load's owner, has them redone by the
// others, as jobs retried; the destination ends equal to the source.
func TestJobsLoadOnThreeNodes(t *testing.T) { loadOnThreeNodes(t, false, false) }

// TestJobsOwnerKilledMidLoad is TestJobsLoadOnThreeNodes killing the load's
// owner: another node takes the mirror over and starts the load over as a
// resumed one, the partitions loaded kept, the killed node's partitions
// (and the rest) loaded by the others.
func TestJobsOwnerKilledMidLoad(t *testing.T) { loadOnThreeNodes(t, true, false) }

// TestJobsNodeStoppedMidLoad is TestJobsLoadOnThreeNodes stopping the node
// cleanly (SIGTERM): it cuts its running partitions off and puts them
// back in the queue at once, and the others load them.
func TestJobsNodeStoppedMidLoad(t *testing.T) { loadOnThreeNodes(t, false, true) }

// loadOnThreeNodes runs the three-node tests; owner: kill the load's owner
// rather than another node running partitions; stop: stop that node
// cleanly rather than kill it.
func loadOnThreeNodes(t *testing.T, owner, stop bool) {
	catURL := catalogCluster.NewDB(t)
	var procs []*testbed.SluiceProcess
	for range 3 {
		procs = append(procs, testbed.StartSluiceProcess(t, catURL, testbed.Password, "--node-timeout", "3s"))
	}
	cat := connect(t, catURL)
	mustExec(t, cat, "SET search_path = sluice_status")
	srcURL, dstURL := peerCluster.NewDB(t), peerCluster.NewDB(t)
	src, dst := connect(t, srcURL), connect(t, dstURL)
	jobSource(t, src, 3000)
	slowDestination(t, dst, 300*time.Millisecond)

	conn := connect(t, procs[0].URL())
	mustExec(t, conn, "CREATE PEER src FROM POSTGRES WITH ("+peerCluster.PeerOptions(srcURL)+")")
	mustExec(t, conn, "CREATE PEER dst FROM POSTGRES WITH ("+peerCluster.PeerOptions(dstURL)+")")
	mustExec(t, conn, `CREATE MIRROR jm FROM src TO dst WITH TABLE MAPPING (j1:j1, j2:j2, j3:j3)
		WITH (snapshot_num_rows_per_partition = 100, snapshot_max_parallel_workers = 6)`)
	conn.Close(context.Background())

	// Wait for partitions completed by at least two nodes and the node to
	// kill running some (the owner, or another node), then kill it. Only
	// partitions it started less than 150 ms before are counted as cut
	// off: the destination's trigger holds each partition's write for
	// 300 ms, so they cannot have committed.
	var victim string
	var ranThere []string
	deadline := time.Now().Add(60 * time.Second)
	for victim == "" {
		if time.Now().After(deadline) {
			t.Fatalf("no node to kill runs partitions (owner: %v); jobs: %s", owner, mirrorJobs(t, cat, "jm"))
		}
		var nodes int
		var running *string
		err := cat.QueryRow(testCtx(t), `
WITH young AS (
  SELECT j.node, j."table" || ':' || j.partition AS part FROM jobs j JOIN mirrors m ON m.name = j.mirror
  WHERE j.mirror = 'jm' AND j.state = 'running' AND (j.node = m.node) = $1 AND j.started_at > now() - interval '150 ms')
SELECT (SELECT count(DISTINCT node) FROM jobs WHERE mirror = 'jm' AND state = 'completed'),
       (SELECT min(node) FROM young),
       (SELECT array_agg(part) FROM young WHERE node = (SELECT min(node) FROM young))`, owner).Scan(&nodes, &running, &ranThere)
		if err != nil {
			t.Fatal(err)
		}
		if nodes >= 2 && running != nil {
			victim = *running
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	killed := nodeOf(t, cat, victim, procs...)
	if killed == nil {
		t.Fatalf("node %s is none of the processes", victim)
	}
	if stop {
		killed.Stop()
	} else {
		killed.Kill()
	}
	t.Logf("killed node %s (owner: %v, stopped: %v) running partitions %v; jobs: %s", victim, owner, stop, ranThere,
		mirrorJobs(t, cat, "jm"))

	var alive *testbed.SluiceProcess
	for _, p := range procs {
		if p != killed {
			alive = p
		}
	}
	alive.WaitFor("the mirror streaming", func(c *pgx.Conn) bool {
		var status string
		return c.QueryRow(context.Background(), `SELECT status FROM mirrors WHERE name = 'jm'`).Scan(&status) == nil &&
			status == "RUNNING"
	}, nil)
	for _, tbl := range jobTables {
		waitEqual(t, src, dst, tbl, tbl, "id")
		if got := testbed.Count(t, dst, tbl); got != 3000 {
			t.Fatalf("%s: %d rows on the destination, want 3000", tbl, got)
		}
	}
	t.Logf("jobs: %s", mirrorJobs(t, cat, "jm"))
	var nodes, redone, retried int
	err := cat.QueryRow(testCtx(t), `
SELECT count(DISTINCT node) FILTER (WHERE state = 'completed'),
       count(DISTINCT "table" || ':' || partition) FILTER (WHERE state = 'completed' AND node <> $1
         AND "table" || ':' || partition = ANY ($2)),
       count(*) FILTER (WHERE state = 'completed' AND node <> $1 AND attempt >= 2 AND error LIKE '%' || $1 || '%')
FROM jobs WHERE mirror = 'jm'`, victim, ranThere).Scan(&nodes, &redone, &retried)
	if err != nil {
		t.Fatal(err)
	}
	if nodes < 2 || redone != len(ranThere) || (!owner && !stop && retried == 0) {
		t.Fatalf("%d nodes completed partitions (want 2 or more); of the killed node's %d running partitions, %d completed by another node, %d retried jobs (want some unless the owner was killed or the node stopped); jobs: %s",
			nodes, len(ranThere), redone, retried, mirrorJobs(t, cat, "jm"))
	}
}
