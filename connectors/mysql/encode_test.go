package mysql_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/mysql"
	"github.com/sluicedb/sluice/internal/testbed"
)

// edgeRows are rows of allTypesDDL's table with edge values: minima,
// maxima, zero dates, negative and fractional values, text and bytes that
// trip converters, and NULLs.
var edgeRows = []string{
	`(1, -128, 0, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0,
	  -99999999999999.999999, -0.000000000000000000000000000001, -3.40282e38, -1.7976931348623157e308, b'0', b'0',
	  '1000-01-01', '1000-01-01 00:00:00.000000', '0000-00-00 00:00:00', '1970-01-01 00:00:01.000',
	  '-838:59:59.000000', '-00:00:01', 1901,
	  'a', '', 'utf8mb4 😀 ü', 'café', x'00010000', x'00', '', 'a', '', '{"a": [1, 2.5, null, true], "b": "ü"}',
	  ST_GeomFromText('POINT(1 2)'))`,
	`(2, 127, 255, 1, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295, 9223372036854775807, 18446744073709551615,
	  99999999999999.999999, 12345678901234567890123456789012345.123456789012345678901234567890, 3.40282e38, 1.7976931348623157e308,
	  b'1111111111', x'FFFFFFFFFFFFFFFF',
	  '9999-12-31', '9999-12-31 23:59:59.999999', '2024-02-29 12:34:56', '2038-01-19 03:14:07.999',
	  '838:59:59.000000', '25:00:00', 2155,
	  'abcde', 'xxxxxxxxxxxxxxxxxxxx', REPEAT('long text ', 1000), 'ÿ€', x'61000000', x'00ff00', x'000102', 'it''s', 'x,z', '"str"',
	  ST_GeomFromText('LINESTRING(0 0, 1 1.5)'))`,
	`(3, 0, 1, 0, 0, 1, 0, 1, 0, 1, 0, 1,
	  -0.000001, 0, 1.2345678, 0.1, b'101', b'1',
	  '0000-00-00', '2024-00-00 00:00:00', '2000-01-01 00:00:00', '2000-01-01 00:00:00.5',
	  '12:34:56.789', '00:00:00', 0,
	  'ab  ', 'trailing ', 'tab\tnew\nline', '', x'00000000', '', NULL, 'b c', 'x,y,z', 'null',
	  NULL)`,
	`(4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
	  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`,
}

// edgeText is what Postgres prints for some of the values of edgeRows (by
// row id and column), as the binary values encoded from them decode.
var edgeText = map[int]map[string]string{
	1: {"ti": "-128", "bi": "-9223372036854775808", "d": "-99999999999999.999999", "dz": "-0.000000000000000000000000000001",
		"f": "-3.40282e+38", "bt": "0000000000", "dt": "1000-01-01", "dtm": "1000-01-01 00:00:00", "dtm0": "NULL",
		"ts": "1970-01-01 00:00:01+00", "tm": "-838:59:59", "tm0": "-00:00:01", "yr": "1901", "tx": "utf8mb4 😀 ü",
		"lat": "café", "bn": `\x00010000`, "vb": `\x00`, "en": "a", "st": "{}", "js": `{"a": [1, 2.5, null, true], "b": "ü"}`,
		"g": `\x0101000000000000000000f03f0000000000000040`},
	2: {"tiu": "255", "siu": "65535", "miu": "16777215", "iu": "4294967295", "biu": "18446744073709551615",
		"dz": "12345678901234567890123456789012345.123456789012345678901234567890", "db": "1.7976931348623157e+308",
		"bt": "1111111111", "b64": strings.Repeat("1", 64), "dtm": "9999-12-31 23:59:59.999999", "dtm0": "2024-02-29 12:34:56",
		"ts": "2038-01-19 03:14:07.999+00", "tm": "838:59:59", "tm0": "25:00:00", "lat": "ÿ€", "bn": `\x61000000`,
		"vb": `\x00ff00`, "en": "it's", "st": "{x,z}", "js": `"str"`},
	3: {"d": "-0.000001", "dz": "0.000000000000000000000000000000", "f": "1.2345678", "db": "0.1", "bt": "0000000101",
		"dt": "NULL", "dtm": "NULL", "ts": "2000-01-01 00:00:00.5+00", "tm": "12:34:56.789", "tm0": "00:00:00", "yr": "0",
		"c": "ab", "vc": "trailing ", "tx": "tab\tnew\nline", "bn": `\x00000000`, "vb": `\x`, "bl": "NULL", "en": "b c",
		"st": "{x,y,z}", "js": "null"},
	4: {"ti": "NULL", "biu": "NULL", "st": "NULL", "js": "NULL", "g": "NULL"},
}

// TestEncodersAgree inserts edgeRows into a table of every type and reads
// them back both ways: with a partition reader (the text protocol,
// encodeText) and from the binlog (go-mysql's row events, mysql.EncodeBinlog,
// with strings for decimals and times and with decimal.Decimal and
// time.Time). Every value must encode to the same bytes every way, and
// Postgres must receive those bytes as a value of the mapped type and send
// back the same bytes (so they are what Postgres itself sends), printing
// what edgeText says.
func TestEncodersAgree(t *testing.T) {
	ctx := testCtx(t)
	db := newDB(t)
	maria.Exec(t, "", fmt.Sprintf(allTypesDDL, db))
	src := openSource(t, db)
	table := connectors.TableName{Schema: db, Name: "edge"}
	ts, cols, err := src.DescribeCols(table, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := src.Exec("SHOW MASTER STATUS")
	if err != nil {
		t.Fatal(err)
	}
	file, _ := r.GetString(0, 0)
	offset, _ := r.GetUint(0, 1)
	maria.Exec(t, db, "SET SESSION sql_mode = ''", "INSERT INTO edge VALUES "+strings.Join(edgeRows, ", "))

	// The text form, through the initial load's reader.
	plan, err := src.Plan(ctx, table, ts, nil)
	if err != nil {
		t.Fatal(err)
	}
	reader, err := src.OpenReader(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close(ctx)
	var text [][]connectors.Value
	if _, err := reader.Read(ctx, table, ts, plan.Partitions[0], 3, func(rows [][]connectors.Value) error {
		text = append(text, rows...)
		return nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	if len(text) != len(edgeRows) {
		t.Fatalf("read %d rows, want %d", len(text), len(edgeRows))
	}

	pgConn, err := pgx.Connect(ctx, pg.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer pgConn.Close(context.Background())
	if _, err := pgConn.Exec(ctx, "SET TIME ZONE 'UTC'"); err != nil {
		t.Fatal(err)
	}
	for i, row := range text {
		id := i + 1
		for j, v := range row {
			printed := checkInPostgres(t, pgConn, cols[j], v, id)
			if want, ok := edgeText[id][cols[j].Name]; ok && printed != want {
				t.Errorf("row %d %s: Postgres prints %q, want %q", id, cols[j].Name, printed, want)
			}
		}
	}

	for _, mode := range []struct {
		name                  string
		parseTime, useDecimal bool
	}{{"strings", false, false}, {"parsed", true, true}} {
		binlog := binlogRows(t, maria, db, "edge", gomysql.Position{Name: file, Pos: uint32(offset)}, len(edgeRows),
			mode.parseTime, mode.useDecimal)
		for i, row := range binlog {
			for j, raw := range row {
				got, err := mysql.EncodeBinlog(&cols[j], raw)
				if err != nil {
					t.Errorf("%s: row %d %s: encode binlog value %#v: %v", mode.name, i+1, cols[j].Name, raw, err)
					continue
				}
				want := text[i][j]
				if got.Kind != want.Kind || !bytes.Equal(got.Data, want.Data) {
					t.Errorf("%s: row %d %s (%s): binlog value %#v encodes to %v %x, the SELECT's to %v %x", mode.name,
						i+1, cols[j].Name, cols[j].ColumnType, raw, string(got.Kind), got.Data, string(want.Kind), want.Data)
				}
			}
		}
	}
}

// checkInPostgres sends v to Postgres as a binary parameter of c's mapped
// type, checks the binary value it sends back is v, and returns the text
// Postgres prints for it ("NULL" for NULL).
func checkInPostgres(t *testing.T, conn *pgx.Conn, c mysql.ColType, v connectors.Value, id int) string {
	t.Helper()
	if v.Kind == connectors.Null {
		return "NULL"
	}
	ctx := testCtx(t)
	q := "SELECT $1::" + c.PGType
	res := conn.PgConn().ExecParams(ctx, q, [][]byte{v.Data}, []uint32{c.OID}, []int16{1}, []int16{1}).Read()
	if res.Err != nil {
		t.Errorf("row %d %s: Postgres refuses %x as %s: %v", id, c.Name, v.Data, c.PGType, res.Err)
		return ""
	}
	if back := res.Rows[0][0]; !bytes.Equal(back, v.Data) {
		t.Errorf("row %d %s: Postgres sends %x for our %x (%s)", id, c.Name, back, v.Data, c.PGType)
	}
	res = conn.PgConn().ExecParams(ctx, q+"::text", [][]byte{v.Data}, []uint32{c.OID}, []int16{1}, []int16{0}).Read()
	if res.Err != nil {
		t.Errorf("row %d %s: print: %v", id, c.Name, res.Err)
		return ""
	}
	return string(res.Rows[0][0])
}

// binlogRows reads the binlog of server m from pos until it has n rows
// written to db.table, decoded as go-mysql does with the options given.
func binlogRows(t *testing.T, m *testbed.MariaDB, db, table string, pos gomysql.Position, n int, parseTime, useDecimal bool) [][]any {
	t.Helper()
	ids := map[bool]uint32{false: 1001, true: 1002}
	syncer := replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		ServerID: ids[parseTime], Flavor: "mariadb", Host: m.Host(), Port: uint16(m.Port()),
		User: testbed.MariaDBUser, Password: testbed.MariaDBPassword,
		ParseTime: parseTime, UseDecimal: useDecimal, TimestampStringLocation: time.UTC,
		Logger: discardLogger(),
	})
	defer syncer.Close()
	st, err := syncer.StartSync(pos)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var rows [][]any
	for len(rows) < n {
		ev, err := st.GetEvent(ctx)
		if err != nil {
			t.Fatalf("binlog: %v (have %d rows of %d)", err, len(rows), n)
		}
		if re, ok := ev.Event.(*replication.RowsEvent); ok && string(re.Table.Schema) == db && string(re.Table.Table) == table {
			rows = append(rows, re.Rows...)
		}
	}
	return rows
}

// discardLogger keeps go-mysql's syncer quiet.
func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestEncodeNumeric sends decimals of every shape to Postgres as numeric
// binary values: Postgres must take them, send back the same bytes, and
// print the decimal (with its scale).
func TestEncodeNumeric(t *testing.T) {
	ctx := testCtx(t)
	conn, err := pgx.Connect(ctx, pg.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, c := range []struct{ in, want string }{
		{"0", "0"}, {"-0", "0"}, {"-0.00", "0.00"}, {"0.0001", "0.0001"}, {"0.00001", "0.00001"},
		{"10000", "10000"}, {"9999", "9999"}, {"100000000", "100000000"}, {"-1", "-1"},
		{"123456789.000010000", "123456789.000010000"}, {"00012.5", "12.5"}, {".5", "0.5"}, {"5.", "5"},
		{"-99999999999999999999999999999999999.999999999999999999999999999999", "-99999999999999999999999999999999999.999999999999999999999999999999"},
		{"18446744073709551615", "18446744073709551615"}, {"0.000000000000000000000000000001", "0.000000000000000000000000000001"},
	} {
		v, err := mysql.EncodeNumeric(c.in)
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		got := checkInPostgres(t, conn, mysql.ColType{Name: c.in, PGType: "numeric", OID: 1700}, v, 0)
		if got != c.want {
			t.Errorf("%s: Postgres prints %q, want %q", c.in, got, c.want)
		}
	}
	for _, bad := range []string{"", "-", "1e5", "1.2.3", "abc", "."} {
		if _, err := mysql.EncodeNumeric(bad); err == nil {
			t.Errorf("%q encoded", bad)
		}
	}
}
