package mysql_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/mysql"
)

// render shows a row of test values: ints as numbers, the rest as text.
func render(row []connectors.Value) string {
	var parts []string
	for _, v := range row {
		switch {
		case v.Kind == connectors.Null:
			parts = append(parts, "NULL")
		case v.Kind == connectors.Unchanged:
			parts = append(parts, "?")
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

// masterPos returns the server's binlog position now.
func masterPos(t *testing.T, src *mysql.Source) connectors.Position {
	t.Helper()
	r, err := src.Exec("SHOW MASTER STATUS")
	if err != nil {
		t.Fatal(err)
	}
	file, _ := r.GetString(0, 0)
	off, _ := r.GetUint(0, 1)
	p, _, err := mysql.BinlogPos{File: file, Offset: off}.Position()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// readUntil reads s until want events that are not progress came, or 20 s
// pass.
func readUntil(t *testing.T, s connectors.Stream, want int) []connectors.Event {
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

// describeT describes db.t with src.
func describeT(t *testing.T, src *mysql.Source, db string) *connectors.TableSchema {
	t.Helper()
	ts, err := src.Describe(testCtx(t), connectors.TableName{Schema: db, Name: "t"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// streamOf opens src's stream of db.t, described as ts, from pos for
// mirror m, closed when the test ends.
func streamOf(t *testing.T, src *mysql.Source, ts *connectors.TableSchema, mirror string, pos connectors.Position) connectors.Stream {
	t.Helper()
	name := ts.Name
	s, err := src.Stream(testCtx(t), connectors.StreamSpec{Mirror: mirror}, pos, map[connectors.TableName]*connectors.TableSchema{name: ts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// openWith opens a Source on the shared MariaDB with extra peer options.
func openWith(t *testing.T, db string, extra map[string]string) *mysql.Source {
	t.Helper()
	src, err := peerOn(t, maria, db, extra).OpenSource(testCtx(t), "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close(context.Background()) })
	return src.(*mysql.Source)
}

// TestBinlogStream streams a table's changes of every kind, in GTID mode
// and by file and offset, checks the positions and versions, and resumes
// after the third transaction.
func TestBinlogStream(t *testing.T) {
	db := newDB(t)
	maria.Exec(t, db, "CREATE TABLE t (id int PRIMARY KEY, v varchar(20))", "CREATE TABLE u (id int PRIMARY KEY)")
	first := openWith(t, db, nil)
	start, before := masterPos(t, first), describeT(t, first, db)
	maria.Exec(t, db,
		"INSERT INTO t VALUES (1, 'a'), (2, 'b')",
		"UPDATE t SET v = 'c' WHERE id = 1",
		"UPDATE t SET id = 3 WHERE id = 2",
		"DELETE FROM t WHERE id = 1",
		"INSERT INTO u VALUES (1)",
		"BEGIN", "INSERT INTO t VALUES (4, NULL)", "INSERT INTO u VALUES (2)", "COMMIT",
		"TRUNCATE TABLE t",
		"ALTER TABLE t ADD COLUMN w int",
		"INSERT INTO t VALUES (5, 'e', 7)")
	for _, mech := range []string{"filepos", "gtid"} {
		t.Run(mech, func(t *testing.T) {
			src := openWith(t, db, map[string]string{"replication_mechanism": mech})
			got := readUntil(t, streamOf(t, src, before, "m_"+mech, start), 23)
			want := []string{
				"begin", "I t new(1,a)", "I t new(2,b)", "commit",
				"begin", "U t new(1,c)", "commit",
				"begin", "U t old(2,b) new(3,b)", "commit",
				"begin", "D t old(1,c)", "commit",
				"begin", "I t new(4,NULL)", "commit",
				"begin", "T t", "commit",
				"begin", "columns t +w", "I t new(5,e,7)", "commit",
			}
			if d := describe(got); strings.Join(d, "\n") != strings.Join(want, "\n") || len(got) != len(want) {
				t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(d, "\n"), strings.Join(want, "\n"))
			}
			// Positions grow: each transaction begins where the last
			// ended or later, and versions grow with them.
			last := start
			p, _ := mysql.DecodePosition(start)
			lastVersion, _ := p.Version()
			var third connectors.Position
			commits := 0
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
					if _, err := mysql.DecodePosition(e.Pos); err != nil {
						t.Fatal(err)
					}
					if commits++; commits == 3 {
						third = e.Pos
					}
				}
			}
			// Resuming at the end of the third transaction starts with the
			// fourth.
			again := describe(readUntil(t, streamOf(t, src, before, "m_"+mech, third), 3))[:3]
			if strings.Join(again, "\n") != "begin\nD t old(1,c)\ncommit" {
				t.Fatalf("resumed at %s: %v", third, again)
			}
			// Resumed with the table as it is now (with w), the rows
			// logged before w was added have it Unchanged.
			now := describe(readUntil(t, streamOf(t, src, describeT(t, src, db), "m_"+mech, third), 3))[:3]
			if strings.Join(now, "\n") != "begin\nD t old(1,c,?)\ncommit" {
				t.Fatalf("resumed at %s with the table as it is now: %v", third, now)
			}
		})
	}
}

// TestBinlogStreamDDL: DDL the mirror does not follow (a mirrored table
// dropped or renamed, a column dropped, renamed or changed in type) stops
// the stream with an error that names it; DDL of other tables and
// renaming a column's index do not.
func TestBinlogStreamDDL(t *testing.T) {
	for _, c := range []struct {
		name string
		ddl  []string
		want string
	}{
		{"drop", []string{"DROP TABLE IF EXISTS other, t"}, "DROP TABLE %s.t"},
		{"rename", []string{"RENAME TABLE other TO other2, t TO t2"}, "RENAME TABLE %s.t"},
		{"alter rename", []string{"ALTER TABLE other RENAME TO other3", "ALTER TABLE t RENAME INDEX vi TO vj", "ALTER TABLE t COMMENT 'x', RENAME AS t4"},
			"ALTER TABLE %s.t ... RENAME"},
		{"drop column", []string{"ALTER TABLE t DROP COLUMN v", "INSERT INTO t VALUES (1)"}, "column v of %s.t is gone"},
		{"type", []string{"ALTER TABLE t MODIFY v varchar(50)", "INSERT INTO t VALUES (1, 'x')"},
			"column v of %s.t changed type on the source, from character varying(20) to character varying(50)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			db := newDB(t)
			maria.Exec(t, db, "CREATE TABLE t (id int PRIMARY KEY, v varchar(20), KEY vi (v))", "CREATE TABLE other (id int PRIMARY KEY)",
				"INSERT INTO t VALUES (0, 'before')")
			src := openWith(t, db, nil)
			ts := describeT(t, src, db)
			s := streamOf(t, src, ts, "m", masterPos(t, src))
			maria.Exec(t, db, "INSERT INTO t VALUES (-1, 'first')") // the table map before the DDL
			maria.Exec(t, db, c.ddl...)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			for {
				_, err := s.Read(ctx, nil, 100, 200*time.Millisecond)
				if err == nil {
					continue
				}
				if want := fmt.Sprintf(c.want, db); !strings.Contains(err.Error(), want) {
					t.Fatalf("error = %v, want one saying %s", err, want)
				}
				return
			}
		})
	}
}

// TestBinlogStreamCharsetChange: a table converted to another charset
// while its stream runs logs its text in the new charset; the stream,
// which read the table before, converts each row by the charset its table
// map gives (latin1's é is one byte, utf8mb4's two).
func TestBinlogStreamCharsetChange(t *testing.T) {
	db := newDB(t)
	maria.Exec(t, db, "CREATE TABLE t (id int PRIMARY KEY, v varchar(20)) CHARACTER SET latin1")
	src := openWith(t, db, nil)
	s := streamOf(t, src, describeT(t, src, db), "m", masterPos(t, src))
	maria.Exec(t, db,
		"INSERT INTO t VALUES (1, 'café €')",
		"ALTER TABLE t CONVERT TO CHARACTER SET utf8mb4",
		"INSERT INTO t VALUES (2, 'naïve ☃')",
		"DELETE FROM t WHERE id = 2", // ☃ is not in latin1
		"ALTER TABLE t CONVERT TO CHARACTER SET latin1",
		"INSERT INTO t VALUES (3, 'ÿ')")
	got := describe(readUntil(t, s, 12))
	want := []string{"begin", "I t new(1,café €)", "commit", "begin", "I t new(2,naïve ☃)", "commit",
		"begin", "D t old(2,naïve ☃)", "commit", "begin", "I t new(3,ÿ)", "commit"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestBinlogStreamCommentedDDL: DDL logged with comments before it (as
// clients and proxies send it) is followed: a TRUNCATE, then a DROP
// TABLE that stops the stream.
func TestBinlogStreamCommentedDDL(t *testing.T) {
	db := newDB(t)
	maria.Exec(t, db, "CREATE TABLE t (id int PRIMARY KEY)", "INSERT INTO t VALUES (1)")
	src := openWith(t, db, nil)
	s := streamOf(t, src, describeT(t, src, db), "m", masterPos(t, src))
	maria.Exec(t, db,
		"/* app: cleanup */ TRUNCATE TABLE t",
		"INSERT INTO t VALUES (2)",
		"# why\n-- because\n/*!40101 TRUNCATE t */",
		"INSERT INTO t VALUES (3)")
	got := describe(readUntil(t, s, 12))
	want := []string{"begin", "T t", "commit", "begin", "I t new(2)", "commit", "begin", "T t", "commit", "begin", "I t new(3)", "commit"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	maria.Exec(t, db, "/* tool */ DROP TABLE t")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		_, err := s.Read(ctx, nil, 100, 200*time.Millisecond)
		if err == nil {
			continue
		}
		if want := "DROP TABLE " + db + ".t"; !strings.Contains(err.Error(), want) {
			t.Fatalf("error = %v, want one naming %s", err, want)
		}
		return
	}
}

// TestBinlogStreamAlterRename: renaming a mirrored table by ALTER TABLE
// ... RENAME, or replacing it (CREATE OR REPLACE TABLE), stops the stream
// with an error naming it; renaming an index, or a rename only in a
// comment's text, does not. (A renamed column stops it too, when a row
// shows the column gone: see mapColumns.)
func TestBinlogStreamAlterRename(t *testing.T) {
	for _, c := range []struct{ ddl, err string }{
		{"ALTER TABLE t RENAME TO t2", "ALTER TABLE %s.t ... RENAME"},
		{"ALTER TABLE t ADD COLUMN w int, RENAME t2", "ALTER TABLE %s.t ... RENAME"},
		{"CREATE OR REPLACE TABLE t (id int PRIMARY KEY)", "CREATE OR REPLACE TABLE %s.t"},
	} {
		t.Run(strings.Fields(c.ddl)[0], func(t *testing.T) {
			db := newDB(t)
			maria.Exec(t, db, "CREATE TABLE t (id int PRIMARY KEY, v int, KEY kv (v))")
			src := openWith(t, db, nil)
			s := streamOf(t, src, describeT(t, src, db), "m", masterPos(t, src))
			maria.Exec(t, db,
				"ALTER TABLE t RENAME INDEX kv TO kx, COMMENT 'rename me'", "ALTER TABLE t RENAME KEY kx TO ky",
				"INSERT INTO t VALUES (1, 2)", c.ddl)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			for {
				_, err := s.Read(ctx, nil, 100, 200*time.Millisecond)
				if err == nil {
					continue
				}
				if want := fmt.Sprintf(c.err, db); !strings.Contains(err.Error(), want) {
					t.Fatalf("error = %v, want one naming %s", err, want)
				}
				break
			}
		})
	}
}

// TestBinlogStreamRestartAtOnce: a stream closed and opened again at once
// with the same replica id (a flow restarting its stream) reads on: the
// server ends what it still holds of the closed one's dump, not the new
// one (TestBinlogStreamRestartWhileWriting, under writes).
func TestBinlogStreamRestartAtOnce(t *testing.T) {
	db := newDB(t)
	maria.Exec(t, db, "CREATE TABLE t (id int PRIMARY KEY, v varchar(20))")
	src := openWith(t, db, nil)
	ts, start := describeT(t, src, db), masterPos(t, src)
	for i := range 5 {
		maria.Exec(t, db, fmt.Sprintf("INSERT INTO t VALUES (%d, 'r')", i))
		s, err := src.Stream(testCtx(t), connectors.StreamSpec{Mirror: "same"}, start, map[connectors.TableName]*connectors.TableSchema{ts.Name: ts})
		if err != nil {
			t.Fatal(err)
		}
		got := describe(readUntil(t, s, 3))
		s.Close(context.Background())
		if len(got) < 3 || got[1] != "I t new(0,r)" {
			t.Fatalf("restart %d: %v", i, got)
		}
	}
}

// TestSameReplicaError: the server's ending a stream for a newer one of its
// replica id, which the stream's error explains, is told from other
// errors.
func TestSameReplicaError(t *testing.T) {
	refused := fmt.Errorf("read: %w", &gomysql.MyError{Code: 4052, State: "HY000",
		Message: "A slave with the same server_uuid/server_id is already connected"})
	if !mysql.SameReplica(refused) {
		t.Errorf("%v not taken for the same replica", refused)
	}
	for _, err := range []error{errors.New("connection refused"), &gomysql.MyError{Code: 1236, Message: "Could not find first log file name"}} {
		if mysql.SameReplica(err) {
			t.Errorf("%v taken for the same replica", err)
		}
	}
}
