package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/postgres"
)

// Table resync (RESYNC TABLE), inside the CDC phase. The mirror's slot is
// kept and the other tables keep streaming; the table goes through stages
// recorded on the destination (connectors.TableState), each entered in the
// transaction that finished the one before:
//
//  1. copy: a temporary slot gives a snapshot and its consistent point L;
//     the table is copied under that snapshot, into itself emptied
//     (truncate: its indexes and the foreign keys that involve it are
//     dropped first and rebuilt after) or into a shadow table (swap: the
//     live table keeps receiving changes meanwhile). While a copy runs,
//     the mirror acknowledges nothing beyond where its stream started, so
//     the slot keeps every change committed after L; the truncate
//     strategy drops the table's changes meanwhile.
//  2. catchup: the copy committed with L as the table's own position. The
//     stream restarts from the lowest position of all, and a change is
//     applied only when its transaction commits after its table's
//     position, so the table receives exactly its changes after L (into
//     the shadow table, with swap) while the others skip what they have.
//     Every batch records the positions it reached; acknowledgements stay
//     at the lowest.
//  3. swap (swap strategy): once caught up with the mirror, the shadow
//     table replaces the live one in one destination transaction.
//
// A copy killed half-way starts over (a snapshot does not survive its
// connection); the other stages resume where the destination says.

// errRestart ends the CDC phase so that it starts again at once: after a
// table copy, to replay its changes, or to begin a requested resync.
var errRestart = errors.New("restart the stream")

// resyncs is what the batcher knows of table resyncs. A nil *resyncs is
// valid and means none.
type resyncs struct {
	// pos holds the tables catching up: their own positions, below the
	// mirror's.
	pos map[connectors.TableName]connectors.Position
	// hold holds the tables being copied with the truncate strategy: their
	// changes are dropped (they are replayed after the copy).
	hold map[connectors.TableName]bool
	// strategy of every table with a resync under way here.
	strategy map[connectors.TableName]string
	// copying counts copies running; capAt is the acknowledgement limit
	// while they run.
	copying int
	capAt   connectors.Position
	done    chan copyResult
	// caught lists the tables the last batch brought up to the mirror.
	caught []connectors.TableName
}

type copyResult struct {
	table connectors.TableName
	err   error
}

func newResyncs() *resyncs {
	return &resyncs{pos: map[connectors.TableName]connectors.Position{}, hold: map[connectors.TableName]bool{},
		strategy: map[connectors.TableName]string{}, done: make(chan copyResult, 64)}
}

// doneCh is where copies report (nil, which blocks, when r is nil).
func (r *resyncs) doneCh() chan copyResult {
	if r == nil {
		return nil
	}
	return r.done
}

// pollResyncs restarts the stream when a table resync was requested and
// no copy is running (copies start with the stream, before any change of
// their table is received).
func (b *batcher) pollResyncs(ctx context.Context) error {
	if b.ch != nil {
		return b.pollClickHouseResyncs(ctx)
	}
	if b.rs == nil || b.rs.copying > 0 {
		return nil
	}
	m, err := b.store.GetMirror(ctx, b.f.m.Name)
	if err != nil {
		return err
	}
	for _, t := range m.Tables {
		if t.ResyncStatus != catalog.ResyncPending {
			continue
		}
		name, err := connectors.ParseTableName(t.Source)
		if err != nil {
			return err
		}
		if _, catchingUp := b.rs.pos[name]; !catchingUp {
			return errRestart
		}
	}
	return nil
}

func (r *resyncs) active() bool { return r != nil && (len(r.pos) > 0 || len(r.hold) > 0) }

func (r *resyncs) catchingUp() bool { return r != nil && len(r.pos) > 0 }

// wanted reports whether a change of table in a transaction whose commit
// starts at begin is to be applied, the mirror being at applied.
func (r *resyncs) wanted(table connectors.TableName, begin, applied connectors.Position) bool {
	if r.hold[table] {
		return false
	}
	if p, ok := r.pos[table]; ok {
		return !begin.Before(p)
	}
	return !begin.Before(applied)
}

// ackLimit is the highest position that may be acknowledged ("": no
// limit).
func (r *resyncs) ackLimit() connectors.Position {
	if r == nil {
		return ""
	}
	var limit connectors.Position
	if r.copying > 0 {
		limit = r.capAt
	}
	for _, p := range r.pos {
		if limit == "" || p.Before(limit) {
			limit = p
		}
	}
	return limit
}

// record returns what a batch ending at end, after which the mirror is at
// applied, records in its destination transaction: the resync states to
// put and the tables whose resync is over (drop). Every table catching up
// has its changes up to end. The caller commits them with the batch.
func (r *resyncs) record(end, applied connectors.Position) (put []connectors.TableState, drop []connectors.TableName) {
	r.caught = r.caught[:0]
	for t, p := range r.pos {
		if !p.Before(end) {
			continue
		}
		st := connectors.TableState{Table: t, Stage: connectors.StageCatchup, Strategy: r.strategy[t], Position: end}
		if !end.Before(applied) {
			r.caught = append(r.caught, t)
			if r.strategy[t] == strategyTruncate {
				drop = append(drop, t)
				continue
			}
			st.Stage = connectors.StageSwap
		}
		put = append(put, st)
	}
	for _, t := range r.caught {
		delete(r.pos, t)
	}
	for t := range r.pos {
		r.pos[t] = connectors.MaxPosition(r.pos[t], end)
	}
	return put, drop
}

// caughtUp finishes the resyncs of the tables the last batch brought up to
// the mirror: a truncate resync is done; a swap resync swaps its table in.
func (b *batcher) caughtUp(ctx context.Context) error {
	for _, t := range b.rs.caught {
		if b.rs.strategy[t] == strategyTruncate {
			if err := b.f.ex.cfg.Store.SetTableResync(ctx, b.f.m.Name, t.String(), catalog.ResyncDone, ""); err != nil {
				return err
			}
			if err := b.f.setStepNames(ctx, catalog.StepStreaming, t.String()); err != nil {
				return err
			}
			b.f.log.InfoContext(ctx, "table resync done", "table", t.String())
			continue
		}
		for i := range b.dests {
			d := &b.dests[i]
			if d.Source != t {
				continue
			}
			live, err := b.f.liveName(t)
			if err != nil {
				return err
			}
			if err := b.f.finishSwap(ctx, b.dst, t, live, d.Schema); err != nil {
				return err
			}
			d.Dest = live
		}
		b.applier.SetTables(b.dests)
	}
	b.rs.caught = b.rs.caught[:0]
	return nil
}

// liveName is the mapped destination of source table t.
func (f *flow) liveName(t connectors.TableName) (connectors.TableName, error) {
	for _, mt := range f.tables() {
		if mt.source == t {
			return mt.dest, nil
		}
	}
	return connectors.TableName{}, fmt.Errorf("table %s is not in mirror %q", t, f.m.Name)
}

// Resync strategies.
const (
	strategySwap     = "swap"
	strategyTruncate = "truncate"
)

// planResyncs reads the destination's table resync states and the
// catalog's requests: it finishes swaps left to do, returns the batcher's
// resync state with the stream's start position (the lowest of the
// mirror's and the tables'), the destination each table's changes go to,
// and the copies to start.
func (f *flow) planResyncs(ctx context.Context, dst *pgx.Conn, applied connectors.Position, schemas map[connectors.TableName]*connectors.TableSchema) (*resyncs, connectors.Position, map[connectors.TableName]connectors.TableName, []resyncCopy, error) {
	states, err := postgres.TableStates(ctx, dst, f.meta, f.m.Name)
	if err != nil {
		return nil, "", nil, nil, err
	}
	owned, err := postgres.OwnedTables(ctx, dst, f.meta, f.m.Name)
	if err != nil {
		return nil, "", nil, nil, err
	}
	rs := newResyncs()
	start := applied
	dests := make(map[connectors.TableName]connectors.TableName)
	var copies []resyncCopy
	for _, t := range f.tables() {
		st, has := states[t.source]
		if has && st.Stage == connectors.StageCatchup && !st.Position.Before(applied) {
			// Caught up already (the stream passed it before a restart).
			st.Stage = connectors.StageSwap
			if st.Strategy == strategyTruncate {
				if err := postgres.DeleteTableState(ctx, dst, f.meta, f.m.Name, t.source); err != nil {
					return nil, "", nil, nil, err
				}
				if err := f.ex.cfg.Store.SetTableResync(ctx, f.m.Name, t.source.String(), catalog.ResyncDone, ""); err != nil {
					return nil, "", nil, nil, err
				}
				if err := f.setStep(ctx, catalog.StepStreaming, t); err != nil {
					return nil, "", nil, nil, err
				}
				continue
			}
			if err := postgres.PutTableState(ctx, dst, f.meta, f.m.Name, st); err != nil {
				return nil, "", nil, nil, err
			}
		}
		switch {
		case has && st.Stage == connectors.StageSwap:
			if err := f.finishSwap(ctx, dst, t.source, t.dest, schemas[t.source]); err != nil {
				return nil, "", nil, nil, err
			}
		case has && st.Stage == connectors.StageCatchup:
			if st.Strategy == strategySwap {
				o, ok := owned[t.dest]
				if !ok {
					if err := f.shadowLost(ctx, dst, t.source, t.dest); err != nil {
						return nil, "", nil, nil, err
					}
					continue
				}
				dests[t.source] = o.Name
			}
			rs.pos[t.source] = st.Position
			rs.strategy[t.source] = st.Strategy
			start = connectors.MinPosition(start, st.Position)
		case has && st.Stage == connectors.StageCopy:
			copies = append(copies, resyncCopy{table: t, strategy: st.Strategy, state: &st})
		case t.catalog.ResyncStatus == catalog.ResyncPending || t.catalog.ResyncStatus == catalog.ResyncInProgress:
			strategy := t.catalog.ResyncStrategy
			if strategy == "" {
				strategy = f.cfg.ResyncStrategy
			}
			copies = append(copies, resyncCopy{table: t, strategy: strategy})
		}
	}
	for _, c := range copies {
		rs.strategy[c.table.source] = c.strategy
		if c.strategy == strategyTruncate {
			rs.hold[c.table.source] = true
		}
	}
	rs.copying = len(copies)
	rs.capAt = start
	return rs, start, dests, copies, nil
}

// resyncCopy is a table copy to run.
type resyncCopy struct {
	table    mirrorTable
	strategy string
	state    *connectors.TableState // the destination's record of an earlier attempt, if any
}

// startCopies runs the copies, each in a goroutine reporting to rs.done.
// They stop when ctx ends; the caller waits for them with wait.
func (b *batcher) startCopies(ctx context.Context, copies []resyncCopy, schemas map[connectors.TableName]*connectors.TableSchema) (wait func()) {
	done := make(chan struct{}, len(copies))
	for _, c := range copies {
		go func() {
			defer func() { done <- struct{}{} }()
			err := b.f.copyTable(ctx, c, schemas[c.table.source])
			b.rs.done <- copyResult{table: c.table.source, err: err}
		}()
	}
	return func() {
		for range copies {
			<-done
		}
	}
}

// copyDone handles a copy's end in the batcher: an error fails the flow
// (the copy starts over after the backoff); when the last copy is done,
// the stream restarts to replay the copied tables' changes.
func (b *batcher) copyDone(ctx context.Context, r copyResult) error {
	if errors.Is(r.err, postgres.ErrNotSwappable) || errors.Is(r.err, postgres.ErrNoFreeName) {
		// Refused before anything changed: the resync fails, the mirror
		// goes on.
		if err := b.f.ex.cfg.Store.SetTableResync(ctx, b.f.m.Name, r.table.String(), catalog.ResyncFailed, r.err.Error()); err != nil {
			return err
		}
		if err := b.f.setStepNames(ctx, catalog.StepStreaming, r.table.String()); err != nil {
			return err
		}
		r.err = nil
	}
	if r.err != nil {
		if ctx.Err() == nil {
			_ = b.f.ex.cfg.Store.SetTableResync(ctx, b.f.m.Name, r.table.String(), catalog.ResyncFailed, r.err.Error())
		}
		return fmt.Errorf("resync of %s: %w", r.table, r.err)
	}
	b.rs.copying--
	if b.rs.copying == 0 {
		return errRestart
	}
	return nil
}

// copyTable is stage 1 of a table resync: it copies the table under a
// snapshot of its own and records the copy's position (stage catchup).
func (f *flow) copyTable(ctx context.Context, c resyncCopy, ts *connectors.TableSchema) error {
	store := f.ex.cfg.Store
	name := c.table.source.String()
	if err := store.SetTableResync(ctx, f.m.Name, name, catalog.ResyncInProgress, ""); err != nil {
		return err
	}
	if err := f.setStep(ctx, catalog.StepCopying, c.table); err != nil {
		return err
	}
	src, dst, closeConns, err := f.connect(ctx, "sluice-resync")
	if err != nil {
		return err
	}
	defer closeConns()
	live := c.table.dest
	if c.strategy == strategySwap {
		// Refused for good: the resync fails and the mirror goes on.
		if err := postgres.CheckSwappable(ctx, dst, live); err != nil {
			return err
		}
	}
	if c.state == nil {
		// From here on, a failure is retried: the copy starts over.
		st := connectors.TableState{Table: c.table.source, Stage: connectors.StageCopy, Strategy: c.strategy}
		if err := postgres.PutTableState(ctx, dst, f.meta, f.m.Name, st); err != nil {
			return err
		}
		c.state = &st
	}
	repl, err := f.src.ConnectReplication(ctx, "sluice-resync")
	if err != nil {
		return err
	}
	defer repl.Close(context.Background())
	res, err := pglogrepl.CreateReplicationSlot(ctx, repl, fmt.Sprintf("sluice_resync_%016x", rand.Uint64()), "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Temporary: true, SnapshotAction: "EXPORT_SNAPSHOT"})
	if err != nil {
		return fmt.Errorf("create temporary slot for the copy: %w", err)
	}
	at, err := pglogrepl.ParseLSN(res.ConsistentPoint)
	if err != nil {
		return fmt.Errorf("parse consistent point %q: %w", res.ConsistentPoint, err)
	}
	lsn := uint64(at)
	f.log.InfoContext(ctx, "table resync: copying", "table", name, "strategy", c.strategy, "lsn", catalog.FormatLSN(lsn))
	_ = store.AddEvent(ctx, f.m.Name, "resync", fmt.Sprintf("copying %s (%s) as of %s", name, c.strategy, catalog.FormatLSN(lsn)))

	target := live
	var saved postgres.SavedObjects
	switch c.strategy {
	case strategySwap:
		// A free name, recorded as Sluice's own with the table; the shadow
		// an earlier attempt recorded is dropped, nothing else.
		o, err := postgres.CreateOwnedShadow(ctx, dst, f.meta, f.m.Name, live, f.reserved())
		if errors.Is(err, postgres.ErrNoFreeName) {
			// Refused for good, nothing made: the resync fails.
			if err := postgres.DeleteTableState(ctx, dst, f.meta, f.m.Name, c.table.source); err != nil {
				return err
			}
		}
		if err != nil {
			return err
		}
		target = o.Name
	case strategyTruncate:
		if saved, err = f.emptyTable(ctx, dst, c, live); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown resync strategy %q", c.strategy)
	}
	if err := postgres.ClearTable(ctx, dst, f.meta, f.m.Name, c.table.source); err != nil {
		return err
	}
	one := mirrorTable{source: c.table.source, dest: target, live: live, exclude: c.table.exclude,
		catalog: catalog.MirrorTable{Source: name, Destination: target.String()}}
	if err := f.loadTables(ctx, src, dst, res.SnapshotName, []mirrorTable{one}, []*connectors.TableSchema{ts}); err != nil {
		return err
	}
	if err := f.setStep(ctx, catalog.StepBuildingIndexes, c.table); err != nil {
		return err
	}
	switch c.strategy {
	case strategySwap:
		if err := postgres.BuildShadowIndexes(ctx, dst, live, target); err != nil {
			return err
		}
		if err := postgres.EnsurePrimaryKey(ctx, dst, target, ts); err != nil {
			return err
		}
		// The swapped-in table starts with statistics.
		if err := postgres.AnalyzeTable(ctx, dst, target); err != nil {
			return err
		}
	case strategyTruncate:
		if err := postgres.RestoreSaved(ctx, dst, live, saved); err != nil {
			return err
		}
		if err := postgres.EnsurePrimaryKey(ctx, dst, live, ts); err != nil {
			return err
		}
	}
	st := connectors.TableState{Table: c.table.source, Stage: connectors.StageCatchup, Strategy: c.strategy, Position: postgres.LSNPosition(lsn)}
	if err := postgres.PutTableState(ctx, dst, f.meta, f.m.Name, st); err != nil {
		return err
	}
	if err := postgres.ClearTable(ctx, dst, f.meta, f.m.Name, c.table.source); err != nil {
		return err
	}
	if err := f.setStep(ctx, catalog.StepCatchingUp, c.table); err != nil {
		return err
	}
	return store.AddEvent(ctx, f.m.Name, "resync", fmt.Sprintf("copied %s; applying its changes since %s", name, catalog.FormatLSN(lsn)))
}

// emptyTable prepares a truncate copy: it records the table's indexes and
// the foreign keys that involve it (postgres.SaveObjects), drops them and
// empties the table (postgres.EmptyTable), in one transaction. After a
// crash the record is reused: the table no longer has what it lists.
func (f *flow) emptyTable(ctx context.Context, dst *pgx.Conn, c resyncCopy, live connectors.TableName) (postgres.SavedObjects, error) {
	var saved postgres.SavedObjects
	if c.state.Saved != nil {
		if err := json.Unmarshal(c.state.Saved, &saved); err != nil {
			return saved, fmt.Errorf("decode saved objects of %s: %w", live, err)
		}
	} else {
		var err error
		if saved, err = postgres.SaveObjects(ctx, dst, live); err != nil {
			return saved, err
		}
	}
	raw, err := json.Marshal(saved)
	if err != nil {
		return saved, err
	}
	err = pgx.BeginFunc(ctx, dst, func(tx pgx.Tx) error {
		st := connectors.TableState{Table: c.table.source, Stage: connectors.StageCopy, Strategy: c.strategy, Saved: raw}
		if err := postgres.PutTableState(ctx, tx, f.meta, f.m.Name, st); err != nil {
			return err
		}
		return postgres.EmptyTable(ctx, tx, live, saved)
	})
	return saved, err
}

// finishSwap swaps the caught-up shadow of source table t in for live, in
// one destination transaction that also ends the table's resync, carrying
// soft-deleted rows over first. Readers of live wait for it (it takes an
// exclusive lock) but never see the table missing or empty.
func (f *flow) finishSwap(ctx context.Context, dst *pgx.Conn, t, live connectors.TableName, ts *connectors.TableSchema) error {
	o, has, err := postgres.OwnedShadow(ctx, dst, f.meta, f.m.Name, live)
	if err != nil {
		return err
	}
	if !has {
		return f.shadowLost(ctx, dst, t, live)
	}
	shadow := o.Name
	if err := f.setStepNames(ctx, catalog.StepSwapping, t.String()); err != nil {
		return err
	}
	// Indexes made on the live table since the copy was indexed.
	err = postgres.BuildShadowIndexes(ctx, dst, live, shadow)
	if err != nil && !errors.Is(err, postgres.ErrNoShadow) && !errors.Is(err, postgres.ErrTableNotFound) {
		return fmt.Errorf("index %s before the swap: %w", shadow, err)
	}
	began := time.Now()
	var rep postgres.SwapReport
	err = pgx.BeginFunc(ctx, dst, func(tx pgx.Tx) error {
		if err := postgres.SetLockTimeout(ctx, tx, swapLockTimeout); err != nil {
			return err
		}
		if f.cfg.SoftDeleteColumn != "" {
			if err := postgres.CarrySoftDeleted(ctx, tx, live, shadow, ts.PrimaryKey, f.cfg.SoftDeleteColumn); err != nil {
				return err
			}
		}
		var err error
		if rep, err = postgres.SwapOwned(ctx, tx, o); err != nil {
			return err
		}
		if err := postgres.ForgetOwned(ctx, tx, f.meta, f.m.Name, live); err != nil {
			return err
		}
		return postgres.DeleteTableState(ctx, tx, f.meta, f.m.Name, t)
	})
	took := time.Since(began)
	store := f.ex.cfg.Store
	if errors.Is(err, postgres.ErrNoShadow) {
		return f.shadowLost(ctx, dst, t, live)
	}
	if err != nil {
		_ = store.SetTableResync(ctx, f.m.Name, t.String(), catalog.ResyncFailed, err.Error())
		return fmt.Errorf("swap %s in for %s: %w", shadow, live, err)
	}
	if err := store.SetTableResync(ctx, f.m.Name, t.String(), catalog.ResyncDone, ""); err != nil {
		return err
	}
	msg := fmt.Sprintf("swapped the resynced copy of %s in for %s in %s", t, live, took.Round(time.Millisecond))
	if len(rep.ForeignKeys) > 0 {
		msg += fmt.Sprintf("; foreign keys re-added NOT VALID: %s", strings.Join(rep.ForeignKeys, ", "))
	}
	if len(rep.Views) > 0 {
		msg += fmt.Sprintf("; views recreated: %s", strings.Join(rep.Views, ", "))
	}
	f.log.InfoContext(ctx, "table resync done", "table", t.String(), "swap", took)
	if err := store.AddEvent(ctx, f.m.Name, "resync", msg); err != nil {
		return err
	}
	if len(rep.Validate) > 0 {
		if err := f.setStepNames(ctx, catalog.StepValidatingForeignKeys, t.String()); err != nil {
			return err
		}
	}
	if err := f.validate(ctx, dst, rep.Validate); err != nil {
		return err
	}
	return f.setStepNames(ctx, catalog.StepStreaming, t.String())
}

// shadowLost fails the swap resync of source table t whose shadow table
// (recorded as Sluice's own) is gone or was replaced by another table:
// the changes since the copy went to it, so the table must be copied
// again. A table now at the shadow's name is not Sluice's and is left
// alone.
func (f *flow) shadowLost(ctx context.Context, dst *pgx.Conn, t, live connectors.TableName) error {
	if err := postgres.ForgetOwned(ctx, dst, f.meta, f.m.Name, live); err != nil {
		return err
	}
	if err := postgres.DeleteTableState(ctx, dst, f.meta, f.m.Name, t); err != nil {
		return err
	}
	if err := f.setStepNames(ctx, catalog.StepStreaming, t.String()); err != nil {
		return err
	}
	return f.ex.cfg.Store.SetTableResync(ctx, f.m.Name, t.String(), catalog.ResyncFailed,
		fmt.Sprintf("the shadow table of %s disappeared before the swap; %s misses changes: run RESYNC TABLE %s.%s again", live, live, f.m.Name, t))
}

// swapLockTimeout bounds how long a swap waits for a lock: while it waits,
// readers queue behind it. A swap that times out is retried.
const swapLockTimeout = 5 * time.Second

// validate validates the foreign keys a swap re-added NOT VALID (they
// were valid before), outside the swap's transaction: it takes no lock
// that stops readers or writers. A failure is recorded, not fatal.
func (f *flow) validate(ctx context.Context, dst *pgx.Conn, stmts []string) error {
	return postgres.ValidateForeignKeys(ctx, dst, stmts, func(s string, err error) error {
		return f.ex.cfg.Store.AddEvent(ctx, f.m.Name, "resync", fmt.Sprintf("%s failed: %v", s, err))
	})
}
