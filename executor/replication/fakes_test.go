package replication

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/sluicedb/sluice/connectors"
)

// Fakes of the seam for flow tests: a source and a destination that keep
// their state in memory, shared by every flow of a test (as a real
// database outlives a Sluice killed mid-step), log every call, and fail
// the calls a test chooses. Several workers call them at once.

// world is the state of a test's fake databases and its call log.
type world struct {
	mu    sync.Mutex
	calls []string
	// fail, when set, may fail a call (by name, e.g. "dst.Load") before
	// it does anything.
	fail func(call string) error

	// Source: tables and their rows (partitions of partSize rows).
	tables   map[connectors.TableName]int // rows
	partSize int
	snapshot int // snapshots made
	prepared map[string]bool

	// Destination.
	created  map[connectors.TableName]bool
	loaded   map[connectors.TableName]map[int]int64 // source table -> partition -> rows
	rows     map[connectors.TableName]map[int]int   // dest table -> partition -> times written
	upserts  int
	applied  connectors.Position
	shadows  map[connectors.TableName]connectors.TableName // live -> shadow
	swapped  []connectors.TableName
	finished map[connectors.TableName]bool

	// stream and applier, when set, make the CDC phase's stream and
	// applier; without them the phase fails.
	stream  func() connectors.Stream
	applier func() connectors.Applier
}

func newWorld(tables map[connectors.TableName]int, partSize int) *world {
	return &world{tables: tables, partSize: partSize, prepared: map[string]bool{},
		created: map[connectors.TableName]bool{}, loaded: map[connectors.TableName]map[int]int64{},
		rows: map[connectors.TableName]map[int]int{}, shadows: map[connectors.TableName]connectors.TableName{},
		finished: map[connectors.TableName]bool{}}
}

// call logs a call and returns the error the test injects for it.
func (w *world) call(name string) error {
	w.mu.Lock()
	w.calls = append(w.calls, name)
	fail := w.fail
	w.mu.Unlock()
	if fail != nil {
		return fail(name)
	}
	return nil
}

// log returns the calls so far, and forgets them.
func (w *world) log() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.calls
	w.calls = nil
	return out
}

// failOnce fails the n-th call (from 1) whose name has prefix, once.
func failOnce(prefix string, n int) func(string) error {
	var mu sync.Mutex
	seen := 0
	return func(call string) error {
		if !strings.HasPrefix(call, prefix) {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		seen++
		if seen == n {
			return fmt.Errorf("injected failure of %s", call)
		}
		return nil
	}
}

// fakePeer is a peer of the FAKE kind: both a source and a destination.
type fakePeer struct {
	w     *world
	ables abilities
}

// abilities chooses the destination abilities a test gives the fake.
type abilities struct {
	swap, finish bool
}

func (p *fakePeer) StoredOptions(given map[string]string) map[string]string { return given }
func (p *fakePeer) Check(context.Context, string) (connectors.PeerCheck, error) {
	return connectors.PeerCheck{}, nil
}

// DefaultSchema implements connectors.SourcePeer.
func (p *fakePeer) DefaultSchema() string { return "public" }

func (p *fakePeer) OpenSource(ctx context.Context, appName string) (connectors.Source, error) {
	if err := p.w.call("src.Open"); err != nil {
		return nil, err
	}
	return &fakeSource{w: p.w}, nil
}

func (p *fakePeer) OpenDestination(ctx context.Context, appName, mirror string) (connectors.Destination, error) {
	if err := p.w.call("dst.Open"); err != nil {
		return nil, err
	}
	d := &fakeDest{w: p.w}
	switch {
	case p.ables.swap && p.ables.finish:
		return &fullDest{&swapDest{d}}, nil
	case p.ables.swap:
		return &swapDest{d}, nil
	case p.ables.finish:
		return &finishDest{d}, nil
	}
	return d, nil
}

type fakeSource struct{ w *world }

var _ connectors.Source = (*fakeSource)(nil)

func (s *fakeSource) Describe(ctx context.Context, table connectors.TableName, exclude []string) (*connectors.TableSchema, error) {
	if err := s.w.call("src.Describe"); err != nil {
		return nil, err
	}
	if _, ok := s.w.tables[table]; !ok {
		return nil, fmt.Errorf("%s: %w", table, connectors.ErrTableNotFound)
	}
	return &connectors.TableSchema{Name: table, Columns: []connectors.Column{{Name: "id", Type: "bigint"}}, PrimaryKey: []string{"id"}}, nil
}

func (s *fakeSource) Prepare(ctx context.Context, spec connectors.StreamSpec, tables []connectors.TableName, replace bool) error {
	if err := s.w.call("src.Prepare"); err != nil {
		return err
	}
	s.w.mu.Lock()
	s.w.prepared[spec.Publication] = true
	s.w.mu.Unlock()
	return nil
}

func (s *fakeSource) StartMirror(ctx context.Context, spec connectors.StreamSpec) (*connectors.Snapshot, error) {
	if err := s.w.call("src.StartMirror"); err != nil {
		return nil, err
	}
	s.w.mu.Lock()
	s.w.snapshot++
	n := s.w.snapshot
	s.w.mu.Unlock()
	return connectors.NewSnapshot(fmt.Sprintf("snap-%d", n), connectors.Position(fmt.Sprintf("%016X", 100*n)), uint64(100*n), func() {}), nil
}

func (s *fakeSource) Plan(ctx context.Context, table connectors.TableName, ts *connectors.TableSchema, rowsPer func(int64) int64) (connectors.PartitionPlan, error) {
	if err := s.w.call("src.Plan"); err != nil {
		return connectors.PartitionPlan{}, err
	}
	rows := s.w.tables[table]
	var plan connectors.PartitionPlan
	for start := 0; start == 0 || start < rows; start += s.w.partSize {
		plan.Partitions = append(plan.Partitions, json.RawMessage(fmt.Sprintf(`{"from":%d}`, start)))
	}
	plan.EstimatedRows = int64(rows)
	return plan, nil
}

func (s *fakeSource) OpenReader(ctx context.Context, snapshot string) (connectors.PartitionReader, error) {
	if err := s.w.call("src.OpenReader"); err != nil {
		return nil, err
	}
	return &fakeReader{w: s.w, snapshot: snapshot}, nil
}

func (s *fakeSource) Stream(ctx context.Context, spec connectors.StreamSpec, from connectors.Position, tables map[connectors.TableName]*connectors.TableSchema) (connectors.Stream, error) {
	if err := s.w.call("src.Stream"); err != nil {
		return nil, err
	}
	if s.w.stream == nil {
		return nil, fmt.Errorf("the test gives no stream")
	}
	return s.w.stream(), nil
}

func (s *fakeSource) CheckStream(ctx context.Context, spec connectors.StreamSpec) error {
	return s.w.call("src.CheckStream")
}

func (s *fakeSource) Teardown(ctx context.Context, spec connectors.StreamSpec) error {
	return s.w.call("src.Teardown")
}

func (s *fakeSource) Close(ctx context.Context) error { return nil }

type fakeReader struct {
	w        *world
	snapshot string
}

func (r *fakeReader) Read(ctx context.Context, table connectors.TableName, ts *connectors.TableSchema, part connectors.Partition, batch int,
	fn func(rows [][]connectors.Value) error, progress func(int64)) (int64, error) {
	if err := r.w.call("reader.Read"); err != nil {
		return 0, err
	}
	var p struct{ From int }
	if err := json.Unmarshal(part, &p); err != nil {
		return 0, err
	}
	n := min(r.w.partSize, r.w.tables[table]-p.From)
	rows := make([][]connectors.Value, n)
	for i := range rows {
		rows[i] = []connectors.Value{{Kind: connectors.Binary, Data: []byte(fmt.Sprint(p.From + i))}}
	}
	if err := fn(rows); err != nil {
		return 0, err
	}
	if progress != nil {
		progress(int64(n))
	}
	return int64(n), nil
}

func (r *fakeReader) Close(ctx context.Context) error { return nil }

type fakeDest struct{ w *world }

var _ connectors.Destination = (*fakeDest)(nil)

func (d *fakeDest) DefaultSchema() string { return "public" }

func (d *fakeDest) Applied(ctx context.Context) (connectors.Position, error) {
	if err := d.w.call("dst.Applied"); err != nil {
		return "", err
	}
	d.w.mu.Lock()
	defer d.w.mu.Unlock()
	return d.w.applied, nil
}

func (d *fakeDest) TableExists(ctx context.Context, table connectors.TableName) (bool, error) {
	d.w.mu.Lock()
	defer d.w.mu.Unlock()
	return d.w.created[table], d.w.call("dst.TableExists")
}

func (d *fakeDest) CreateTable(ctx context.Context, t connectors.DestTable) error {
	if err := d.w.call("dst.CreateTable"); err != nil {
		return err
	}
	d.w.mu.Lock()
	defer d.w.mu.Unlock()
	d.w.created[t.Dest] = true
	return nil
}

func (d *fakeDest) Loaded(ctx context.Context, table connectors.TableName) (map[int]int64, error) {
	if err := d.w.call("dst.Loaded"); err != nil {
		return nil, err
	}
	d.w.mu.Lock()
	defer d.w.mu.Unlock()
	out := map[int]int64{}
	for k, v := range d.w.loaded[table] {
		out[k] = v
	}
	return out, nil
}

func (d *fakeDest) ForgetLoad(ctx context.Context, table connectors.TableName) error {
	if err := d.w.call("dst.ForgetLoad"); err != nil {
		return err
	}
	d.w.mu.Lock()
	defer d.w.mu.Unlock()
	if table == (connectors.TableName{}) {
		d.w.loaded = map[connectors.TableName]map[int]int64{}
	} else {
		delete(d.w.loaded, table)
	}
	return nil
}

func (d *fakeDest) OpenLoader(ctx context.Context) (connectors.Loader, error) {
	if err := d.w.call("dst.OpenLoader"); err != nil {
		return nil, err
	}
	return &fakeLoader{w: d.w}, nil
}

func (d *fakeDest) NewApplier(ctx context.Context, tables []connectors.DestTable) (connectors.Applier, error) {
	if err := d.w.call("dst.NewApplier"); err != nil {
		return nil, err
	}
	if d.w.applier == nil {
		return nil, fmt.Errorf("the test gives no applier")
	}
	return d.w.applier(), nil
}

func (d *fakeDest) Teardown(ctx context.Context, drop []connectors.TableName) (connectors.Pending, error) {
	return connectors.Pending{Commit: func(context.Context) error { return nil }, Abort: func() {}}, d.w.call("dst.Teardown")
}

func (d *fakeDest) Dependents(ctx context.Context, tables []connectors.TableName) ([]string, error) {
	return nil, d.w.call("dst.Dependents")
}

func (d *fakeDest) Close(ctx context.Context) error { return nil }

type fakeLoader struct{ w *world }

// Load writes the partition's rows and its done mark at once, as a
// transactional destination does: a failed Load leaves neither.
func (l *fakeLoader) Load(ctx context.Context, r connectors.PartitionReader, job connectors.LoadJob) (int64, error) {
	if err := l.w.call("dst.Load"); err != nil {
		return 0, err
	}
	var n int64
	rows, err := r.Read(ctx, job.Table.Source, job.Table.Schema, job.Partition, 1000, func(rows [][]connectors.Value) error {
		n += int64(len(rows))
		return nil
	}, job.Progress)
	if err != nil {
		return 0, err
	}
	l.w.mu.Lock()
	defer l.w.mu.Unlock()
	if l.w.rows[job.Table.Dest] == nil {
		l.w.rows[job.Table.Dest] = map[int]int{}
	}
	l.w.rows[job.Table.Dest][job.Index]++
	if l.w.loaded[job.Table.Source] == nil {
		l.w.loaded[job.Table.Source] = map[int]int64{}
	}
	l.w.loaded[job.Table.Source][job.Index] = rows
	if job.Upsert {
		l.w.upserts++
	}
	return rows, nil
}

func (l *fakeLoader) Close(ctx context.Context) error { return nil }

// swapDest is a fake destination with ShadowSwapper.
type swapDest struct{ *fakeDest }

var _ connectors.ShadowSwapper = (*swapDest)(nil)

func (d *swapDest) CreateShadow(ctx context.Context, t connectors.DestTable, reserved []connectors.TableName) (connectors.TableName, error) {
	if err := d.w.call("dst.CreateShadow"); err != nil {
		return connectors.TableName{}, err
	}
	d.w.mu.Lock()
	defer d.w.mu.Unlock()
	shadow := connectors.TableName{Schema: t.Dest.Schema, Name: t.Dest.Name + "_resync"}
	d.w.shadows[t.Dest] = shadow
	d.w.created[shadow] = true
	return shadow, nil
}

func (d *swapDest) Shadows(ctx context.Context) (map[connectors.TableName]connectors.TableName, error) {
	if err := d.w.call("dst.Shadows"); err != nil {
		return nil, err
	}
	d.w.mu.Lock()
	defer d.w.mu.Unlock()
	out := map[connectors.TableName]connectors.TableName{}
	for k, v := range d.w.shadows {
		out[k] = v
	}
	return out, nil
}

func (d *swapDest) CheckSwappable(ctx context.Context, live connectors.TableName) error {
	return d.w.call("dst.CheckSwappable")
}

// SwapIn swaps all or none, as a transactional destination does.
func (d *swapDest) SwapIn(ctx context.Context, swaps []connectors.Swap) (connectors.SwapReport, error) {
	if err := d.w.call("dst.SwapIn"); err != nil {
		return connectors.SwapReport{}, err
	}
	d.w.mu.Lock()
	defer d.w.mu.Unlock()
	have := 0
	for _, s := range swaps {
		if _, ok := d.w.shadows[s.Table.Dest]; ok {
			have++
		}
	}
	if have == 0 {
		return connectors.SwapReport{}, nil // done before
	}
	if have < len(swaps) {
		return connectors.SwapReport{}, fmt.Errorf("swap: %w", connectors.ErrShadowLost)
	}
	for _, s := range swaps {
		delete(d.w.shadows, s.Table.Dest)
		d.w.swapped = append(d.w.swapped, s.Table.Dest)
	}
	sort.Slice(d.w.swapped, func(i, j int) bool { return d.w.swapped[i].String() < d.w.swapped[j].String() })
	return connectors.SwapReport{}, nil
}

// finishDest is a fake destination with LoadFinisher.
type finishDest struct{ *fakeDest }

var _ connectors.LoadFinisher = (*finishDest)(nil)

func (d *finishDest) PrepareUpsert(ctx context.Context, t connectors.DestTable) error {
	return d.w.call("dst.PrepareUpsert")
}

func (d *finishDest) FinishLoad(ctx context.Context, t connectors.DestTable, live connectors.TableName) error {
	if err := d.w.call("dst.FinishLoad"); err != nil {
		return err
	}
	d.w.mu.Lock()
	defer d.w.mu.Unlock()
	d.w.finished[t.Dest] = true
	return nil
}

// fullDest is a fake destination with ShadowSwapper and LoadFinisher.
type fullDest struct{ *swapDest }

var _ connectors.LoadFinisher = (*fullDest)(nil)

func (d *fullDest) PrepareUpsert(ctx context.Context, t connectors.DestTable) error {
	return (&finishDest{d.fakeDest}).PrepareUpsert(ctx, t)
}

func (d *fullDest) FinishLoad(ctx context.Context, t connectors.DestTable, live connectors.TableName) error {
	return (&finishDest{d.fakeDest}).FinishLoad(ctx, t, live)
}
