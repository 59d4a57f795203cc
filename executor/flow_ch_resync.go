package executor

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/jackc/pglogrepl"
	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/clickhouse"
	"github.com/sluicedb/sluice/connectors/postgres"
)

// Table resync into ClickHouse. Rows there are versions (the source commit
// position), so the table never stops streaming and the slot is never held
// back: a temporary slot gives a snapshot at L; the table is loaded under
// it into a shadow table (with the table's sorting key, which a resync may
// change), every row with version L; then, between two batches, the rows
// the live table received after L and its deleted rows are copied into the
// shadow, and one RENAME swaps the tables. Both strategies do this: a
// ClickHouse table is never emptied for readers. A resync cut off by a
// crash starts over.

// chResyncs is what a ClickHouse flow's batcher knows of table resyncs.
type chResyncs struct {
	conn    driver.Conn
	info    clickhouse.ServerInfo
	copying int
	done    chan chCopyDone
	tables  map[connectors.TableName]mirrorTable
}

type chCopyDone struct {
	table connectors.TableName
	lsn   uint64
	err   error
}

func (r *chResyncs) doneCh() chan chCopyDone {
	if r == nil {
		return nil
	}
	return r.done
}

// startClickHouseResyncs starts the copies of the tables whose resync was
// asked for; the caller waits for them with wait.
func (f *flow) startClickHouseResyncs(ctx context.Context, conn driver.Conn, info clickhouse.ServerInfo,
	schemas map[connectors.TableName]*connectors.TableSchema) (r *chResyncs, wait func()) {
	r = &chResyncs{conn: conn, info: info, done: make(chan chCopyDone, 64), tables: map[connectors.TableName]mirrorTable{}}
	finished := make(chan struct{}, len(f.m.Tables))
	for _, t := range f.tables() {
		if t.catalog.ResyncStatus != catalog.ResyncPending && t.catalog.ResyncStatus != catalog.ResyncInProgress {
			continue
		}
		r.tables[t.source] = t
		r.copying++
		go func() {
			defer func() { finished <- struct{}{} }()
			lsn, err := f.copyTableClickHouse(ctx, t, schemas[t.source], info)
			r.done <- chCopyDone{table: t.source, lsn: lsn, err: err}
		}()
	}
	n := r.copying
	return r, func() {
		for range n {
			<-finished
		}
	}
}

// pollClickHouseResyncs restarts the stream when a table resync was asked
// for and no copy runs (copies start with the stream).
func (b *batcher) pollClickHouseResyncs(ctx context.Context) error {
	if b.ch.copying > 0 {
		return nil
	}
	m, err := b.f.ex.cfg.Store.GetMirror(ctx, b.f.m.Name)
	if err != nil {
		return err
	}
	for _, t := range m.Tables {
		if t.ResyncStatus == catalog.ResyncPending {
			return errRestart
		}
	}
	return nil
}

// copyTableClickHouse loads a table's shadow under a snapshot of its own
// and returns the snapshot's position.
func (f *flow) copyTableClickHouse(ctx context.Context, t mirrorTable, ts *connectors.TableSchema, info clickhouse.ServerInfo) (uint64, error) {
	store := f.ex.cfg.Store
	name := t.source.String()
	if err := store.SetTableResync(ctx, f.m.Name, name, catalog.ResyncInProgress, ""); err != nil {
		return 0, err
	}
	if err := f.setStep(ctx, catalog.StepCopying, t); err != nil {
		return 0, err
	}
	src, err := f.src.ConnectSQL(ctx, "sluice-resync")
	if err != nil {
		return 0, err
	}
	defer src.Close(context.Background())
	conn, err := f.ch.Open(ctx)
	if err != nil {
		return 0, fmt.Errorf("destination: %w", err)
	}
	defer conn.Close()
	repl, err := f.src.ConnectReplication(ctx, "sluice-resync")
	if err != nil {
		return 0, err
	}
	defer repl.Close(context.Background())
	res, err := pglogrepl.CreateReplicationSlot(ctx, repl, fmt.Sprintf("sluice_resync_%016x", rand.Uint64()), "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Temporary: true, SnapshotAction: "EXPORT_SNAPSHOT"})
	if err != nil {
		return 0, fmt.Errorf("create temporary slot for the copy: %w", err)
	}
	at, err := pglogrepl.ParseLSN(res.ConsistentPoint)
	if err != nil {
		return 0, err
	}
	lsn := uint64(at)
	// The table as it is now rather than when the stream started: a column
	// the source added before the snapshot has values in it.
	if ts, err = postgres.DescribeTable(ctx, src, t.source, t.exclude); err != nil {
		return 0, err
	}
	o, err := f.createShadowClickHouse(ctx, conn, info, t, ts)
	if err != nil {
		return 0, err
	}
	shadow := o.Name
	if err := clickhouse.ClearTable(ctx, conn, f.ch.Database, f.m.Name, t.source); err != nil {
		return 0, err
	}
	_ = store.AddEvent(ctx, f.m.Name, "resync", fmt.Sprintf("copying %s into %s as of %s", name, shadow, catalog.FormatLSN(lsn)))
	one := t
	one.dest = shadow
	one.catalog.Partitions = nil
	if err := f.loadClickHouse(ctx, src, conn, info, res.SnapshotName, lsn, []mirrorTable{one}, []*connectors.TableSchema{ts}); err != nil {
		return 0, err
	}
	if err := clickhouse.ClearTable(ctx, conn, f.ch.Database, f.m.Name, t.source); err != nil {
		return 0, err
	}
	// The batcher carries the live table's rows newer than lsn over, then
	// swaps (chCopyDone).
	return lsn, f.setStep(ctx, catalog.StepCatchingUp, t)
}

// createShadowClickHouse makes the shadow table of t for a resync, under a
// free name, recorded as Sluice's own and marked (clickhouse.CreateOwned);
// the shadow an earlier attempt recorded is dropped, nothing else.
func (f *flow) createShadowClickHouse(ctx context.Context, conn driver.Conn, info clickhouse.ServerInfo, t mirrorTable,
	ts *connectors.TableSchema) (clickhouse.OwnedTable, error) {
	return clickhouse.CreateOwned(ctx, conn, f.ch.Database, f.m.Name, t.live, f.reserved(),
		func(name connectors.TableName, marker string) (string, error) {
			opts := chTableOptions(f.cfg, t.catalog.OrderBy)
			opts.Marker = marker
			return clickhouse.CreateTableDDL(name, ts, info, opts)
		})
}

// chCopyDone finishes a table copy in the batcher, between batches: the
// shadow table gets what the live one received since the copy's snapshot,
// and replaces it.
func (b *batcher) chCopyDone(ctx context.Context, d chCopyDone) error {
	store := b.f.ex.cfg.Store
	if d.err != nil {
		if ctx.Err() == nil {
			_ = store.SetTableResync(ctx, b.f.m.Name, d.table.String(), catalog.ResyncFailed, d.err.Error())
		}
		return fmt.Errorf("resync of %s: %w", d.table, d.err)
	}
	b.ch.copying--
	t := b.ch.tables[d.table]
	began := time.Now()
	if err := b.f.swapClickHouse(ctx, b.ch.conn, b.ch.info, t, d.lsn); err != nil {
		_ = store.SetTableResync(ctx, b.f.m.Name, d.table.String(), catalog.ResyncFailed, err.Error())
		return fmt.Errorf("resync of %s: %w", d.table, err)
	}
	if err := store.SetTableResync(ctx, b.f.m.Name, d.table.String(), catalog.ResyncDone, ""); err != nil {
		return err
	}
	if err := b.f.setStep(ctx, catalog.StepStreaming, t); err != nil {
		return err
	}
	b.f.log.InfoContext(ctx, "table resync done", "table", d.table.String())
	return store.AddEvent(ctx, b.f.m.Name, "resync", fmt.Sprintf("swapped the resynced copy of %s in for %s in %s",
		d.table, t.dest, time.Since(began).Round(time.Millisecond)))
}

// swapClickHouse copies into the shadow of t's live table the rows the
// live table received after lsn and its deleted rows, then swaps the two
// (swapTables) and drops the old table. Nothing writes to the live table
// meanwhile (the batcher runs it).
func (f *flow) swapClickHouse(ctx context.Context, conn driver.Conn, info clickhouse.ServerInfo, t mirrorTable, lsn uint64) error {
	live := t.dest
	shadows, err := clickhouse.OwnedTables(ctx, conn, f.ch.Database, f.m.Name, clickhouse.RoleShadow)
	if err != nil {
		return err
	}
	o, has := shadows[live]
	if !has {
		return fmt.Errorf("the shadow table of %s disappeared before the swap: run RESYNC TABLE again", live)
	}
	shadow := o.Name
	opts := chTableOptions(f.cfg, nil)
	version, deleted := clickhouse.DefaultVersionColumn, clickhouse.DefaultDeletedColumn
	if opts.DeletedColumn != "" {
		deleted = opts.DeletedColumn
	}
	// Columns the source added while the shadow was copied.
	if err := clickhouse.AddColumnsLike(ctx, conn, live, shadow); err != nil {
		return err
	}
	if err := clickhouse.CarryNewerRows(ctx, conn, live, shadow, version, deleted, lsn); err != nil {
		return err
	}
	if err := f.setStep(ctx, catalog.StepSwapping, t); err != nil {
		return err
	}
	return f.swapTables(ctx, conn, info, []connectors.TableName{live})
}

// swapTables puts each live table's shadow in its place and drops the
// old tables (clickhouse.SwapTables), never using one of the mirror's
// table names for an old table.
func (f *flow) swapTables(ctx context.Context, conn driver.Conn, info clickhouse.ServerInfo, lives []connectors.TableName) error {
	return clickhouse.SwapTables(ctx, conn, info, f.ch.Database, f.m.Name, lives, f.reserved())
}

// swapAllClickHouse is the RESYNC phase of a full resync into ClickHouse:
// each shadow table gets the live table's deleted rows, then one RENAME
// swaps every table and the old ones are dropped. After a crash, missing
// shadow tables mean the swap was done.
func (f *flow) swapAllClickHouse(ctx context.Context) error {
	src, err := f.src.ConnectSQL(ctx, "sluice-resync")
	if err != nil {
		return err
	}
	defer src.Close(context.Background())
	conn, info, err := f.openClickHouse(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	opts := chTableOptions(f.cfg, nil)
	deleted := clickhouse.DefaultDeletedColumn
	if opts.DeletedColumn != "" {
		deleted = opts.DeletedColumn
	}
	began := time.Now()
	if err := f.setStep(ctx, catalog.StepSwapping, f.tables()...); err != nil {
		return err
	}
	if err := clickhouse.EnsureMetadata(ctx, conn, f.ch.Database); err != nil {
		return err
	}
	shadows, err := clickhouse.OwnedTables(ctx, conn, f.ch.Database, f.m.Name, clickhouse.RoleShadow)
	if err != nil {
		return err
	}
	var lives, missing []connectors.TableName
	for _, t := range f.tables() {
		if _, has := shadows[t.live]; !has {
			missing = append(missing, t.live)
		}
	}
	if len(missing) > 0 && len(missing) < len(f.m.Tables) {
		if old, err := clickhouse.OwnedTables(ctx, conn, f.ch.Database, f.m.Name, clickhouse.RoleOld); err != nil || len(old) == 0 {
			if err != nil {
				return err
			}
			// No swap under way: shadows were dropped by someone else.
			return f.restartResync(ctx, tableSet(missing))
		}
	}
	for _, t := range f.tables() {
		lives = append(lives, t.live)
		sh, has := shadows[t.live]
		shadow := sh.Name
		live, err := clickhouse.TableExists(ctx, conn, t.live)
		if err != nil {
			return err
		}
		if !has || !live {
			continue // swapped before a restart, or nothing to carry
		}
		// A crash before the swap repeats this: the same rows again,
		// which ReplacingMergeTree collapses.
		if err := clickhouse.CarryDeletedRows(ctx, conn, t.live, shadow, deleted); err != nil {
			return err
		}
	}
	if err := f.swapTables(ctx, conn, info, lives); err != nil {
		return err
	}
	if err := f.ex.cfg.Store.AddEvent(ctx, f.m.Name, "resync", fmt.Sprintf("swapped %d resynced table(s) in, in %s",
		len(f.m.Tables), time.Since(began).Round(time.Millisecond))); err != nil {
		return err
	}
	return f.loadedClickHouse(ctx, src)
}
