package replication

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicedb/sluice/catalog"
)

// Copy progress. A table's rows_copied is the rows of its loaded partitions
// (committed on the destination with their done mark) plus the rows the
// partitions being copied have read so far. The workers count rows as they
// stream; the catalog is written when a partition ends and, in between, at
// most once a progressInterval per table (one UPDATE, not one per row).
// After a crash a load resumes from the destination's done marks: the
// rows of partitions cut off are not counted again, as they were only ever
// in the in-flight part, which the restart drops.

// progressInterval is how often a copy writes its tables' counts to the
// catalog while rows flow.
const progressInterval = time.Second

// tableProgress is the copy progress of one table, shared by the workers
// that copy its partitions and the flusher. Safe for concurrent use.
type tableProgress struct {
	mu    sync.Mutex
	name  string
	total int
	done  int   // partitions loaded
	rows  int64 // rows of the loaded partitions
	// copying holds the rows read so far by each partition being copied.
	copying map[int]*atomic.Int64
	// written is what the catalog was last given (-1: nothing yet).
	written     int64
	writtenDone int
}

// newTableProgress starts the progress of table name, whose plan has total
// partitions, done of them loaded already (index to rows).
func newTableProgress(name string, total int, done map[int]int64) *tableProgress {
	p := &tableProgress{name: name, total: total, copying: map[int]*atomic.Int64{}, written: -1}
	for _, rows := range done {
		p.done++
		p.rows += rows
	}
	return p
}

// inFlight returns the rows read so far by the partitions being copied.
func (p *tableProgress) inFlight() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var n int64
	for _, c := range p.copying {
		n += c.Load()
	}
	return n
}

// begin registers partition part as being copied and returns what its copy
// calls with the rows read so far (connectors.LoadJob.Progress).
func (p *tableProgress) begin(mirror string, part int) func(rows int64) {
	n := new(atomic.Int64)
	p.mu.Lock()
	p.copying[part] = n
	p.mu.Unlock()
	return func(rows int64) {
		n.Store(rows)
		if h := copyRowHook.Load(); h != nil {
			(*h)(mirror, rows)
		}
	}
}

// end records partition part as loaded with rows rows (its exact count,
// never below what it reported while streaming).
func (p *tableProgress) end(part int, rows int64) {
	p.mu.Lock()
	delete(p.copying, part)
	p.done++
	p.rows += rows
	p.mu.Unlock()
}

// flush writes the table's progress to the catalog when it changed since
// the last write. Writes are serialized, so the catalog never goes back.
func (p *tableProgress) flush(ctx context.Context, store *catalog.Store, mirror string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	rows := p.rows
	for _, n := range p.copying {
		rows += n.Load()
	}
	if rows == p.written && p.done == p.writtenDone {
		return nil
	}
	if err := store.SetTableProgress(ctx, mirror, p.name, p.done, rows); err != nil {
		return err
	}
	p.written, p.writtenDone = rows, p.done
	return nil
}

// flushProgress writes the tables' progress every progressInterval until
// stop is called; stop returns once the flusher has ended. A failed write
// is tried again at the next tick: a lasting failure of the catalog fails
// the copy at its next partition's end, which writes too.
func (f *flow) flushProgress(ctx context.Context, tables []*tableProgress) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		tick := time.NewTicker(progressInterval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			for _, p := range tables {
				_ = p.flush(ctx, f.store, f.m.Name)
			}
		}
	}()
	return func() {
		cancel()
		<-ended
	}
}

// copyRowHook, when set, is called after each row a copy reads, with the
// mirror's name and the partition's rows so far, on the copy's goroutine:
// tests slow copies with it. Nil in production.
var copyRowHook atomic.Pointer[func(mirror string, rows int64)]

// stepHook, when set, is called after a table's step is recorded: tests
// hold a step with it to watch it. Nil in production.
var stepHook atomic.Pointer[func(mirror, step string)]

// setStep records that the flow is at step for tables (see
// catalog.SetTableStep).
func (f *flow) setStep(ctx context.Context, step string, tables ...mirrorTable) error {
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = t.source.String()
	}
	return f.setStepNames(ctx, step, names...)
}

// setStepNames is setStep for source table names.
func (f *flow) setStepNames(ctx context.Context, step string, tables ...string) error {
	if err := f.store.SetTableStep(ctx, f.m.Name, step, tables...); err != nil {
		return err
	}
	// At debug level: the steps' times are a table resync's timeline.
	f.log.DebugContext(ctx, "table step", "step", step, "tables", tables)
	if h := stepHook.Load(); h != nil && len(tables) > 0 {
		(*h)(f.m.Name, step)
	}
	return nil
}

// SetCopyRowHook makes every copy call fn after each row it reads (see
// copyRowHook) until restore is called. For tests.
func SetCopyRowHook(fn func(mirror string, rows int64)) (restore func()) {
	old := copyRowHook.Swap(&fn)
	return func() { copyRowHook.Store(old) }
}

// SetStepHook makes the flows call fn after each table step they record
// (see stepHook) until restore is called. For tests.
func SetStepHook(fn func(mirror, step string)) (restore func()) {
	old := stepHook.Swap(&fn)
	return func() { stepHook.Store(old) }
}
