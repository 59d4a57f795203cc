package metrics

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
)

// Descriptions of the series read from the status views at scrape time.
var (
	descInfo = prometheus.NewDesc("sluice_mirror_info",
		"A mirror, its peers and its status as sluice_status.mirrors shows them; always 1.",
		[]string{"mirror", "source_peer", "destination_peer", "status"}, nil)
	descSlotLag = prometheus.NewDesc("sluice_slot_lag_bytes",
		"Bytes the source has written beyond what the mirror's stream confirmed (mirrors.lag_bytes); absent when unknown.",
		[]string{"mirror"}, nil)
	descLagSeconds = prometheus.NewDesc("sluice_replication_lag_seconds",
		"Seconds from the source's commit of the last applied transaction to its apply (mirrors.lag_seconds); absent until known.",
		[]string{"mirror"}, nil)
	descLastApplied = prometheus.NewDesc("sluice_last_applied_timestamp_seconds",
		"Unix time the last CDC batch was applied (mirrors.last_synced_at); absent before the first.",
		[]string{"mirror"}, nil)
	descSafeWAL = prometheus.NewDesc("sluice_slot_safe_wal_size_bytes",
		"WAL the source may still write before it can invalidate the mirror's slot (mirrors.slot_safe_wal_size); absent when unknown or unlimited.",
		[]string{"mirror"}, nil)
	descSlotActive = prometheus.NewDesc("sluice_slot_active",
		"1 when a reader streams from the mirror's slot (pg_replication_slots.active; MySQL: its replica is connected), 0 when none; absent when unknown.",
		[]string{"mirror"}, nil)
	descRowsSynced = prometheus.NewDesc("sluice_rows_synced_total",
		"Row changes applied by streaming, by table and operation (mirror_tables inserts, updates, deletes).",
		[]string{"mirror", "table", "op"}, nil)
	descRowsCopied = prometheus.NewDesc("sluice_snapshot_rows_copied",
		"Rows the table's initial load or last resync copy copied (mirror_tables.rows_copied).",
		[]string{"mirror", "table"}, nil)
	descRowsEstimated = prometheus.NewDesc("sluice_snapshot_rows_estimated",
		"Rows that copy is expected to copy (mirror_tables.rows_estimated).",
		[]string{"mirror", "table"}, nil)
	descPartsDone = prometheus.NewDesc("sluice_snapshot_partitions_done",
		"Partitions of that copy done (mirror_tables.partitions_done).",
		[]string{"mirror", "table"}, nil)
	descPartsTotal = prometheus.NewDesc("sluice_snapshot_partitions_total",
		"Partitions of that copy (mirror_tables.partitions_total).",
		[]string{"mirror", "table"}, nil)
	descScrapeError = prometheus.NewDesc("sluice_catalog_scrape_error",
		"The status views could not be read for this scrape.", nil, nil)
)

// statusCollector is Metrics as a prometheus.Collector: the status views'
// series, then the in-process ones of the mirrors the catalog has (a
// dropped mirror's are forgotten).
type statusCollector Metrics

// Describe implements prometheus.Collector.
func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descInfo, descSlotLag, descLagSeconds, descLastApplied, descSafeWAL,
		descSlotActive, descRowsSynced, descRowsCopied, descRowsEstimated, descPartsDone, descPartsTotal, descScrapeError} {
		ch <- d
	}
	c.fetched.Describe(ch)
	c.batches.Describe(ch)
	c.errors.Describe(ch)
}

// Collect implements prometheus.Collector.
func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	mirrors, err := c.collectMirrors(ctx, ch)
	if err == nil {
		err = c.collectTables(ctx, ch)
	}
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descScrapeError, err)
		return
	}
	c.collectProcess(ch, mirrors)
}

// gauge sends a gauge of desc, unless v is nil (unknown).
func gauge[T int64 | float64](ch chan<- prometheus.Metric, desc *prometheus.Desc, v *T, labels ...string) {
	if v != nil {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, float64(*v), labels...)
	}
}

// collectMirrors sends the series of sluice_status.mirrors and returns the
// mirrors' names.
func (c *statusCollector) collectMirrors(ctx context.Context, ch chan<- prometheus.Metric) (map[string]bool, error) {
	rows, err := c.db.Query(ctx, `
SELECT name, source_peer, destination_peer, status, lag_bytes, lag_seconds,
       EXTRACT(epoch FROM last_synced_at)::double precision, slot_safe_wal_size,
       CASE WHEN slot_active THEN 1 WHEN NOT slot_active THEN 0 END::bigint
FROM sluice_status.mirrors`)
	if err != nil {
		return nil, fmt.Errorf("read sluice_status.mirrors: %w", err)
	}
	names := make(map[string]bool)
	var name, src, dst, status string
	var lagBytes, safeWAL, active *int64
	var lagSecs, lastApplied *float64
	_, err = pgx.ForEachRow(rows, []any{&name, &src, &dst, &status, &lagBytes, &lagSecs, &lastApplied, &safeWAL, &active}, func() error {
		names[name] = true
		ch <- prometheus.MustNewConstMetric(descInfo, prometheus.GaugeValue, 1, name, src, dst, status)
		gauge(ch, descSlotLag, lagBytes, name)
		gauge(ch, descLagSeconds, lagSecs, name)
		gauge(ch, descLastApplied, lastApplied, name)
		gauge(ch, descSafeWAL, safeWAL, name)
		gauge(ch, descSlotActive, active, name)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read sluice_status.mirrors: %w", err)
	}
	return names, nil
}

// collectTables sends the series of sluice_status.mirror_tables.
func (c *statusCollector) collectTables(ctx context.Context, ch chan<- prometheus.Metric) error {
	rows, err := c.db.Query(ctx, `
SELECT mirror, source_table, inserts, updates, deletes, rows_copied, rows_estimated, partitions_done, partitions_total
FROM sluice_status.mirror_tables`)
	if err != nil {
		return fmt.Errorf("read sluice_status.mirror_tables: %w", err)
	}
	var mirror, table string
	var ins, upd, del, copied, estimated *int64
	var done, total *int64
	_, err = pgx.ForEachRow(rows, []any{&mirror, &table, &ins, &upd, &del, &copied, &estimated, &done, &total}, func() error {
		for _, op := range []struct {
			name string
			v    *int64
		}{{"insert", ins}, {"update", upd}, {"delete", del}} {
			if op.v != nil {
				ch <- prometheus.MustNewConstMetric(descRowsSynced, prometheus.CounterValue, float64(*op.v), mirror, table, op.name)
			}
		}
		gauge(ch, descRowsCopied, copied, mirror, table)
		gauge(ch, descRowsEstimated, estimated, mirror, table)
		gauge(ch, descPartsDone, done, mirror, table)
		gauge(ch, descPartsTotal, total, mirror, table)
		return nil
	})
	if err != nil {
		return fmt.Errorf("read sluice_status.mirror_tables: %w", err)
	}
	return nil
}

// collectProcess sends the in-process series of mirrors: those of mirrors
// no longer in the catalog are forgotten first, and every mirror's
// counters and histogram are there from 0.
func (c *statusCollector) collectProcess(ch chan<- prometheus.Metric, mirrors map[string]bool) {
	c.mu.Lock()
	for name := range c.seen {
		if !mirrors[name] {
			delete(c.seen, name)
			c.fetched.DeletePartialMatch(prometheus.Labels{"mirror": name})
			c.batches.DeletePartialMatch(prometheus.Labels{"mirror": name})
			c.errors.DeletePartialMatch(prometheus.Labels{"mirror": name})
		}
	}
	for name := range mirrors {
		c.seen[name] = true
		c.fetched.WithLabelValues(name)
		c.batches.WithLabelValues(name)
		for _, class := range errorClasses {
			c.errors.WithLabelValues(name, class)
		}
	}
	c.mu.Unlock()
	c.fetched.Collect(ch)
	c.batches.Collect(ch)
	c.errors.Collect(ch)
}
