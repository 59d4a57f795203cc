package clickhouse

import (
	"context"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/sluicedb/sluice/connectors"
)

// LoadBatch is how many rows a load reads from the source at a time: few
// enough that a batch stays in the CPU's cache while its columns are
// converted one after the other, and that the two batches a load holds
// (loadPipe) stay small. The batches go to ClickHouse in blocks and inserts
// of many of them (see loadLimits).
const LoadBatch = 4096

// Loader loads partitions of a mirror's initial load (or a table resync's)
// into ClickHouse on a connection of its own. ClickHouse has no
// transactions: a partition's rows are written (loadWriter), then the
// partition is recorded done; one cut off by a crash is written again with
// the same rows and version, which ReplacingMergeTree collapses. Not safe
// for concurrent use.
type Loader struct {
	conn     driver.Conn
	info     ServerInfo
	db       string
	mirror   string
	limits   loadLimits
	nullKeys map[connectors.TableName]map[string]int64
}

// OpenLoader opens a loader on a connection of its own, and makes the
// metadata tables if missing. Safe for concurrent use (with itself, not
// with the other methods).
func (d *Destination) OpenLoader(ctx context.Context) (connectors.Loader, error) {
	conn, err := d.cfg.Open(ctx)
	if err != nil {
		return nil, err
	}
	if err := EnsureMetadata(ctx, conn, d.cfg.Database); err != nil {
		conn.Close()
		return nil, err
	}
	return &Loader{conn: conn, info: d.info, db: d.cfg.Database, mirror: d.mirror, limits: defaultLoadLimits}, nil
}

// Load reads job's partition with r in batches of LoadBatch rows, writes
// them into job.Table.Dest as live rows of version job.Version, and then
// records the partition done (MarkPartitionDone). It returns the rows
// loaded. job.Upsert changes nothing: a load written again converges.
// A partition of a stale lease epoch (job.Epoch below the highest
// recorded) is refused with an error wrapping connectors.ErrFenced: it is
// checked before the rows, before each insert and before the done mark
// (fence.go says why rows that slip past converge).
//
// The reader's goroutine decodes the next batch while another converts
// and sends the last one (loadPipe).
func (l *Loader) Load(ctx context.Context, r connectors.PartitionReader, job connectors.LoadJob) (int64, error) {
	l.nullKeys = nil
	t := job.Table
	fenced := func(ctx context.Context) error { return checkLoadEpoch(ctx, l.conn, l.db, l.mirror, job.Epoch) }
	if err := fenced(ctx); err != nil {
		return 0, fmt.Errorf("copy %s partition %d: %w", t.Source, job.Index, err)
	}
	w, err := newLoadWriter(t.Dest, t.Schema, l.info, tableOptions(t), job.Version, l.limits)
	if err != nil {
		return 0, err
	}
	w.check = fenced
	p := startLoadPipe(ctx, l.conn, w)
	rows, err := r.Read(ctx, t.Source, t.Schema, job.Partition, LoadBatch, p.put, job.Progress)
	if perr := p.stop(); err == nil {
		err = perr
	}
	if err == nil {
		err = w.finish()
	}
	if err != nil {
		w.abort()
		return 0, fmt.Errorf("copy %s partition %d: %w", t.Source, job.Index, err)
	}
	if n := w.nullKeys(); n != nil {
		l.nullKeys = map[connectors.TableName]map[string]int64{t.Source: n}
	}
	if err := fenced(ctx); err != nil {
		return 0, fmt.Errorf("copy %s partition %d: %w", t.Source, job.Index, err)
	}
	if err := MarkPartitionDone(ctx, l.conn, l.db, l.mirror, t.Source, job.Index, rows); err != nil {
		return 0, err
	}
	return rows, nil
}

// NullKeys implements connectors.NullKeyReporter for the partition the
// last Load wrote: by source table (job.Table.Source) and column, how many
// NULLs of sorting-key columns nullable in the source it stored as the
// type's default (see NullableKeyColumns); nil when none, or when the
// Load failed before its rows were all written.
func (l *Loader) NullKeys() map[connectors.TableName]map[string]int64 { return l.nullKeys }

// Close closes the loader's connection.
func (l *Loader) Close(ctx context.Context) error { return l.conn.Close() }
