package catalog_test

import (
	"testing"
	"time"

	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/connectors/postgres"
)

// RecordSync records the apply time and the source's commit time, so that
// the status view shows the lag in seconds; a batch without a commit time
// keeps both, and so the lag. MirrorLags reads it with rows_synced, and
// AddLagSamples stores samples of existing mirrors only, expires old ones,
// and DeleteMirror deletes the mirror's.
func TestLagSecondsAndHistory(t *testing.T) {
	s, url := oneTableMirror(t)
	ctx := testCtx(t)
	at, lags, err := s.MirrorLags(ctx)
	if err != nil || at.IsZero() || len(lags) != 1 || lags[0].LagSeconds != nil || lags[0].RowsSynced != 0 {
		t.Fatalf("before any batch: %v %+v %v", at, lags, err)
	}
	commit := time.Now().Add(-3 * time.Second)
	if err := s.RecordSync(ctx, "m", postgres.LSNPosition(0x100), "", commit, 7, nil); err != nil {
		t.Fatal(err)
	}
	_, lags, err = s.MirrorLags(ctx)
	if err != nil || len(lags) != 1 || lags[0].LagSeconds == nil || *lags[0].LagSeconds < 2.5 || *lags[0].LagSeconds > 30 ||
		lags[0].RowsSynced != 7 {
		t.Fatalf("after a batch committed 3 s ago: %+v %v", lags, err)
	}
	first := *lags[0].LagSeconds
	conn := connect(t, url)
	var commitAt time.Time
	if err := s.RecordSync(ctx, "m", postgres.LSNPosition(0x200), "", time.Time{}, 0, nil); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, `SELECT last_source_commit_at FROM sluice_status.mirrors WHERE name = 'm'`).Scan(&commitAt); err != nil ||
		commitAt.Sub(commit).Abs() > time.Millisecond {
		t.Fatalf("after a batch without a commit time: last_source_commit_at %v (%v), want %v kept", commitAt, err, commit)
	}
	if _, lags, _ = s.MirrorLags(ctx); lags[0].LagSeconds == nil || *lags[0].LagSeconds != first {
		t.Fatalf("lag seconds after a batch without a commit time: %+v, want %v kept", lags, first)
	}

	rate := 1.5
	bytes := int64(42)
	samples := []catalog.LagSample{{Mirror: "m", LagBytes: &bytes, RowsPerSecond: &rate}, {Mirror: "gone"}}
	if _, err := conn.Exec(ctx, `INSERT INTO sluice.mirror_lag_history (mirror, at) VALUES ('m', now() - interval '2 hours')`); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := s.AddLagSamples(ctx, now, samples, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := s.AddLagSamples(ctx, now, samples, time.Hour); err != nil { // the same again
		t.Fatalf("the same samples again: %v", err)
	}
	var n int
	var gotBytes *int64
	var gotRate *float64
	if err := conn.QueryRow(ctx, `SELECT count(*) OVER (), lag_bytes, rows_per_second FROM sluice_status.mirror_lag_history`).
		Scan(&n, &gotBytes, &gotRate); err != nil || n != 1 || gotBytes == nil || *gotBytes != 42 || gotRate == nil || *gotRate != 1.5 {
		t.Fatalf("history: %d rows, %v %v, %v; want the one sample of m", n, gotBytes, gotRate, err)
	}
	if err := s.DeleteMirror(ctx, "m"); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM sluice.mirror_lag_history`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("history after DeleteMirror: %d rows, %v", n, err)
	}
}

// A lag sample stored while a DROP MIRROR is in flight does not outlive
// the drop: AddLagSamples waits for the drop's transaction (it locks the
// mirror's row) and then stores nothing. Without the lock the sample's
// statement saw the mirror the drop had not yet committed deleting, and
// its row stayed after the drop had deleted the history (TestMetrics
// failed on it once in CI).
func TestLagSampleDuringDrop(t *testing.T) {
	s, url := oneTableMirror(t)
	ctx := testCtx(t)
	drop := connect(t, url)
	tx, err := drop.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	// DeleteMirror's statements, not yet committed.
	if _, err := tx.Exec(ctx, `DELETE FROM sluice.mirrors WHERE name = 'm'`); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM sluice.mirror_lag_history WHERE mirror = 'm'`); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- s.AddLagSamples(ctx, time.Now(), []catalog.LagSample{{Mirror: "m"}}, 0)
	}()
	// Either the sample waits for the drop's lock (right) or it is stored
	// at once (wrong: checked below).
	watch := connect(t, url)
	deadline := time.Now().Add(20 * time.Second)
	waited := false
	for !waited && time.Now().Before(deadline) {
		select {
		case err := <-done:
			done <- err
			deadline = time.Time{}
			continue
		default:
		}
		if err := watch.QueryRow(ctx, `SELECT count(*) > 0 FROM pg_stat_activity
WHERE wait_event_type = 'Lock' AND query LIKE '%INSERT INTO sluice.mirror_lag_history%'`).Scan(&waited); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("a sample during the drop: %v", err)
	}
	var n int
	if err := watch.QueryRow(ctx, `SELECT count(*) FROM sluice.mirror_lag_history WHERE mirror = 'm'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("lag history after a drop with a sample in flight: %d rows, %v; want 0 (waited for the drop: %v)", n, err, waited)
	}
}
