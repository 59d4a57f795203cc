package clickhouse_test

import (
	"testing"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/clickhouse"
)

var accountsSource = connectors.TableName{Schema: "public", Name: "accounts"}

// An update or insert that puts a key's row under another sorting key
// (order_by with a column outside the primary key) supersedes the live row
// under the old one with a DeletedMoved row: FINAL with the deleted column
// 0 has one row per key, and a row that moved is not a deleted one.
// Writing the same batches again converges to the same rows.
func TestApplierSortKeyMove(t *testing.T) {
	ctx := testCtx(t)
	conn, db := newDB(t)
	info := oldServer(t)
	ts := &connectors.TableSchema{Name: accountsSource, PrimaryKey: []string{"aid"}, Columns: []connectors.Column{
		{Name: "aid", Type: "bigint", TypeOID: pgtype.Int8OID, NotNull: true},
		{Name: "bid", Type: "integer", TypeOID: pgtype.Int4OID, NotNull: true},
		{Name: "filler", Type: "text", TypeOID: pgtype.TextOID},
	}}
	opts := clickhouse.TableOptions{OrderBy: []string{"bid", "aid"}, DeletedColumn: "gone"}
	dt := connectors.DestTable{Source: accountsSource, Dest: connectors.TableName{Schema: db, Name: "accounts"}, Schema: ts,
		SoftDeleteColumn: "gone"}
	ddl, err := clickhouse.CreateTableDDL(dt.Dest, ts, info, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Exec(ctx, ddl); err != nil {
		t.Fatal(err)
	}
	acct := func(aid int64, bid int32, filler any) []connectors.Value {
		f := unchanged
		if s, ok := filler.(string); ok {
			f = bin(t, pgtype.TextOID, s)
		}
		return []connectors.Value{bin(t, pgtype.Int8OID, aid), bin(t, pgtype.Int4OID, bid), f}
	}
	keyOf := func(aid int64) []connectors.Value {
		return []connectors.Value{bin(t, pgtype.Int8OID, aid), null, null}
	}
	ch := func(kind connectors.ChangeKind, lsn uint64, newRow, old []connectors.Value) connectors.Change {
		return connectors.Change{Kind: kind, Table: accountsSource, New: newRow, Old: old, Version: lsn}
	}
	// The initial copy, and aid 5 twice under two sorting keys (as the
	// code before this fix left a moved row).
	w, err := clickhouse.NewWriter(dt.Dest, ts, info, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Insert(ctx, conn, [][]connectors.Value{acct(1, 1, "a"), acct(2, 1, "b"), acct(3, 2, "c"),
		acct(5, 1, "e"), acct(5, 2, "e")}, 10); err != nil {
		t.Fatal(err)
	}
	batch1 := []connectors.Change{
		ch(connectors.Update, 50, acct(1, 2, "a"), nil),
		// Two moves of one row in one transaction: only the last is written.
		ch(connectors.Update, 60, acct(2, 2, "b"), nil),
		ch(connectors.Update, 60, acct(2, 3, "b2"), nil),
		// No move.
		ch(connectors.Update, 60, acct(3, 2, "c!"), nil),
		ch(connectors.Insert, 70, acct(4, 5, "d"), nil),
	}
	batch2 := []connectors.Change{
		// A move with an unchanged TOAST value takes the live row's.
		ch(connectors.Update, 110, acct(1, 3, nil), nil),
		// A delete after a move: its row is the moved one.
		ch(connectors.Delete, 120, nil, keyOf(2)),
		// Moved and back in one transaction: nothing moves.
		ch(connectors.Update, 130, acct(4, 1, "d"), nil),
		ch(connectors.Update, 130, acct(4, 5, "d"), nil),
		// Moved, then deleted (REPLICA IDENTITY DEFAULT: key only).
		ch(connectors.Update, 140, acct(3, 7, "c7"), nil),
		ch(connectors.Delete, 140, nil, keyOf(3)),
		// Both rows of aid 5 are older: the one under (1, 5) moves away,
		// the one under (2, 5) is replaced.
		ch(connectors.Update, 150, acct(5, 2, "e!"), nil),
		// A primary-key change that also moves: 6 is the old 1, whose
		// last version is the delete of key 1 (the batch's changes of a
		// key fold: its moved row takes that version).
		ch(connectors.Update, 160, acct(6, 4, nil), keyOf(1)),
	}
	all := func() []string {
		return query(t, conn, "SELECT bid, aid, filler, gone, _sluice_version FROM "+db+".accounts FINAL")
	}
	afterBatch1 := []string{
		"bid=1 aid=1 filler=a gone=2 _sluice_version=50",
		"bid=1 aid=2 filler=b gone=2 _sluice_version=60",
		"bid=1 aid=5 filler=e gone=0 _sluice_version=10",
		"bid=2 aid=1 filler=a gone=0 _sluice_version=50",
		"bid=2 aid=3 filler=c! gone=0 _sluice_version=60",
		"bid=2 aid=5 filler=e gone=0 _sluice_version=10",
		"bid=3 aid=2 filler=b2 gone=0 _sluice_version=60",
		"bid=5 aid=4 filler=d gone=0 _sluice_version=70",
	}
	afterBatch2 := []string{
		"bid=1 aid=1 filler=a gone=2 _sluice_version=50",
		"bid=1 aid=2 filler=b gone=2 _sluice_version=60",
		"bid=1 aid=5 filler=e gone=2 _sluice_version=150",
		"bid=2 aid=1 filler=a gone=2 _sluice_version=160",
		"bid=2 aid=3 filler=c! gone=2 _sluice_version=140",
		"bid=2 aid=5 filler=e! gone=0 _sluice_version=150",
		"bid=3 aid=1 filler=a gone=1 _sluice_version=160",
		"bid=3 aid=2 filler=b2 gone=1 _sluice_version=120",
		"bid=4 aid=6 filler=a gone=0 _sluice_version=160",
		"bid=5 aid=4 filler=d gone=0 _sluice_version=130",
		"bid=7 aid=3 filler=c7 gone=1 _sluice_version=140",
	}
	live := func() []string {
		return query(t, conn, "SELECT aid, bid, filler FROM "+db+".accounts FINAL WHERE gone = 0")
	}
	liveAfter2 := []string{"aid=4 bid=5 filler=d", "aid=5 bid=2 filler=e!", "aid=6 bid=4 filler=a"}

	a, err := clickhouse.NewApplier(ctx, conn, info, db, "m", []connectors.DestTable{dt},
		map[connectors.TableName][]string{accountsSource: opts.OrderBy})
	if err != nil {
		t.Fatal(err)
	}
	apply(t, a, 100, batch1...)
	equalRows(t, "after batch 1", all(), afterBatch1)
	apply(t, a, 200, batch2...)
	equalRows(t, "after batch 2", all(), afterBatch2)
	equalRows(t, "live rows after batch 2", live(), liveAfter2)

	// A replay after a crash before the position was recorded (another
	// mirror name: nothing recorded) writes batch 2 again: the same rows.
	b, err := clickhouse.NewApplier(ctx, conn, info, db, "replay", []connectors.DestTable{dt},
		map[connectors.TableName][]string{accountsSource: opts.OrderBy})
	if err != nil {
		t.Fatal(err)
	}
	apply(t, b, 200, batch2...)
	equalRows(t, "after the replay", all(), afterBatch2)
	equalRows(t, "live rows after the replay", live(), liveAfter2)

	// Inserted again after its delete, under another sorting key: the
	// deleted row is superseded too (a key has one live or deleted row).
	apply(t, a, 300, ch(connectors.Insert, 170, acct(2, 9, "b9"), nil))
	afterInsert := append([]string(nil), afterBatch2...)
	afterInsert[7] = "bid=3 aid=2 filler=b2 gone=2 _sluice_version=170"
	equalRows(t, "after the insert", all(), append(afterInsert, "bid=9 aid=2 filler=b9 gone=0 _sluice_version=170"))
	equalRows(t, "live rows after the insert", live(), append([]string{"aid=2 bid=9 filler=b9"}, liveAfter2...))

	// A swap resync's copy into a table sorted by the primary key (as
	// RESYNC TABLE ... WITH (order_by = 'aid') makes) puts a moved row and
	// its new row (same version) under one sorting key: the moved rows are
	// copied first, and the later insert wins.
	shadow := db + ".accounts_resync"
	ddl, err = clickhouse.CreateTableDDL(connectors.TableName{Schema: db, Name: "accounts_resync"}, ts, info,
		clickhouse.TableOptions{DeletedColumn: "gone"})
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Exec(ctx, ddl); err != nil {
		t.Fatal(err)
	}
	for _, where := range []string{"gone = 2", "gone != 2"} {
		if err := conn.Exec(ctx, "INSERT INTO "+shadow+" SELECT * FROM "+db+".accounts WHERE "+where); err != nil {
			t.Fatal(err)
		}
	}
	equalRows(t, "the copy sorted by aid", query(t, conn, "SELECT aid, bid, filler, gone FROM "+shadow+" FINAL"), []string{
		"aid=1 bid=3 filler=a gone=1", "aid=2 bid=9 filler=b9 gone=0", "aid=3 bid=7 filler=c7 gone=1",
		"aid=4 bid=5 filler=d gone=0", "aid=5 bid=2 filler=e! gone=0", "aid=6 bid=4 filler=a gone=0",
	})
}
