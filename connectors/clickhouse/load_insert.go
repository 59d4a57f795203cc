package clickhouse

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/sluicedb/sluice/connectors"
)

// Limits of a load's inserts. An insert stays open across batches: its
// block is sent (Batch.Flush) when it holds blockRows rows or about
// blockBytes bytes, and its columns keep their buffers for the next block.
// Blocks are small because each insert's column buffers grow from nothing
// (a new insert has new columns) and because the server squashes an
// insert's blocks into parts of min_insert_block_size_rows anyway. An
// insert ends (Batch.Send) after insertRows rows, so that the server makes
// parts of about that size, or when no rows came for loadIdle, well within
// the server's receive_timeout (300 s by default).
const (
	loadBlockRows  = 16384
	loadBlockBytes = 4 << 20
	loadInsertRows = 1 << 20
	loadIdle       = 30 * time.Second
)

// loadLimits are a loader's block and insert sizes and idle time (the
// constants above; tests make them small).
type loadLimits struct {
	blockRows, blockBytes, insertRows int
	idle                              time.Duration
}

// defaultLoadLimits are the limits of a Loader.
var defaultLoadLimits = loadLimits{blockRows: loadBlockRows, blockBytes: loadBlockBytes, insertRows: loadInsertRows, idle: loadIdle}

// loadWriter writes one partition's rows into a mirrored table with native
// inserts that span many blocks (see loadColumn for how a batch of rows
// becomes columns). Each row is written live with one version. Not safe
// for concurrent use.
type loadWriter struct {
	l       *layout
	cv      *converter
	cols    []loadColumn
	limits  loadLimits
	version uint64
	sql     string
	// check, when set, runs before each insert is opened, and its error
	// ends the write: the lease epoch's check (fence.go).
	check func(ctx context.Context) error
	batch driver.Batch // the open insert, or nil
	// rows and bytes are in the block not sent yet; inserted, in the
	// open insert.
	rows, bytes, inserted int
	// The added columns' values, reused from batch to batch.
	versions []uint64
	deleted  []uint8
	synced   []time.Time
}

// newLoadWriter returns a writer of source table ts's rows into dest, for
// a table made by CreateTableDDL with the same server version and options.
func newLoadWriter(dest connectors.TableName, ts *connectors.TableSchema, v ServerInfo, opts TableOptions,
	version uint64, limits loadLimits) (*loadWriter, error) {
	l, err := newLayout(dest, ts, v, opts)
	if err != nil {
		return nil, err
	}
	w := &loadWriter{l: l, cv: newConverter(l.cols), limits: limits, version: version, sql: l.insertSQL()}
	for i := range w.cv.cols {
		w.cols = append(w.cols, newLoadColumn(w.cv, &w.cv.cols[i]))
	}
	return w, nil
}

// add appends rows (values in the schema's column order) to the open
// insert, opening one when none is, and sends the block or ends the insert
// when they reach their limits. first is the partition's row number of
// rows[0], for errors. After an error the writer is only aborted.
func (w *loadWriter) add(ctx context.Context, conn driver.Conn, rows [][]connectors.Value, first int64) error {
	if len(rows) == 0 {
		return nil
	}
	if w.batch == nil {
		if w.check != nil {
			if err := w.check(ctx); err != nil {
				return err
			}
		}
		b, err := conn.PrepareBatch(ctx, w.sql)
		if err != nil {
			return fmt.Errorf("insert into %s: %w", w.l.dest, err)
		}
		w.batch = b
	}
	for i, c := range w.cols {
		if j, err := c.add(w.batch.Column(i), rows, i); err != nil {
			if j >= 0 {
				return fmt.Errorf("insert into %s: row %d: column %q: %w", w.l.dest, first+int64(j), w.l.colName(i), err)
			}
			return fmt.Errorf("insert into %s: column %q: %w", w.l.dest, w.l.colName(i), err)
		}
	}
	if err := w.addAdded(len(rows)); err != nil {
		return fmt.Errorf("insert into %s: %w", w.l.dest, err)
	}
	w.rows += len(rows)
	w.inserted += len(rows)
	for _, row := range rows {
		for _, v := range row {
			w.bytes += len(v.Data)
		}
	}
	switch {
	case w.inserted >= w.limits.insertRows:
		return w.finish()
	case w.rows >= w.limits.blockRows || w.bytes >= w.limits.blockBytes:
		if err := w.batch.Flush(); err != nil {
			return fmt.Errorf("insert into %s: %w", w.l.dest, err)
		}
		w.rows, w.bytes = 0, 0
	}
	return nil
}

// addAdded appends n rows' values of the version, deleted and synced-at
// columns: the writer's version, live, and now.
func (w *loadWriter) addAdded(n int) error {
	if len(w.versions) < n {
		w.versions = make([]uint64, n)
		w.deleted = make([]uint8, n) // DeletedLive
		w.synced = make([]time.Time, n)
		for i := range w.versions {
			w.versions[i] = w.version
		}
	}
	now := syncedNow()
	synced := w.synced[:n]
	for i := range synced {
		synced[i] = now
	}
	base := len(w.cols)
	if err := w.batch.Column(base).Append(w.versions[:n]); err != nil {
		return err
	}
	if err := w.batch.Column(base + 1).Append(w.deleted[:n]); err != nil {
		return err
	}
	return w.batch.Column(base + 2).Append(synced)
}

// finish ends the open insert, if any, sending what it holds: the rows
// added so far are written when it returns nil.
func (w *loadWriter) finish() error {
	if w.batch == nil {
		return nil
	}
	b := w.batch
	w.batch, w.rows, w.bytes, w.inserted = nil, 0, 0, 0
	if err := b.Send(); err != nil {
		return fmt.Errorf("insert into %s: %w", w.l.dest, err)
	}
	return nil
}

// abort abandons the open insert, if any: the server drops the block not
// sent; blocks sent before may be written (a load written again
// converges).
func (w *loadWriter) abort() {
	if w.batch != nil {
		_ = w.batch.Abort()
		w.batch = nil
	}
}

// nullKeys is Writer.NullKeys for the load's rows.
func (w *loadWriter) nullKeys() map[string]int64 { return w.l.takeNullKeys(w.cv.cols) }
