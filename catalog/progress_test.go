package catalog_test

import (
	"testing"
	"time"

	"github.com/sluicedb/sluice/catalog"
)

// TestTableProgressAndStep checks rows_estimated against rows_copied and
// the table steps: the migration raises an estimate a finished copy
// passed (2000 rows copied of 1999 estimated) and sets the steps of
// existing tables; a copy raises the estimate when it passes it and makes
// it exact when every partition is loaded; step_started_at moves only when
// the step changes.
func TestTableProgressAndStep(t *testing.T) {
	url := cluster.NewDB(t)
	conn := connect(t, url)
	ctx := testCtx(t)
	if err := catalog.MigrateUpTo(ctx, conn, "phase_vocabulary"); err != nil {
		t.Fatal(err)
	}
	_, err := conn.Exec(ctx, `
INSERT INTO sluice.peers (name, type, options_sealed) VALUES ('p', 'POSTGRES', '\x00');
INSERT INTO sluice.mirrors (name, source_peer, destination_peer, publication_name, slot_name, phase)
VALUES ('m', 'p', 'p', 'pub', 'slot', 'RUNNING');
INSERT INTO sluice.mirror_tables (mirror, source_table, destination_table, ordinal, status, rows_copied, rows_estimated)
VALUES ('m', 'public.done', 'public.done', 0, 'running', 2000, 1999),
       ('m', 'public.new', 'public.new', 1, 'pending', 0, 0)`)
	if err != nil {
		t.Fatal(err)
	}
	s := mustOpen(t, url, testKey(1))

	type row struct {
		copied, estimated int64
		step              string
		at                time.Time
	}
	read := func(table string) row {
		t.Helper()
		var r row
		err := conn.QueryRow(ctx, `SELECT rows_copied, rows_estimated, step, step_started_at
			FROM sluice_status.mirror_tables WHERE mirror = 'm' AND source_table = $1`, table).
			Scan(&r.copied, &r.estimated, &r.step, &r.at)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := read("public.done"); r.copied != 2000 || r.estimated != 2000 || r.step != catalog.StepStreaming {
		t.Errorf("after the migration: %+v, want 2000 copied of 2000, streaming", r)
	}
	if r := read("public.new"); r.step != catalog.StepWaiting {
		t.Errorf("after the migration: %+v, want waiting", r)
	}

	for i, c := range []struct {
		plan           bool
		done           int
		rows, estimate int64
	}{
		{plan: true, estimate: 100},
		{done: 0, rows: 60, estimate: 100},
		{done: 0, rows: 150, estimate: 150}, // passes the estimate
		{done: 1, rows: 160, estimate: 160},
		{done: 2, rows: 155, estimate: 155}, // every partition loaded: exact
		{plan: true, estimate: 0},           // a new plan, estimate unknown (-1)
	} {
		if c.plan {
			est := c.estimate
			if est == 0 {
				est = -1
			}
			err = s.SetTablePlan(ctx, "m", "public.new", []byte(`[]`), 2, est)
		} else {
			err = s.SetTableProgress(ctx, "m", "public.new", c.done, c.rows)
		}
		if err != nil {
			t.Fatal(err)
		}
		if r := read("public.new"); r.copied != c.rows || r.estimated != c.estimate {
			t.Errorf("%d: rows_copied %d, rows_estimated %d, want %d, %d", i, r.copied, r.estimated, c.rows, c.estimate)
		}
	}

	if err := s.SetTableStep(ctx, "m", catalog.StepCopying, "public.new"); err != nil {
		t.Fatal(err)
	}
	first := read("public.new")
	time.Sleep(20 * time.Millisecond)
	if err := s.SetTableStep(ctx, "m", catalog.StepCopying, "public.new"); err != nil {
		t.Fatal(err)
	}
	if again := read("public.new"); again.step != catalog.StepCopying || !again.at.Equal(first.at) {
		t.Errorf("the same step again: %s since %s, want copying since %s", again.step, again.at, first.at)
	}
	if err := s.SetTableStep(ctx, "m", catalog.StepBuildingIndexes, "public.new", "public.done"); err != nil {
		t.Fatal(err)
	}
	if next := read("public.new"); next.step != catalog.StepBuildingIndexes || !next.at.After(first.at) {
		t.Errorf("a new step: %s since %s, want building indexes after %s", next.step, next.at, first.at)
	}
	if other := read("public.done"); other.step != catalog.StepBuildingIndexes {
		t.Errorf("second table: step %s, want building indexes", other.step)
	}
}
