package executor_test

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/sluicedb/sluice/internal/testbed"
)

// scrape fetches /metrics with the password as a bearer token and parses
// it with the Prometheus text parser.
func scrape(t *testing.T, base, password string) map[string]*dto.MetricFamily {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// series renders the samples of the families named by prefix sluice_ (and
// of mirror m only) as "name{labels} value" lines, sorted: histograms as
// their sample count.
func series(fams map[string]*dto.MetricFamily, mirror string) map[string]float64 {
	out := make(map[string]float64)
	for name, f := range fams {
		if !strings.HasPrefix(name, "sluice_") {
			continue
		}
		for _, m := range f.GetMetric() {
			var labels []string
			ok := false
			for _, l := range m.GetLabel() {
				if l.GetName() == "mirror" {
					ok = l.GetValue() == mirror
					continue
				}
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			if !ok {
				continue
			}
			sort.Strings(labels)
			key := name + "{" + strings.Join(labels, ",") + "}"
			switch {
			case m.Gauge != nil:
				out[key] = m.GetGauge().GetValue()
			case m.Counter != nil:
				out[key] = m.GetCounter().GetValue()
			case m.Histogram != nil:
				out[key+"count"] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

// statusSeries reads what the status tables say of mirror, as the series
// the metrics should show of them (NULLs left out).
func statusSeries(t *testing.T, conn *pgx.Conn, mirror string) map[string]float64 {
	t.Helper()
	out := make(map[string]float64)
	var src, dst, status string
	var lagBytes, safeWAL *int64
	var lagSecs, lastApplied *float64
	err := conn.QueryRow(testCtx(t), `SELECT source_peer, destination_peer, status, lag_bytes, lag_seconds,
		extract(epoch FROM last_synced_at)::float8, slot_safe_wal_size FROM mirrors WHERE name = $1`, mirror).
		Scan(&src, &dst, &status, &lagBytes, &lagSecs, &lastApplied, &safeWAL)
	if err != nil {
		t.Fatalf("read mirrors: %v", err)
	}
	out[fmt.Sprintf("sluice_mirror_info{destination_peer=%s,source_peer=%s,status=%s}", dst, src, status)] = 1
	if lagBytes != nil {
		out["sluice_slot_lag_bytes{}"] = float64(*lagBytes)
	}
	if lagSecs != nil {
		out["sluice_replication_lag_seconds{}"] = *lagSecs
	}
	if lastApplied != nil {
		out["sluice_last_applied_timestamp_seconds{}"] = *lastApplied
	}
	if safeWAL != nil {
		out["sluice_slot_safe_wal_size_bytes{}"] = float64(*safeWAL)
	}
	rows, err := conn.Query(testCtx(t), `SELECT source_table, inserts, updates, deletes, rows_copied, rows_estimated,
		partitions_done, partitions_total FROM mirror_tables WHERE mirror = $1`, mirror)
	if err != nil {
		t.Fatalf("read mirror_tables: %v", err)
	}
	var table string
	var ins, upd, del, copied, est, done, total int64
	_, err = pgx.ForEachRow(rows, []any{&table, &ins, &upd, &del, &copied, &est, &done, &total}, func() error {
		out["sluice_rows_synced_total{op=insert,table="+table+"}"] = float64(ins)
		out["sluice_rows_synced_total{op=update,table="+table+"}"] = float64(upd)
		out["sluice_rows_synced_total{op=delete,table="+table+"}"] = float64(del)
		out["sluice_snapshot_rows_copied{table="+table+"}"] = float64(copied)
		out["sluice_snapshot_rows_estimated{table="+table+"}"] = float64(est)
		out["sluice_snapshot_partitions_done{table="+table+"}"] = float64(done)
		out["sluice_snapshot_partitions_total{table="+table+"}"] = float64(total)
		return nil
	})
	if err != nil {
		t.Fatalf("read mirror_tables: %v", err)
	}
	return out
}

// inProcess are the series the status tables do not hold: checked apart.
func inProcess(key string) bool {
	for _, p := range []string{"sluice_fetched_bytes_total", "sluice_batch_duration_seconds", "sluice_errors_total", "sluice_slot_active"} {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// matchStatus scrapes until a scrape falls between two equal readings of
// the status tables (they move during a load), then checks that its
// status-derived series are exactly theirs, and returns all its series of
// mirror.
func matchStatus(t *testing.T, s *testbed.Sluice, conn *pgx.Conn, mirror string) map[string]float64 {
	t.Helper()
	var got, want map[string]float64
	for range 50 {
		before := statusSeries(t, conn, mirror)
		got = series(scrape(t, s.HTTPURL, s.Password), mirror)
		after := statusSeries(t, conn, mirror)
		if !reflect.DeepEqual(before, after) {
			continue
		}
		want = before
		fromStatus := make(map[string]float64)
		for k, v := range got {
			if !inProcess(k) {
				fromStatus[k] = v
			}
		}
		if reflect.DeepEqual(fromStatus, want) {
			return got
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("metrics of %s never matched the status tables:\n got  %v\n want %v", mirror, got, want)
	return nil
}

// waitMetrics scrapes until cond holds of the mirror's series.
func waitMetrics(t *testing.T, s *testbed.Sluice, mirror, what string, cond func(map[string]float64) bool) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var got map[string]float64
	for time.Now().Before(deadline) {
		got = series(scrape(t, s.HTTPURL, s.Password), mirror)
		if cond(got) {
			return got
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("metrics of %s: never %s:\n%v", mirror, what, got)
	return nil
}

// slotActive reads pg_replication_slots.active of the mirror's slot.
func slotActive(t *testing.T, src *pgx.Conn, mirror string) bool {
	t.Helper()
	var active bool
	err := src.QueryRow(testCtx(t), `SELECT active FROM pg_replication_slots WHERE slot_name = $1`, "sluice_"+mirror).Scan(&active)
	if err != nil {
		t.Fatalf("read the slot of %s: %v", mirror, err)
	}
	return active
}

// TestMetrics follows one Postgres mirror through its initial load, CDC,
// a failure and a pause, and checks at each stage that /metrics shows every metric
// with the values the status tables hold; and that the lag history
// samples it and goes with it when it is dropped.
func TestMetrics(t *testing.T) {
	// A source with max_slot_wal_keep_size, so that the slot has a
	// safe_wal_size.
	srcCluster := startCluster(t, "metrics-src", map[string]string{"max_slot_wal_keep_size": "1GB"})
	s := startSluice(t, testbed.Options{HTTP: true, LagHistoryEvery: 300 * time.Millisecond})
	conn := connect(t, s.URL())
	srcURL, dstURL := srcCluster.NewDB(t), peerCluster.NewDB(t)
	src := connect(t, srcURL)
	mustExec(t, conn, "CREATE PEER src FROM POSTGRES WITH ("+srcCluster.PeerOptions(srcURL)+")")
	mustExec(t, conn, "CREATE PEER dst FROM POSTGRES WITH ("+peerOptions(dstURL)+")")
	progressSource(t, src)
	slowCopies(t, "met")
	mustExec(t, conn, `CREATE MIRROR met FROM src TO dst WITH TABLE MAPPING (public.big:big)`)

	// During the load: the snapshot's progress, as mirror_tables shows it.
	waitStep(t, conn, "met", "public.big", "copying")
	var copying map[string]float64
	for range 100 {
		copying = matchStatus(t, s, conn, "met")
		if c := copying["sluice_snapshot_rows_copied{table=public.big}"]; c > 0 && c < progressRows {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if c := copying["sluice_snapshot_rows_copied{table=public.big}"]; c <= 0 || c >= progressRows {
		t.Errorf("rows copied during the load: %v, want between 0 and %d", c, progressRows)
	}
	if copying["sluice_mirror_info{destination_peer=dst,source_peer=src,status=SNAPSHOT}"] != 1 {
		t.Errorf("mirror_info during the load: %v", copying)
	}
	for _, k := range []string{"sluice_snapshot_rows_estimated{table=public.big}", "sluice_snapshot_partitions_total{table=public.big}",
		"sluice_snapshot_partitions_done{table=public.big}", "sluice_fetched_bytes_total{}", "sluice_batch_duration_seconds{}count",
		"sluice_errors_total{class=retried}", "sluice_errors_total{class=needs_user}", "sluice_errors_total{class=table}"} {
		if _, ok := copying[k]; !ok {
			t.Errorf("during the load, %s is missing: %v", k, copying)
		}
	}
	if _, ok := copying["sluice_replication_lag_seconds{}"]; ok {
		t.Errorf("replication lag during the load, before any transaction was applied: %v", copying)
	}

	// During CDC: rows synced by table and operation, lag, batches.
	waitStep(t, conn, "met", "public.big", "streaming")
	mustExec(t, src, `INSERT INTO big SELECT g, 'n' FROM generate_series(100001, 100050) g`)
	mustExec(t, src, `UPDATE big SET v = 'u' WHERE id <= 20`)
	mustExec(t, src, `DELETE FROM big WHERE id > 2990 AND id <= 3000`)
	waitMetrics(t, s, "met", "showing the changes applied", func(m map[string]float64) bool {
		return m["sluice_rows_synced_total{op=delete,table=public.big}"] == 10 &&
			m["sluice_rows_synced_total{op=insert,table=public.big}"] == 50 &&
			m["sluice_rows_synced_total{op=update,table=public.big}"] == 20
	})
	waitMetrics(t, s, "met", "with a measured slot lag and an active slot", func(m map[string]float64) bool {
		_, lag := m["sluice_slot_lag_bytes{}"]
		return lag && m["sluice_slot_active{}"] == 1
	})
	if !slotActive(t, src, "met") {
		t.Error("sluice_slot_active is 1 but the slot is not active")
	}
	cdc := matchStatus(t, s, conn, "met")
	if cdc["sluice_mirror_info{destination_peer=dst,source_peer=src,status=RUNNING}"] != 1 {
		t.Errorf("mirror_info during CDC: %v", cdc)
	}
	lag, ok := cdc["sluice_replication_lag_seconds{}"]
	if !ok || lag < 0 || lag > 60 {
		t.Errorf("replication lag during CDC: %v (present %v), want between 0 and 60 s", lag, ok)
	}
	last := cdc["sluice_last_applied_timestamp_seconds{}"]
	if now := float64(time.Now().UnixNano()) / 1e9; math.Abs(now-last) > 120 {
		t.Errorf("last applied at %v, now is %v", last, now)
	}
	if _, ok := cdc["sluice_slot_safe_wal_size_bytes{}"]; !ok {
		t.Errorf("safe WAL size missing with max_slot_wal_keep_size set: %v", cdc)
	}
	if cdc["sluice_batch_duration_seconds{}count"] < 1 || cdc["sluice_fetched_bytes_total{}"] <= 0 {
		t.Errorf("batches or fetched bytes not counted during CDC: %v", cdc)
	}
	for _, class := range []string{"retried", "needs_user", "table"} {
		if v, ok := cdc["sluice_errors_total{class="+class+"}"]; !ok || v != 0 {
			t.Errorf("errors of class %s: %v (present %v), want 0", class, v, ok)
		}
	}
	fams := scrape(t, s.HTTPURL, s.Password)
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if fams[name] == nil {
			t.Errorf("%s missing: the runtime and process collectors are not registered", name)
		}
	}

	// The lag history samples the mirror: its lag as mirrors shows it,
	// rows per second after the first sample.
	var hist, rated int
	waitFor := time.Now().Add(30 * time.Second)
	for time.Now().Before(waitFor) {
		err := conn.QueryRow(testCtx(t), `SELECT count(*), count(rows_per_second) FROM mirror_lag_history
			WHERE mirror = 'met' AND lag_seconds IS NOT NULL AND lag_bytes IS NOT NULL`).Scan(&hist, &rated)
		if err != nil {
			t.Fatal(err)
		}
		if hist >= 2 && rated >= 1 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if hist < 2 || rated < 1 {
		t.Errorf("lag history of met: %d samples with lag, %d with a rate", hist, rated)
	}
	var firstRate *float64
	if err := conn.QueryRow(testCtx(t), `SELECT rows_per_second FROM mirror_lag_history WHERE mirror = 'met' ORDER BY at LIMIT 1`).
		Scan(&firstRate); err != nil || firstRate != nil {
		t.Errorf("first sample's rows_per_second: %v, %v; want NULL", firstRate, err)
	}
	var maxRate float64
	if err := conn.QueryRow(testCtx(t), `SELECT coalesce(max(rows_per_second), 0) FROM mirror_lag_history WHERE mirror = 'met'`).
		Scan(&maxRate); err != nil || maxRate <= 0 {
		t.Errorf("no sample saw the 80 changes applied: max rows_per_second %v, %v", maxRate, err)
	}

	// Failing: the destination turned read-only fails the batch, which
	// is retried (an error of class retried) until it is writable again.
	dst := connect(t, dstURL)
	dstDB := pgx.Identifier{testbed.DBName(dstURL)}.Sanitize()
	mustExec(t, dst, `ALTER DATABASE `+dstDB+` SET default_transaction_read_only = on`)
	mustExec(t, dst, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`)
	mustExec(t, src, `INSERT INTO big VALUES (200001, 'while read-only')`)
	waitMetrics(t, s, "met", "failed and retried", func(m map[string]float64) bool {
		return m["sluice_mirror_info{destination_peer=dst,source_peer=src,status=FAILED}"] == 1 &&
			m["sluice_errors_total{class=retried}"] >= 1
	})
	mustExec(t, dst, `ALTER DATABASE `+dstDB+` RESET default_transaction_read_only`)
	waitMetrics(t, s, "met", "running again", func(m map[string]float64) bool {
		return m["sluice_mirror_info{destination_peer=dst,source_peer=src,status=RUNNING}"] == 1 &&
			m["sluice_rows_synced_total{op=insert,table=public.big}"] == 51
	})

	// Paused: the status, and a slot no one streams from.
	mustExec(t, conn, `PAUSE MIRROR met`)
	waitMetrics(t, s, "met", "paused with an inactive slot", func(m map[string]float64) bool {
		return m["sluice_mirror_info{destination_peer=dst,source_peer=src,status=PAUSED}"] == 1 && m["sluice_slot_active{}"] == 0
	})
	if slotActive(t, src, "met") {
		t.Error("sluice_slot_active is 0 but the slot is active")
	}
	paused := matchStatus(t, s, conn, "met")
	if paused["sluice_rows_synced_total{op=insert,table=public.big}"] != 51 {
		t.Errorf("rows synced while paused: %v", paused)
	}

	// Dropped: its series and its history go.
	mustExec(t, conn, `DROP MIRROR met`)
	if gone := series(scrape(t, s.HTTPURL, s.Password), "met"); len(gone) != 0 {
		t.Errorf("series of a dropped mirror: %v", gone)
	}
	var left int
	if err := conn.QueryRow(testCtx(t), `SELECT count(*) FROM mirror_lag_history WHERE mirror = 'met'`).Scan(&left); err != nil || left != 0 {
		t.Errorf("lag history after DROP MIRROR: %d rows, %v", left, err)
	}
}

// The lag history deletes samples older than its retention (7 days by
// default) as it samples.
func TestLagHistoryRetention(t *testing.T) {
	s := startSluice(t, testbed.Options{LagHistoryEvery: 200 * time.Millisecond})
	cat := connect(t, s.CatalogURL)
	// A mirror row is not needed for old samples to expire: any mirror's go.
	mustExec(t, cat, `INSERT INTO sluice.mirror_lag_history (mirror, at, lag_bytes) VALUES
		('old', now() - interval '8 days', 1), ('recent', now() - interval '6 days', 2)`)
	deadline := time.Now().Add(30 * time.Second)
	var mirrors []string
	for time.Now().Before(deadline) {
		rows, err := cat.Query(context.Background(), `SELECT mirror FROM sluice.mirror_lag_history ORDER BY mirror`)
		if err != nil {
			t.Fatal(err)
		}
		mirrors, err = pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		if len(mirrors) == 1 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !reflect.DeepEqual(mirrors, []string{"recent"}) {
		t.Errorf("history after a sample: %v, want only the recent sample", mirrors)
	}
}
