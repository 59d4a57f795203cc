package postgres

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sluicedb/sluice/connectors"
)

// loadBatch is how many rows a generic load asks a PartitionReader for at a
// time.
const loadBatch = 1000

// snapshotReader is a Postgres source's PartitionReader, from which a
// Loader copies a partition straight into the destination (CopyPartition)
// rather than through decoded values.
type snapshotReader interface {
	// snapshotConn is the reader's connection, inside its snapshot
	// transaction; the reader keeps owning it.
	snapshotConn() *pgx.Conn
	// decodePartition decodes a partition the source planned.
	decodePartition(connectors.Partition) (Partition, error)
}

// Loader is the Postgres connectors.Loader: it loads partitions on a
// connection of its own, each in one transaction that also records it done
// (MarkPartitionDone). Not safe for concurrent use.
type Loader struct {
	conn         *pgx.Conn
	meta, mirror string
}

// Load implements connectors.Loader. From a Postgres source's reader the
// rows stream as binary COPY from its snapshot straight into job.Table.Dest
// (CopyPartition); from any other reader, its rows (connectors.Values in
// binary form) are encoded into a binary COPY. With job.Upsert the rows go
// through a temporary table and INSERT ... ON CONFLICT (primary key) DO
// UPDATE, which resets the soft-delete and synced-at columns of rows that
// were there (PrepareUpsert must have made the key). job.Version is not
// used: a Postgres destination keeps no row versions. A partition of a
// stale lease epoch (job.Epoch below the one the metadata records) is
// refused in the same transaction (checkLoadEpoch): an error wrapping
// connectors.ErrFenced, nothing written.
func (l *Loader) Load(ctx context.Context, r connectors.PartitionReader, job connectors.LoadJob) (int64, error) {
	t := job.Table
	if sr, ok := r.(snapshotReader); ok {
		part, err := sr.decodePartition(job.Partition)
		if err != nil {
			return 0, err
		}
		part.Index = job.Index // the flow's numbering is what Loaded reports
		return CopyPartition(ctx, sr.snapshotConn(), l.conn, CopyJob{
			Source: t.Source, Dest: t.Dest, Columns: t.Schema.ColumnNames(), PrimaryKey: t.Schema.PrimaryKey,
			Partition: part, Meta: l.meta, Mirror: l.mirror, Upsert: job.Upsert,
			SoftDeleteColumn: t.SoftDeleteColumn, SyncedAtColumn: t.SyncedAtColumn, Progress: job.Progress, Epoch: job.Epoch,
		})
	}
	rows, err := l.loadValues(ctx, r, job)
	if err != nil {
		return 0, fmt.Errorf("load %s partition %d into %s: %w", t.Source, job.Index, t.Dest, err)
	}
	return rows, nil
}

// loadValues is Load from a reader of values.
func (l *Loader) loadValues(ctx context.Context, r connectors.PartitionReader, job connectors.LoadJob) (rows int64, err error) {
	t := job.Table
	cols := t.Schema.ColumnNames()
	if len(cols) == 0 {
		return 0, errors.New("no columns to load")
	}
	if job.Upsert && len(t.Schema.PrimaryKey) == 0 {
		return 0, errors.New("an upsert needs the primary key")
	}
	tx, err := l.conn.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			_ = tx.Rollback(rctx)
			cancel()
		}
	}()
	if err := checkLoadEpoch(ctx, tx, l.meta, l.mirror, job.Epoch, false); err != nil {
		return 0, err
	}
	// The staged path of CopyPartition, with no column sent as text.
	plan := &copyPlan{cols: cols, asText: make([]bool, len(cols)), upsert: job.Upsert, staged: job.Upsert}
	target := t.Dest.Quoted()
	if plan.staged {
		if _, err := tx.Exec(ctx, plan.createStage(t.Dest)); err != nil {
			return 0, fmt.Errorf("create staging table: %w", err)
		}
		target = loadStageTable
	}
	rows, err = copyValues(ctx, tx, target, cols, func(write func([][]connectors.Value) error) (int64, error) {
		return r.Read(ctx, t.Source, t.Schema, job.Partition, loadBatch, write, job.Progress)
	})
	if err != nil {
		return 0, err
	}
	if plan.staged {
		insert := plan.insertFromStage(CopyJob{Dest: t.Dest, PrimaryKey: t.Schema.PrimaryKey,
			SoftDeleteColumn: t.SoftDeleteColumn, SyncedAtColumn: t.SyncedAtColumn})
		if _, err := tx.Exec(ctx, insert); err != nil {
			return 0, fmt.Errorf("insert from staging table: %w", err)
		}
	}
	if err := checkLoadEpoch(ctx, tx, l.meta, l.mirror, job.Epoch, true); err != nil {
		return 0, err
	}
	if err := MarkPartitionDone(ctx, tx, l.meta, l.mirror, t.Source, job.Index, rows, !job.Upsert); err != nil {
		return 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("commit: %w", err)
	}
	return rows, nil
}

// Close implements connectors.Loader: it closes the connection.
func (l *Loader) Close(ctx context.Context) error { return l.conn.Close(ctx) }

// copyValues runs COPY target (cols) FROM STDIN (FORMAT binary) in tx and
// feeds it the rows produce hands to write (each row a value per column,
// Binary or Null), encoded as binary COPY; it returns the rows produce
// counted, which must be the rows copied. The values are in the binary
// form of their types; an array's element type OID is set to the target
// column's when either is a user type (an enum recreated on this server).
// After an error tx is aborted.
func copyValues(ctx context.Context, tx pgx.Tx, target string, cols []string,
	produce func(write func([][]connectors.Value) error) (int64, error)) (int64, error) {
	types, err := describeRel(ctx, tx.Conn(), target)
	if err != nil {
		return 0, fmt.Errorf("describe %s: %w", target, err)
	}
	elem := make([]uint32, len(cols))
	for i, c := range cols {
		a, ok := types[c]
		if !ok {
			return 0, fmt.Errorf("%s has no column %q", target, c)
		}
		elem[i] = a.elem
	}
	pr, pw := io.Pipe()
	type result struct {
		tag pgconn.CommandTag
		err error
	}
	done := make(chan result, 1)
	go func() {
		tag, err := tx.Conn().PgConn().CopyFrom(ctx, pr, "COPY "+target+" ("+quoteIdents(cols)+") FROM STDIN (FORMAT binary)")
		// Unblock a writer still writing when the COPY stopped early.
		pr.CloseWithError(errCopyAborted)
		done <- result{tag, err}
	}()
	buf := append(make([]byte, 0, copyChunk+copyChunk/4), copySignature...)
	var sent int64
	write := func(rows [][]connectors.Value) error {
		for _, row := range rows {
			if len(row) != len(cols) {
				return fmt.Errorf("row %d has %d values, want %d", sent, len(row), len(cols))
			}
			b, err := appendCopyRow(buf, row, cols, elem)
			if err != nil {
				return fmt.Errorf("row %d: %w", sent, err)
			}
			buf = b
			sent++
			if len(buf) >= copyChunk {
				if _, err := pw.Write(buf); err != nil {
					return err
				}
				buf = buf[:0]
			}
		}
		return nil
	}
	n, err := produce(write)
	if err == nil {
		buf = binary.BigEndian.AppendUint16(buf, 0xffff)
		_, err = pw.Write(buf)
	}
	pw.CloseWithError(err) // nil: EOF, the COPY ends
	res := <-done
	switch {
	case err != nil && !errors.Is(err, errCopyAborted):
		return 0, err
	case res.err != nil:
		return 0, fmt.Errorf("copy into %s: %w", target, res.err)
	case err != nil:
		return 0, err
	case n != sent || res.tag.RowsAffected() != n:
		return 0, fmt.Errorf("read %d rows, encoded %d, copied %d", n, sent, res.tag.RowsAffected())
	}
	return n, nil
}

// appendCopyRow encodes one row of binary COPY (see apply_copy.go): Null as
// NULL, Binary as is, with its array element OID patched to elem[i] when
// elem[i] is not 0; any other kind is an error.
func appendCopyRow(b []byte, row []connectors.Value, cols []string, elem []uint32) ([]byte, error) {
	b = binary.BigEndian.AppendUint16(b, uint16(len(row)))
	for i := range row {
		v := &row[i]
		switch v.Kind {
		case connectors.Null:
			b = binary.BigEndian.AppendUint32(b, 0xffffffff)
		case connectors.Binary:
			b = binary.BigEndian.AppendUint32(b, uint32(len(v.Data)))
			start := len(b)
			b = append(b, v.Data...)
			if elem[i] != 0 {
				patchArrayElemOID(b[start:], elem[i])
			}
		default:
			return b, fmt.Errorf("column %s: a %s value cannot be loaded", cols[i], kindName(v.Kind))
		}
	}
	return b, nil
}

// buildMemoryKB is the least maintenance_work_mem, in kB, that the
// Destination's index builds after a load run with (1 GB). A primary key
// built on 3 million rows with the default 64 MB has one parallel worker
// and spills its sort to disk; with 1 GB two workers take part and each
// sorts its share in memory, in about 8% less CPU time on the destination
// (pgbench_accounts at scale 30). A sort takes only what it needs, and
// each participant a share: this caps it, as pg_restore's advice and
// pgcopydb do.
const buildMemoryKB = 1 << 20

// withBuildMemory runs fn with maintenance_work_mem raised to buildMemoryKB
// on the Destination's connection, when the session's is lower, and resets
// it after (to the session's default). fn runs on d.conn and outside a
// transaction.
func (d *Destination) withBuildMemory(ctx context.Context, fn func() error) error {
	var raised bool
	err := d.conn.QueryRow(ctx, `
SELECT set_config('maintenance_work_mem', $1::bigint::text || 'kB', false) IS NOT NULL
FROM pg_settings WHERE name = 'maintenance_work_mem' AND setting::bigint < $1`, buildMemoryKB).Scan(&raised)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("raise maintenance_work_mem for index builds: %w", err)
	}
	ferr := fn()
	if raised && d.conn.PgConn().TxStatus() == 'I' {
		if _, err := d.conn.Exec(ctx, "RESET maintenance_work_mem"); err != nil && ferr == nil {
			ferr = fmt.Errorf("reset maintenance_work_mem: %w", err)
		}
	}
	return ferr
}
