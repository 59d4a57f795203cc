package mysql_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/mysql"
)

// startInserts inserts rows 0, 1, 2, ... into db.t, one transaction each,
// until the test ends; the returned channel reports the writer's error.
func startInserts(t *testing.T, db string) <-chan error {
	t.Helper()
	conn, err := maria.Connect(testCtx(t), db)
	if err != nil {
		t.Fatal(err)
	}
	stop, errc := make(chan struct{}), make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				errc <- nil
				return
			default:
			}
			if _, err := conn.Execute(fmt.Sprintf("INSERT INTO t VALUES (%d, 'r')", i)); err != nil {
				errc <- err
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		<-done
		conn.Close()
	})
	return errc
}

// readCommits reads s until it has seen commits whole transactions, and
// returns the ids they inserted into t and the last one's end; any error
// (a 4052 among them) fails the test.
func readCommits(t *testing.T, s connectors.Stream, commits int) ([]int, connectors.Position) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var ids, tx []int
	var end connectors.Position
	for n := 0; n < commits; {
		evs, err := s.Read(ctx, nil, 100, 200*time.Millisecond)
		if err != nil {
			t.Fatalf("read after %d commits: %v", n, err)
		}
		for _, e := range evs {
			if n == commits {
				break // the rest comes again after the restart
			}
			switch e.Kind {
			case connectors.EventBegin:
				tx = tx[:0]
			case connectors.EventChange:
				tx = append(tx, int(int32(binary.BigEndian.Uint32(e.Change.New[0].Data))))
			case connectors.EventCommit:
				ids, end, n = append(ids, tx...), e.Pos, n+1
			}
		}
	}
	return ids, end
}

// TestBinlogStreamRestartWhileWriting closes a stream and at once starts
// it again, with the same replica id, from the end of the last transaction
// it read, many times while a writer commits row after row (a flow
// restarting its stream: a table resync, RESUME): no restart fails (the
// server's refusal or eviction of a replica id, 4052, would), and the rows
// arrive each once, in order.
func TestBinlogStreamRestartWhileWriting(t *testing.T) {
	db := newDB(t)
	maria.Exec(t, db, "CREATE TABLE t (id int PRIMARY KEY, v varchar(20))")
	for _, mech := range []string{"gtid", "filepos"} {
		t.Run(mech, func(t *testing.T) {
			maria.Exec(t, db, "TRUNCATE TABLE t")
			src := openWith(t, db, map[string]string{"replication_mechanism": mech})
			ts, pos := describeT(t, src, db), masterPos(t, src)
			errc := startInserts(t, db)
			var all []int
			for i := range 30 {
				s, err := src.Stream(testCtx(t), connectors.StreamSpec{Mirror: "restarts"}, pos,
					map[connectors.TableName]*connectors.TableSchema{ts.Name: ts})
				if err != nil {
					t.Fatalf("restart %d at %s: %v", i, pos, err)
				}
				var ids []int
				ids, pos = readCommits(t, s, 1+i%3)
				s.Close(context.Background())
				all = append(all, ids...)
			}
			select {
			case err := <-errc:
				t.Fatalf("writer: %v", err)
			default:
			}
			for i, id := range all {
				if id != i {
					t.Fatalf("ids read across the restarts: %v, want 0, 1, 2, ...", all)
				}
			}
		})
	}
}

// TestSameReplicaEvictsOlder shows what the server does with two streams of
// one replica id at once (two mirrors whose names and peers' server_id
// give one id): the newer dump ends the older one, whose reader gets
// 4052 (the stream's error says what it means), while the newer reads on.
// A stream restarted at once does not meet this: it closes the old one
// first.
func TestSameReplicaEvictsOlder(t *testing.T) {
	db := newDB(t)
	maria.Exec(t, db, "CREATE TABLE t (id int PRIMARY KEY, v varchar(20))")
	src := openWith(t, db, nil)
	ts, pos := describeT(t, src, db), masterPos(t, src)
	maria.Exec(t, db, "INSERT INTO t VALUES (1, 'a')")
	older := streamOf(t, src, ts, "twin", pos)
	readUntil(t, older, 3)
	newer := streamOf(t, openWith(t, db, nil), ts, "twin", pos)
	readUntil(t, newer, 3)
	maria.Exec(t, db, "INSERT INTO t VALUES (2, 'b')")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		_, err := older.Read(ctx, nil, 100, 200*time.Millisecond)
		if err != nil {
			if !mysql.SameReplica(err) || !strings.Contains(err.Error(), "4052") ||
				!strings.Contains(err.Error(), "another connection read the binlog with this mirror's replica id") {
				t.Fatalf("the older stream ended with %v, want 4052, explained", err)
			}
			t.Logf("the older stream: %v", err)
			break
		}
	}
	if got := describe(readUntil(t, newer, 3)); got[1] != "I t new(2,b)" {
		t.Fatalf("the newer stream read %v", got)
	}
}
