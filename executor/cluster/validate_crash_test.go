package cluster_test

import (
	"context"
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
	p := testbed.StartSluiceProcess(t, catalogCluster.NewDB(t), testbed.Password)
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

	load := make(chan struct{})
	go func() {
		defer close(load)
		pgbench(t, srcURL, "-n", "-c", "2", "-T", "12")
	}()
	time.Sleep(time.Second)
	for i := 0; i < 2; i++ {
		// A validation in the background; killed once the flow holds the
		// stream for it (its log says so).
		logged := strings.Count(readLog(t, p), "validation: holding the stream")
		vconn := connect(t, p.URL())
		go func() { _, _ = vconn.Exec(context.Background(), "VALIDATE MIRROR vk WITH (mode = 'checksum')") }()
		deadline := time.Now().Add(30 * time.Second)
		for strings.Count(readLog(t, p), "validation: holding the stream") == logged {
			if time.Now().After(deadline) {
				t.Fatal("the validation did not start")
			}
			time.Sleep(5 * time.Millisecond)
		}
		p.Kill()
		p.Start()
		p.WaitFor("streaming again", func(c *pgx.Conn) bool {
			var status string
			return c.QueryRow(context.Background(), `SELECT status FROM mirrors WHERE name = 'vk'`).Scan(&status) == nil && status == "RUNNING"
		}, nil)
	}
	<-load
	for _, tbl := range testbed.PgbenchTables {
		waitEqual(t, src, dst, tbl.Name, tbl.Name, tbl.Key)
	}
	// The validations' temporary slots ended with their connections.
	deadline := time.Now().Add(30 * time.Second)
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

// readLog returns the sluice process's log so far.
func readLog(t *testing.T, p *testbed.SluiceProcess) string {
	t.Helper()
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
