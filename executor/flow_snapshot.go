package executor

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/postgres"
)

// snapshot is the SNAPSHOT phase: the initial load. snapshotName is the
// slot's exported snapshot when the load starts right after setup; empty
// when a load interrupted by a restart resumes. Then the snapshot is gone:
// the remaining partitions are copied under a fresh snapshot, upserting, and
// CDC replays every change from the slot's consistent point; as each change
// carries the whole row (or keeps the destination's unchanged TOAST value)
// and applies idempotently, the destination converges all the same.
//
// Partitions already loaded are recorded on the destination in the same
// transaction as their rows, so none is copied twice or lost.
func (f *flow) snapshot(ctx context.Context, snapshotName string) error {
	resumed := snapshotName == ""
	src, dst, closeConns, err := f.connect(ctx, "sluice-snapshot")
	if err != nil {
		return err
	}
	defer closeConns()

	if f.m.Resync != "" && f.shadows == nil {
		if err := postgres.EnsureMetadata(ctx, dst, f.meta); err != nil {
			return err
		}
		owned, err := postgres.OwnedTables(ctx, dst, f.meta, f.m.Name)
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
		f.log.InfoContext(ctx, "initial load", "tables", len(tables), "resumed", resumed)
		msg := fmt.Sprintf("initial load of %d table(s) started", len(tables))
		if resumed {
			msg = fmt.Sprintf("initial load of %d table(s) resumed after a restart: loaded partitions are kept, the rest is copied under a new snapshot", len(tables))
		}
		if err := f.ex.cfg.Store.AddEvent(ctx, f.m.Name, "snapshot", msg); err != nil {
			return err
		}
		for start := 0; start < len(tables); start += f.cfg.TablesInParallel {
			end := min(start+f.cfg.TablesInParallel, len(tables))
			if err := f.setStep(ctx, catalog.StepCopying, tables[start:end]...); err != nil {
				return err
			}
			if err := f.loadTables(ctx, src, dst, snapshotName, tables[start:end], schemas[start:end]); err != nil {
				return err
			}
			if err := f.setStep(ctx, catalog.StepWaiting, tables[start:end]...); err != nil {
				return err
			}
		}
	}
	for i, t := range tables {
		if err := f.setStep(ctx, catalog.StepBuildingIndexes, t); err != nil {
			return err
		}
		if err := f.finishTable(ctx, src, dst, t, schemas[i]); err != nil {
			return err
		}
		if err := f.setStep(ctx, catalog.StepWaiting, t); err != nil {
			return err
		}
	}
	if f.m.Resync != "" {
		if err := f.setStep(ctx, catalog.StepSwapping, tables...); err != nil {
			return err
		}
		if err := f.ex.cfg.Store.SetPhase(ctx, f.m.Name, catalog.PhaseResync); err != nil {
			return err
		}
		f.m.Phase = catalog.PhaseResync
		return f.swapAll(ctx)
	}
	return f.loaded(ctx, src, dst, tables, schemas)
}

// loaded ends the initial load (the tables hold their data, under their
// own names): foreign keys, then CDC, or the end of an initial_copy_only
// mirror.
func (f *flow) loaded(ctx context.Context, src, dst *pgx.Conn, tables []mirrorTable, schemas []*connectors.TableSchema) error {
	if f.cfg.ReplicateForeignKeys {
		if err := f.setStep(ctx, catalog.StepAddingForeignKeys, tables...); err != nil {
			return err
		}
		if err := f.foreignKeys(ctx, src, dst, tables, schemas); err != nil {
			return err
		}
	}
	if f.cfg.InitialCopyOnly {
		if err := f.setStep(ctx, catalog.StepDone, tables...); err != nil {
			return err
		}
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
	if err := f.setStep(ctx, catalog.StepStreaming, tables...); err != nil {
		return err
	}
	return f.finishPhase(ctx, catalog.PhaseCDC)
}

// finishPhase moves the mirror to phase after its load, ending a full
// resync if one is under way.
func (f *flow) finishPhase(ctx context.Context, phase string) error {
	if f.m.Resync != "" {
		return f.ex.cfg.Store.FinishMirrorResync(ctx, f.m.Name, phase)
	}
	return f.ex.cfg.Store.SetPhase(ctx, f.m.Name, phase)
}

// smallTablePages bounds the tables whose rows are counted when the
// planner has no estimate (80 MB of 8 kB pages).
const smallTablePages = 10000

// copyJob is one partition to load.
type copyJob struct {
	table int // index into the group
	job   postgres.CopyJob
}

// loadTables loads a group of tables with the parallel workers.
func (f *flow) loadTables(ctx context.Context, src, dst *pgx.Conn, snapshotName string, tables []mirrorTable, schemas []*connectors.TableSchema) error {
	store := f.ex.cfg.Store
	resumed := snapshotName == ""
	var jobs []copyJob
	progress := make([]*tableProgress, len(tables))
	for i, t := range tables {
		plan, err := f.plan(ctx, src, t, schemas[i])
		if err != nil {
			return err
		}
		done, err := postgres.DonePartitions(ctx, dst, f.meta, f.m.Name, t.source)
		if err != nil {
			return err
		}
		progress[i] = newTableProgress(t.source.String(), len(plan), done)
		if err := progress[i].flush(ctx, store, f.m.Name); err != nil {
			return err
		}
		if len(done) == len(plan) {
			continue
		}
		if resumed {
			// Upserting needs the key; rows loaded so far came from one
			// snapshot, so they hold no duplicate.
			if err := postgres.EnsurePrimaryKey(ctx, dst, t.dest, schemas[i]); err != nil {
				return err
			}
		}
		cols := columnNames(schemas[i])
		for _, part := range plan {
			if _, ok := done[part.Index]; ok {
				continue
			}
			jobs = append(jobs, copyJob{table: i, job: postgres.CopyJob{
				Source: t.source, Dest: t.dest, Columns: cols, PrimaryKey: schemas[i].PrimaryKey,
				Partition: part, Meta: f.meta, Mirror: f.m.Name, Upsert: resumed,
				SoftDeleteColumn: f.cfg.SoftDeleteColumn, SyncedAtColumn: f.cfg.SyncedAtColumn,
			}})
		}
	}
	if len(jobs) == 0 {
		return nil
	}
	stop := f.flushProgress(ctx, progress)
	defer stop()
	return runWorkers(ctx, min(f.cfg.MaxParallelWorkers, len(jobs)), jobs, func(ctx context.Context, queue <-chan copyJob) error {
		return f.copyWorker(ctx, snapshotName, queue, progress)
	})
}

// runWorkers runs n workers that take jobs from one queue until it is
// drained. The first error a worker returns cancels the others' ctx and is
// returned once all have stopped; a cancelled ctx returns its error.
func runWorkers[J any](ctx context.Context, n int, jobs []J, work func(ctx context.Context, queue <-chan J) error) error {
	queue := make(chan J)
	errs := make(chan error, n)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := work(ctx, queue); err != nil {
				errs <- err
				cancel()
			}
		}()
	}
feed:
	for _, j := range jobs {
		select {
		case queue <- j:
		case <-ctx.Done():
			break feed
		}
	}
	close(queue)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	return ctx.Err()
}

// copyWorker copies partitions from the queue, each in its own destination
// transaction, on connections of its own.
func (f *flow) copyWorker(ctx context.Context, snapshotName string, queue <-chan copyJob, progress []*tableProgress) error {
	src, dst, closeConns, err := f.connect(ctx, "sluice-copy")
	if err != nil {
		return err
	}
	defer closeConns()
	tx, err := postgres.BeginSnapshot(ctx, src, snapshotName)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background())
	for j := range queue {
		p, part := progress[j.table], j.job.Partition.Index
		j.job.Progress = p.begin(f.m.Name, part)
		rows, err := postgres.CopyPartition(ctx, src, dst, j.job)
		if err != nil {
			return fmt.Errorf("copy %s partition %d: %w", j.job.Source, part, err)
		}
		p.end(part, rows)
		if err := p.flush(ctx, f.ex.cfg.Store, f.m.Name); err != nil {
			return err
		}
	}
	return nil
}

// plan returns the table's partition plan, made once and kept in the
// catalog so that a resumed load numbers partitions the same way.
func (f *flow) plan(ctx context.Context, src *pgx.Conn, t mirrorTable, ts *connectors.TableSchema) ([]postgres.Partition, error) {
	if t.catalog.Partitions != nil {
		var plan []postgres.Partition
		if err := json.Unmarshal(t.catalog.Partitions, &plan); err != nil {
			return nil, fmt.Errorf("decode snapshot plan of %s: %w", t.source, err)
		}
		return plan, nil
	}
	if ts.EstimatedRows <= 0 && ts.Pages > 0 {
		// Never analyzed: count small tables, guess big ones.
		if ts.Pages <= smallTablePages {
			n, err := postgres.CountRows(ctx, src, t.source)
			if err != nil {
				return nil, err
			}
			ts.EstimatedRows = n
		} else {
			ts.EstimatedRows = ts.Pages * 50
		}
	}
	plan := postgres.PlanPartitions(ts.Pages, ts.EstimatedRows, f.cfg.rowsPerPartition(ts.EstimatedRows))
	raw, err := json.Marshal(plan)
	if err != nil {
		return nil, err
	}
	if err := f.ex.cfg.Store.SetTablePlan(ctx, f.m.Name, t.source.String(), raw, len(plan), ts.EstimatedRows); err != nil {
		return nil, err
	}
	return plan, nil
}

// finishTable builds what the load left out: the primary key, and the
// source's indexes with replicate_indexes.
func (f *flow) finishTable(ctx context.Context, src, dst *pgx.Conn, t mirrorTable, ts *connectors.TableSchema) error {
	if t.dest != t.live {
		// A full resync's shadow table gets the live table's indexes (the
		// operator's own included), named so that the swap can rename
		// them back.
		exists, err := postgres.TableExists(ctx, dst, t.live)
		if err != nil {
			return err
		}
		if exists {
			if err := postgres.BuildShadowIndexes(ctx, dst, t.live, t.dest); err != nil {
				return err
			}
		}
		if err := postgres.AnalyzeTable(ctx, dst, t.dest); err != nil {
			return err
		}
	}
	if err := postgres.EnsurePrimaryKey(ctx, dst, t.dest, ts); err != nil {
		return err
	}
	if f.cfg.ReplicateIndexes {
		stmts, err := postgres.IndexDDL(ctx, src, ts, t.dest)
		if err != nil {
			return err
		}
		if err := postgres.CreateIndexes(ctx, dst, t.dest, stmts); err != nil {
			return err
		}
	}
	return f.ex.cfg.Store.SetTableStatus(ctx, f.m.Name, t.source.String(), "running")
}

// foreignKeys recreates foreign keys between mirrored tables.
func (f *flow) foreignKeys(ctx context.Context, src, dst *pgx.Conn, tables []mirrorTable, schemas []*connectors.TableSchema) error {
	names := make(map[connectors.TableName]connectors.TableName, len(tables))
	for _, t := range tables {
		names[t.source] = t.dest
	}
	for i, t := range tables {
		stmts, err := postgres.ForeignKeyDDL(ctx, src, schemas[i], t.dest, names)
		if err != nil {
			return err
		}
		if err := postgres.CreateForeignKeys(ctx, dst, t.dest, stmts); err != nil {
			return err
		}
	}
	return nil
}

func columnNames(ts *connectors.TableSchema) []string {
	out := make([]string, len(ts.Columns))
	for i, c := range ts.Columns {
		out[i] = c.Name
	}
	return out
}
