package replication

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/internal/pgcluster"
)

// The flows' order of steps, their resumption after a crash at any call,
// and the errors for missing abilities, against the fakes of fakes_test.go
// and a real catalog. End-to-end tests on real databases are in executor.

// catalogCluster holds the tests' catalogs, a database each. (The
// testbed package imports the executor, which imports this package: the
// cluster is made here with pgcluster.)
var catalogCluster *pgcluster.Cluster

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sluice-test-replication-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	catalogCluster, err = pgcluster.New(pgcluster.Config{Dir: filepath.Join(dir, "data"), Password: "testpw",
		Settings: map[string]string{"fsync": "off", "synchronous_commit": "off", "max_connections": "200"}})
	if err == nil {
		err = catalogCluster.Init(ctx)
	}
	if err == nil {
		err = catalogCluster.Start(ctx)
	}
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start catalog cluster:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	_ = catalogCluster.Stop()
	os.RemoveAll(dir)
	os.Exit(code)
}

var dbSeq atomic.Int64

// newCatalogDB creates a database for t's catalog, dropped when t ends.
func newCatalogDB(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	name := fmt.Sprintf("catalog_%d", dbSeq.Add(1))
	conn, err := pgx.Connect(ctx, catalogCluster.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), catalogCluster.URL("postgres"))
		if err == nil {
			_, _ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			conn.Close(context.Background())
		}
	})
	return catalogCluster.URL(name)
}

var (
	usersTable  = connectors.TableName{Schema: "public", Name: "users"}
	ordersTable = connectors.TableName{Schema: "public", Name: "orders"}
)

// bed is a test's engine on a fresh catalog, with a mirror "m" of users
// (10 rows) and orders (25 rows) between two FAKE peers.
type bed struct {
	t     *testing.T
	w     *world
	e     *Engine
	store *catalog.Store
}

// openStore opens a catalog in a new database, with a random key; it is
// closed when the test ends.
func openStore(t *testing.T) *catalog.Store {
	t.Helper()
	key := make([]byte, catalog.KeySize)
	_, _ = rand.Read(key)
	store, err := catalog.Open(context.Background(), newCatalogDB(t), key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	return store
}

func newBed(t *testing.T, ables abilities, opts map[string]string) *bed {
	t.Helper()
	ctx := context.Background()
	store := openStore(t)
	w := newWorld(map[connectors.TableName]int{usersTable: 10, ordersTable: 25}, 10)
	kinds, err := connectors.NewRegistry(connectors.Kind{Type: "FAKE", Name: "Fake", Source: true, Destination: true,
		Parse: func(map[string]string) (connectors.Peer, error) { return &fakePeer{w: w, ables: ables}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Config{Store: store, Kinds: kinds, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"src", "dst"} {
		if err := store.CreatePeer(ctx, catalog.Peer{Name: p, Type: "FAKE", Options: map[string]string{}}); err != nil {
			t.Fatal(err)
		}
	}
	options := map[string]string{"do_initial_copy": "true", "publication_name": "sluice_m", "replication_slot_name": "sluice_m",
		"snapshot_num_rows_per_partition": "10", "snapshot_max_parallel_workers": "2", "snapshot_num_tables_in_parallel": "1",
		"max_batch_size": "1000", "sync_interval": "1", "resync_strategy": "truncate"}
	for k, v := range opts {
		options[k] = v
	}
	err = store.CreateMirror(ctx, catalog.Mirror{Name: "m", SourcePeer: "src", DestinationPeer: "dst", Options: options,
		Tables: []catalog.MirrorTable{{Source: "public.users", Destination: "public.users"}, {Source: "public.orders", Destination: "public.orders"}}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return &bed{t: t, w: w, e: e, store: store}
}

// step runs the mirror's current step once, as a runner freshly started
// does: nothing is carried over from an earlier step but the catalog and
// the fake databases.
func (b *bed) step() error {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := b.store.GetMirror(ctx, "m")
	if err != nil {
		b.t.Fatal(err)
	}
	f := &flow{e: b.e, store: b.store, m: m, opt: ParseOptions(m.Options), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	return f.step(ctx)
}

func (b *bed) mirror() catalog.Mirror {
	b.t.Helper()
	m, err := b.store.GetMirror(context.Background(), "m")
	if err != nil {
		b.t.Fatal(err)
	}
	return m
}

// stepUntil steps until the mirror is in phase, at most n steps; failing
// steps are what a crash leaves, and are retried like the supervisor does.
func (b *bed) stepUntil(phase string, n int) {
	b.t.Helper()
	var errs []error
	for range n {
		if m := b.mirror(); m.Phase == phase {
			return
		}
		if err := b.step(); err != nil {
			errs = append(errs, err)
		}
	}
	if m := b.mirror(); m.Phase != phase {
		b.t.Fatalf("mirror is in %s after %d steps, want %s; errors: %v", m.Phase, n, phase, errs)
	}
}

// checkLoadedOnce fails unless every partition of both tables was written
// once into dest(table).
func (b *bed) checkLoadedOnce(dest func(connectors.TableName) connectors.TableName) {
	b.t.Helper()
	for table, parts := range map[connectors.TableName]int{usersTable: 1, ordersTable: 3} {
		got := b.w.rows[dest(table)]
		if len(got) != parts {
			b.t.Errorf("%s: %d partitions written, want %d (%v)", dest(table), len(got), parts, got)
		}
		for p, n := range got {
			if n != 1 {
				b.t.Errorf("%s partition %d written %d times", dest(table), p, n)
			}
		}
		if len(b.w.loaded[table]) != parts {
			b.t.Errorf("%s: %d partitions recorded loaded, want %d", table, len(b.w.loaded[table]), parts)
		}
	}
}

func same(t connectors.TableName) connectors.TableName { return t }

func TestFlowSetupLoadsThenStreams(t *testing.T) {
	b := newBed(t, abilities{finish: true}, nil)
	if err := b.step(); err != nil {
		t.Fatal(err)
	}
	m := b.mirror()
	if m.Phase != catalog.PhaseCDC {
		t.Fatalf("phase %s, want CDC", m.Phase)
	}
	if m.ConsistentPosition != "0000000000000064" {
		t.Errorf("consistent position %q, want the snapshot's", m.ConsistentPosition)
	}
	b.checkLoadedOnce(same)
	if b.w.upserts != 0 {
		t.Errorf("%d partitions upserted by a load that was not resumed", b.w.upserts)
	}
	if !b.w.finished[usersTable] || !b.w.finished[ordersTable] {
		t.Errorf("FinishLoad not called for every table: %v", b.w.finished)
	}
	// The order of the first calls: the stream is prepared and the tables
	// made before the slot, whose snapshot the load then reads.
	want := []string{"src.Open", "dst.Open", "src.Prepare", "dst.Applied", "src.Describe", "dst.CreateTable",
		"src.Describe", "dst.CreateTable", "src.StartMirror", "src.Open", "dst.Open", "src.Describe", "src.Describe", "src.Plan", "dst.Loaded"}
	// (The source and the destination connect at the same time: either
	// may come first.)
	got := strings.ReplaceAll(strings.Join(b.w.log()[:len(want)], " "), "dst.Open src.Open", "src.Open dst.Open")
	if got != strings.Join(want, " ") {
		t.Errorf("calls\n got %v\nwant %v", got, want)
	}
	for _, mt := range m.Tables {
		if mt.Status != "running" || mt.PartitionsDone != mt.PartitionsTotal || mt.RowsCopied != mt.RowsEstimated {
			t.Errorf("%s: status %q, %d/%d partitions, %d/%d rows", mt.Source, mt.Status, mt.PartitionsDone, mt.PartitionsTotal,
				mt.RowsCopied, mt.RowsEstimated)
		}
	}
}

// TestFlowResumesAfterCrashAtEveryCall fails each call of a mirror's
// setup and load in turn, once, as a crash there would, and checks that
// the steps that follow bring the mirror to CDC with every partition
// loaded exactly once.
func TestFlowResumesAfterCrashAtEveryCall(t *testing.T) {
	clean := newBed(t, abilities{finish: true}, nil)
	if err := clean.step(); err != nil {
		t.Fatal(err)
	}
	calls := len(clean.w.log())
	for k := 1; k <= calls; k++ {
		t.Run(fmt.Sprint(k), func(t *testing.T) {
			b := newBed(t, abilities{finish: true}, nil)
			b.w.fail = failOnce("", k)
			b.stepUntil(catalog.PhaseCDC, 4)
			b.checkLoadedOnce(same)
		})
	}
}

func TestFlowResumedLoadUpserts(t *testing.T) {
	b := newBed(t, abilities{finish: true}, nil)
	b.w.fail = failOnce("dst.Load", 2)
	if err := b.step(); err == nil {
		t.Fatal("the step did not fail")
	}
	if m := b.mirror(); m.Phase != catalog.PhaseSnapshot {
		t.Fatalf("phase %s after a failed load, want SNAPSHOT", m.Phase)
	}
	b.stepUntil(catalog.PhaseCDC, 2)
	b.checkLoadedOnce(same)
	if b.w.upserts == 0 {
		t.Error("the resumed load did not upsert")
	}
	if got := b.w.snapshot; got != 1 {
		t.Errorf("%d slots made, want 1: a resumed load keeps the mirror's", got)
	}
}

func TestFlowMissingAbility(t *testing.T) {
	b := newBed(t, abilities{}, nil)
	b.stepUntil(catalog.PhaseCDC, 1)
	if err := b.store.StartMirrorResync(context.Background(), "m"); err != nil {
		t.Fatal(err)
	}
	err := b.step()
	if !NeedsUser(err) || !strings.Contains(err.Error(), "RESYNC MIRROR is not supported for FAKE destinations") {
		t.Fatalf("err = %v, want the missing ability named, needing the user", err)
	}
}

// resyncedToTheSwap returns a bed whose mirror streamed, then ran a full
// resync up to its swap, which failed once: the mirror waits in RESYNC,
// its shadow tables loaded.
func resyncedToTheSwap(t *testing.T) *bed {
	t.Helper()
	b := newBed(t, abilities{swap: true, finish: true}, nil)
	b.stepUntil(catalog.PhaseCDC, 1)
	if err := b.store.StartMirrorResync(context.Background(), "m"); err != nil {
		t.Fatal(err)
	}
	b.w.fail = failOnce("dst.SwapIn", 1)
	if err := b.step(); err == nil {
		t.Fatal("the step did not fail")
	}
	if m := b.mirror(); m.Phase != catalog.PhaseResync {
		t.Fatalf("phase %s after a failed swap, want RESYNC", m.Phase)
	}
	return b
}

func TestFlowFullResyncSwapsShadows(t *testing.T) {
	b := resyncedToTheSwap(t)
	b.stepUntil(catalog.PhaseCDC, 1)
	shadow := func(t connectors.TableName) connectors.TableName {
		return connectors.TableName{Schema: t.Schema, Name: t.Name + "_resync"}
	}
	b.checkLoadedOnce(shadow)
	if got := connectors.JoinNames(b.w.swapped); got != "public.orders, public.users" {
		t.Errorf("swapped %q, want both tables", got)
	}
	if !b.w.finished[shadow(usersTable)] {
		t.Error("the shadow tables were not finished (indexes, key) before the swap")
	}
	if b.w.snapshot != 2 {
		t.Errorf("%d slots made, want 2: a full resync makes the stream anew", b.w.snapshot)
	}
	if m := b.mirror(); m.Resync != "" {
		t.Errorf("resync %q still under way", m.Resync)
	}
}

func TestFlowFullResyncLostShadowStartsOver(t *testing.T) {
	b := resyncedToTheSwap(t)
	// Someone drops one shadow table while the mirror waits to swap.
	b.w.mu.Lock()
	delete(b.w.shadows, usersTable)
	b.w.mu.Unlock()
	err := b.step()
	if err == nil || !strings.Contains(err.Error(), "the resync starts over") {
		t.Fatalf("err = %v, want the resync started over", err)
	}
	if m := b.mirror(); m.Phase != catalog.PhaseSetup {
		t.Fatalf("phase %s, want SETUP", m.Phase)
	}
	if len(b.w.swapped) != 0 {
		t.Errorf("swapped %v with a shadow missing", b.w.swapped)
	}
	b.stepUntil(catalog.PhaseCDC, 1)
	if got := connectors.JoinNames(b.w.swapped); got != "public.orders, public.users" {
		t.Errorf("swapped %q after starting over, want both tables", got)
	}
}

// idleStream is a stream with nothing to send, and an applier that never
// needs to open a transaction.
func idleStream(w *world) {
	w.stream = func() connectors.Stream {
		return &fakeStream{read: func(ctx context.Context, buf []connectors.Event, max int, wait time.Duration) ([]connectors.Event, error) {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(wait):
				return buf, nil
			}
		}}
	}
	w.applier = func() connectors.Applier {
		return &fakeApplier{inTx: func() bool { return false }, rollback: func(context.Context) error { return nil }}
	}
}

// TestFlowTableResyncRefusedWithoutAbility asks for a RESYNC TABLE on a
// destination that can run none: the streaming mirror fails the request,
// naming the peer type, and goes on streaming.
func TestFlowTableResyncRefusedWithoutAbility(t *testing.T) {
	b := newBed(t, abilities{}, nil)
	idleStream(b.w)
	b.stepUntil(catalog.PhaseCDC, 1)
	ctx := context.Background()
	if err := b.store.StartTableResync(ctx, "m", "public.users", StrategySwap, nil); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		m, err := b.store.GetMirror(cctx, "m")
		if err != nil {
			done <- err
			return
		}
		f := &flow{e: b.e, store: b.store, m: m, opt: ParseOptions(m.Options), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
		done <- f.step(cctx)
	}()
	deadline := time.Now().Add(20 * time.Second)
	var mt catalog.MirrorTable
	for time.Now().Before(deadline) {
		mt = b.mirror().Tables[0]
		if mt.ResyncStatus == catalog.ResyncFailed {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("the stream stopped: %v", err)
	}
	if mt.ResyncStatus != catalog.ResyncFailed {
		t.Fatalf("resync of %s is %q, want failed", mt.Source, mt.ResyncStatus)
	}
	if m := b.mirror(); m.Phase != catalog.PhaseCDC || m.Error != "" {
		t.Errorf("mirror in %s with error %q: the refusal must not stop it", m.Phase, m.Error)
	}
	var msg string
	err := b.store.Pool().QueryRow(ctx, `SELECT coalesce(resync_error, '') FROM sluice.mirror_tables WHERE mirror = 'm' AND source_table = 'public.users'`).Scan(&msg)
	if err != nil || !strings.Contains(msg, "RESYNC TABLE is not supported for FAKE destinations") {
		t.Errorf("resync_error = %q, %v; want the missing ability named", msg, err)
	}
}

// TestFlowFullResyncSwappedBeforeACrash resumes a full resync whose swap
// committed on the destination before Sluice died (every shadow's record
// gone with it): the resync finishes rather than starting over.
func TestFlowFullResyncSwappedBeforeACrash(t *testing.T) {
	b := resyncedToTheSwap(t)
	// The swap commits, and Sluice dies before it records so.
	b.w.mu.Lock()
	for live := range b.w.shadows {
		b.w.swapped = append(b.w.swapped, live)
		delete(b.w.shadows, live)
	}
	b.w.mu.Unlock()
	if err := b.step(); err != nil {
		t.Fatalf("resumed swap: %v", err)
	}
	m := b.mirror()
	if m.Phase != catalog.PhaseCDC || m.Resync != "" {
		t.Fatalf("phase %s, resync %q: want the resync finished", m.Phase, m.Resync)
	}
	if b.w.snapshot != 2 {
		t.Errorf("%d slots made, want 2: the resync must not start over", b.w.snapshot)
	}
}
