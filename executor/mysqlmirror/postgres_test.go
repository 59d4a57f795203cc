package mysqlmirror_test

import (
	"fmt"
	"testing"

	"github.com/go-mysql-org/go-mysql/client"
)

// typesDDL is a table with a column of every common MySQL type.
const typesDDL = `CREATE TABLE types (
  id int PRIMARY KEY,
  i8 tinyint, u8 tinyint unsigned, b1 tinyint(1), i16 smallint, u16 smallint unsigned,
  i24 mediumint, u24 mediumint unsigned, i32 int, u32 int unsigned, i64 bigint, u64 bigint unsigned,
  dec1 decimal(20,6), f float, d double, bt bit(10),
  dt date, dtm datetime(6), ts timestamp(3) NULL DEFAULT NULL, tm time(6), y year,
  ch char(10), vc varchar(50), tx text, bn binary(4), vb varbinary(20), bl blob,
  en enum('a','b','c'), st set('x','y','z'), js json,
  l1 varchar(20) CHARACTER SET latin1, bt64 bit(64)
) CHARACTER SET utf8mb4`

// typesCols renders the columns of typesDDL on MariaDB and on Postgres.
// Floats compare as decimals (their values are exact in binary), dates
// and times as formatted text, binary strings in hex, a SET as its
// members joined by commas; zero dates are NULL on MariaDB's side too.
var typesCols = []col{
	text("id"), text("i8"), text("u8"), text("b1"), text("i16"), text("u16"),
	text("i24"), text("u24"), text("i32"), text("u32"), text("i64"), text("u64"),
	text("dec1"),
	{"f", "CAST(%s AS DECIMAL(30,4))", "%s::float8::numeric(30,4)"},
	{"d", "CAST(%s AS DECIMAL(40,6))", "%s::numeric(40,6)"},
	{"bt", "LPAD(BIN(%s), 10, '0')", "%s"},
	{"dt", "IF(MONTH(%[1]s) = 0 OR DAYOFMONTH(%[1]s) = 0, NULL, DATE_FORMAT(%[1]s, '%%Y-%%m-%%d'))", "to_char(%s, 'YYYY-MM-DD')"},
	{"dtm", "IF(MONTH(%[1]s) = 0 OR DAYOFMONTH(%[1]s) = 0, NULL, DATE_FORMAT(%[1]s, '%%Y-%%m-%%d %%H:%%i:%%s.%%f'))",
		"to_char(%s, 'YYYY-MM-DD HH24:MI:SS.US')"},
	{"ts", "IF(UNIX_TIMESTAMP(%[1]s) = 0, NULL, DATE_FORMAT(%[1]s, '%%Y-%%m-%%d %%H:%%i:%%s.%%f'))",
		"to_char(%s AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"},
	{"tm", "CAST(TIME_TO_SEC(%s) AS DECIMAL(20,6))", "extract(epoch FROM %s)::numeric(20,6)"},
	{"y", "%s + 0", "%s"},
	text("ch"), text("vc"), text("tx"),
	{"bn", "LOWER(HEX(%s))", "encode(%s, 'hex')"},
	{"vb", "LOWER(HEX(%s))", "encode(%s, 'hex')"},
	{"bl", "LOWER(HEX(%s))", "encode(%s, 'hex')"},
	text("en"),
	{"st", "%s", "array_to_string(%s, ',')"},
	text("js"), // written in jsonb's own text form
	text("l1"),
	{"bt64", "LPAD(BIN(%s), 64, '0')", "%s"},
}

// typesEdgeRows are rows at the edges of each type: limits, NULLs, zero
// dates, fractions, multi-byte text, zero bytes.
const typesEdgeRows = `INSERT INTO types VALUES
 (-1, -128, 0, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0,
  -99999999999999.999999, -3.5, -1.25e-3, b'0000000000',
  '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00', '-838:59:59.000000', 0,
  '', '', '', x'00000000', x'', x'', 'a', '', '[]', '', b'0'),
 (-2, 127, 255, 1, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295, 9223372036854775807, 18446744073709551615,
  99999999999999.999999, 16777216, 1.5e15, b'1111111111',
  '9999-12-31', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.999', '838:59:59.000000', 2155,
  'ünïcødé', 'emoji 😀 ok', repeat('long text ', 500), x'00ff0001', x'000102', x'00000000deadbeef00', 'c', 'x,y,z',
  '{"a": 1, "b": [true, null, "ü"]}', 'café €ÿ', x'ffffffffffffffff'),
 (-3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (-4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0.5, 0.25, 0.1, b'0000000001',
  '1000-01-01', '1970-01-01 00:00:00.000001', '1970-01-01 00:00:01.001', '-00:00:00.500000', 1901,
  'pad  ', 'trailing  ', 'a\nb\tc', 'ab', 'x', 'blob', 'b', 'y', '{"k": "v"}', 'a', b'1'),
 (-5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, NULL,
  '2024-02-00', '2024-00-10 10:00:00', NULL, '12:34:56.789012', 2024,
  'x', 'y', 'z', NULL, NULL, NULL, NULL, 'x,z', '{"a": {"b": {"c": [1, 2.5, -3]}}}', 'ß', x'8000000000000000')`

// typesOddRow is a row of values MariaDB stores from bad input in its
// default SQL mode (an enum's empty string for an unknown label, a SET without the
// unknown member), with small negative fractions and the extreme TIME.
const typesOddRow = `INSERT INTO types (id, en, st, dec1, d, tm, l1, bt64, u64, i64)
 VALUES (-6, 'bogus', 'x,bogus', -0.000001, -0.000001, '-838:59:59.999999', 'Ä', b'1', 9223372036854775808, -1)`

// typesBulk fills ids 1..n with values of every column derived from the id.
func typesBulk(lo, hi int) string {
	return fmt.Sprintf(`INSERT INTO types SELECT seq, seq %% 256 - 128, seq %% 256, seq %% 2, seq - 32768, seq, seq * 3, seq * 5,
  seq * 1000, seq * 1000000, seq * 1000000007, 18446744073709551615 - seq, seq / 7, seq / 4, seq / 8, seq %% 1024,
  '2020-01-01' + INTERVAL seq DAY, '2020-01-01 00:00:00.000001' + INTERVAL seq SECOND,
  '2020-01-01 00:00:00.5' + INTERVAL seq MINUTE, SEC_TO_TIME(seq * 37), 1901 + seq %% 254,
  CONCAT('c', seq), CONCAT('vc ', seq, ' é'), REPEAT('t', seq %% 50), UNHEX(LPAD(HEX(seq), 8, '0')),
  UNHEX(HEX(seq)), CONCAT(x'00', seq, x'00'), ELT(1 + seq %% 3, 'a', 'b', 'c'), ELT(1 + seq %% 4, '', 'x', 'x,y', 'y,z'),
  CONCAT('{"n": ', seq, '}'), CONCAT('l', seq, ' é'), seq * 1000000007
FROM (SELECT CAST(seq AS SIGNED) AS seq FROM seq_%d_to_%d) s`, lo, hi)
}

// ordersCols are the mirrored columns of app.orders (card is excluded).
var ordersCols = []col{text("id"), text("customer"), text("amount"),
	{"created", "DATE_FORMAT(%s, '%%Y-%%m-%%d %%H:%%i:%%s.%%f')", "to_char(%s, 'YYYY-MM-DD HH24:MI:SS.US')"}, text("note")}

const ordersDDL = `CREATE TABLE orders (id int PRIMARY KEY, customer varchar(40) NOT NULL, amount decimal(10,2),
  card varchar(20), created datetime(6), note text)`

// myExec runs statements on a MariaDB connection, failing the test on error.
func myExec(t *testing.T, c *client.Conn, sqls ...string) {
	t.Helper()
	for _, q := range sqls {
		if _, err := c.Execute(q); err != nil {
			t.Fatalf("MariaDB: %v\n%s", err, q)
		}
	}
}

// sourceChanges are the changes TestMirrorIntoPostgres and
// TestMirrorIntoClickHouse make once the initial load is done: inserts,
// updates (of keys too), deletes, a transaction of several statements,
// a TRUNCATE, then a column added (with the clause dflt, such as a
// DEFAULT) and used, and columns converted to other charsets.
func sourceChanges(t *testing.T, my *client.Conn, settle func(), dflt string) {
	t.Helper()
	myExec(t, my,
		"INSERT INTO orders VALUES (5001, 'new', 1.50, '4111', '2025-01-01 01:02:03.000004', 'inserted')",
		typesBulk(3001, 3050),
		"UPDATE orders SET amount = amount + 1, note = CONCAT(note, ' updated') WHERE id <= 100",
		"UPDATE orders SET id = id + 100000 WHERE id BETWEEN 101 AND 110",
		"UPDATE types SET id = id + 100000, vc = 'moved' WHERE id BETWEEN 1 AND 5",
		"UPDATE types SET js = '{\"updated\": true}', bl = x'0000', dtm = '0000-00-00 00:00:00', u64 = 18446744073709551615 WHERE id % 10 = 0",
		"DELETE FROM orders WHERE id BETWEEN 200 AND 250",
		"DELETE FROM types WHERE id BETWEEN 300 AND 320",
		"BEGIN",
		"INSERT INTO orders VALUES (5002, 'tx', 2.00, '4222', NOW(6), 'in a transaction')",
		"UPDATE orders SET customer = 'tx update' WHERE id BETWEEN 400 AND 410",
		"DELETE FROM orders WHERE id = 5001",
		"UPDATE types SET tx = 'tx' WHERE id = 7",
		"DELETE FROM types WHERE id = 8",
		"COMMIT",
	)
	settle()
	// As a client or proxy may send it, with a comment first.
	myExec(t, my, "/* app: cleanup */ TRUNCATE TABLE types", typesEdgeRows, typesOddRow, typesBulk(1, 200))
	settle()
	myExec(t, my, "ALTER TABLE orders ADD COLUMN extra varchar(20) "+dflt,
		"INSERT INTO orders (id, customer, amount, card, created, note, extra) VALUES (6001, 'with extra', 3, 'c', NOW(6), 'x', 'extra value')",
		"UPDATE orders SET extra = CONCAT('e', id) WHERE id BETWEEN 500 AND 520",
		// The binlog's text then comes in utf8mb4 where it was latin1.
		"ALTER TABLE types MODIFY l1 varchar(20) CHARACTER SET utf8mb4",
		"UPDATE types SET l1 = 'naïve ☃' WHERE id < 10")
	settle()
	// And the other way.
	myExec(t, my, "ALTER TABLE orders CONVERT TO CHARACTER SET latin1",
		"UPDATE orders SET customer = 'café €', note = 'ÿ' WHERE id BETWEEN 600 AND 610")
}

// TestMirrorIntoPostgres mirrors two MariaDB tables into Postgres: orders
// without its card column, and a table of every common type with edge
// values (limits, NULLs, zero dates, fractions, multi-byte text, zero
// bytes). The initial load of a few thousand rows, then inserts, updates
// (of primary keys too), deletes, a transaction of several statements, a
// TRUNCATE and an added column: each time the destination's rows, rendered
// as text, equal the source's, column by column.
func TestMirrorIntoPostgres(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	my := myConn(t, f.db)
	myExec(t, my, "SET SESSION sql_mode = ''", ordersDDL, typesDDL, typesEdgeRows, typesOddRow, typesBulk(1, 3000),
		"INSERT INTO orders SELECT seq, CONCAT('customer ', seq), seq * 1.25, CONCAT('card-', seq), "+
			"'2024-01-01 00:00:00.123456' + INTERVAL seq SECOND, IF(seq % 3 = 0, NULL, REPEAT('n', seq % 20)) FROM seq_1_to_3000")
	mustExec(t, f.conn, fmt.Sprintf(`CREATE MIRROR m FROM my TO dst WITH TABLE MAPPING
		({from: %[1]s.orders, to: orders, exclude: [card]}, %[1]s.types:types) WITH (snapshot_num_rows_per_partition = 700)`, f.db))
	waitStatus(t, f.conn, "m", "RUNNING")
	check := func() {
		t.Helper()
		waitSamePG(t, f.conn, f.dst, my, "types", "types", "id", typesCols)
		waitSamePG(t, f.conn, f.dst, my, "orders", "orders", "id", ordersCols)
	}
	check()
	var cardCols int
	if err := f.dst.QueryRow(testCtx(t), `SELECT count(*) FROM information_schema.columns WHERE table_name = 'orders' AND column_name = 'card'`).Scan(&cardCols); err != nil || cardCols != 0 {
		t.Fatalf("the excluded column card is on the destination (%d, %v)", cardCols, err)
	}
	// Postgres fills the rows it has with the new column's values
	// (ColumnReader.ReadColumns).
	sourceChanges(t, my, check, "DEFAULT 'dflt'")
	withExtra := append(ordersCols[:len(ordersCols):len(ordersCols)], text("extra"))
	waitSamePG(t, f.conn, f.dst, my, "orders", "orders", "id", withExtra)
	check()
	// The binlog's commit times give the lag in seconds (whole seconds,
	// so up to a second more than the real one).
	var lag *float64
	if err := f.conn.QueryRow(testCtx(t), `SELECT lag_seconds FROM mirrors WHERE name = 'm'`).Scan(&lag); err != nil ||
		lag == nil || *lag < 0 || *lag > 60 {
		t.Errorf("lag_seconds after CDC from MySQL: %v, %v; want between 0 and 60", lag, err)
	}
	mustExec(t, f.conn, "DROP MIRROR m")
}
