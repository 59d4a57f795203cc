package mysqlmirror_test

import (
	"fmt"
	"testing"
	"time"
)

// chTypesCols renders the columns of typesDDL on MariaDB and on ClickHouse
// (toString of the expression on ClickHouse's side). Dates, timestamps,
// bit strings and intervals are Strings in Postgres's text form on
// ClickHouse before 22.8; a NULL SET is an empty array.
var chTypesCols = []col{
	text("id"), text("i8"), text("u8"), text("b1"), text("i16"), text("u16"),
	text("i24"), text("u24"), text("i32"), text("u32"), text("i64"), text("u64"),
	text("dec1"),
	{"f", "CAST(%s AS DECIMAL(30,4))", "toDecimal128(%s, 4)"},
	{"d", "CAST(%s AS DECIMAL(40,6))", "toDecimal128(%s, 6)"},
	{"bt", "LPAD(BIN(%s), 10, '0')", "%s"},
	{"dt", "IF(MONTH(%[1]s) = 0 OR DAYOFMONTH(%[1]s) = 0, NULL, DATE_FORMAT(%[1]s, '%%Y-%%m-%%d'))", "%s"},
	{"dtm", "IF(MONTH(%[1]s) = 0 OR DAYOFMONTH(%[1]s) = 0, NULL, DATE_FORMAT(%[1]s, '%%Y-%%m-%%d %%H:%%i:%%s.%%f'))", "%s"},
	{"ts", "IF(UNIX_TIMESTAMP(%[1]s) = 0, NULL, DATE_FORMAT(%[1]s, '%%Y-%%m-%%d %%H:%%i:%%s.%%f'))", "%s"},
	// Postgres's interval text: hours:minutes:seconds, the fraction
	// without trailing zeros.
	{"tm", "TRIM(TRAILING '.' FROM TRIM(TRAILING '0' FROM CAST(%s AS CHAR)))", "%s"},
	{"y", "%s + 0", "%s"},
	text("ch"), text("vc"), text("tx"),
	{"bn", "LOWER(HEX(%s))", "lower(hex(%s))"},
	{"vb", "LOWER(HEX(%s))", "lower(hex(%s))"},
	{"bl", "LOWER(HEX(%s))", "lower(hex(%s))"},
	text("en"),
	{"st", "IFNULL(%s, '')", "arrayStringConcat(arrayMap(x -> assumeNotNull(x), %s), ',')"},
	text("js"),
	text("l1"),
	{"bt64", "LPAD(BIN(%s), 64, '0')", "%s"},
}

// chOrdersCols are app.orders's mirrored columns on ClickHouse.
var chOrdersCols = []col{text("id"), text("customer"), text("amount"),
	{"created", "DATE_FORMAT(%s, '%%Y-%%m-%%d %%H:%%i:%%s.%%f')", "%s"}, text("note")}

// TestMirrorIntoClickHouse makes the changes of TestMirrorIntoPostgres
// through a mirror into ClickHouse: after each step the FINAL view without
// soft-deleted rows equals the source.
func TestMirrorIntoClickHouse(t *testing.T) {
	t.Parallel()
	s := startSluice(t)
	conn := connect(t, s.URL())
	db := newMariaDB(t)
	chDB := "ch_" + db
	chc, err := ch.Open("default")
	if err != nil {
		t.Fatal(err)
	}
	defer chc.Close()
	if err := chc.Exec(testCtx(t), "CREATE DATABASE "+chDB); err != nil {
		t.Fatal(err)
	}
	mustExec(t, conn, mysqlPeer("my", db))
	mustExec(t, conn, fmt.Sprintf("CREATE PEER ch FROM CLICKHOUSE WITH (host = '127.0.0.1', port = %d, database = '%s')", ch.Port(), chDB))
	my := myConn(t, db)
	// ClickHouse's dates end at 2299 (and before 22.8 are Strings, but the
	// newer Date32 starts at 1900): the edge rows stay in that range.
	myExec(t, my, "SET SESSION sql_mode = ''", ordersDDL, typesDDL, typesEdgeRows, typesOddRow, typesBulk(1, 2000),
		"UPDATE types SET dt = '2299-12-31', dtm = '2299-12-31 23:59:59.999999' WHERE id = -2",
		"UPDATE types SET dt = '1900-01-01' WHERE id = -4",
		"INSERT INTO orders SELECT seq, CONCAT('customer ', seq), seq * 1.25, CONCAT('card-', seq), "+
			"'2024-01-01 00:00:00.123456' + INTERVAL seq SECOND, IF(seq % 3 = 0, NULL, REPEAT('n', seq % 20)) FROM seq_1_to_2000")
	mustExec(t, conn, fmt.Sprintf(`CREATE MIRROR chm FROM my TO ch WITH TABLE MAPPING
		({from: %[1]s.orders, to: orders, exclude: [card]}, %[1]s.types:types) WITH (snapshot_num_rows_per_partition = 700)`, db))
	waitStatus(t, conn, "chm", "RUNNING")
	same := func(table string, cols []col) {
		t.Helper()
		waitSame(t, conn, my, table, "id", cols, func() rows { return chRows(t, chDB, table, "id", cols) })
	}
	check := func() {
		t.Helper()
		same("types", chTypesCols)
		same("orders", chOrdersCols)
	}
	check()
	// Without a DEFAULT: with one, the rows ClickHouse has read NULL in
	// the new column (the MySQL source's CurrentValues returns no value;
	// see the report).
	sourceChanges(t, my, check, "")
	same("orders", append(chOrdersCols[:len(chOrdersCols):len(chOrdersCols)], text("extra")))
	check()
	mustExec(t, conn, "DROP MIRROR chm")
}

// TestResyncIntoClickHouse resyncs a MariaDB mirror into ClickHouse while
// a writer keeps changing the table: RESYNC TABLE (the live table keeps
// streaming while the copy loads; rows newer than the copy's snapshot are
// carried over at the swap), then RESYNC MIRROR. The FINAL view ends equal
// to the source.
func TestResyncIntoClickHouse(t *testing.T) {
	t.Parallel()
	s := startSluice(t)
	conn := connect(t, s.URL())
	db := newMariaDB(t)
	chDB := "ch_" + db
	chc, err := ch.Open("default")
	if err != nil {
		t.Fatal(err)
	}
	defer chc.Close()
	if err := chc.Exec(testCtx(t), "CREATE DATABASE "+chDB); err != nil {
		t.Fatal(err)
	}
	mustExec(t, conn, mysqlPeer("my", db))
	mustExec(t, conn, fmt.Sprintf("CREATE PEER ch FROM CLICKHOUSE WITH (host = '127.0.0.1', port = %d, database = '%s')", ch.Port(), chDB))
	my := myConn(t, db)
	const n = 20_000
	myExec(t, my, fmt.Sprintf(churnDDL, "t"), fmt.Sprintf(churnFill, "t", n))
	mustExec(t, conn, fmt.Sprintf(`CREATE MIRROR chr FROM my TO ch WITH TABLE MAPPING (%s.t:t)
		WITH (snapshot_num_rows_per_partition = 4000, max_batch_size = 500)`, db))
	waitStatus(t, conn, "chr", "RUNNING")
	cols := []col{text("id"), text("v"), text("note"), {"at", "DATE_FORMAT(%s, '%%Y-%%m-%%d %%H:%%i:%%s.%%f')", "%s"}}
	w := startWriter(t, db, n, "t")
	stopped := false
	defer func() {
		if !stopped {
			close(w.stop)
			<-w.done
		}
	}()
	w.waitRounds(t, 20)
	mustExec(t, conn, fmt.Sprintf("RESYNC TABLE chr.%s.t", db))
	waitResync(t, conn, "chr", db+".t", "done")
	w.waitRounds(t, 20)
	mustExec(t, conn, "RESYNC MIRROR chr")
	deadline := time.Now().Add(90 * time.Second)
	for {
		var status string
		var resyncing bool
		if err := conn.QueryRow(testCtx(t), "SELECT status, resyncing FROM mirrors WHERE name = 'chr'").Scan(&status, &resyncing); err != nil {
			t.Fatal(err)
		}
		if status == "RUNNING" && !resyncing {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("full resync: status %s, resyncing %v\n%s", status, resyncing, mirrorState(conn))
		}
		time.Sleep(100 * time.Millisecond)
	}
	w.waitRounds(t, 20)
	stopped = true
	w.finish(t)
	waitSame(t, conn, my, "t", "id", cols, func() rows { return chRows(t, chDB, "t", "id", cols) })
}
