package mysqlmirror_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// VALIDATE MIRROR of MariaDB mirrors: the source summarizes in MariaDB, in
// the snapshot the validation took, each column rendered as the
// destination renders the mirrored value.

// validation is a row VALIDATE MIRROR returns.
type validation struct {
	table        string
	source, dest int64
	ranges       []string
	status       string
}

// validate runs a VALIDATE MIRROR and returns its rows by table.
func validate(t *testing.T, conn *pgx.Conn, sql string) map[string]validation {
	t.Helper()
	rows, err := conn.Query(testCtx(t), sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	out := map[string]validation{}
	for rows.Next() {
		var r validation
		if err := rows.Scan(&r.table, &r.source, &r.dest, &r.ranges, &r.status); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		out[r.table] = r
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}

// rangeHolds reports whether range r ("[a, b)") holds key.
func rangeHolds(r string, key int64) bool {
	var a, b int64
	if _, err := fmt.Sscanf(r, "[%d, %d)", &a, &b); err != nil {
		return false
	}
	return a <= key && key < b
}

// notCompared returns the columns a status names as not compared.
func notCompared(status string) []string {
	_, list, ok := strings.Cut(status, "; not compared: ")
	if !ok {
		return nil
	}
	return strings.Split(list, ", ")
}

// validateWhileWriting validates mirror m (tables db.types and db.t, the
// latter changed by a writer throughout) in both modes: all equal, the
// columns of types not compared those skipped accepts (a column's name and
// type as the status shows it). Then tamper changes the row of types whose
// id is 1500 on the destination, and a checksum names that table and the
// range of 1500 alone.
func validateWhileWriting(t *testing.T, conn *pgx.Conn, db, m string, w *writer, skipped func(cols []string) bool, tamper func()) {
	t.Helper()
	types, churn := db+".types", db+".t"
	for _, mode := range []string{"count", "checksum", "checksum"} {
		w.waitRounds(t, 10)
		got := validate(t, conn, fmt.Sprintf("VALIDATE MIRROR %s WITH (mode = '%s')", m, mode))
		if len(got) != 2 {
			t.Fatalf("%s: %d rows, want 2: %v", mode, len(got), got)
		}
		for _, tbl := range []string{types, churn} {
			r := got[tbl]
			if !strings.HasPrefix(r.status, "equal") || r.source != r.dest || r.source == 0 {
				t.Errorf("%s: %s: %+v", mode, tbl, r)
			}
		}
		if mode == "checksum" {
			if got := notCompared(got[types].status); !skipped(got) {
				t.Errorf("checksum: types: not compared %q", got)
			}
			if got := notCompared(got[churn].status); !skipped(got) {
				t.Errorf("checksum: t: not compared %q", got)
			}
		}
	}
	tamper()
	got := validate(t, conn, fmt.Sprintf("VALIDATE MIRROR %s WITH (mode = 'checksum')", m))
	r := got[types]
	if !strings.HasPrefix(r.status, "different") || r.source != r.dest || len(r.ranges) != 1 || !rangeHolds(r.ranges[0], 1500) {
		t.Errorf("after a change on the destination: types: %+v", r)
	}
	if r := got[churn]; !strings.HasPrefix(r.status, "equal") {
		t.Errorf("after a change on the destination: t: %+v", r)
	}
	got = validate(t, conn, fmt.Sprintf("VALIDATE MIRROR %s TABLE %s WITH (mode = 'count')", m, types))
	if r := got[types]; len(got) != 1 || r.status != "equal" {
		t.Errorf("count of types alone: %+v", got)
	}
}

// TestValidateIntoPostgres validates a MariaDB mirror into Postgres: a table
// of every common type with edge values (limits, NULLs, zero dates,
// fractions, multi-byte text, zero bytes, ...) and one a writer changes
// throughout. Every column compares but those with no exact rendering in
// MariaDB: floats, time (interval), set (text[]) and json (jsonb).
func TestValidateIntoPostgres(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	my := myConn(t, f.db)
	const n = 5000
	myExec(t, my, "SET SESSION sql_mode = ''", typesDDL, typesEdgeRows, typesOddRow, typesBulk(1, 2000),
		// Year 0, which Postgres shows as 1 BC.
		"INSERT INTO types (id, dt, dtm) VALUES (-8, '0000-01-01', '0000-01-01 10:00:00.000001'), (-9, '0000-12-31', '0000-03-01 00:00:00')",
		fmt.Sprintf(churnDDL, "t"), fmt.Sprintf(churnFill, "t", n))
	mustExec(t, f.conn, fmt.Sprintf(`CREATE MIRROR vm FROM my TO dst WITH TABLE MAPPING (%[1]s.types:types, %[1]s.t:t)
		WITH (snapshot_num_rows_per_partition = 700, max_batch_size = 200)`, f.db))
	waitStatus(t, f.conn, "vm", "RUNNING")
	w := startWriter(t, f.db, n, "t")
	defer w.finish(t)
	// Changes streamed into types too, zero dates and the limits included.
	myExec(t, my, "SET SESSION sql_mode = ''", typesBulk(2001, 2100),
		"UPDATE types SET dtm = '0000-00-00 00:00:00', u64 = 18446744073709551615, vc = 'naïve ☃' WHERE id % 10 = 0",
		"DELETE FROM types WHERE id BETWEEN 300 AND 320")
	validateWhileWriting(t, f.conn, f.db, "vm", w,
		func(cols []string) bool {
			return len(cols) == 0 || slices.Equal(cols, []string{"f (real)", "d (double precision)", "tm (interval(6))", "st (text[])", "js (jsonb)"})
		},
		func() { mustExec(t, f.dst, "UPDATE types SET vc = 'tampered' WHERE id = 1500") })
}

// TestValidateIntoClickHouse validates a MariaDB mirror into ClickHouse, as
// TestValidateIntoPostgres does (dates within ClickHouse's range). On
// ClickHouse, bit and time are kept as Postgres's text form rendered by
// Sluice, and dates and timestamps too before 22.8: not compared either.
// Integers, decimals, text and bytes are, always.
func TestValidateIntoClickHouse(t *testing.T) {
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
	const n = 5000
	myExec(t, my, "SET SESSION sql_mode = ''", typesDDL, typesEdgeRows, typesOddRow, typesBulk(1, 2000),
		"UPDATE types SET dt = '2299-12-31', dtm = '2299-12-31 23:59:59.999999' WHERE id = -2",
		"UPDATE types SET dt = '1900-01-01' WHERE id = -4",
		fmt.Sprintf(churnDDL, "t"), fmt.Sprintf(churnFill, "t", n))
	mustExec(t, conn, fmt.Sprintf(`CREATE MIRROR vc FROM my TO ch WITH TABLE MAPPING (%[1]s.types:types, %[1]s.t:t)
		WITH (snapshot_num_rows_per_partition = 700, max_batch_size = 200)`, db))
	waitStatus(t, conn, "vc", "RUNNING")
	w := startWriter(t, db, n, "t")
	defer w.finish(t)
	myExec(t, my, "SET SESSION sql_mode = ''", typesBulk(2001, 2100),
		"UPDATE types SET dtm = '0000-00-00 00:00:00', u64 = 18446744073709551615, vc = 'naïve ☃' WHERE id % 10 = 0",
		"DELETE FROM types WHERE id BETWEEN 300 AND 320")
	never := []string{"f (real)", "d (double precision)", "tm (interval(6))", "st (text[])", "js (jsonb)"}
	skipped := func(cols []string) bool {
		for _, c := range cols {
			name, _, _ := strings.Cut(c, " ")
			if !slices.Contains(never, c) && !slices.Contains([]string{"bt", "bt64", "dt", "dtm", "ts", "at"}, name) {
				return false
			}
		}
		return true
	}
	validateWhileWriting(t, conn, db, "vc", w, skipped, func() {
		if err := chc.Exec(testCtx(t), "ALTER TABLE "+chDB+".types UPDATE vc = 'tampered' WHERE id = 1500"); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		tampered := func(r []string) bool { return slices.Equal(r, []string{"1500", "tampered"}) }
		for !slices.ContainsFunc(chRows(t, chDB, "types", "id", []col{text("id"), text("vc")}), tampered) {
			if time.Now().After(deadline) {
				t.Fatal("the mutation on ClickHouse did not end")
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}
