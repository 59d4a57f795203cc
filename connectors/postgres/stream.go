package postgres

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/sluicedb/sluice/connectors"
)

const (
	// statusInterval is how often the stream reports its applied position
	// to the source when nothing else prompts it.
	statusInterval = 5 * time.Second
	// linger is how long Read goes on collecting events after the first.
	linger = 5 * time.Millisecond
	// arenaSize is the size of the blocks row messages are copied into.
	arenaSize = 256 << 10
	// valueArenaSize is how many values the value blocks hold.
	valueArenaSize = 4096
)

// relation is the stream's view of a source relation.
type relation struct {
	table  connectors.TableName
	schema *connectors.TableSchema // nil when the table is not mirrored
	// index maps the relation's column positions to schema columns (-1:
	// not replicated).
	index []int
	// key holds the schema positions of the primary key columns.
	key []int
}

// Stream decodes a pgoutput logical replication stream (binary values)
// into Events for the mirrored tables. Not safe for concurrent use, but
// for Heartbeat (see connectors.Stream).
type Stream struct {
	conn      *pgconn.PgConn
	tables    map[connectors.TableName]*connectors.TableSchema
	relations map[uint32]*relation
	// describeType renders a type OID and modifier for the destination
	// when the source adds a column.
	describeType func(ctx context.Context, oid uint32, typmod int32) (string, error)
	// sql is the ordinary connection for heartbeats and type descriptions,
	// used under sqlMu (nil: none).
	sql   *pgx.Conn
	sqlMu sync.Mutex

	acked  uint64
	walEnd uint64
	// latest is walEnd as a Position, made when walEnd moved since
	// (latestAt), so that events share it.
	latest     connectors.Position
	latestAt   uint64
	nextStatus time.Time
	inTx       bool
	pending    []connectors.Event // decoded, not yet returned by Next
	// deadline is the read deadline last set on the connection (zero:
	// unknown).
	deadline time.Time
	// arena is the unused rest of the block row messages are copied into;
	// vals the same for the values decoded from them.
	arena []byte
	vals  []connectors.Value
	// received counts the bytes of the CopyData messages received
	// (connectors.ByteCounter).
	received int64
	// early: large transactions come before they commit (stream_early.go).
	early earlyState
}

// StreamConfig configures StartStream.
type StreamConfig struct {
	Slot        string
	Publication string
	// Start is the position to stream from (changes committed after it):
	// an LSN encoded by LSNPosition.
	Start connectors.Position
	// Tables are the mirrored tables' schemas by source name. The stream
	// works on copies: when the source adds columns, it extends its copy
	// and reports them (connectors.EventNewColumns); changes after that event have
	// them.
	Tables map[connectors.TableName]*connectors.TableSchema
	// DescribeType renders a new column's type for the destination; nil:
	// format_type on SQL.
	DescribeType func(ctx context.Context, oid uint32, typmod int32) (string, error)
	// SQL, if set, is an ordinary connection to the source, which the
	// stream uses for Heartbeat and DescribeType, one at a time. The caller
	// keeps it open, and does not use it, until the stream is closed;
	// Close does not close it.
	SQL *pgx.Conn
	// Early asks for large transactions before they commit
	// (connectors.EarlyStreamer; Postgres 14 and later).
	Early bool
}

var (
	_ connectors.Stream      = (*Stream)(nil)
	_ connectors.ByteCounter = (*Stream)(nil)
)

// ReceivedBytes implements connectors.ByteCounter: the bytes of the
// replication messages (CopyData) received so far.
func (s *Stream) ReceivedBytes() int64 { return s.received }

// StartStream starts streaming on a replication connection. The stream
// owns conn from then on.
func StartStream(ctx context.Context, conn *pgconn.PgConn, cfg StreamConfig) (*Stream, error) {
	start, err := PositionLSN(cfg.Start)
	if err != nil {
		return nil, fmt.Errorf("start replication on slot %q: %w", cfg.Slot, err)
	}
	args := []string{"proto_version '1'", fmt.Sprintf("publication_names '%s'", cfg.Publication),
		"binary 'true'", "messages 'true'"}
	early := false
	if cfg.Early {
		if args, early, err = earlyArgs(ctx, conn, args); err != nil {
			return nil, fmt.Errorf("start replication on slot %q: %w", cfg.Slot, err)
		}
	}
	err = pglogrepl.StartReplication(ctx, conn, cfg.Slot, pglogrepl.LSN(start), pglogrepl.StartReplicationOptions{
		PluginArgs: args,
	})
	if pe := (*pgconn.PgError)(nil); errors.As(err, &pe) && pe.Code == pgerrcode.ObjectInUse {
		// The slot is active for another walsender (a StreamTaker can end it).
		return nil, fmt.Errorf("start replication on slot %q: %w: %w", cfg.Slot, connectors.ErrStreamBusy, err)
	}
	if err != nil {
		return nil, fmt.Errorf("start replication on slot %q: %w", cfg.Slot, err)
	}
	tables := make(map[connectors.TableName]*connectors.TableSchema, len(cfg.Tables))
	for name, ts := range cfg.Tables {
		c := *ts
		c.Columns, c.PrimaryKey, c.Exclude = slices.Clone(ts.Columns), slices.Clone(ts.PrimaryKey), slices.Clone(ts.Exclude)
		tables[name] = &c
	}
	s := &Stream{conn: conn, tables: tables, relations: make(map[uint32]*relation), sql: cfg.SQL,
		acked: start, nextStatus: time.Now().Add(statusInterval), early: earlyState{on: early, start: start}}
	describe := cfg.DescribeType
	if describe == nil && cfg.SQL != nil {
		describe = TypeDescriber(cfg.SQL)
	}
	s.describeType = func(ctx context.Context, oid uint32, typmod int32) (string, error) {
		if describe == nil {
			return "", errors.New("no connection to describe the type on")
		}
		s.sqlMu.Lock()
		defer s.sqlMu.Unlock()
		return describe(ctx, oid, typmod)
	}
	return s, nil
}

// Heartbeat writes a non-transactional logical message on the source
// (EmitHeartbeat) on the stream's SQL connection, so that an idle stream
// gets an EventProgress beyond everything committed before. Safe to call
// while another goroutine reads the stream.
func (s *Stream) Heartbeat(ctx context.Context) error {
	if s.sql == nil {
		return errors.New("emit heartbeat: the stream has no SQL connection")
	}
	s.sqlMu.Lock()
	defer s.sqlMu.Unlock()
	return EmitHeartbeat(ctx, s.sql)
}

// Ack records that everything up to pos (an LSN encoded by LSNPosition) is
// durably applied on the destination; the source is told at the next
// status update. A position that is not an LSN is ignored: the stream
// only ever hands out LSNs, so it would be a caller's bug, and
// acknowledging less is safe.
func (s *Stream) Ack(pos connectors.Position) {
	if lsn, err := PositionLSN(pos); err == nil && lsn > s.acked {
		s.acked = lsn
	}
}

// Acked returns the last acknowledged position.
func (s *Stream) Acked() connectors.Position { return LSNPosition(s.acked) }

// latestPos returns the server's WAL end as a Position, encoding it only
// when it moved (events of a busy stream share one string).
func (s *Stream) latestPos() connectors.Position {
	if s.walEnd != s.latestAt {
		s.latest, s.latestAt = LSNPosition(s.walEnd), s.walEnd
	}
	return s.latest
}

// Flush sends a status update now, reporting the acknowledged position as
// written, flushed and applied.
func (s *Stream) Flush(ctx context.Context) error {
	s.nextStatus = time.Now().Add(statusInterval)
	err := pglogrepl.SendStandbyStatusUpdate(ctx, s.conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: pglogrepl.LSN(s.acked),
		WALFlushPosition: pglogrepl.LSN(s.acked),
		WALApplyPosition: pglogrepl.LSN(s.acked),
	})
	if err != nil {
		return fmt.Errorf("send standby status: %w", err)
	}
	return nil
}

// KeepAlive sends a status update if one is due. Read sends them, and
// the source ends a connection that stays silent for wal_sender_timeout:
// a caller that stops reading for a while (while it applies what it read)
// calls KeepAlive now and then.
func (s *Stream) KeepAlive(ctx context.Context) error {
	if time.Now().Before(s.nextStatus) {
		return nil
	}
	return s.Flush(ctx)
}

// Close ends the stream and closes its connection.
func (s *Stream) Close(ctx context.Context) error { return s.conn.Close(ctx) }

// Next returns the next event. It returns ctx.Err() when ctx ends; wait
// bounds how long it blocks without an event (then it returns nil, nil), so
// the caller can flush an idle batch. Read is the faster way to take many
// events.
func (s *Stream) Next(ctx context.Context, wait time.Duration) (*connectors.Event, error) {
	if len(s.pending) == 0 {
		evs, err := s.Read(ctx, nil, 1, wait)
		if err != nil || len(evs) == 0 {
			return nil, err
		}
		s.pending = evs
	}
	ev := s.pending[0]
	s.pending = s.pending[1:]
	return &ev, nil
}

// Read decodes the next events and appends them to buf. It blocks until
// an event comes or wait has passed (then it returns buf unchanged and no
// error, so the caller can act on an idle stream), then goes on decoding
// what arrives within linger of that first event, until it has appended
// max events (a truncate of several tables may append a few more). It
// returns ctx.Err() when ctx ends; on any error the events it appended are
// dropped. The events' values live in memory the stream never reuses.
func (s *Stream) Read(ctx context.Context, buf []connectors.Event, max int, wait time.Duration) ([]connectors.Event, error) {
	n0 := len(buf)
	if len(s.pending) > 0 { // left by Next
		buf = append(buf, s.pending...)
		s.pending = nil
		return buf, nil
	}
	stop := context.AfterFunc(ctx, func() { _ = s.conn.Conn().SetReadDeadline(time.Now()) })
	defer stop()
	deadline := time.Now().Add(wait)
	for len(buf)-n0 < max {
		if err := ctx.Err(); err != nil {
			return buf[:n0], err
		}
		now := time.Now()
		if !now.Before(s.nextStatus) {
			if err := s.Flush(ctx); err != nil {
				return buf[:n0], err
			}
		}
		until := deadline
		if s.nextStatus.Before(until) {
			until = s.nextStatus
		}
		if !now.Before(until) {
			if until.Equal(deadline) {
				break
			}
			continue // time for a status update
		}
		// The deadline stays set between calls; it is changed only when
		// it must be (a read that times out early just loops).
		if !until.Equal(s.deadline) {
			_ = s.conn.Conn().SetReadDeadline(until)
			s.deadline = until
		}
		msg, err := s.conn.ReceiveMessage(context.Background())
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				s.deadline = time.Time{} // may have been set by cancellation
				continue
			}
			return buf[:n0], fmt.Errorf("receive replication message: %w", err)
		}
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			s.received += int64(len(m.Data))
			first := len(buf) == n0
			if buf, err = s.handle(ctx, buf, m.Data); err != nil {
				return buf[:n0], err
			}
			if first && len(buf) > n0 {
				deadline = time.Now().Add(linger)
			}
		case *pgproto3.ErrorResponse:
			return buf[:n0], fmt.Errorf("replication stream: %w", pgconn.ErrorResponseToPgError(m))
		case *pgproto3.CopyDone:
			return buf[:n0], errors.New("replication stream ended by the source")
		}
	}
	return buf, nil
}

// handle decodes one CopyData message of the stream, appending its events
// (if any) to buf.
func (s *Stream) handle(ctx context.Context, buf []connectors.Event, data []byte) ([]connectors.Event, error) {
	if len(data) == 0 {
		return buf, nil
	}
	switch data[0] {
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
		if err != nil {
			return buf, fmt.Errorf("parse keepalive: %w", err)
		}
		s.walEnd = uint64(ka.ServerWALEnd)
		if err := s.early.overdue(); err != nil {
			return buf, err
		}
		if ka.ReplyRequested {
			s.nextStatus = time.Time{}
		}
		if !s.inTx {
			buf = append(buf, connectors.Event{Kind: connectors.EventProgress, Pos: LSNPosition(uint64(ka.ServerWALEnd)),
				Latest: s.latestPos()})
		}
		return buf, nil
	case pglogrepl.XLogDataByteID:
		xld, err := pglogrepl.ParseXLogData(data[1:])
		if err != nil {
			return buf, fmt.Errorf("parse XLogData: %w", err)
		}
		if uint64(xld.ServerWALEnd) > s.walEnd {
			s.walEnd = uint64(xld.ServerWALEnd)
		}
		return s.decode(ctx, buf, xld.WALData, uint64(xld.WALStart))
	}
	return buf, nil
}

// decode decodes one pgoutput message, which the source sent as of WAL
// position at. data is the connection's buffer, valid until the next
// receive: row values are decoded from a copy.
func (s *Stream) decode(ctx context.Context, buf []connectors.Event, data []byte, at uint64) ([]connectors.Event, error) {
	if len(data) == 0 {
		return buf, nil
	}
	switch data[0] {
	case 'I', 'U', 'D': // the bulk of the stream: decoded here, without garbage
		if s.early.skip {
			return buf, nil
		}
		if s.early.pending && s.early.inBlock {
			buf = s.beginOpen(buf, at)
		}
		return s.decodeRow(buf, data)
	}
	var msg pglogrepl.Message
	var err error
	if s.early.on {
		msg, err = pglogrepl.ParseV2(data, s.early.inBlock)
	} else {
		msg, err = pglogrepl.Parse(data)
	}
	if err != nil {
		return buf, fmt.Errorf("parse pgoutput message: %w", err)
	}
	if s.early.on {
		var done bool
		if buf, msg, done, err = s.decodeEarly(buf, msg, at); done || err != nil {
			return buf, err
		}
	}
	switch m := msg.(type) {
	case *pglogrepl.BeginMessage:
		s.inTx = true
		return append(buf, connectors.Event{Kind: connectors.EventBegin, Pos: LSNPosition(uint64(m.FinalLSN)),
			Version: uint64(m.FinalLSN), CommitTime: m.CommitTime, Latest: s.latestPos()}), nil
	case *pglogrepl.CommitMessage:
		s.inTx = false
		return append(buf, connectors.Event{Kind: connectors.EventCommit, Pos: LSNPosition(uint64(m.TransactionEndLSN)),
			CommitTime: m.CommitTime, Latest: s.latestPos()}), nil
	case *pglogrepl.RelationMessage:
		ev, err := s.relation(ctx, m)
		if err != nil || ev == nil {
			return buf, err
		}
		return append(buf, *ev), nil
	case *pglogrepl.TruncateMessage:
		if s.early.skip {
			return buf, nil
		}
		for _, id := range m.RelationIDs {
			rel, err := s.rel(id)
			if err != nil {
				return buf, err
			}
			if rel.schema != nil {
				buf = append(buf, connectors.Event{Kind: connectors.EventChange, Table: rel.table,
					Change: connectors.Change{Kind: connectors.Truncate, Table: rel.table}})
			}
		}
	case *pglogrepl.LogicalDecodingMessage:
		if !m.Transactional && !s.inTx {
			return append(buf, connectors.Event{Kind: connectors.EventProgress, Pos: LSNPosition(uint64(m.LSN)),
				Latest: s.latestPos()}), nil
		}
	}
	return buf, nil
}

var errShortMessage = errors.New("replication stream: truncated row message")

// decodeRow decodes an Insert, Update or Delete message: Byte1 kind,
// Int32 transaction (protocol version 2, in a block of a transaction sent
// before its commit), Int32 relation, then tuples each behind a Byte1 tag
// ('N' new, 'K' old key, 'O' old row).
func (s *Stream) decodeRow(buf []connectors.Event, data []byte) ([]connectors.Event, error) {
	at := 1
	if s.early.inBlock {
		at = 5
	}
	if len(data) < at+5 {
		return buf, errShortMessage
	}
	rel, err := s.rel(binary.BigEndian.Uint32(data[at : at+4]))
	if err != nil || rel.schema == nil {
		return buf, err
	}
	own := s.keep(data)
	kind, p := own[0], own[at+4:]
	c := connectors.Change{Table: rel.table}
	tag := func() byte {
		if len(p) == 0 {
			return 0
		}
		t := p[0]
		p = p[1:]
		return t
	}
	switch kind {
	case 'I':
		c.Kind = connectors.Insert
		if tag() != 'N' {
			return buf, errors.New("replication stream: insert without a new tuple")
		}
		c.New, _, err = s.tuple(rel, p)
	case 'U':
		c.Kind = connectors.Update
		t := tag()
		var old []connectors.Value
		if t == 'K' || t == 'O' {
			if old, p, err = s.tuple(rel, p); err != nil {
				return buf, err
			}
			t = tag()
		}
		if t != 'N' {
			return buf, errors.New("replication stream: update without a new tuple")
		}
		if c.New, _, err = s.tuple(rel, p); err == nil && old != nil && rel.keyChanged(old, c.New) {
			c.Old = old
		}
	case 'D':
		c.Kind = connectors.Delete
		if t := tag(); t != 'K' && t != 'O' {
			return buf, errors.New("replication stream: delete without an old tuple")
		}
		c.Old, _, err = s.tuple(rel, p)
	}
	if err != nil {
		return buf, err
	}
	return append(buf, connectors.Event{Kind: connectors.EventChange, Table: rel.table, Change: c}), nil
}

// values returns n values from the stream's value arena (the same idea as
// keep's: a []Value per row would be the stream's main allocation). The
// slice's capacity is its length, so appending to it copies.
func (s *Stream) values(n int) []connectors.Value {
	if n > len(s.vals) {
		if n > valueArenaSize/8 {
			return make([]connectors.Value, n)
		}
		s.vals = make([]connectors.Value, valueArenaSize)
	}
	out := s.vals[:n:n]
	s.vals = s.vals[n:]
	return out
}

// keep copies data into the stream's arena, which row values point into:
// one allocation per arenaSize bytes instead of one per message. Blocks are
// never reused; the garbage collector frees one when no value points into
// it any more.
func (s *Stream) keep(data []byte) []byte {
	if len(data) > len(s.arena) {
		if len(data) > arenaSize/8 {
			return append([]byte(nil), data...)
		}
		s.arena = make([]byte, arenaSize)
	}
	own := s.arena[:len(data):len(data)]
	copy(own, data)
	s.arena = s.arena[len(data):]
	return own
}

func (s *Stream) rel(id uint32) (*relation, error) {
	rel, ok := s.relations[id]
	if !ok {
		return nil, fmt.Errorf("replication stream: change for unknown relation %d", id)
	}
	return rel, nil
}

// relation records a Relation message, extending the table's schema with
// columns the source added.
func (s *Stream) relation(ctx context.Context, m *pglogrepl.RelationMessage) (*connectors.Event, error) {
	name := connectors.TableName{Schema: m.Namespace, Name: m.RelationName}
	rel := &relation{table: name, schema: s.tables[name], index: make([]int, len(m.Columns))}
	s.relations[m.RelationID] = rel
	if rel.schema == nil {
		return nil, nil
	}
	rel.key = rel.schema.KeyIndexes()
	var added []connectors.Column
	for i, col := range m.Columns {
		idx := rel.schema.ColumnIndex(col.Name)
		if idx < 0 && !rel.schema.Excluded(col.Name) {
			typ, err := s.describeType(ctx, col.DataType, col.TypeModifier)
			if err != nil {
				return nil, fmt.Errorf("new column %s of %s: %w", col.Name, name, err)
			}
			c := connectors.Column{Name: col.Name, Type: typ, TypeOID: col.DataType, Position: -1}
			rel.schema.Columns = append(rel.schema.Columns, c)
			added = append(added, c)
			idx = len(rel.schema.Columns) - 1
		}
		rel.index[i] = idx
	}
	if len(added) == 0 {
		return nil, nil
	}
	return &connectors.Event{Kind: connectors.EventNewColumns, Table: name, NewColumns: added}, nil
}

// tuple decodes a TupleData (Int16 column count, then per column Byte1
// kind: 'n' null, 'u' unchanged TOAST, 't' or 'b' Int32 length and bytes)
// at the start of p onto the schema's columns of rel, and returns the rest
// of p. Schema columns the tuple lacks (e.g. dropped on the source) are
// Unchanged: the destination keeps what it has. Values point into p.
func (s *Stream) tuple(r *relation, p []byte) ([]connectors.Value, []byte, error) {
	if len(p) < 2 {
		return nil, nil, errShortMessage
	}
	n := int(binary.BigEndian.Uint16(p))
	p = p[2:]
	out := s.values(len(r.schema.Columns))
	for i := range out {
		out[i].Kind = connectors.Unchanged
	}
	for i := range n {
		if len(p) == 0 {
			return nil, nil, errShortMessage
		}
		var v connectors.Value
		switch kind := p[0]; kind {
		case 'n':
			v.Kind = connectors.Null
		case 'u':
			v.Kind = connectors.Unchanged
		case 't', 'b':
			if len(p) < 5 {
				return nil, nil, errShortMessage
			}
			l := int(binary.BigEndian.Uint32(p[1:5]))
			if l < 0 || len(p)-5 < l {
				return nil, nil, errShortMessage
			}
			v = connectors.Value{Kind: connectors.Binary, Data: p[5 : 5+l : 5+l]}
			p = p[4+l:]
		default:
			return nil, nil, fmt.Errorf("replication stream: unknown tuple column kind %q", kind)
		}
		p = p[1:]
		if i < len(r.index) && r.index[i] >= 0 {
			out[r.index[i]] = v
		}
	}
	return out, p, nil
}

// keyChanged reports whether an update moved the row to another key.
func (r *relation) keyChanged(old, new []connectors.Value) bool {
	for _, i := range r.key {
		if i < 0 {
			continue
		}
		if old[i].Kind != new[i].Kind || string(old[i].Data) != string(new[i].Data) {
			return true
		}
	}
	return false
}

// TypeDescriber returns a function that renders a type for the destination
// using format_type on the source.
func TypeDescriber(conn *pgx.Conn) func(ctx context.Context, oid uint32, typmod int32) (string, error) {
	return func(ctx context.Context, oid uint32, typmod int32) (string, error) {
		var s string
		err := conn.QueryRow(ctx, `SELECT format_type($1, $2)`, oid, typmod).Scan(&s)
		return s, err
	}
}
