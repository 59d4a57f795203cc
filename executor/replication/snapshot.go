package replication

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/connectors"
)

// snapshot is the SNAPSHOT phase: the initial load. snap is the snapshot
// setup just made, open; nil when a load interrupted by a restart resumes.
// Then the snapshot is gone: the remaining partitions are read under a
// fresh snapshot and upserted (or, on a destination with VersionedRows,
// written with the first snapshot's version), and CDC replays every change
// from the mirror's consistent point; as each change carries the whole row
// and applies idempotently, the destination converges all the same.
//
// Partitions already loaded are recorded on the destination with their
// rows, so none is copied twice or lost.
func (f *flow) snapshot(ctx context.Context, snap *connectors.Snapshot) error {
	resumed := snap == nil
	src, dst, closeAll, err := f.open(ctx, "sluice-snapshot")
	if err != nil {
		return err
	}
	defer closeAll()
	// A load resumed by a new owner claims the destination before it
	// plans: the partitions of the earlier owner's load, still queued or
	// running on other nodes, are refused from then on (fence.go).
	if err := f.fence(ctx, dst); err != nil {
		return err
	}

	if f.m.Resync != "" && f.shadows == nil {
		if err := f.adoptShadows(ctx, dst); err != nil {
			return err
		}
	}
	tables := f.tables()
	schemas, err := f.describe(ctx, src, tables)
	if err != nil {
		return err
	}
	if f.opt.DoInitialCopy {
		f.log.InfoContext(ctx, "initial load", "tables", len(tables), "resumed", resumed)
		msg := fmt.Sprintf("initial load of %d table(s) started", len(tables))
		if resumed {
			msg = fmt.Sprintf("initial load of %d table(s) resumed after a restart: loaded partitions are kept, the rest is copied under a new snapshot", len(tables))
		}
		if err := f.store.AddEvent(ctx, f.m.Name, "snapshot", msg); err != nil {
			return err
		}
		name, version := "", f.m.ConsistentVersion
		if snap != nil {
			name = snap.Name
		}
		for start := 0; start < len(tables); start += f.opt.TablesInParallel {
			end := min(start+f.opt.TablesInParallel, len(tables))
			if err := f.setStep(ctx, catalog.StepCopying, tables[start:end]...); err != nil {
				return err
			}
			if err := f.loadTables(ctx, src, dst, name, version, tables[start:end], schemas[start:end]); err != nil {
				return err
			}
			if err := f.setStep(ctx, catalog.StepWaiting, tables[start:end]...); err != nil {
				return err
			}
		}
	}
	for i, t := range tables {
		if err := f.finishTable(ctx, src, dst, t, schemas[i]); err != nil {
			return err
		}
	}
	if f.m.Resync != "" {
		if err := f.setStep(ctx, catalog.StepSwapping, tables...); err != nil {
			return err
		}
		if err := f.store.SetPhase(ctx, f.m.Name, catalog.PhaseResync); err != nil {
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
func (f *flow) loaded(ctx context.Context, src connectors.Source, dst connectors.Destination, tables []mirrorTable, schemas []*connectors.TableSchema) error {
	if f.opt.ReplicateForeignKeys {
		if err := f.setStep(ctx, catalog.StepAddingForeignKeys, tables...); err != nil {
			return err
		}
		if err := f.foreignKeys(ctx, src, dst, tables, schemas); err != nil {
			return err
		}
	}
	if f.opt.InitialCopyOnly {
		if err := f.setStep(ctx, catalog.StepDone, tables...); err != nil {
			return err
		}
		if err := src.Teardown(ctx, f.spec()); err != nil {
			return err
		}
		if err := f.finishPhase(ctx, PhaseCompleted); err != nil {
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
		return f.store.FinishMirrorResync(ctx, f.m.Name, phase)
	}
	return f.store.SetPhase(ctx, f.m.Name, phase)
}

// finishTable builds what the load left out, on a destination that builds
// keys and indexes after a load (LoadFinisher): the primary key, a shadow
// table's copies of the live table's indexes, and the source's indexes
// with replicate_indexes. The table is then running.
func (f *flow) finishTable(ctx context.Context, src connectors.Source, dst connectors.Destination, t mirrorTable, ts *connectors.TableSchema) error {
	if lf, ok := dst.(connectors.LoadFinisher); ok {
		if err := f.setStep(ctx, catalog.StepBuildingIndexes, t); err != nil {
			return err
		}
		if err := lf.FinishLoad(ctx, f.destTable(t, ts), t.live); err != nil {
			return err
		}
		if f.opt.ReplicateIndexes {
			if err := f.indexes(ctx, src, dst, t, ts); err != nil {
				return err
			}
		}
		if err := f.setStep(ctx, catalog.StepWaiting, t); err != nil {
			return err
		}
	}
	return f.store.SetTableStatus(ctx, f.m.Name, t.source.String(), "running")
}

// indexes recreates the source's indexes of t on its destination table.
func (f *flow) indexes(ctx context.Context, src connectors.Source, dst connectors.Destination, t mirrorTable, ts *connectors.TableSchema) error {
	def, ic, err := f.indexAbilities(src, dst, "replicate_indexes")
	if err != nil {
		return err
	}
	stmts, err := def.IndexDDL(ctx, ts, t.dest)
	if err != nil {
		return err
	}
	return ic.CreateIndexes(ctx, t.dest, stmts)
}

// foreignKeys recreates foreign keys between mirrored tables.
func (f *flow) foreignKeys(ctx context.Context, src connectors.Source, dst connectors.Destination, tables []mirrorTable, schemas []*connectors.TableSchema) error {
	def, ic, err := f.indexAbilities(src, dst, "replicate_foreign_keys")
	if err != nil {
		return err
	}
	names := make(map[connectors.TableName]connectors.TableName, len(tables))
	for _, t := range tables {
		names[t.source] = t.dest
	}
	for i, t := range tables {
		stmts, err := def.ForeignKeyDDL(ctx, schemas[i], t.dest, names)
		if err != nil {
			return err
		}
		if err := ic.CreateForeignKeys(ctx, t.dest, stmts); err != nil {
			return err
		}
	}
	return nil
}

// indexAbilities returns the abilities option needs of the source and the
// destination, or the error naming the one that lacks it.
func (f *flow) indexAbilities(src connectors.Source, dst connectors.Destination, option string) (connectors.IndexDefiner, connectors.IndexCreator, error) {
	def, ok := src.(connectors.IndexDefiner)
	if !ok {
		return nil, nil, &UserError{Err: fmt.Errorf("%s is not supported for %s sources", option, f.srcType)}
	}
	ic, ok := dst.(connectors.IndexCreator)
	if !ok {
		return nil, nil, f.unsupported(option)
	}
	return def, ic, nil
}

// copyJob is one partition to load, of table number table of its group.
type copyJob struct {
	table int
	job   connectors.LoadJob
}

// loadTables loads a group of tables with the parallel workers, reading
// under snapshot ("" for a fresh one: a resumed load, which upserts) and
// writing rows of version version: as jobs that any node may run
// (load_jobs.go) in a started engine, with in-process workers otherwise.
// Each partition carries the epoch of the flow's lease (LoadJob.Epoch),
// which the destination checks: the caller claimed it (fence.go).
func (f *flow) loadTables(ctx context.Context, src connectors.Source, dst connectors.Destination, snapshot string, version uint64,
	tables []mirrorTable, schemas []*connectors.TableSchema) error {
	resumed := snapshot == ""
	epoch := leaseEpoch(ctx)
	var jobs []copyJob
	progress := make([]*tableProgress, len(tables))
	for i, t := range tables {
		plan, err := f.plan(ctx, src, t, schemas[i])
		if err != nil {
			return err
		}
		done, err := dst.Loaded(ctx, t.source)
		if err != nil {
			return err
		}
		progress[i] = newTableProgress(t.source.String(), len(plan), done)
		if err := progress[i].flush(ctx, f.store, f.m.Name); err != nil {
			return err
		}
		if len(done) == len(plan) {
			continue
		}
		d := f.destTable(t, schemas[i])
		if lf, ok := dst.(connectors.LoadFinisher); ok && resumed {
			// Upserting needs the key; rows loaded so far came from one
			// snapshot, so they hold no duplicate.
			if err := lf.PrepareUpsert(ctx, d); err != nil {
				return err
			}
		}
		for index, part := range plan {
			if _, ok := done[index]; ok {
				continue
			}
			jobs = append(jobs, copyJob{table: i, job: connectors.LoadJob{Table: d, Index: index, Partition: part,
				Upsert: resumed, Version: version, Epoch: epoch}})
		}
	}
	if len(jobs) == 0 {
		return nil
	}
	stop := f.flushProgress(ctx, progress)
	defer stop()
	if f.jobsRunning() {
		return f.loadWithJobs(ctx, snapshot, jobs, progress)
	}
	return runWorkers(ctx, min(f.opt.MaxParallelWorkers, len(jobs)), jobs, func(ctx context.Context, queue <-chan copyJob) error {
		return f.copyWorker(ctx, src, dst, snapshot, queue, progress)
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
			if err := protect(func() error { return work(ctx, queue) }); err != nil {
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

// openReaderLoader opens a reader of src under snapshot and a loader of
// dst, at the same time (see flow.open); on an error, neither is left
// open.
func openReaderLoader(ctx context.Context, src connectors.Source, dst connectors.Destination, snapshot string) (
	connectors.PartitionReader, connectors.Loader, error) {
	var r connectors.PartitionReader
	var l connectors.Loader
	rErr, lErr := both(
		func() (err error) { r, err = src.OpenReader(ctx, snapshot); return err },
		func() (err error) { l, err = dst.OpenLoader(ctx); return err })
	if rErr == nil && lErr == nil {
		return r, l, nil
	}
	if rErr == nil {
		r.Close(context.Background())
	}
	if lErr == nil {
		l.Close(context.Background())
	}
	if rErr != nil {
		return nil, nil, fmt.Errorf("open the snapshot: %w", rErr)
	}
	return nil, nil, lErr
}

// copyWorker loads partitions from the queue with a reader and a loader of
// its own (connections of their own).
func (f *flow) copyWorker(ctx context.Context, src connectors.Source, dst connectors.Destination, snapshot string,
	queue <-chan copyJob, progress []*tableProgress) error {
	r, l, err := openReaderLoader(ctx, src, dst, snapshot)
	if err != nil {
		return err
	}
	defer r.Close(context.Background())
	defer l.Close(context.Background())
	for j := range queue {
		p, part := progress[j.table], j.job.Index
		j.job.Progress = p.begin(f.m.Name, part)
		rows, err := l.Load(ctx, r, j.job)
		if err != nil {
			return fmt.Errorf("copy %s partition %d: %w", j.job.Table.Source, part, err)
		}
		if nk, ok := l.(connectors.NullKeyReporter); ok {
			for t, n := range nk.NullKeys() {
				if err := f.reportNullKeys(ctx, t, n); err != nil {
					return err
				}
			}
		}
		p.end(part, rows)
		if err := p.flush(ctx, f.store, f.m.Name); err != nil {
			return err
		}
	}
	return nil
}

// plan returns the table's partition plan, made once and kept in the
// catalog so that a resumed load numbers partitions the same way.
func (f *flow) plan(ctx context.Context, src connectors.Source, t mirrorTable, ts *connectors.TableSchema) ([]connectors.Partition, error) {
	if t.catalog.Partitions != nil {
		var plan []connectors.Partition
		if err := json.Unmarshal(t.catalog.Partitions, &plan); err != nil {
			return nil, fmt.Errorf("decode snapshot plan of %s: %w", t.source, err)
		}
		return plan, nil
	}
	plan, err := src.Plan(ctx, t.source, ts, f.opt.partitionRows(ts))
	if err != nil {
		return nil, err
	}
	raw, err := json.Marshal(plan.Partitions)
	if err != nil {
		return nil, err
	}
	if err := f.store.SetTablePlan(ctx, f.m.Name, t.source.String(), raw, len(plan.Partitions), plan.EstimatedRows); err != nil {
		return nil, err
	}
	return plan.Partitions, nil
}
