package executor

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/postgres"
)

const (
	// idleFlush is how long the stream may be quiet before a partial batch
	// is applied.
	idleFlush = 100 * time.Millisecond
	// heartbeatEvery is how often an idle source gets a heartbeat message,
	// so the slot advances even when the mirrored tables are quiet.
	heartbeatEvery = 10 * time.Second
	// lagEvery is how often the lag is recorded.
	lagEvery = 2 * time.Second
)

// cdc is the CDC phase: stream changes from the slot and apply them in
// batches. Each batch commits on the destination together with its end
// LSN; only then is the LSN acknowledged to the source. On restart the
// stream resumes after the last LSN the destination recorded, so no change
// is lost or applied twice.
func (f *flow) cdc(ctx context.Context) error {
	src, err := f.src.ConnectSQL(ctx, "sluice-cdc")
	if err != nil {
		return err
	}
	defer src.Close(context.Background())
	dst, err := f.dst.ConnectSQL(ctx, "sluice-cdc")
	if err != nil {
		return err
	}
	defer dst.Close(context.Background())
	if err := postgres.EnsureMetadata(ctx, dst, f.meta); err != nil {
		return err
	}

	tables := f.tables()
	schemas := make(map[connectors.TableName]*connectors.TableSchema, len(tables))
	dests := make([]postgres.DestTable, len(tables))
	for i, t := range tables {
		ts, err := postgres.DescribeTable(ctx, src, t.source, t.exclude)
		if err != nil {
			return err
		}
		// Columns the source gained while the mirror was stopped.
		if _, err := postgres.AddMissingColumns(ctx, dst, t.dest, ts.Columns); err != nil {
			return err
		}
		schemas[t.source] = ts
		dests[i] = postgres.DestTable{Source: t.source, Dest: t.dest, Schema: ts,
			SoftDeleteColumn: f.cfg.SoftDeleteColumn, SyncedAtColumn: f.cfg.SyncedAtColumn}
	}
	applier, err := postgres.NewApplier(ctx, dst, f.meta, f.m.Name, dests)
	if err != nil {
		return err
	}
	last, _, err := postgres.LastLSN(ctx, dst, f.meta, f.m.Name)
	if err != nil {
		return err
	}
	start := max(last, f.m.ConsistentLSN)
	repl, err := f.src.ConnectReplication(ctx, "sluice-cdc")
	if err != nil {
		return err
	}
	stream, err := postgres.StartStream(ctx, repl, postgres.StreamConfig{
		Slot: f.cfg.Slot, Publication: f.cfg.Publication, Start: start, Tables: schemas,
		DescribeType: postgres.TypeDescriber(src),
	})
	if err != nil {
		repl.Close(context.Background())
		return err
	}
	defer stream.Close(context.Background())
	if err := f.ex.cfg.Store.ClearError(ctx, f.m.Name); err != nil {
		return err
	}
	f.log.InfoContext(ctx, "streaming changes", "from", catalog.FormatLSN(start))

	b := &batcher{f: f, applier: applier, stream: stream, applied: start, dests: dests, dst: dst}
	return b.run(ctx, src)
}

// batcher groups whole transactions into batches.
type batcher struct {
	f       *flow
	applier *postgres.Applier
	stream  *postgres.Stream
	dst     *pgx.Conn
	dests   []postgres.DestTable

	applied uint64 // end LSN of the last applied transaction
	batch   connectors.Batch
	rows    int
	started time.Time // when the batch got its first change
	tx      []connectors.Change
	walEnd  uint64
}

func (b *batcher) run(ctx context.Context, src *pgx.Conn) error {
	lastActivity := time.Now()
	lastLag := time.Time{}
	maxWait := time.Duration(b.f.cfg.SyncInterval) * time.Second
	for {
		ev, err := b.stream.Next(ctx, idleFlush)
		if err != nil {
			return err
		}
		if ev == nil {
			if err := b.flush(ctx); err != nil {
				return err
			}
			if time.Since(lastActivity) > heartbeatEvery {
				if err := postgres.EmitHeartbeat(ctx, src); err != nil {
					return err
				}
				lastActivity = time.Now()
			}
		} else {
			lastActivity = time.Now()
			if ev.ServerWALEnd > b.walEnd {
				b.walEnd = ev.ServerWALEnd
			}
			if err := b.handle(ctx, ev); err != nil {
				return err
			}
		}
		if b.rows >= b.f.cfg.MaxBatchSize || (b.rows > 0 && time.Since(b.started) >= maxWait) {
			if err := b.flush(ctx); err != nil {
				return err
			}
		}
		if time.Since(lastLag) >= lagEvery {
			lastLag = time.Now()
			lag := int64(0)
			if b.walEnd > b.stream.Acked() {
				lag = int64(b.walEnd - b.stream.Acked())
			}
			if err := b.f.ex.cfg.Store.SetLag(ctx, b.f.m.Name, lag); err != nil {
				return err
			}
		}
	}
}

func (b *batcher) handle(ctx context.Context, ev *postgres.Event) error {
	switch ev.Kind {
	case postgres.EventBegin:
		b.tx = b.tx[:0]
	case postgres.EventChange:
		b.tx = append(b.tx, ev.Change)
	case postgres.EventCommit:
		if ev.LSN <= b.applied {
			// Applied before a restart: the destination has it.
			b.tx = b.tx[:0]
			return nil
		}
		if len(b.tx) > 0 {
			if b.rows == 0 {
				b.started = time.Now()
			}
			b.batch.Changes = append(b.batch.Changes, b.tx...)
			for _, c := range b.tx {
				if c.Kind != connectors.Truncate {
					b.rows++
				}
			}
		}
		b.tx = b.tx[:0]
		b.batch.EndLSN, b.batch.CommitTime = ev.LSN, ev.CommitTime
	case postgres.EventNewColumns:
		return b.addColumns(ctx, ev)
	case postgres.EventProgress:
		if len(b.batch.Changes) == 0 && len(b.tx) == 0 && ev.LSN > b.stream.Acked() {
			b.stream.Ack(ev.LSN)
		}
	}
	return nil
}

// addColumns handles columns the source added: earlier complete
// transactions are applied with the old columns, the destination gains the
// new ones, and changes of the current transaction are padded with NULL.
func (b *batcher) addColumns(ctx context.Context, ev *postgres.Event) error {
	if err := b.flush(ctx); err != nil {
		return err
	}
	for _, d := range b.dests {
		if d.Source != ev.Table {
			continue
		}
		if _, err := postgres.AddMissingColumns(ctx, b.dst, d.Dest, ev.NewColumns); err != nil {
			return err
		}
		b.f.log.InfoContext(ctx, "source added columns", "table", d.Source.String(), "columns", len(ev.NewColumns))
		_ = b.f.ex.cfg.Store.AddEvent(ctx, b.f.m.Name, "schema",
			fmt.Sprintf("%s gained %d column(s); added on %s", d.Source, len(ev.NewColumns), d.Dest))
	}
	b.applier.SetTables(b.dests)
	width := 0
	for _, d := range b.dests {
		if d.Source == ev.Table {
			width = len(d.Schema.Columns)
		}
	}
	for i := range b.tx {
		c := &b.tx[i]
		if c.Table != ev.Table {
			continue
		}
		for len(c.New) > 0 && len(c.New) < width {
			c.New = append(c.New, connectors.Value{Kind: connectors.Null})
		}
		for len(c.Old) > 0 && len(c.Old) < width {
			c.Old = append(c.Old, connectors.Value{Kind: connectors.Null})
		}
	}
	return nil
}

// flush applies the batch in one destination transaction, records it in
// the catalog, and acknowledges its end LSN to the source.
func (b *batcher) flush(ctx context.Context) error {
	if b.batch.EndLSN <= b.applied {
		return nil
	}
	if len(b.batch.Changes) > 0 {
		counts, err := b.applier.Apply(ctx, &b.batch)
		if err != nil {
			return fmt.Errorf("apply batch ending at %s: %w", catalog.FormatLSN(b.batch.EndLSN), err)
		}
		byName := make(map[string]catalog.TableCounts, len(counts))
		for t, c := range counts {
			byName[t.String()] = catalog.TableCounts{Inserts: c.Inserts, Updates: c.Updates, Deletes: c.Deletes}
		}
		if err := b.f.ex.cfg.Store.RecordSync(ctx, b.f.m.Name, b.batch.EndLSN, b.batch.CommitTime, int64(b.rows), byName); err != nil {
			return err
		}
		b.f.log.DebugContext(ctx, "batch applied", "rows", b.rows, "lsn", catalog.FormatLSN(b.batch.EndLSN))
	}
	b.applied = b.batch.EndLSN
	b.stream.Ack(b.applied)
	b.batch = connectors.Batch{Changes: b.batch.Changes[:0]}
	b.rows = 0
	return nil
}
