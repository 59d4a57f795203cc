package executor

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/clickhouse"
	"github.com/sluicedb/sluice/connectors/postgres"
)

// The flow of a mirror into ClickHouse: the same phases as into Postgres
// (SETUP, SNAPSHOT, CDC), with ClickHouse's tables and writes. ClickHouse
// has no transactions: a batch is written, then its position; a crash in
// between writes the batch again with the same row versions (the source
// commit positions), which ReplacingMergeTree collapses. Snapshot rows get
// the slot's consistent point as their version, below every change
// streamed after it.

// stepClickHouse runs the mirror's current phase.
func (f *flow) stepClickHouse(ctx context.Context) error {
	switch f.m.Phase {
	case catalog.PhaseSetup:
		return f.setupClickHouse(ctx)
	case catalog.PhaseSnapshot:
		return f.snapshotClickHouse(ctx, "")
	case catalog.PhaseCDC:
		return f.cdcClickHouse(ctx)
	case catalog.PhaseResync:
		return f.swapAllClickHouse(ctx)
	case phaseCompleted:
		return errFlowDone
	}
	return fmt.Errorf("mirror %q: phase %s is not supported with a ClickHouse destination yet", f.m.Name, f.m.Phase)
}

// openClickHouse connects to the destination.
func (f *flow) openClickHouse(ctx context.Context) (driver.Conn, clickhouse.ServerInfo, error) {
	info, err := f.ch.Inspect(ctx)
	if err != nil {
		return nil, info, fmt.Errorf("destination: %w", err)
	}
	conn, err := f.ch.Open(ctx)
	if err != nil {
		return nil, info, fmt.Errorf("destination: %w", err)
	}
	return conn, info, nil
}

func (f *flow) setupClickHouse(ctx context.Context) error {
	src, err := f.src.ConnectSQL(ctx, "sluice-setup")
	if err != nil {
		return err
	}
	defer src.Close(context.Background())
	conn, info, err := f.openClickHouse(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	tables := f.tables()
	resync := f.m.Resync != ""
	if resync {
		// New slot and publication; shadow tables made anew. The old slot
		// stays until createSlot replaces it, so its lag is measured
		// meanwhile.
		if err := postgres.DropPublication(ctx, src, f.cfg.Publication); err != nil {
			return err
		}
	}
	if err := postgres.CreatePublication(ctx, src, f.cfg.Publication, sourcesOf(tables)); err != nil {
		return err
	}
	if err := clickhouse.EnsureMetadata(ctx, conn, f.ch.Database); err != nil {
		return err
	}
	if resync {
		if err := clickhouse.ClearMirror(ctx, conn, f.ch.Database, f.m.Name); err != nil {
			return err
		}
	}
	f.shadows = make(map[connectors.TableName]connectors.TableName)
	for _, t := range tables {
		ts, err := postgres.DescribeTable(ctx, src, t.source, t.exclude)
		if err != nil {
			return err
		}
		if resync {
			// A new shadow under a free name, recorded and marked as
			// Sluice's own; only the one an earlier attempt recorded is
			// dropped.
			o, err := f.createShadowClickHouse(ctx, conn, info, t, ts)
			if err != nil {
				return err
			}
			f.shadows[t.live] = o.Name
			continue
		}
		if err := clickhouse.CreateTable(ctx, conn, t.dest, ts, info, chTableOptions(f.cfg, t.catalog.OrderBy)); err != nil {
			return err
		}
	}
	slot, err := f.createSlot(ctx, src)
	if err != nil {
		return err
	}
	defer slot.close()
	return f.snapshotClickHouse(ctx, slot.Snapshot)
}

func sourcesOf(tables []mirrorTable) []connectors.TableName {
	out := make([]connectors.TableName, len(tables))
	for i, t := range tables {
		out[i] = t.source
	}
	return out
}

// snapshotClickHouse is the initial load into ClickHouse; see snapshot for
// the resumption rules. Rows loaded under a newer snapshot after a restart
// carry the same version as the others: every change after the consistent
// point is streamed again with a higher one.
func (f *flow) snapshotClickHouse(ctx context.Context, snapshotName string) error {
	src, err := f.src.ConnectSQL(ctx, "sluice-snapshot")
	if err != nil {
		return err
	}
	defer src.Close(context.Background())
	conn, info, err := f.openClickHouse(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if f.m.Resync != "" && f.shadows == nil {
		if err := clickhouse.EnsureMetadata(ctx, conn, f.ch.Database); err != nil {
			return err
		}
		owned, err := clickhouse.OwnedTables(ctx, conn, f.ch.Database, f.m.Name, clickhouse.RoleShadow)
		if err != nil {
			return err
		}
		shadows := make(map[connectors.TableName]connectors.TableName, len(owned))
		for live, o := range owned {
			shadows[live] = o.Name
		}
		if err := f.adoptShadows(ctx, shadows); err != nil {
			return err
		}
	}
	tables := f.tables()
	schemas := make([]*connectors.TableSchema, len(tables))
	for i, t := range tables {
		if schemas[i], err = postgres.DescribeTable(ctx, src, t.source, t.exclude); err != nil {
			return err
		}
	}
	if f.cfg.DoInitialCopy {
		if err := f.ex.cfg.Store.AddEvent(ctx, f.m.Name, "snapshot", fmt.Sprintf("initial load of %d table(s) into ClickHouse started", len(tables))); err != nil {
			return err
		}
		for start := 0; start < len(tables); start += f.cfg.TablesInParallel {
			end := min(start+f.cfg.TablesInParallel, len(tables))
			if err := f.setStep(ctx, catalog.StepCopying, tables[start:end]...); err != nil {
				return err
			}
			if err := f.loadClickHouse(ctx, src, conn, info, snapshotName, f.m.ConsistentVersion, tables[start:end], schemas[start:end]); err != nil {
				return err
			}
			if err := f.setStep(ctx, catalog.StepWaiting, tables[start:end]...); err != nil {
				return err
			}
		}
	}
	if f.m.Resync != "" {
		if err := f.ex.cfg.Store.SetPhase(ctx, f.m.Name, catalog.PhaseResync); err != nil {
			return err
		}
		f.m.Phase = catalog.PhaseResync
		return f.swapAllClickHouse(ctx)
	}
	return f.loadedClickHouse(ctx, src)
}

// loadedClickHouse ends the initial load: CDC, or the end of an
// initial_copy_only mirror.
func (f *flow) loadedClickHouse(ctx context.Context, src *pgx.Conn) error {
	tables := f.tables()
	for _, t := range tables {
		if err := f.ex.cfg.Store.SetTableStatus(ctx, f.m.Name, t.source.String(), "running"); err != nil {
			return err
		}
	}
	step := catalog.StepStreaming
	if f.cfg.InitialCopyOnly {
		step = catalog.StepDone
	}
	if err := f.setStep(ctx, step, tables...); err != nil {
		return err
	}
	if f.cfg.InitialCopyOnly {
		if err := postgres.DropSlot(ctx, src, f.cfg.Slot); err != nil {
			return err
		}
		if err := postgres.DropPublication(ctx, src, f.cfg.Publication); err != nil {
			return err
		}
		if err := f.finishPhase(ctx, phaseCompleted); err != nil {
			return err
		}
		return errFlowDone
	}
	return f.finishPhase(ctx, catalog.PhaseCDC)
}

// chLoadBatch is how many rows go to ClickHouse in one insert.
const chLoadBatch = 50000

// loadClickHouse loads a group of tables with the parallel workers, each
// partition read as binary COPY and written as native batches of rows of
// version version.
func (f *flow) loadClickHouse(ctx context.Context, src *pgx.Conn, conn driver.Conn, info clickhouse.ServerInfo, snapshotName string,
	version uint64, tables []mirrorTable, schemas []*connectors.TableSchema) error {
	store := f.ex.cfg.Store
	var jobs []chCopyJob
	progress := make([]*tableProgress, len(tables))
	for i, t := range tables {
		plan, err := f.plan(ctx, src, t, schemas[i])
		if err != nil {
			return err
		}
		done, err := clickhouse.DonePartitions(ctx, conn, f.ch.Database, f.m.Name, t.source)
		if err != nil {
			return err
		}
		progress[i] = newTableProgress(t.source.String(), len(plan), done)
		if err := progress[i].flush(ctx, store, f.m.Name); err != nil {
			return err
		}
		for _, part := range plan {
			if _, ok := done[part.Index]; !ok {
				jobs = append(jobs, chCopyJob{table: i, t: t, schema: schemas[i], part: part, version: version})
			}
		}
	}
	if len(jobs) == 0 {
		return nil
	}
	stop := f.flushProgress(ctx, progress)
	defer stop()
	return runWorkers(ctx, min(f.cfg.MaxParallelWorkers, len(jobs)), jobs, func(ctx context.Context, queue <-chan chCopyJob) error {
		return f.chCopyWorker(ctx, info, snapshotName, queue, progress)
	})
}

type chCopyJob struct {
	table   int // index into the group
	t       mirrorTable
	schema  *connectors.TableSchema
	part    postgres.Partition
	version uint64
}

// chCopyWorker copies partitions from the queue on connections of its own.
// A partition is recorded done after its rows are written; one cut off by
// a crash is written again (same rows, same version).
func (f *flow) chCopyWorker(ctx context.Context, info clickhouse.ServerInfo, snapshotName string, queue <-chan chCopyJob, progress []*tableProgress) error {
	src, err := f.src.ConnectSQL(ctx, "sluice-copy")
	if err != nil {
		return err
	}
	defer src.Close(context.Background())
	conn, err := f.ch.Open(ctx)
	if err != nil {
		return fmt.Errorf("destination: %w", err)
	}
	defer conn.Close()
	tx, err := postgres.BeginSnapshot(ctx, src, snapshotName)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background())
	for j := range queue {
		w, err := clickhouse.NewWriter(j.t.dest, j.schema, info, chTableOptions(f.cfg, j.t.catalog.OrderBy))
		if err != nil {
			return err
		}
		p := progress[j.table]
		rows, err := postgres.ReadPartition(ctx, src, j.t.source, columnNames(j.schema), j.part, chLoadBatch,
			func(rows [][]connectors.Value) error {
				return w.Insert(ctx, conn, rows, j.version)
			}, p.begin(f.m.Name, j.part.Index))
		if err != nil {
			return fmt.Errorf("copy %s partition %d: %w", j.t.source, j.part.Index, err)
		}
		if err := f.reportNullKeys(ctx, j.t.source, w.NullKeys()); err != nil {
			return err
		}
		if err := clickhouse.MarkPartitionDone(ctx, conn, f.ch.Database, f.m.Name, j.t.source, j.part.Index, rows); err != nil {
			return err
		}
		p.end(j.part.Index, rows)
		if err := p.flush(ctx, f.ex.cfg.Store, f.m.Name); err != nil {
			return err
		}
	}
	return nil
}

// cdcClickHouse streams changes into ClickHouse with the batcher.
func (f *flow) cdcClickHouse(ctx context.Context) error {
	src, err := f.src.ConnectSQL(ctx, "sluice-cdc")
	if err != nil {
		return err
	}
	defer src.Close(context.Background())
	if err := f.checkSlot(ctx, src); err != nil {
		return err
	}
	conn, info, err := f.openClickHouse(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := clickhouse.EnsureMetadata(ctx, conn, f.ch.Database); err != nil {
		return err
	}
	tables := f.tables()
	schemas := make(map[connectors.TableName]*connectors.TableSchema, len(tables))
	dests := make([]connectors.DestTable, len(tables))
	orderBy := make(map[connectors.TableName][]string, len(tables))
	for i, t := range tables {
		ts, err := postgres.DescribeTable(ctx, src, t.source, t.exclude)
		if err != nil {
			return err
		}
		schemas[t.source] = ts
		// Columns the source gained while the mirror was stopped.
		if err := f.chAddColumns(ctx, src, conn, info, t.source, t.dest, ts.Columns); err != nil {
			return err
		}
		if err := f.chCheckTypes(ctx, conn, info, t, ts); err != nil {
			return err
		}
		// bytea columns of a table an older Sluice made get their marker,
		// so that federated reads send them as bytea. Only reads need it:
		// a failure is logged, and the mirror goes on.
		if err := clickhouse.MarkBytea(ctx, conn, t.dest, ts); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			f.log.InfoContext(ctx, "could not mark bytea columns", "table", t.dest.String(), "error", err)
		}
		dests[i] = connectors.DestTable{Source: t.source, Dest: t.dest, Schema: ts,
			SoftDeleteColumn: f.cfg.SoftDeleteColumn, SyncedAtColumn: f.cfg.SyncedAtColumn}
		orderBy[t.source] = t.catalog.OrderBy
	}
	last, _, err := clickhouse.LastPosition(ctx, conn, f.ch.Database, f.m.Name)
	if err != nil {
		return err
	}
	applied := connectors.MaxPosition(last, f.m.ConsistentPosition)
	a, err := clickhouse.NewApplier(ctx, conn, info, f.ch.Database, f.m.Name, dests, orderBy)
	if err != nil {
		return err
	}
	stream, err := f.startStream(ctx, src, schemas, applied)
	if err != nil {
		return err
	}
	defer stream.Close(context.Background())
	b := &batcher{f: f, applier: a, store: f.ex.cfg.Store, applied: applied, dests: dests, chunk: addChunk(f.cfg.MaxBatchSize),
		addColumnsTo: f.chColumnAdder(conn, info)}
	b.eager = min(eagerAdd, b.chunk)
	b.setAcked(applied)
	cctx, cancel := context.WithCancel(ctx)
	var wait func()
	b.ch, wait = f.startClickHouseResyncs(cctx, conn, info, schemas)
	err = b.run(ctx, stream)
	cancel()
	wait()
	if errors.Is(err, errRestart) {
		return nil
	}
	return f.explainStreamError(ctx, err)
}

// reportNullKeys records, as a warning in mirror_events (and the log), the
// NULLs the source sent for sorting-key columns of table that are nullable
// in the source, which ClickHouse stores as the type's default (see
// clickhouse.NullableKeyColumns). counts is by column; nil records nothing.
func (f *flow) reportNullKeys(ctx context.Context, table connectors.TableName, counts map[string]int64) error {
	if len(counts) == 0 {
		return nil
	}
	cols := make([]string, 0, len(counts))
	for c := range counts {
		cols = append(cols, c)
	}
	sort.Strings(cols)
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = fmt.Sprintf("%d in %q", counts[c], c)
	}
	msg := fmt.Sprintf("%s: NULL stored as the type's default in sorting-key column(s), which ClickHouse cannot make Nullable: %s",
		table, strings.Join(parts, ", "))
	f.log.InfoContext(ctx, "NULL in a sorting-key column stored as the default", "table", table.String(), "counts", counts)
	return f.ex.cfg.Store.AddEvent(ctx, f.m.Name, "warning", msg)
}
