package catalog_test

import (
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/sluicedb/sluice/catalog"
)

// testJob is a job of the catalog's tests, shaped as a load's partition.
type testJob struct {
	Mirror    string `json:"mirror"`
	Table     string `json:"table"`
	Partition int    `json:"partition"`
	Load      string `json:"load"`
}

// Kind implements river.JobArgs.
func (testJob) Kind() string { return "test_job" }

// The catalog's side of jobs: River's tables are in schema sluice, the
// jobs view shows a job's mirror, table, partition, node and state from
// its args and attempts, and RescueJobs makes the running jobs of gone
// nodes (and of this node's earlier run) available again, cancels those
// whose cancellation was asked for, and leaves live nodes' jobs running;
// dropping the mirror removes its finished jobs.
func TestJobsRescue(t *testing.T) {
	s, url := oneTableMirror(t)
	ctx := testCtx(t)
	for _, n := range []string{"live", "dead", "me"} {
		if err := s.RegisterNode(ctx, n, "127.0.0.1:1", time.Second); err != nil {
			t.Fatal(err)
		}
	}
	client, err := river.NewClient(riverpgxv5.New(s.Pool()), &river.Config{Schema: catalog.RiverSchema})
	if err != nil {
		t.Fatal(err)
	}
	conn := connect(t, url)
	// Four running jobs: on the live node, on the dead one, on the dead
	// one but cancelled, on this node's earlier run.
	nodes := []string{"live", "dead", "dead", "me"}
	ids := make([]int64, len(nodes))
	for i, n := range nodes {
		res, err := client.Insert(ctx, testJob{Mirror: "m", Table: "public.t", Partition: i, Load: "l1"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = res.Job.ID
		_, err = conn.Exec(ctx, `UPDATE sluice.river_job SET state = 'running', attempt = 1, attempted_at = now(),
    attempted_by = ARRAY[$2::text], metadata = CASE WHEN $3 THEN '{"cancel_attempted_at": "2026-01-01T00:00:00Z"}'::jsonb ELSE metadata END
WHERE id = $1`, res.Job.ID, n, i == 2)
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.Exec(ctx, `UPDATE sluice.nodes SET heartbeat_at = now() - interval '1 minute' WHERE id = 'dead'`); err != nil {
		t.Fatal(err)
	}
	jobs, err := s.LoadJobs(ctx, "test_job", "m", "l1")
	if err != nil || len(jobs) != 4 {
		t.Fatalf("LoadJobs: %v, %v", jobs, err)
	}

	n, err := s.RescueJobs(ctx, "me")
	if err != nil || n != 3 {
		t.Fatalf("RescueJobs rescued %d jobs (%v), want 3", n, err)
	}
	want := []string{"live running 1 ", "dead available 1 node dead ended while running the job: redone by another attempt",
		"dead cancelled 1 node dead ended while running the job: redone by another attempt",
		"me available 1 node me ended while running the job: redone by another attempt"}
	for i := range ids {
		var got string
		err := conn.QueryRow(ctx, `SELECT concat_ws(' ', node, state, attempt, coalesce(error, ''))
FROM sluice_status.jobs WHERE mirror = 'm' AND "table" = 'public.t' AND kind = 'test_job' AND partition = $1`, i).Scan(&got)
		if err != nil {
			t.Fatal(err)
		}
		if got != want[i] {
			t.Errorf("job on node %s: %q, want %q", nodes[i], got, want[i])
		}
	}
	if n, err := s.RescueJobs(ctx, ""); err != nil || n != 0 {
		t.Fatalf("second RescueJobs: %d jobs, %v; want none", n, err)
	}
	stale, err := s.StaleLoadJobs(ctx, "test_job", "m", "l2")
	if err != nil || len(stale) != 3 {
		t.Fatalf("StaleLoadJobs of another load: %v, %v; want the 3 not finished", stale, err)
	}
	// Dropping the mirror removes its finished jobs.
	if err := s.DeleteMirror(ctx, "m"); err != nil {
		t.Fatal(err)
	}
	if jobs, err := s.LoadJobs(ctx, "test_job", "m", "l1"); err != nil || len(jobs) != 3 {
		t.Fatalf("jobs after DROP MIRROR: %v, %v; want the 3 not finished", jobs, err)
	}
}
