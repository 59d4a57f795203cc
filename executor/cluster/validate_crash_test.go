package cluster_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/internal/testbed"
)

// TestKillDuringValidation kills sluice with SIGKILL while a VALIDATE
// MIRROR holds the stream at its snapshot, under pgbench: after the
// restart the mirror streams on, loses and duplicates nothing (the tables
// end equal), the source keeps no slot of the validation's, and a new
// validation reports every table equal.
func TestKillDuringValidation(t *testing.T) {
	catURL := catalogCluster.NewDB(t)
	p := testbed.StartSluiceProcess(t, catURL, testbed.Password)
	srcURL, dstURL := peerCluster.NewDB(t), peerCluster.NewDB(t)
	src, dst := connect(t, srcURL), connect(t, dstURL)
	pgbench(t, srcURL, "-i", "-s", "2", "-q")
	conn := connect(t, p.URL())
	mustExec(t, conn, "CREATE PEER src FROM POSTGRES WITH ("+peerCluster.PeerOptions(srcURL)+")")
	mustExec(t, conn, "CREATE PEER dst FROM POSTGRES WITH ("+peerCluster.PeerOptions(dstURL)+")")
	mustExec(t, conn, `CREATE MIRROR vk FROM src TO dst WITH TABLE MAPPING (`+testbed.PgbenchMapping+`) WITH (max_batch_size = 500)`)
	conn.Close(context.Background())
	p.WaitFor("streaming", func(c *pgx.Conn) bool {
		var status string
		return c.QueryRow(context.Background(), `SELECT status FROM mirrors WHERE name = 'vk'`).Scan(&status) == nil && status == "RUNNING"
	}, nil)

	// The load lasts until the kills are done, however long they take.
	load := testbed.StartPgbench(t, srcURL, 5*time.Minute, "-n", "-c", "2")
	deadline := time.Now().Add(time.Minute)
	for n := 0; n == 0; {
		load.MustRun(t, "its first transaction")
		if time.Now().After(deadline) {
			t.Fatal("pgbench committed nothing in a minute")
		}
		time.Sleep(20 * time.Millisecond)
		if err := src.QueryRow(testCtx(t), `SELECT count(*) FROM pgbench_history`).Scan(&n); err != nil {
			t.Fatal(err)
		}
	}
	cat := connect(t, catURL)
	for i := 0; i < 2; i++ {
		// A validation in the background; killed once the flow holds the
		// stream for it (its log says so). The one the previous kill
		// interrupted is a job, made available again and run to its end
		// by the restarted node: until then a new one would be refused.
		waitValidationsEnded(t, cat, "vk")
		logged := strings.Count(readLog(t, p), "validation: holding the stream")
		vconn := connect(t, p.URL())
		ended := make(chan error, 1)
		go func() {
			_, err := vconn.Exec(context.Background(), "VALIDATE MIRROR vk WITH (mode = 'checksum')")
			ended <- err
		}()
		deadline := time.Now().Add(time.Minute)
		for strings.Count(readLog(t, p), "validation: holding the stream") == logged {
			if time.Now().After(deadline) {
				select {
				case err := <-ended:
					t.Fatalf("validation %d did not start: it ended: %v", i+1, err)
				default:
					t.Fatalf("validation %d did not start", i+1)
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
		load.MustRun(t, fmt.Sprintf("kill %d", i+1))
		p.Kill()
		p.Start()
		p.WaitFor("streaming again", func(c *pgx.Conn) bool {
			var status string
			return c.QueryRow(context.Background(), `SELECT status FROM mirrors WHERE name = 'vk'`).Scan(&status) == nil && status == "RUNNING"
		}, nil)
	}
	load.Stop(t)
	for _, tbl := range testbed.PgbenchTables {
		waitEqual(t, src, dst, tbl.Name, tbl.Name, tbl.Key)
	}
	waitValidationsEnded(t, cat, "vk")
	// The validations' temporary slots ended with their connections.
	deadline = time.Now().Add(30 * time.Second)
	for {
		var slots int
		if err := src.QueryRow(testCtx(t), `SELECT count(*) FROM pg_replication_slots WHERE temporary`).Scan(&slots); err != nil {
			t.Fatal(err)
		}
		if slots == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d temporary slots left on the source", slots)
		}
		time.Sleep(100 * time.Millisecond)
	}
	conn = connect(t, p.URL())
	got := testbed.ValidateRows(t, conn, "VALIDATE MIRROR vk WITH (mode = 'checksum')")
	for _, tbl := range testbed.PgbenchTables {
		if r := got["public."+tbl.Name]; r.Status != "equal" || r.Source != r.Dest {
			t.Errorf("%s after the kills: %+v", tbl.Name, r)
		}
	}
}

// waitValidationsEnded waits until no validate job of mirror is waiting or
// running: those interrupted by a kill are run again after the restart.
func waitValidationsEnded(t *testing.T, cat *pgx.Conn, mirror string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var pending string
		if err := cat.QueryRow(testCtx(t), `SELECT coalesce(string_agg(state, ' '), '') FROM sluice_status.jobs
WHERE kind = 'validate' AND mirror = $1 AND state NOT IN ('completed', 'cancelled', 'discarded')`, mirror).Scan(&pending); err != nil {
			t.Fatal(err)
		}
		if pending == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("validate jobs of mirror %s still %s after two minutes", mirror, pending)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// readLog returns the sluice process's log so far.
func readLog(t *testing.T, p *testbed.SluiceProcess) string {
	t.Helper()
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
