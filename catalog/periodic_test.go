package catalog_test

import (
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/sluicedb/sluice/catalog"
)

// What the periodic jobs keep in the catalog (docs/cluster.md#where-periodic-work-runs):
// SetSlotLag records whether the slot is active and reports a warning new
// only when the measurement before had none, whichever node made it;
// LastLagSamples gives each mirror's latest sample with rows_synced; and
// DeleteFinishedJobs deletes the given kinds' old finished jobs only.
func TestPeriodicCatalog(t *testing.T) {
	s, url := oneTableMirror(t)
	ctx := testCtx(t)
	conn := connect(t, url)
	yes := true
	for i, c := range []struct {
		warning string
		isNew   bool
	}{{"", false}, {"at risk", true}, {"at risk", false}, {"still at risk", false}, {"", false}, {"again", true}} {
		isNew, err := s.SetSlotLag(ctx, "m", catalog.SlotLag{Active: &yes, Warning: c.warning})
		if err != nil || isNew != c.isNew {
			t.Fatalf("measurement %d (warning %q): new %v (%v), want %v", i, c.warning, isNew, err, c.isNew)
		}
	}
	var active *bool
	if err := conn.QueryRow(ctx, `SELECT slot_active FROM sluice_status.mirrors WHERE name = 'm'`).Scan(&active); err != nil ||
		active == nil || !*active {
		t.Fatalf("slot_active %v (%v), want true", active, err)
	}
	if err := s.SetLagUnknown(ctx, "m"); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, `SELECT slot_active FROM sluice_status.mirrors WHERE name = 'm'`).Scan(&active); err != nil || active != nil {
		t.Fatalf("slot_active of an unreachable source %v (%v), want NULL", active, err)
	}
	if isNew, err := s.SetSlotLag(ctx, "gone", catalog.SlotLag{Warning: "x"}); err != nil || isNew {
		t.Fatalf("a dropped mirror's measurement: new %v, %v", isNew, err)
	}

	at := time.Now()
	for i, rows := range []int64{10, 25} {
		r := rows
		if err := s.AddLagSamples(ctx, at.Add(time.Duration(i)*time.Second), []catalog.LagSample{{Mirror: "m", RowsSynced: &r}}, 0); err != nil {
			t.Fatal(err)
		}
	}
	// An older Sluice's sample has no rows_synced: not a mark.
	if err := s.AddLagSamples(ctx, at.Add(2*time.Second), []catalog.LagSample{{Mirror: "m"}}, 0); err != nil {
		t.Fatal(err)
	}
	marks, err := s.LastLagSamples(ctx, at.Add(-time.Minute))
	if err != nil || len(marks) != 1 || marks["m"].Rows != 25 || !marks["m"].At.Equal(at.Add(time.Second).Truncate(time.Microsecond)) {
		t.Fatalf("last samples %+v (%v), want m's second", marks, err)
	}
	if marks, err := s.LastLagSamples(ctx, at.Add(time.Minute)); err != nil || len(marks) != 0 {
		t.Fatalf("last samples after a later time %+v (%v), want none", marks, err)
	}

	client, err := river.NewClient(riverpgxv5.New(s.Pool()), &river.Config{Schema: catalog.RiverSchema})
	if err != nil {
		t.Fatal(err)
	}
	// Completed jobs of a periodic kind 2 minutes and 10 s old, a failed
	// one 2 minutes old, and a completed job of another kind 2 minutes
	// old.
	for i, j := range []struct {
		kind, state string
		age         string
	}{{"periodic_test", "completed", "2 minutes"}, {"periodic_test", "completed", "10 seconds"},
		{"periodic_test", "discarded", "2 minutes"}, {"test_job", "completed", "2 minutes"}} {
		res, err := client.Insert(ctx, testJob{Mirror: "m", Partition: i}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, `UPDATE sluice.river_job SET kind = $2, state = $3::sluice.river_job_state,
    finalized_at = now() - $4::interval WHERE id = $1`, res.Job.ID, j.kind, j.state, j.age); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.DeleteFinishedJobs(ctx, []string{"periodic_test"}, time.Minute, time.Hour)
	if err != nil || n != 1 {
		t.Fatalf("deleted %d jobs (%v), want the old completed periodic one", n, err)
	}
	var left int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM sluice.river_job`).Scan(&left); err != nil || left != 3 {
		t.Fatalf("%d jobs left (%v), want 3", left, err)
	}
}
