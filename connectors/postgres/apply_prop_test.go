package postgres_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/postgres"
)

// The property test: random source histories on a small key space, applied
// through the Applier in random batch splits with a simulated crash and
// replay, must leave the destination as a model of the source says. Half
// the batches go through Begin, Add of random pieces (cut anywhere, even
// inside a source transaction) and Commit instead of Apply.
//
// A replay restarts at a random earlier transaction and re-batches from
// there, so batches that end at or before the recorded position are
// skipped and the batch straddling it re-applies transactions the
// destination already holds. In "guarded" runs that overlap never holds a
// key change with an unchanged TOAST value (the documented exception); in
// "unguarded" runs the recorded position is cleared before the replay, so
// everything from the restart is applied again, and histories have no such
// key changes.

type propRow struct {
	a       int32
	t       string
	deleted bool
}

type propTxn struct {
	changes []connectors.Change
	desc    []string
	// partialMove: a key change whose new row lacks the TOAST column.
	partialMove bool
}

type propHistory struct {
	initial map[int32]propRow
	txns    []propTxn
	want    map[int32]propRow // the destination at the end
}

const propKeys = 8

func propSchema() *connectors.TableSchema {
	return &connectors.TableSchema{
		Name: connectors.TableName{Schema: "src", Name: "prop"},
		Columns: []connectors.Column{
			{Name: "id", Type: "integer", TypeOID: pgtype.Int4OID},
			{Name: "a", Type: "integer", TypeOID: pgtype.Int4OID},
			{Name: "t", Type: "text", TypeOID: pgtype.TextOID},
		},
		PrimaryKey: []string{"id"},
	}
}

// genHistory makes n changes. The source holds the live rows; the
// destination model also keeps soft-deleted rows when soft is set.
func genHistory(t testing.TB, rng *rand.Rand, n int, soft, partialMoves bool) propHistory {
	s := propSchema()
	src := map[int32]propRow{}
	dst := map[int32]propRow{}
	serial := 0
	newT := func() string { serial++; return "t" + strconv.Itoa(serial) }
	for k := range int32(4) {
		src[k] = propRow{a: k, t: newT()}
		dst[k] = src[k]
	}
	h := propHistory{initial: maps.Clone(src)}
	val := func(x any) connectors.Value { return apRow(t, s, nil, nil, x)[2] }
	keys := func(live bool) []int32 {
		var ks []int32
		for k := range int32(propKeys) {
			if _, ok := src[k]; ok == live {
				ks = append(ks, k)
			}
		}
		return ks
	}
	remove := func(k int32) {
		if soft {
			r := dst[k]
			r.deleted = true
			dst[k] = r
		} else {
			delete(dst, k)
		}
		delete(src, k)
	}
	var txn propTxn
	for i := 0; i < n; i++ {
		live, dead := keys(true), keys(false)
		var c connectors.Change
		var d string
		switch op := rng.IntN(20); {
		case op == 0:
			c = connectors.Change{Kind: connectors.Truncate, Table: s.Name}
			d = "truncate"
			for k := range src {
				remove(k)
			}
		case op < 6 && len(dead) > 0 || len(live) == 0:
			k := dead[rng.IntN(len(dead))]
			r := propRow{a: rng.Int32N(100), t: newT()}
			c = connectors.Change{Kind: connectors.Insert, Table: s.Name, New: apRow(t, s, k, r.a, r.t)}
			d = fmt.Sprintf("insert %d %d %s", k, r.a, r.t)
			src[k], dst[k] = r, r
		case op < 9:
			k := live[rng.IntN(len(live))]
			c = connectors.Change{Kind: connectors.Delete, Table: s.Name, Old: apKey(t, s, k)}
			d = fmt.Sprintf("delete %d", k)
			remove(k)
		default:
			k := live[rng.IntN(len(live))]
			r := src[k]
			r.a = rng.Int32N(100)
			tv := val(r.t)
			switch rng.IntN(3) {
			case 0:
				r.t = newT()
				tv = val(r.t)
			case 1:
				tv = apUnch
			}
			to := k
			if len(dead) > 0 && rng.IntN(4) == 0 && (partialMoves || tv.Kind != connectors.Unchanged) {
				to = dead[rng.IntN(len(dead))]
			}
			c = connectors.Change{Kind: connectors.Update, Table: s.Name, New: apRow(t, s, to, r.a, tv)}
			d = fmt.Sprintf("update %d %d %s", to, r.a, map[bool]string{true: "(unchanged)", false: r.t}[tv.Kind == connectors.Unchanged])
			if to != k {
				c.Old = apKey(t, s, k)
				d = fmt.Sprintf("move %d -> %s", k, d)
				txn.partialMove = txn.partialMove || tv.Kind == connectors.Unchanged
				remove(k)
			}
			src[to], dst[to] = r, r
		}
		txn.changes = append(txn.changes, c)
		txn.desc = append(txn.desc, d)
		if rng.IntN(3) == 0 || i == n-1 {
			h.txns = append(h.txns, txn)
			txn = propTxn{}
		}
	}
	h.want = dst
	return h
}

func propLSN(txn int) uint64 { return uint64(txn+1) * 0x10 }

func TestApplyProperty(t *testing.T) {
	seeds := 12
	if s, err := strconv.Atoi(os.Getenv("SLUICE_PROP_SEEDS")); err == nil {
		seeds = s
	}
	for _, mode := range []struct {
		name            string
		soft, unguarded bool
	}{{"hard", false, false}, {"soft", true, false}, {"hard-unguarded", false, true}, {"soft-unguarded", true, true}} {
		t.Run(mode.name, func(t *testing.T) {
			conn := connect(t, dstCluster.NewDB(t))
			for seed := range seeds {
				rng := rand.New(rand.NewPCG(uint64(seed), 99))
				h := genHistory(t, rng, 60, mode.soft, !mode.unguarded)
				if !propRun(t, conn, rng, h, seed, mode.soft, mode.unguarded) {
					return
				}
			}
		})
	}
}

// propRun applies h and compares; it reports whether the destination matched.
func propRun(t *testing.T, conn *pgx.Conn, rng *rand.Rand, h propHistory, seed int, soft, unguarded bool) bool {
	tbl := connectors.TableName{Schema: "public", Name: fmt.Sprintf("prop_%d", seed)}
	ddl := "CREATE TABLE " + tbl.Quoted() + " (id int PRIMARY KEY, a int, t text"
	if soft {
		ddl += ", deleted boolean NOT NULL DEFAULT false, synced timestamptz"
	}
	mustExec(t, conn, ddl+")")
	for k, r := range h.initial { // the initial load
		mustExec(t, conn, "INSERT INTO "+tbl.Quoted()+" (id, a, t) VALUES ($1, $2, $3)", k, r.a, r.t)
	}
	dt := postgres.DestTable{Source: propSchema().Name, Dest: tbl, Schema: propSchema()}
	if soft {
		dt.SoftDeleteColumn, dt.SyncedAtColumn = "deleted", "synced"
	}
	mirror := tbl.Name
	a, err := postgres.NewApplier(testCtx(t), conn, "", mirror, []postgres.DestTable{dt})
	if err != nil {
		t.Fatal(err)
	}
	var log []string
	var last *connectors.Batch
	apply := func(b *connectors.Batch, what string) {
		if rng.IntN(2) == 0 {
			log = append(log, what)
			mustApply(t, a, b)
			return
		}
		var cuts []int
		for range rng.IntN(4) {
			cuts = append(cuts, rng.IntN(len(b.Changes)+1))
		}
		slices.Sort(cuts)
		log = append(log, fmt.Sprintf("%s, added in pieces cut at %v", what, cuts))
		applyChunked(t, a, b, cuts...)
	}
	run := func(from, to int) {
		for from < to {
			n := min(1+rng.IntN(4), to-from)
			b := &connectors.Batch{End: postgres.LSNPosition(propLSN(from + n - 1))}
			for _, txn := range h.txns[from : from+n] {
				b.Changes = append(b.Changes, txn.changes...)
			}
			apply(b, fmt.Sprintf("batch txns %d..%d", from, from+n-1))
			last = b
			from += n
		}
	}
	j := rng.IntN(len(h.txns) + 1)
	run(0, j)
	if last != nil {
		apply(last, "repeat last batch")
	}
	r := rng.IntN(j + 1)
	if unguarded {
		if err := postgres.ClearMirror(testCtx(t), conn, "", mirror); err != nil {
			t.Fatal(err)
		}
		log = append(log, "clear recorded position")
	} else if slices.ContainsFunc(h.txns[r:j], func(x propTxn) bool { return x.partialMove }) {
		r = j
	}
	log = append(log, fmt.Sprintf("crash after txn %d, restart at txn %d", j-1, r))
	if unguarded || rng.IntN(2) == 0 {
		// A new applier, as after a restart (a new connection would do too).
		if a, err = postgres.NewApplier(testCtx(t), conn, "", mirror, []postgres.DestTable{dt}); err != nil {
			t.Fatal(err)
		}
	}
	run(r, len(h.txns))

	var want []string
	for k := range int32(propKeys) {
		if row, ok := h.want[k]; ok {
			s := fmt.Sprintf("%d|%d|%s", k, row.a, row.t)
			if soft {
				s += fmt.Sprintf("|%v", row.deleted)
			}
			want = append(want, s)
		}
	}
	sel := "SELECT concat_ws('|', id, a, t) FROM " + tbl.Quoted() + " ORDER BY id"
	if soft {
		sel = "SELECT concat_ws('|', id, a, t, CASE WHEN deleted THEN 'true' ELSE 'false' END) FROM " + tbl.Quoted() + " ORDER BY id"
	}
	got := textRows(t, conn, sel)
	if soft {
		wantRows(t, conn, "SELECT count(*)::text FROM "+tbl.Quoted()+" WHERE synced IS NULL AND id NOT IN ("+
			initialKeys(h)+")", "0")
	}
	if slices.Equal(got, want) {
		return true
	}
	var hist []string
	for i, txn := range h.txns {
		hist = append(hist, fmt.Sprintf("txn %d: %s", i, strings.Join(txn.desc, "; ")))
	}
	t.Errorf("seed %d: destination differs from the model\n got  %q\n want %q\nhistory:\n  %s\nrun:\n  %s",
		seed, got, want, strings.Join(hist, "\n  "), strings.Join(log, "\n  "))
	return false
}

func initialKeys(h propHistory) string {
	var ks []string
	for k := range h.initial {
		ks = append(ks, strconv.Itoa(int(k)))
	}
	return strings.Join(ks, ",")
}
