package executor_test

import (
	"fmt"
	"strings"
	"testing"
)

// An update of a column of a ClickHouse table's order_by that is not in the
// primary key moves the row to another sorting key: the row's old version
// must not stay live. After each step, for a table with the default
// REPLICA IDENTITY and one with FULL, the FINAL view of the live rows
// equals the source (rows, count and digest), no key is live twice, and
// the rows that moved are not reported as deleted (soft_delete_col_name).
func TestClickHouseSortKeyMove(t *testing.T) {
	ch := startClickHouse(t)
	f := newMirrorFixture(t)
	mustExec(t, f.conn, fmt.Sprintf("CREATE PEER ch FROM CLICKHOUSE WITH (host = '127.0.0.1', port = %d)", ch.Port()))
	tables := []string{"accounts", "accounts_full"}
	for _, tbl := range tables {
		mustExec(t, f.src, fmt.Sprintf(`CREATE TABLE %[1]s (aid int PRIMARY KEY, bid int NOT NULL, filler text);
			INSERT INTO %[1]s SELECT g, g %% 5 + 1, 'a' || g FROM generate_series(1, 100) g;`, tbl))
	}
	mustExec(t, f.src, `ALTER TABLE accounts_full REPLICA IDENTITY FULL`)
	mustExec(t, f.conn, `CREATE MIRROR mv FROM src TO ch WITH TABLE MAPPING
		({from: public.accounts, to: accounts, order_by: [bid, aid]},
		 {from: public.accounts_full, to: accounts_full, order_by: [bid, aid]})
		WITH (soft_delete_col_name = 'gone')`)
	f.waitStatus(t, "mv", "RUNNING")
	if got := chRows(t, ch, `SELECT sorting_key FROM system.tables WHERE database = 'default' AND name = 'accounts'`); len(got) != 1 || got[0] != "bid, aid" {
		t.Fatalf("accounts sorting key %q, want bid, aid", got)
	}

	check := func(step string) {
		t.Helper()
		for _, tbl := range tables {
			pgRow := `aid || '|' || bid || '|' || coalesce(filler, '')`
			chRow := `concat(toString(aid), '|', toString(bid), '|', filler)`
			waitSame(t, f.src, "SELECT "+pgRow+" FROM "+tbl+" ORDER BY aid", ch,
				"SELECT "+chRow+" FROM "+tbl+" FINAL WHERE gone = 0 ORDER BY aid")
			src := pgRows(t, f.src, "SELECT count(*) || '|' || md5(string_agg("+pgRow+", E'\\n' ORDER BY aid)) FROM "+tbl)
			dst := chRows(t, ch, "SELECT concat(toString(count()), '|', lower(hex(MD5(arrayStringConcat(groupArray(r), '\\n'))))) FROM (SELECT "+
				chRow+" AS r FROM "+tbl+" FINAL WHERE gone = 0 ORDER BY aid)")
			if strings.Join(src, "") != strings.Join(dst, "") {
				t.Fatalf("%s: %s count and digest: source %q, ClickHouse %q", step, tbl, src, dst)
			}
			if dup := chRows(t, ch, "SELECT toString(aid) FROM "+tbl+" FINAL WHERE gone = 0 GROUP BY aid HAVING count() > 1"); len(dup) > 0 {
				t.Fatalf("%s: %s keys live twice: %q", step, tbl, dup)
			}
		}
	}
	check("initial copy")
	each := func(step, sql string) {
		t.Helper()
		for _, tbl := range tables {
			mustExec(t, f.src, strings.ReplaceAll(sql, "TBL", tbl))
		}
		check(step)
	}
	each("a row of the initial copy moved", `UPDATE TBL SET bid = bid + 10 WHERE aid = 1`)
	each("a row moved three times in one transaction", `BEGIN;
		UPDATE TBL SET bid = 20 WHERE aid = 2; UPDATE TBL SET bid = 21, filler = 'x' WHERE aid = 2;
		UPDATE TBL SET bid = 22 WHERE aid = 2; COMMIT`)
	each("moved (batch 1 of 3)", `UPDATE TBL SET bid = 30 WHERE aid = 3`)
	each("moved (batch 2 of 3)", `UPDATE TBL SET bid = 31, filler = 'y' WHERE aid = 3`)
	each("moved back (batch 3 of 3)", `UPDATE TBL SET bid = 4 WHERE aid = 3`)
	each("moved and deleted in one transaction", `BEGIN; UPDATE TBL SET bid = 40 WHERE aid = 4; DELETE FROM TBL WHERE aid = 4; COMMIT`)
	each("moved", `UPDATE TBL SET bid = 50 WHERE aid = 5`)
	each("then deleted", `DELETE FROM TBL WHERE aid = 5`)
	each("inserted again after its delete, under another sorting key", `INSERT INTO TBL VALUES (4, 99, 'again')`)
	each("moved and the key changed", `UPDATE TBL SET bid = 60, aid = 1006 WHERE aid = 6`)
	each("many rows moved by one statement", `UPDATE TBL SET bid = bid + 100 WHERE aid % 7 = 0`)
	each("a filler update: no move", `UPDATE TBL SET filler = 'z' WHERE aid BETWEEN 10 AND 20`)

	// Moved rows are not deleted ones: the rows marked deleted are those
	// of the keys deleted now (5, and 6 whose key changed; not 4, which
	// came back), at their last sorting key, one each.
	for _, tbl := range tables {
		got := chRows(t, ch, "SELECT concat(toString(bid), '|', toString(aid)) FROM "+tbl+" FINAL WHERE gone = 1 ORDER BY aid")
		if strings.Join(got, ",") != "50|5,2|6" {
			t.Fatalf("%s rows marked deleted: %q, want 50|5, 2|6", tbl, got)
		}
		got = chRows(t, ch, "SELECT toString(count()) FROM "+tbl+" FINAL WHERE gone = 2 AND aid IN (1, 2, 3, 4)")
		if len(got) != 1 || got[0] != "6" {
			t.Fatalf("%s rows marked moved of keys 1 to 4: %q, want 6", tbl, got)
		}
	}

	// A swap resync keeps it so, and moves after it too.
	mustExec(t, f.conn, `RESYNC TABLE mv.public.accounts WITH (strategy = 'swap')`)
	f.waitResync(t, "mv", "public.accounts", "done")
	check("after a swap resync")
	each("moved after the resync", `UPDATE TBL SET bid = bid + 1000 WHERE aid BETWEEN 30 AND 40`)
	for _, tbl := range tables {
		got := chRows(t, ch, "SELECT toString(count()) FROM "+tbl+" FINAL WHERE gone = 1")
		if len(got) != 1 || got[0] != "2" {
			t.Fatalf("%s rows marked deleted after the resync: %q, want 2", tbl, got)
		}
	}
}
