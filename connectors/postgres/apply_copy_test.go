package postgres_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/connectors/postgres"
)

// A destination session ended in the middle of a COPY (the server
// restarted, a fence terminated a stale node's session): pgx returns from
// CopyFrom on the FATAL error without waiting for its goroutine that reads
// the stream, and the applier then rolls back and clears the rows. The
// stream must not be read after CopyFrom returned: before the fix, that
// goroutine went on encoding cleared rows and the process died of an
// index out of range.
func TestCopyRowsConnectionLost(t *testing.T) {
	ctx := testCtx(t)
	url := dstCluster.NewDB(t)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE TABLE ints (i int4)"); err != nil {
		t.Fatal(err)
	}
	const rows, holdAt = 200_000, 50_000
	var encoded atomic.Int64
	held, release := make(chan struct{}), make(chan struct{})
	go func() {
		<-held
		// End the COPY's session while its stream is held, and let the
		// stream go on once pgx has surely seen the FATAL error.
		if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend($1)", conn.PgConn().PID()); err != nil {
			t.Error(err)
		}
		time.Sleep(500 * time.Millisecond)
		close(release)
	}()
	err = postgres.CopyInts(ctx, conn.PgConn(), "COPY ints FROM STDIN (FORMAT binary)", rows, func(i int) {
		encoded.Add(1)
		if i == holdAt {
			close(held)
			select {
			case <-release:
			case <-time.After(10 * time.Second):
			}
		}
	})
	if err == nil {
		t.Fatal("the COPY succeeded although its session was terminated")
	}
	at := encoded.Load()
	time.Sleep(300 * time.Millisecond)
	if n := encoded.Load(); n != at {
		t.Fatalf("%d rows encoded after the COPY returned (%v): the stream was read after it ended", n-at, err)
	}
	if at >= rows {
		t.Fatalf("all %d rows were encoded although the COPY failed at row %d", at, holdAt)
	}
	t.Logf("COPY ended with %v after %d of %d rows", err, at, rows)
}
