package mysql

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strconv"
	"strings"

	"github.com/go-mysql-org/go-mysql/client"
	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/sluicedb/sluice/connectors"
)

// serverIDSpan is how many replica ids the mirrors of one peer spread
// over: a mirror reads the binlog as server_id plus a number under it
// derived from its name, so that two mirrors of one server do not take
// each other's replica connection (a server ends an older connection that
// registers with the same id).
const serverIDSpan = 100_000

// mirrorServerID returns the replica id mirror's stream registers with.
// Ids wrap past 2^32-1 to 1 on (0 is not a replica's id). Two mirror
// names may still land on one id (the second stream to connect ends the
// first one's, whose mirror fails with 4052 and, retrying, ends the
// other's in turn): give such mirrors other names, or
// their peers other server_id values.
func mirrorServerID(base uint32, mirror string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(mirror))
	id := uint64(base) + uint64(h.Sum32()%serverIDSpan)
	if id > 1<<32-1 {
		id = id - (1<<32 - 1)
	}
	if id == 0 {
		id = 1
	}
	return uint32(id)
}

// Stream implements connectors.Source: the binlog from from, decoded into
// the changes of tables (see binlogDecoder), on a replica connection and
// an SQL connection of the stream's own (for the columns a table gains,
// and the GTID state to resume from). With replication_mechanism 'gtid',
// or 'auto' on MariaDB, the stream resumes by GTID; otherwise, and always
// on MySQL, by file and offset.
func (s *Source) Stream(ctx context.Context, spec connectors.StreamSpec, from connectors.Position,
	tables map[connectors.TableName]*connectors.TableSchema) (connectors.Stream, error) {
	conn, err := s.peer.Connect(ctx)
	if err != nil {
		return nil, err
	}
	cols := make(map[connectors.TableName]map[string]*colType, len(tables))
	describe := func(_ context.Context, t connectors.TableName, exclude []string) (*connectors.TableSchema, error) {
		ts, cts, err := describeTable(conn, s.flavor, t, exclude)
		if err != nil {
			return nil, err
		}
		byName := make(map[string]*colType, len(cts))
		for i := range cts {
			byName[cts[i].Name] = &cts[i]
		}
		cols[t] = byName
		return ts, nil
	}
	for t, ts := range tables {
		if _, err := describe(ctx, t, ts.Exclude); err != nil {
			conn.Close()
			return nil, err
		}
	}
	charsets, err := collationCharsets(conn)
	if err != nil {
		conn.Close()
		return nil, err
	}
	var lastTM *replication.TableMapEvent
	var lastCollations map[int]uint64
	cfg := binlogConfig{
		Host: s.peer.Host, Port: uint16(s.peer.Port), User: s.peer.User, Password: s.peer.Password,
		Flavor: s.flavor, ServerID: mirrorServerID(s.peer.ServerID, spec.Mirror),
		Describe: describe,
		Encoder: func(c connectors.Column, tm *replication.TableMapEvent, j int) (binlogEncoder, error) {
			t := connectors.TableName{Schema: string(tm.Schema), Name: string(tm.Table)}
			ct, ok := cols[t][c.Name]
			if !ok {
				return nil, fmt.Errorf("column %s of %s is not known", c.Name, t)
			}
			if tm != lastTM {
				lastTM, lastCollations = tm, tm.CollationMap()
			}
			ct = withBinlogCharset(ct, lastCollations, j, charsets)
			return func(v any) (connectors.Value, error) { return encodeBinlog(ct, v) }, nil
		},
	}
	if s.flavor == FlavorMariaDB && s.peer.Mechanism != MechanismFilePos {
		cfg.GTIDAt = func(_ context.Context, p BinlogPos) (string, error) {
			return gtidAt(conn, p)
		}
	}
	log := slog.New(slog.DiscardHandler)
	var st *binlogStream
	if !s.peer.DisableTLS {
		cfg.TLS = s.peer.TLSOptions.Config(s.peer.Host)
		st, err = startBinlogStream(ctx, cfg, from, tables, log)
		if err != nil && !s.peer.RequireTLS && ctx.Err() == nil && !isAuthError(err) {
			// As Connect: without require_tls, plain text when TLS fails.
			cfg.TLS = nil
			st, err = startBinlogStream(ctx, cfg, from, tables, log)
		}
	} else {
		st, err = startBinlogStream(ctx, cfg, from, tables, log)
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	return &sourceStream{binlogStream: st, conn: conn}, nil
}

// collationCharsets reads the server's collations: the character set of
// each collation id, as table map events name a column's.
func collationCharsets(conn *client.Conn) (map[uint64]string, error) {
	r, err := conn.Execute("SELECT ID, CHARACTER_SET_NAME FROM information_schema.COLLATIONS")
	if err != nil {
		return nil, fmt.Errorf("read the server's collations: %w", err)
	}
	out := make(map[uint64]string, r.RowNumber())
	for i := range r.RowNumber() {
		id, _ := r.GetUint(i, 0)
		name, _ := r.GetString(i, 1)
		out[id] = name
	}
	return out, nil
}

// withBinlogCharset returns ct with the character set the binlog's table
// map gives binlog column j (collations, by column; charsets, by
// collation id), when it is another than ct's: text is logged in the
// charset the column had when the row was written, which differs from
// what the table has now (ct, read when the stream started) across an
// ALTER TABLE ... CONVERT TO CHARACTER SET. A column that is not text,
// or a table map without charsets, keeps ct.
func withBinlogCharset(ct *colType, collations map[int]uint64, j int, charsets map[uint64]string) *colType {
	if ct.Charset == "" || ct.Enc != encText && ct.Enc != encJSON {
		return ct
	}
	id, ok := collations[j]
	if !ok {
		return ct
	}
	cs, ok := charsets[id]
	if !ok || cs == "binary" || strings.EqualFold(cs, ct.Charset) {
		return ct
	}
	c := *ct
	c.Charset = cs
	return &c
}

// gtidAt returns MariaDB's GTID state at binlog position p.
func gtidAt(conn *client.Conn, p BinlogPos) (string, error) {
	r, err := conn.Execute("SELECT BINLOG_GTID_POS('" + gomysql.Escape(p.File) + "', " + strconv.FormatUint(p.Offset, 10) + ")")
	if err != nil {
		return "", err
	}
	state, err := r.GetString(0, 0)
	if err != nil {
		return "", err
	}
	if state == "" && p.Offset > 4 {
		// NULL: the server no longer has the file, or p is not at an
		// event's start.
		return "", errors.New("the server has no GTID state there (the binlog file purged?)")
	}
	return state, nil
}

// sourceStream is the Source's stream: the binlog stream and its SQL
// connection, closed with it.
type sourceStream struct {
	*binlogStream
	conn *client.Conn
}

// Close implements connectors.Stream.
func (s *sourceStream) Close(ctx context.Context) error {
	err := s.binlogStream.Close(ctx)
	s.conn.Close()
	return err
}
