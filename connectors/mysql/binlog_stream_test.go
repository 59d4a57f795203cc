package mysql

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/internal/testbed"
)

// testEncoder encodes the test tables' integer and string values as int4
// and text; the real encoders have tests of their own.
func testEncoder(c connectors.Column, _ *replication.TableMapEvent, _ int) (binlogEncoder, error) {
	return func(v any) (connectors.Value, error) {
		switch x := v.(type) {
		case int32:
			return connectors.Value{Kind: connectors.Binary, Data: binary.BigEndian.AppendUint32(nil, uint32(x))}, nil
		case string:
			return connectors.Value{Kind: connectors.Binary, Data: []byte(x)}, nil
		case []byte:
			return connectors.Value{Kind: connectors.Binary, Data: append([]byte(nil), x...)}, nil
		}
		return connectors.Value{}, fmt.Errorf("column %s: unexpected %T", c.Name, v)
	}, nil
}

// render shows a row of test values: ints as numbers, the rest as text.
func render(row []connectors.Value) string {
	var parts []string
	for _, v := range row {
		switch {
		case v.Kind == connectors.Null:
			parts = append(parts, "NULL")
		case len(v.Data) == 4 && (v.Data[0] == 0 || v.Data[0] == 0xff):
			parts = append(parts, fmt.Sprint(int32(binary.BigEndian.Uint32(v.Data))))
		default:
			parts = append(parts, string(v.Data))
		}
	}
	return strings.Join(parts, ",")
}

// describe renders a stream's events in a line each.
func describe(evs []connectors.Event) []string {
	var out []string
	for _, e := range evs {
		switch e.Kind {
		case connectors.EventBegin:
			out = append(out, "begin")
		case connectors.EventCommit:
			out = append(out, "commit")
		case connectors.EventNewColumns:
			var names []string
			for _, c := range e.NewColumns {
				names = append(names, c.Name)
			}
			out = append(out, "columns "+e.Table.Name+" +"+strings.Join(names, ","))
		case connectors.EventChange:
			c := e.Change
			s := fmt.Sprintf("%c %s", c.Kind, c.Table.Name)
			if c.Old != nil {
				s += " old(" + render(c.Old) + ")"
			}
			if c.New != nil {
				s += " new(" + render(c.New) + ")"
			}
			out = append(out, s)
		}
	}
	return out
}

// masterPos returns the server's binlog position now, with its GTID state.
func masterPos(t *testing.T, m *testbed.MariaDB) binlogPos {
	t.Helper()
	ctx := context.Background()
	conn, err := m.Connect(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r, err := conn.Execute("SHOW MASTER STATUS")
	if err != nil {
		t.Fatal(err)
	}
	file, _ := r.GetString(0, 0)
	off, _ := r.GetUint(0, 1)
	p, err := newBinlogPos(file, off)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// readUntil reads s until want events that are not progress came, or 20 s
// pass.
func readUntil(t *testing.T, s *binlogStream, want int) []connectors.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var got []connectors.Event
	for {
		evs, err := s.Read(ctx, nil, 100, 200*time.Millisecond)
		if err != nil {
			t.Fatalf("read after %v: %v", describe(got), err)
		}
		for _, e := range evs {
			if e.Kind != connectors.EventProgress {
				got = append(got, e)
			}
		}
		if len(got) >= want {
			return got
		}
	}
}

func testTables() map[connectors.TableName]*connectors.TableSchema {
	t := connectors.TableName{Schema: "app", Name: "t"}
	return map[connectors.TableName]*connectors.TableSchema{t: {
		Name:       t,
		Columns:    []connectors.Column{{Name: "id", Type: "integer", TypeOID: 23, NotNull: true, Position: 1}, {Name: "v", Type: "text", TypeOID: 25, Position: 2}},
		PrimaryKey: []string{"id"},
	}}
}

func streamConfig(m *testbed.MariaDB, gtid bool) binlogConfig {
	var at func(ctx context.Context, p binlogPos) (string, error)
	if gtid {
		at = func(ctx context.Context, p binlogPos) (string, error) {
			conn, err := m.Connect(ctx, "")
			if err != nil {
				return "", err
			}
			defer conn.Close()
			r, err := conn.Execute(fmt.Sprintf("SELECT BINLOG_GTID_POS('%s', %d)", p.File, p.Offset))
			if err != nil {
				return "", err
			}
			return r.GetString(0, 0)
		}
	}
	return binlogConfig{Host: m.Host(), Port: uint16(m.Port()), User: testbed.MariaDBUser, Password: testbed.MariaDBPassword,
		Flavor: gomysql.MariaDBFlavor, ServerID: 4242, GTIDAt: at, Encoder: testEncoder,
		Describe: func(_ context.Context, t connectors.TableName, _ []string) (*connectors.TableSchema, error) {
			ts := testTables()[t]
			ts.Columns = append(ts.Columns, connectors.Column{Name: "w", Type: "integer", TypeOID: 23, Position: 3})
			return ts, nil
		}}
}

func TestBinlogStream(t *testing.T) {
	m, err := testbed.StartMariaDB(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	m.Exec(t, "", "CREATE DATABASE app",
		"CREATE TABLE app.t (id int PRIMARY KEY, v varchar(20))",
		"CREATE TABLE app.u (id int PRIMARY KEY)")
	start := masterPos(t, m)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, gtid := range []bool{false, true} {
		t.Run(fmt.Sprintf("gtid=%v", gtid), func(t *testing.T) {
			ctx := context.Background()
			s, err := startBinlogStream(ctx, streamConfig(m, gtid), start.Position(), testTables(), log)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(ctx)
			if !gtid {
				m.Exec(t, "app",
					"INSERT INTO t VALUES (1, 'a'), (2, 'b')",
					"UPDATE t SET v = 'c' WHERE id = 1",
					"UPDATE t SET id = 3 WHERE id = 2",
					"DELETE FROM t WHERE id = 1",
					"INSERT INTO u VALUES (1)",
					"BEGIN", "INSERT INTO t VALUES (4, NULL)", "INSERT INTO u VALUES (2)", "COMMIT",
					"TRUNCATE TABLE t",
					"ALTER TABLE t ADD COLUMN w int",
					"INSERT INTO t VALUES (5, 'e', 7)")
			}
			got := readUntil(t, s, 22)
			want := []string{
				"begin", "I t new(1,a)", "I t new(2,b)", "commit",
				"begin", "U t new(1,c)", "commit",
				"begin", "U t old(2,b) new(3,b)", "commit",
				"begin", "D t old(1,c)", "commit",
				"begin", "I t new(4,NULL)", "commit",
				"begin", "T t", "commit",
				"begin", "columns t +w", "I t new(5,e,7)", "commit",
			}
			if d := describe(got); strings.Join(d, "\n") != strings.Join(want, "\n") {
				t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(d, "\n"), strings.Join(want, "\n"))
			}
			// Positions grow: each transaction begins where the last
			// ended or later, and versions grow with them.
			var last connectors.Position = start.Position()
			var lastVersion uint64 = start.Version()
			for _, e := range got {
				switch e.Kind {
				case connectors.EventBegin:
					if e.Pos.Before(last) || e.Version <= lastVersion {
						t.Fatalf("begin at %s (version %d) after %s (version %d)", e.Pos, e.Version, last, lastVersion)
					}
					lastVersion = e.Version
				case connectors.EventCommit:
					if !last.Before(e.Pos) {
						t.Fatalf("commit at %s after %s", e.Pos, last)
					}
					last = e.Pos
					if _, err := parseBinlogPos(e.Pos); err != nil {
						t.Fatal(err)
					}
				}
			}
			// Resuming at the end of the third transaction starts with the
			// fourth.
			var third connectors.Position
			n := 0
			for _, e := range got {
				if e.Kind == connectors.EventCommit {
					if n++; n == 3 {
						third = e.Pos
					}
				}
			}
			r, err := startBinlogStream(ctx, streamConfig(m, gtid), third, testTables(), log)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close(ctx)
			again := describe(readUntil(t, r, 3))[:3]
			if strings.Join(again, "\n") != "begin\nD t old(1,c)\ncommit" {
				t.Fatalf("resumed at %s: %v", third, again)
			}
		})
	}
}

func TestBinlogStreamDropTable(t *testing.T) {
	m, err := testbed.StartMariaDB(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	m.Exec(t, "", "CREATE DATABASE app", "CREATE TABLE app.t (id int PRIMARY KEY, v varchar(20))")
	ctx := context.Background()
	s, err := startBinlogStream(ctx, streamConfig(m, true), masterPos(t, m).Position(), testTables(),
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	m.Exec(t, "app", "DROP TABLE IF EXISTS other, t")
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for {
		_, err := s.Read(rctx, nil, 100, 200*time.Millisecond)
		if err == nil {
			continue
		}
		if !errors.Is(err, errDDL) || !strings.Contains(err.Error(), "DROP TABLE app.t") {
			t.Fatalf("error = %v, want one naming DROP TABLE app.t", err)
		}
		return
	}
}

func TestBinlogPosRoundTrip(t *testing.T) {
	p, err := newBinlogPos("binlog.000042", 1234)
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseBinlogPos(p.Position())
	if err != nil || got != p {
		t.Fatalf("round trip of %s: %+v, %v", p.Position(), got, err)
	}
	q, _ := newBinlogPos("binlog.000043", 4)
	if !p.Position().Before(q.Position()) || p.Version() >= q.Version() {
		t.Fatalf("%s is not before %s", p.Position(), q.Position())
	}
	for _, bad := range []string{"", "0/16B3748", "0000000042:000000001234", "0000000042:000000001234 binlog.000041",
		"0000000042:000000001234 binlog.000042 0-1-57"} {
		if _, err := parseBinlogPos(connectors.Position(bad)); err == nil {
			t.Errorf("parseBinlogPos(%q) = nil error", bad)
		}
	}
	if got := FormatPosition(p.Position()); got != "binlog.000042:1234" {
		t.Errorf("FormatPosition = %q", got)
	}
}
