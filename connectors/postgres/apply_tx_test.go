package postgres_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/postgres"
)

// Tests of the applier's transactions: Begin, Add in chunks, Commit and
// Rollback.

// applyChunked applies b like Apply, but with Add called on pieces of it
// cut at the given change indexes (several pieces per call when many).
func applyChunked(t testing.TB, a *postgres.Applier, b *connectors.Batch, cuts ...int) map[connectors.TableName]postgres.TableCounts {
	t.Helper()
	ctx := testCtx(t)
	if _, err := a.Begin(ctx); err != nil {
		t.Fatalf("begin: %v", err)
	}
	var pieces [][]connectors.Change
	from := 0
	for _, c := range append(cuts, len(b.Changes)) {
		pieces = append(pieces, b.Changes[from:c])
		from = c
	}
	for len(pieces) > 0 {
		n := 1
		if len(pieces) > 3 {
			n = 2 // Add takes several slices at once too
		}
		if err := a.Add(ctx, pieces[:n]...); err != nil {
			t.Fatalf("add: %v", err)
		}
		pieces = pieces[n:]
	}
	counts, err := a.Commit(ctx, b.End)
	if err != nil {
		t.Fatalf("commit: %v", err)
	}
	return counts
}

// chunkHistory is a batch whose changes depend on each other across any
// cut: TOAST-less updates and key changes of rows written earlier in the
// batch, re-inserts, a truncate, and more rows than a staging table holds
// before it is emptied.
func chunkHistory(f *apFixture, other *apFixture) []connectors.Change {
	var cs []connectors.Change
	for i := 1; i <= 6000; i++ {
		cs = append(cs, f.ins(i, fmt.Sprintf("n%d", i), fmt.Sprintf("t%d", i)))
	}
	cs = append(cs, other.ins(1, "o1"), other.ins(2, "o2"))
	for i := 1; i <= 6000; i += 3 {
		cs = append(cs, f.upd(i, fmt.Sprintf("u%d", i), apUnch))
	}
	for i := 2; i <= 600; i += 3 {
		// Moves to a free key keeping the TOAST column of the old row.
		cs = append(cs, f.move([]any{i}, 10000+i, fmt.Sprintf("m%d", i), apUnch))
	}
	for i := 3; i <= 300; i += 3 {
		cs = append(cs, f.del(i), f.ins(i, "again", apUnch), f.upd(i, apUnch, "t-again"))
	}
	cs = append(cs, other.trunc(), other.ins(3, "o3"))
	for i := 4000; i <= 6000; i++ {
		cs = append(cs, f.upd(i, fmt.Sprintf("v%d", i), fmt.Sprintf("w%d", i)))
	}
	cs = append(cs, f.move([]any{10002}, 2, "back", apUnch), f.del(5999), f.upd(5999, "ghost", apUnch))
	return cs
}

func TestApplyChunkedEqualsOneShot(t *testing.T) {
	const sql = "SELECT i::text FROM public.items i ORDER BY id"
	const otherSQL = "SELECT o::text FROM public.other o ORDER BY k"
	one := connect(t, dstCluster.NewDB(t))
	f1, o1 := newItems(t, one, "", ""), newOther(t, one)
	b := &connectors.Batch{Changes: chunkHistory(f1, o1), End: postgres.LSNPosition(0x100)}
	wantCounts := mustApply(t, newApplier(t, one, "m", f1, o1), b)
	want, wantOther := textRows(t, one, sql), textRows(t, one, otherSQL)
	if len(want) != 5999 {
		t.Fatalf("one-shot apply left %d rows", len(want))
	}

	rng := rand.New(rand.NewPCG(7, 7))
	n := len(b.Changes)
	for _, tc := range []struct {
		name string
		cuts []int
	}{
		{"halves", []int{n / 2}},
		{"every 1000", func() (c []int) {
			for i := 1000; i < n; i += 1000 {
				c = append(c, i)
			}
			return c
		}()},
		{"random", func() []int {
			c := []int{0, 1, n - 1, n}
			for range 12 {
				c = append(c, rng.IntN(n))
			}
			slices.Sort(c)
			return c
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := connect(t, dstCluster.NewDB(t))
			f, o := newItems(t, conn, "", ""), newOther(t, conn)
			counts := applyChunked(t, newApplier(t, conn, "m", f, o), &connectors.Batch{Changes: chunkHistory(f, o), End: postgres.LSNPosition(0x100)}, tc.cuts...)
			if got := textRows(t, conn, sql); !slices.Equal(got, want) {
				t.Errorf("items differ from the one-shot apply: %d rows, want %d; first difference %s", len(got), len(want), firstDiff(got, want))
			}
			wantRows(t, conn, otherSQL, wantOther...)
			if counts[f.dt.Source] != wantCounts[f1.dt.Source] || counts[o.dt.Source] != wantCounts[o1.dt.Source] {
				t.Errorf("counts %v, want %v", counts, wantCounts)
			}
			if got := lastLSN(t, conn, "m"); got != 0x100 {
				t.Errorf("recorded lsn %X, want 100", got)
			}
		})
	}
}

func firstDiff(a, b []string) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Sprintf("%q vs %q", a[i], b[i])
		}
	}
	return "(one is a prefix of the other)"
}

func TestApplyRollback(t *testing.T) {
	conn := connect(t, dstCluster.NewDB(t))
	f := newItems(t, conn, "", "")
	a := newApplier(t, conn, "m", f)
	ctx := testCtx(t)
	var g apBatches

	// The first transaction creates the staging table; rolled back, it
	// leaves nothing, and the next one creates it again.
	if _, err := a.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Add(ctx, []connectors.Change{f.ins(1, "a", "x"), f.ins(2, "b", "y")}); err != nil {
		t.Fatal(err)
	}
	if err := a.Add(ctx, []connectors.Change{f.upd(1, "a2", apUnch)}); err != nil {
		t.Fatal(err)
	}
	if !a.InTx() {
		t.Fatal("no transaction open after Add")
	}
	if err := a.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Rollback(ctx); err != nil {
		t.Errorf("second rollback: %v", err)
	}
	wantRows(t, conn, itemsSQL)
	if got := lastLSN(t, conn, "m"); got != 0 {
		t.Errorf("recorded lsn %X after a rollback", got)
	}
	mustApply(t, a, g.next(f.ins(3, "c", "z")))
	wantRows(t, conn, itemsSQL, "(3,c,z)")

	// A failing Add rolls the whole transaction back.
	if _, err := a.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Add(ctx, []connectors.Change{f.ins(4, "d", "w")}); err != nil {
		t.Fatal(err)
	}
	if err := a.Add(ctx, []connectors.Change{f.ins(nil, "bad", "key")}); err == nil || !strings.Contains(err.Error(), "change 1 ") {
		t.Fatalf("add of a null key: err = %v, want it to name change 1", err)
	}
	if a.InTx() {
		t.Error("transaction still open after a failed Add")
	}
	wantRows(t, conn, itemsSQL, "(3,c,z)")

	// Misuse.
	if err := a.Add(ctx, []connectors.Change{f.ins(5, "e", "v")}); err == nil {
		t.Error("Add without Begin succeeded")
	}
	if _, err := a.Commit(ctx, postgres.LSNPosition(0x1000)); err == nil {
		t.Error("Commit without Begin succeeded")
	}
	if _, err := a.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Begin(ctx); err == nil {
		t.Error("second Begin succeeded")
	}
	if _, err := a.Commit(ctx, ""); err == nil {
		t.Error("Commit without a position succeeded")
	}
	if a.InTx() {
		t.Error("transaction still open after a failed Commit")
	}
}

// TestApplyCommitAppliedBefore: a transaction ending at or before the
// recorded position is rolled back at Commit, whatever was added.
func TestApplyCommitAppliedBefore(t *testing.T) {
	conn := connect(t, dstCluster.NewDB(t))
	f := newItems(t, conn, "", "")
	a := newApplier(t, conn, "m", f)
	var g apBatches
	mustApply(t, a, g.next(f.ins(1, "a", "x")))
	counts := applyChunked(t, a, &connectors.Batch{Changes: []connectors.Change{f.upd(1, "again", "x"), f.ins(2, "b", "y")},
		End: postgres.LSNPosition(g.lsn)}, 1)
	if len(counts) != 0 {
		t.Errorf("counts %v for a transaction applied before", counts)
	}
	wantRows(t, conn, itemsSQL, "(1,a,x)")
}

// TestApplyChunkedReplay: when a later chunk finds a row the fast path
// took for new (a replay), the whole transaction is applied again in safe
// mode, earlier chunks included.
func TestApplyChunkedReplay(t *testing.T) {
	conn := connect(t, dstCluster.NewDB(t))
	f := newItems(t, conn, "_deleted", "_synced")
	a := newApplier(t, conn, "m", f)
	var g apBatches
	mustApply(t, a, g.next(f.ins(5, "old", "o")))
	mustExec(t, conn, "INSERT INTO public.items (id, name, note) VALUES (3, 'stale', 's')")
	b := g.next(f.ins(1, "a", "x"), f.ins(2, "b", "y"), f.del(5), f.ins(3, "c", "z"), f.ins(4, "d", "w"), f.upd(1, "a2", apUnch))
	counts := applyChunked(t, a, b, 3, 5)
	if want := (postgres.TableCounts{Inserts: 4, Updates: 1, Deletes: 1}); counts[f.dt.Source] != want {
		t.Errorf("counts %+v, want %+v", counts[f.dt.Source], want)
	}
	wantRows(t, conn, "SELECT format('%s,%s,%s,%s', id, name, note, _deleted) FROM public.items ORDER BY id",
		"1,a2,x,f", "2,b,y,f", "3,c,z,f", "4,d,w,f", "5,old,o,t")
	wantRows(t, conn, "SELECT count(DISTINCT _synced)::text FROM public.items WHERE id <> 3", "1")
}

// TestApplyCommitTables: CommitTables records and forgets table resync
// states in the batch's transaction, and commits a batch ending before the
// recorded position (a table catching up) without moving the position
// back; a failed record rolls everything back.
func TestApplyCommitTables(t *testing.T) {
	ctx := testCtx(t)
	conn := connect(t, dstCluster.NewDB(t))
	f := newItems(t, conn, "", "")
	a := newApplier(t, conn, "m", f)
	var g apBatches
	mustApply(t, a, g.next(f.ins(1, "a", "x")))
	mustApply(t, a, g.next(f.ins(2, "b", "y"))) // recorded: 0x200
	other := connectors.TableName{Schema: "src", Name: "other"}
	if err := postgres.PutTableState(ctx, conn, "", "m", connectors.TableState{Table: other, Stage: connectors.StageCatchup,
		Strategy: "truncate", Position: postgres.LSNPosition(0x80)}); err != nil {
		t.Fatal(err)
	}

	if _, err := a.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Add(ctx, []connectors.Change{f.ins(3, "c", "z")}); err != nil {
		t.Fatal(err)
	}
	put := []connectors.TableState{{Table: f.dt.Source, Stage: connectors.StageSwap, Strategy: "swap", Position: postgres.LSNPosition(0x180)}}
	if _, err := a.CommitTables(ctx, postgres.LSNPosition(0x180), put, []connectors.TableName{other}); err != nil {
		t.Fatal(err)
	}
	wantRows(t, conn, itemsSQL, "(1,a,x)", "(2,b,y)", "(3,c,z)")
	states, err := postgres.TableStates(ctx, conn, "", "m")
	if err != nil {
		t.Fatal(err)
	}
	if st, ok := states[f.dt.Source]; len(states) != 1 || !ok || st.Stage != connectors.StageSwap || st.Position != postgres.LSNPosition(0x180) {
		t.Errorf("table states %+v, want only %s at swap, 0x180", states, f.dt.Source)
	}
	if pos, _, err := postgres.LastPosition(ctx, conn, "", "m"); err != nil || pos != postgres.LSNPosition(0x200) {
		t.Errorf("mirror position %s (%v), want 0x200: it never moves back", pos, err)
	}

	// A state that cannot be recorded (what it saved is not JSON) fails the
	// commit and leaves nothing behind.
	if _, err := a.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Add(ctx, []connectors.Change{f.ins(4, "d", "w")}); err != nil {
		t.Fatal(err)
	}
	bad := []connectors.TableState{{Table: f.dt.Source, Stage: connectors.StageCatchup, Strategy: "swap",
		Position: postgres.LSNPosition(0x300), Saved: json.RawMessage("{")}}
	if _, err := a.CommitTables(ctx, postgres.LSNPosition(0x300), bad, nil); err == nil {
		t.Fatal("CommitTables with an unrecordable state succeeded")
	}
	if a.InTx() {
		t.Error("transaction still open after a failed CommitTables")
	}
	wantRows(t, conn, itemsSQL, "(1,a,x)", "(2,b,y)", "(3,c,z)")
}

// TestApplyGuardedReplay: past the changes the applier keeps for a redo, a
// flush that finds a row its fast path took for new goes back to its
// savepoint and flushes again in safe mode; earlier chunks stay applied,
// and the applier kept nothing of the slices it was given (they are
// overwritten after each Add).
func TestApplyGuardedReplay(t *testing.T) {
	for _, retain := range []int{0, 2, 1000} {
		t.Run(fmt.Sprint("retain ", retain), func(t *testing.T) {
			ctx := testCtx(t)
			conn := connect(t, dstCluster.NewDB(t))
			f := newItems(t, conn, "_deleted", "_synced")
			a := newApplier(t, conn, "m", f)
			postgres.SetRetainChanges(a, retain)
			var g apBatches
			mustApply(t, a, g.next(f.ins(5, "old", "o")))
			mustExec(t, conn, "INSERT INTO public.items (id, name, note) VALUES (3, 'stale', 's'), (7, 'stale', 's')")
			b := g.next(f.ins(1, "a", "x"), f.ins(2, "b", "y"), f.del(5), f.ins(3, "c", "z"), f.ins(4, "d", "w"),
				f.upd(1, "a2", apUnch), f.ins(6, "e", "v"), f.ins(7, "g", "u"))
			if _, err := a.Begin(ctx); err != nil {
				t.Fatal(err)
			}
			for _, cut := range [][2]int{{0, 3}, {3, 5}, {5, 7}, {7, 8}} {
				piece := slices.Clone(b.Changes[cut[0]:cut[1]])
				if err := a.Add(ctx, piece); err != nil {
					t.Fatalf("add %v: %v", cut, err)
				}
				for i := range piece {
					piece[i] = f.ins(99, "garbage", "garbage") // the caller reuses its memory
				}
			}
			counts, err := a.Commit(ctx, b.End)
			if err != nil {
				t.Fatal(err)
			}
			if want := (postgres.TableCounts{Inserts: 6, Updates: 1, Deletes: 1}); counts[f.dt.Source] != want {
				t.Errorf("counts %+v, want %+v", counts[f.dt.Source], want)
			}
			wantRows(t, conn, "SELECT format('%s,%s,%s,%s', id, name, note, _deleted) FROM public.items ORDER BY id",
				"1,a2,x,f", "2,b,y,f", "3,c,z,f", "4,d,w,f", "5,old,o,t", "6,e,v,f", "7,g,u,f")
		})
	}
}
