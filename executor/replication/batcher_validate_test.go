package replication

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sluicedb/sluice/connectors"
)

// Unit tests of VALIDATE MIRROR's hold in the batcher: the destination is
// summarized with every transaction before the snapshot committed and none
// after, on a busy stream and on an idle one.

// summingDest is a destination whose summary counts the rows d committed.
type summingDest struct {
	*fakeDest
	d *dest
}

func (s *summingDest) SummaryColumns(t connectors.DestTable) ([]connectors.SummaryColumn, []string) {
	return nil, nil
}

func (s *summingDest) SummarizeRows(ctx context.Context, t connectors.DestTable, spec connectors.SummarySpec) (connectors.RowSummary, error) {
	commits, _, _ := s.d.snapshot()
	var n int64
	for _, c := range commits {
		n += int64(len(c.changes))
	}
	return connectors.RowSummary{Rows: n}, nil
}

// snapSource is a source with a snapshot at pos.
type snapSource struct {
	*fakeSource
	pos connectors.Position
}

func (s *snapSource) TableSnapshot(ctx context.Context) (*connectors.Snapshot, error) {
	return connectors.NewSnapshot("snap", s.pos, posLSN(s.pos), nil), nil
}

func (s *snapSource) CanRender(connectors.Column, connectors.Rendering) bool { return true }

func (s *snapSource) SummarizeSnapshot(ctx context.Context, snapshot string, table connectors.TableName, spec connectors.SummarySpec) (connectors.RowSummary, error) {
	return connectors.RowSummary{}, nil
}

// snapPeer opens a snapSource.
type snapPeer struct{ pos connectors.Position }

func (p snapPeer) OpenSource(ctx context.Context, appName string) (connectors.Source, error) {
	return &snapSource{fakeSource: &fakeSource{}, pos: p.pos}, nil
}

func (p snapPeer) DefaultSchema() string { return "public" }

// validatingBatcher returns a batcher on d whose flow takes validations
// from the returned channel, with a snapshot at snapAt.
func validatingBatcher(d *dest, snapAt uint64) (*batcher, chan *validation) {
	b := newTestBatcher(d.applier(), 100, 1000)
	vs := make(chan *validation)
	b.f.validations = vs
	b.f.src = snapPeer{pos: lsnPos(snapAt)}
	b.dst = &summingDest{fakeDest: &fakeDest{}, d: d}
	b.dests = []connectors.DestTable{{Source: tabA, Dest: tabA, Schema: &connectors.TableSchema{
		Columns: []connectors.Column{{Name: "id", Type: "bigint", TypeOID: 20}}, PrimaryKey: []string{"id"}}}}
	return b, vs
}

// reply waits for v's answer.
func reply(t *testing.T, v *validation) validationReply {
	t.Helper()
	select {
	case r := <-v.reply:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no answer to the validation")
	}
	return validationReply{}
}

func TestBatcherValidationHoldsAtSnapshot(t *testing.T) {
	d := &dest{}
	f := make(feed, 16)
	b, vs := validatingBatcher(d, 135)
	// Applied before the validation comes.
	running(t, b, d.stream(f))
	f <- tx(110, 120, "1")
	eventually(t, "the first transaction", func() bool { c, _, _ := d.snapshot(); return len(c) == 1 })

	v := &validation{reply: make(chan validationReply, 1)}
	vs <- v
	// One more transaction whose commit starts before the snapshot, then
	// one at it: the destination is read between them.
	f <- append(tx(130, 134, "2"), tx(135, 150, "3")...)
	r := reply(t, v)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if len(r.tables) != 1 || r.tables[0].summary.Rows != 2 {
		t.Fatalf("destination summarized with %+v, want 2 rows (transactions before 135)", r.tables)
	}
	eventually(t, "the transaction after the snapshot", func() bool {
		c, _, _ := d.snapshot()
		return len(c) > 0 && c[len(c)-1].lsn == 150
	})
}

func TestBatcherValidationIdleSource(t *testing.T) {
	d := &dest{}
	f := make(feed, 16)
	b, vs := validatingBatcher(d, 200)
	running(t, b, d.stream(f))
	f <- tx(110, 120, "1")
	v := &validation{reply: make(chan validationReply, 1)}
	vs <- v
	eventually(t, "the heartbeat", func() bool { _, _, beats := d.snapshot(); return beats > 0 })
	// The heartbeat's progress event, beyond the snapshot.
	f <- []connectors.Event{{Kind: connectors.EventProgress, Pos: lsnPos(210)}}
	r := reply(t, v)
	if r.err != nil || len(r.tables) != 1 || r.tables[0].summary.Rows != 1 {
		t.Fatalf("reply %+v (error %v), want 1 row", r.tables, r.err)
	}
	// A second validation while none is held is taken as well.
	v2 := &validation{reply: make(chan validationReply, 1)}
	vs <- v2
	f <- tx(300, 310, "2")
	if r := reply(t, v2); r.err != nil || r.tables[0].summary.Rows != 1 {
		t.Fatalf("second validation: %+v (error %v), want 1 row", r.tables, r.err)
	}
}

func TestBatcherValidationTimesOut(t *testing.T) {
	d := &dest{}
	f := make(feed, 16)
	b, vs := validatingBatcher(d, 500)
	b.holdReach = 300 * time.Millisecond
	running(t, b, d.stream(f))
	v := &validation{reply: make(chan validationReply, 1)}
	vs <- v
	// The stream stays before the snapshot: the validation fails, the
	// mirror goes on.
	f <- tx(110, 120, "1")
	r := reply(t, v)
	if r.err == nil || !strings.Contains(r.err.Error(), "did not reach the source's snapshot") {
		t.Fatalf("reply error %v, want a timeout", r.err)
	}
	f <- tx(510, 520, "2")
	eventually(t, "the transactions after the failed validation", func() bool {
		c, _, _ := d.snapshot()
		return len(c) > 0 && c[len(c)-1].lsn == 520
	})
	// A validation while one waits is refused.
	v1, v2 := &validation{reply: make(chan validationReply, 1)}, &validation{reply: make(chan validationReply, 1)}
	b2, vs2 := validatingBatcher(&dest{}, 900)
	b2.holdReach = time.Hour
	running(t, b2, (&dest{}).stream(make(feed)))
	vs2 <- v1
	vs2 <- v2
	if r := reply(t, v2); r.err == nil || !strings.Contains(r.err.Error(), "another validation") {
		t.Fatalf("second validation: %v, want refused", r.err)
	}
}

func TestRangeWidth(t *testing.T) {
	for _, tc := range []struct{ lo, hi, rows, want int64 }{
		{1, 1000, 1000, 20}, {1, 64, 64, 1}, {0, 0, 1, 1}, {1, 100000, 10, 2000}, {0, 0, 0, 1000},
		{-5000, 5000, 100, 200}, {-1 << 62, 1 << 62, 10, 2e17}, {-1 << 63, 1<<63 - 1, 2, 5e17},
	} {
		if got := rangeWidth(tc.lo, tc.hi, tc.rows); got != tc.want {
			t.Errorf("rangeWidth(%d, %d, %d) = %d, want %d", tc.lo, tc.hi, tc.rows, got, tc.want)
		}
	}
}

func TestCompare(t *testing.T) {
	sum := func(rows int64, s string) connectors.RangeSummary { return connectors.RangeSummary{Rows: rows, Sum: s} }
	dst := validatedTable{dest: connectors.DestTable{Source: tabA}, spec: connectors.SummarySpec{Key: "id", Width: 100, Checksum: true},
		summary: connectors.RowSummary{Rows: 5, Ranges: map[int64]connectors.RangeSummary{-1: sum(1, "7"), 0: sum(2, "9"), 3: sum(2, "4")}}}
	src := connectors.RowSummary{Rows: 5, Ranges: map[int64]connectors.RangeSummary{-1: sum(1, "7"), 0: sum(2, "8"), 5: sum(2, "4")}}
	got := compare(dst, src)
	want := []string{"[0, 100)", "[300, 400)", "[500, 600)"}
	if got.Equal || len(got.Mismatched) != 3 || got.Mismatched[0] != want[0] || got.Mismatched[1] != want[1] || got.Mismatched[2] != want[2] {
		t.Fatalf("compare: %+v, want different in %v", got, want)
	}
	same := compare(dst, dst.summary)
	if !same.Equal || len(same.Mismatched) != 0 || same.Status() != "equal" {
		t.Fatalf("compare with itself: %+v", same)
	}
	same.Skipped = []string{"f (real)"}
	if s := same.Status(); s != "equal; not compared: f (real)" {
		t.Fatalf("status %q", s)
	}
	count := compare(validatedTable{summary: connectors.RowSummary{Rows: 3}}, connectors.RowSummary{Rows: 4})
	if count.Equal || count.Mismatched != nil || count.Status() != "different" {
		t.Fatalf("count mode: %+v", count)
	}
}
