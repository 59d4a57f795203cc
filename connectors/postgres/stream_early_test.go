package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/postgres"
)

// earlyRows is the table size of the early streams' tests: an update of
// every row decodes to well over the early stream's 8 MB.
const earlyRows = 60000

// startEarly streams e's slot from its consistent point, early.
func (e *streamEnv) startEarly(t *testing.T) *postgres.Stream {
	t.Helper()
	s, err := postgres.StartStream(testCtx(t), replConn(t, e.url), postgres.StreamConfig{
		Slot: e.slot.Name, Publication: "acc_pub", Start: postgres.LSNPosition(e.slot.ConsistentLSN),
		Tables:       map[connectors.TableName]*connectors.TableSchema{e.schema.Name: e.schema},
		DescribeType: postgres.TypeDescriber(e.src), Early: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// earlyTrace reads s until it is idle for a second or fails, and returns
// its events as words: "begin", "open" (an open begin), "commit", "abort",
// and runs of changes as "N×U" (N changes of kind U), with the error.
func earlyTrace(t *testing.T, s *postgres.Stream) (string, error) {
	t.Helper()
	ctx := testCtx(t)
	var words []string
	var run byte
	n := 0
	endRun := func() {
		if n > 0 {
			words = append(words, fmt.Sprintf("%d×%c", n, run))
		}
		n = 0
	}
	start := posLSN(t, postgres.LSNPosition(0))
	for {
		evs, err := s.Read(ctx, nil, 1024, time.Second)
		if err != nil {
			endRun()
			return strings.Join(words, " "), err
		}
		if len(evs) == 0 {
			endRun()
			return strings.Join(words, " "), nil
		}
		for _, ev := range evs {
			switch ev.Kind {
			case connectors.EventChange:
				k := byte(ev.Change.Kind)
				if n > 0 && k != run {
					endRun()
				}
				run = k
				n++
				continue
			case connectors.EventProgress:
				continue
			}
			endRun()
			switch ev.Kind {
			case connectors.EventBegin:
				if ev.Open {
					if ev.Version != 0 || posLSN(t, ev.Pos) <= start {
						t.Errorf("open begin: version %d, pos %s", ev.Version, ev.Pos)
					}
					words = append(words, "open")
				} else {
					words = append(words, "begin")
				}
			case connectors.EventCommit:
				words = append(words, "commit")
			case connectors.EventAbort:
				words = append(words, "abort")
			default:
				words = append(words, fmt.Sprintf("event%d", ev.Kind))
			}
		}
	}
}

// TestStreamEarly: a large transaction comes open, in blocks, before its
// commit; one rolled back ends with an abort; small ones come as before.
func TestStreamEarly(t *testing.T) {
	e := newStreamEnv(t, earlyRows)
	mustExec(t, e.src, `UPDATE public.acc SET abalance = 1 WHERE aid = 1`)
	mustExec(t, e.src, `UPDATE public.acc SET abalance = abalance + 2`)
	mustExec(t, e.src, `BEGIN; UPDATE public.acc SET abalance = abalance + 3; ROLLBACK`)
	mustExec(t, e.src, `DELETE FROM public.acc WHERE aid = 2`)
	got, err := earlyTrace(t, e.startEarly(t))
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("begin 1×U commit open %d×U commit open %d×U abort begin 1×D commit", earlyRows, earlyRows)
	// The rolled back one is sent only as far as the server had decoded
	// it when it read the rollback: its changes may be fewer.
	if !earlyLike(got, want) {
		t.Errorf("events:\n%s\nwant like:\n%s", got, want)
	}
}

// earlyLike compares traces, allowing an aborted transaction fewer changes.
func earlyLike(got, want string) bool {
	g, w := strings.Fields(got), strings.Fields(want)
	if len(g) != len(w) {
		return false
	}
	for i := range g {
		if g[i] == w[i] {
			continue
		}
		if i+1 < len(w) && w[i+1] == "abort" && strings.HasSuffix(g[i], "×U") && strings.HasSuffix(w[i], "×U") {
			continue
		}
		return false
	}
	return true
}

// TestStreamEarlyFolded: transactions that commit while a large one is
// open come folded into it, in their place, and none of their own begins
// or commits.
func TestStreamEarlyFolded(t *testing.T) {
	e := newStreamEnv(t, earlyRows)
	other := connect(t, e.url)
	mustExec(t, e.src, `BEGIN`)
	mustExec(t, e.src, `UPDATE public.acc SET abalance = abalance + 2 WHERE aid > 10`)
	mustExec(t, other, `INSERT INTO public.acc VALUES (-1, 0, 0, 'folded')`)
	mustExec(t, other, `DELETE FROM public.acc WHERE aid = 3`)
	mustExec(t, e.src, `UPDATE public.acc SET abalance = 7 WHERE aid = 5`)
	mustExec(t, e.src, `COMMIT`)
	mustExec(t, e.src, `UPDATE public.acc SET abalance = 8 WHERE aid = 6`)
	got, err := earlyTrace(t, e.startEarly(t))
	if err != nil {
		t.Fatal(err)
	}
	// The insert and delete come where the server sent them: after the
	// blocks it sent before their commit, before the rest of the open
	// transaction's changes (rows it had locked, so no row of theirs),
	// and before its update after their commit.
	var n1, n2 int
	if _, err := fmt.Sscanf(got, "open %d×U 1×I 1×D %d×U commit begin 1×U commit", &n1, &n2); err != nil ||
		n1+n2 != earlyRows-10+1 || n1 == 0 {
		t.Errorf("events:\n%s\nwant: open N×U 1×I 1×D M×U commit begin 1×U commit, N > 0, N+M = %d", got, earlyRows-10+1)
	}
}

// TestStreamEarlyRolledBackBefore: a large transaction that rolled back
// before the stream read it (the server finds it aborted when it streams
// it, and sends empty blocks) is never handed over; one that committed
// meanwhile goes through as usual. (Rolled back after a fold while the
// stream reads it: executor/cluster's TestEarlyFoldedRollback.)
func TestStreamEarlyRolledBackBefore(t *testing.T) {
	e := newStreamEnv(t, earlyRows)
	other := connect(t, e.url)
	mustExec(t, e.src, `BEGIN`)
	mustExec(t, e.src, `UPDATE public.acc SET abalance = abalance + 2 WHERE aid > 10`)
	mustExec(t, other, `DELETE FROM public.acc WHERE aid = 3`)
	mustExec(t, e.src, `UPDATE public.acc SET abalance = 7 WHERE aid = 5`)
	mustExec(t, e.src, `ROLLBACK`)
	got, err := earlyTrace(t, e.startEarly(t))
	if err != nil || got != "begin 1×D commit" {
		t.Errorf("events %q, err %v; want \"begin 1×D commit\"", got, err)
	}
}

// TestStreamEarlyAbandoned: what an open transaction cannot come back
// from fails the stream with ErrEarlyAbandoned.
func TestStreamEarlyAbandoned(t *testing.T) {
	for _, c := range []struct {
		name string
		run  func(t *testing.T, e *streamEnv)
	}{
		{"savepoint rolled back", func(t *testing.T, e *streamEnv) {
			mustExec(t, e.src, `BEGIN; UPDATE public.acc SET abalance = 1 WHERE aid = 1; SAVEPOINT s;
				UPDATE public.acc SET abalance = abalance + 2; ROLLBACK TO s;
				UPDATE public.acc SET abalance = 3 WHERE aid = 2; COMMIT`)
		}},
		{"two open at once", func(t *testing.T, e *streamEnv) {
			other := connect(t, e.url)
			mustExec(t, e.src, `BEGIN`)
			mustExec(t, other, `BEGIN`)
			mustExec(t, e.src, `UPDATE public.acc SET abalance = abalance + 2 WHERE aid <= 30000`)
			mustExec(t, other, `UPDATE public.acc SET abalance = abalance + 2 WHERE aid > 30000`)
			mustExec(t, e.src, `UPDATE public.acc SET abalance = abalance + 2 WHERE aid <= 30000`)
			mustExec(t, other, `UPDATE public.acc SET abalance = abalance + 2 WHERE aid > 30000`)
			mustExec(t, e.src, `COMMIT`)
			mustExec(t, other, `COMMIT`)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newStreamEnv(t, earlyRows)
			c.run(t, e)
			got, err := earlyTrace(t, e.startEarly(t))
			if !errors.Is(err, connectors.ErrEarlyAbandoned) {
				t.Fatalf("events %s, err %v; want ErrEarlyAbandoned", got, err)
			}
			if !strings.HasPrefix(got, "open") { // the failed Read's events are dropped
				t.Errorf("events before the error: %s, want an open transaction", got)
			}
		})
	}
}
