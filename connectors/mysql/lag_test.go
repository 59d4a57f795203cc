package mysql_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/mysql"
)

// TestStreamLagAndCheck measures a stream's lag from its position as the
// binlog grows, and reports the stream lost once the server purged the
// binlog file it resumes from.
func TestStreamLagAndCheck(t *testing.T) {
	ctx := testCtx(t)
	db := newDB(t)
	maria.Exec(t, db, "CREATE TABLE t (id int PRIMARY KEY, v varchar(100))")
	src := openWith(t, db, nil)
	from := masterPos(t, src)
	spec := connectors.StreamSpec{Mirror: "m", From: from}
	lags, err := src.StreamLags(ctx, []connectors.StreamSpec{spec, {Mirror: "none"}})
	if err != nil {
		t.Fatal(err)
	}
	if l := lags["m"]; l.Bytes == nil || *l.Bytes != 0 || l.Lost {
		t.Fatalf("lag at the binlog's end: %+v", l)
	}
	if l := lags["none"]; l.Bytes != nil || l.Lost {
		t.Fatalf("lag without a position: %+v", l)
	}
	maria.Exec(t, db, "INSERT INTO t SELECT seq, REPEAT('x', 100) FROM seq_1_to_1000")
	// Across a rotation too: the rest of the first file and the next.
	maria.Exec(t, "", "FLUSH BINARY LOGS")
	maria.Exec(t, db, "INSERT INTO t VALUES (5000, 'after the rotation')")
	lags, err = src.StreamLags(ctx, []connectors.StreamSpec{spec})
	if err != nil {
		t.Fatal(err)
	}
	if l := lags["m"]; l.Bytes == nil || *l.Bytes < 100_000 || l.Lost {
		t.Fatalf("lag after 1000 rows of 100 bytes: %+v", l)
	}
	if err := src.CheckStream(ctx, spec); err != nil {
		t.Fatalf("CheckStream while the binlog is kept: %v", err)
	}
	if err := src.CheckStream(ctx, connectors.StreamSpec{Mirror: "new"}); err != nil {
		t.Fatalf("CheckStream without a position: %v", err)
	}

	// The server purges every file but the current one.
	now := masterPos(t, src)
	p, err := mysql.DecodePosition(now)
	if err != nil {
		t.Fatal(err)
	}
	// MariaDB purges a file only once its binlog checkpoint passed it (the
	// engine flushed its transactions): purge until it is gone.
	maria.Exec(t, "", "FLUSH BINARY LOGS")
	deadline := time.Now().Add(30 * time.Second)
	for {
		maria.Exec(t, "", "PURGE BINARY LOGS TO '"+p.File+"'")
		err = src.CheckStream(ctx, spec)
		if err != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !errors.Is(err, connectors.ErrStreamLost) {
		r, _ := src.Exec("SHOW BINARY LOGS")
		var names []string
		for i := range r.RowNumber() {
			n, _ := r.GetString(i, 0)
			names = append(names, n)
		}
		t.Fatalf("CheckStream after the purge (from %s, binlogs %v): %v", from, names, err)
	}
	lags, err = src.StreamLags(ctx, []connectors.StreamSpec{spec})
	if err != nil {
		t.Fatal(err)
	}
	if l := lags["m"]; !l.Lost || l.Bytes != nil {
		t.Fatalf("lag after the purge: %+v", l)
	}
	// now's file is the oldest kept, and not the one written: the next
	// purge would take it.
	lags, err = src.StreamLags(ctx, []connectors.StreamSpec{{Mirror: "m2", From: now}})
	if err != nil {
		t.Fatal(err)
	}
	if l := lags["m2"]; l.Lost || !strings.Contains(l.Warning, "binlog "+p.File+`, where mirror "m2" resumes, is the oldest`) {
		t.Fatalf("lag at the oldest binlog: %+v", l)
	}
}

// TestStreamActive: a stream is active while its reader is connected, and
// not once it is closed.
func TestStreamActive(t *testing.T) {
	ctx := testCtx(t)
	db := newDB(t)
	maria.Exec(t, db, "CREATE TABLE t (id int PRIMARY KEY, v varchar(100))")
	src := openWith(t, db, nil)
	from := masterPos(t, src)
	spec := connectors.StreamSpec{Mirror: "active", From: from}
	activeIs := func(want bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			lags, err := src.StreamLags(ctx, []connectors.StreamSpec{spec})
			if err != nil {
				t.Fatal(err)
			}
			a := lags["active"].Active
			if a == nil {
				t.Fatal("the server lists no replicas: activity unknown")
			}
			if *a == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("stream active %v, want %v", *a, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	activeIs(false)
	s := streamOf(t, src, describeT(t, src, db), "active", from)
	maria.Exec(t, db, "INSERT INTO t VALUES (1, 'x')")
	activeIs(true)
	if bc, ok := s.(connectors.ByteCounter); !ok {
		t.Error("the stream does not count bytes")
	} else {
		deadline := time.Now().Add(20 * time.Second)
		for bc.ReceivedBytes() == 0 && time.Now().Before(deadline) {
			if _, err := s.Read(ctx, nil, 10, 100*time.Millisecond); err != nil {
				t.Fatal(err)
			}
		}
		if bc.ReceivedBytes() == 0 {
			t.Error("no bytes counted after an insert")
		}
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	activeIs(false)
}
