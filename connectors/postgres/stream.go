package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/sluicedb/sluice/connectors"
)

// statusInterval is how often the stream reports its applied position to
// the source when nothing else prompts it.
const statusInterval = 5 * time.Second

// EventKind tells what a stream Event carries.
type EventKind int

// Kinds of stream event.
const (
	// EventBegin starts a transaction; Change events of it follow.
	EventBegin EventKind = iota
	// EventChange is one row change (or truncate) of a mirrored table.
	EventChange
	// EventCommit ends a transaction; LSN is its end position.
	EventCommit
	// EventNewColumns reports columns the source added to a mirrored table;
	// the schema the stream decodes with already includes them.
	EventNewColumns
	// EventProgress reports a position with nothing left to apply before it
	// (idle keepalive or heartbeat): it may be acknowledged once everything
	// received earlier has been applied.
	EventProgress
)

// Event is one decoded item of the replication stream.
type Event struct {
	Kind       EventKind
	Change     connectors.Change // EventChange
	LSN        uint64            // EventCommit: transaction end; EventProgress: position
	CommitTime time.Time         // EventCommit
	Table      connectors.TableName
	NewColumns []connectors.Column // EventNewColumns
	// ServerWALEnd is the source's WAL end as last reported (for lag).
	ServerWALEnd uint64
}

// relation is the stream's view of a source relation.
type relation struct {
	table  connectors.TableName
	schema *connectors.TableSchema // nil when the table is not mirrored
	// index maps the relation's column positions to schema columns (-1:
	// not replicated).
	index []int
}

// Stream decodes a pgoutput logical replication stream (binary values)
// into Events for the mirrored tables. Not safe for concurrent use.
type Stream struct {
	conn      *pgconn.PgConn
	tables    map[connectors.TableName]*connectors.TableSchema
	relations map[uint32]*relation
	// describeType renders a type OID and modifier for the destination
	// when the source adds a column.
	describeType func(ctx context.Context, oid uint32, typmod int32) (string, error)

	acked      uint64
	walEnd     uint64
	nextStatus time.Time
	inTx       bool
	pending    []Event
}

// StreamConfig configures StartStream.
type StreamConfig struct {
	Slot        string
	Publication string
	// Start is the position to stream from (changes committed after it).
	Start uint64
	// Tables are the mirrored tables' schemas by source name. The stream
	// extends them in place when the source adds columns.
	Tables map[connectors.TableName]*connectors.TableSchema
	// DescribeType renders a new column's type for the destination.
	DescribeType func(ctx context.Context, oid uint32, typmod int32) (string, error)
}

// StartStream starts streaming on a replication connection. The stream
// owns conn from then on.
func StartStream(ctx context.Context, conn *pgconn.PgConn, cfg StreamConfig) (*Stream, error) {
	err := pglogrepl.StartReplication(ctx, conn, cfg.Slot, pglogrepl.LSN(cfg.Start), pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", fmt.Sprintf("publication_names '%s'", cfg.Publication),
			"binary 'true'", "messages 'true'"},
	})
	if err != nil {
		return nil, fmt.Errorf("start replication on slot %q: %w", cfg.Slot, err)
	}
	return &Stream{conn: conn, tables: cfg.Tables, relations: make(map[uint32]*relation),
		describeType: cfg.DescribeType, acked: cfg.Start, nextStatus: time.Now().Add(statusInterval)}, nil
}

// Ack records that everything up to lsn is durably applied on the
// destination; the source is told at the next status update.
func (s *Stream) Ack(lsn uint64) {
	if lsn > s.acked {
		s.acked = lsn
	}
}

// Acked returns the last acknowledged position.
func (s *Stream) Acked() uint64 { return s.acked }

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

// Close ends the stream and closes its connection.
func (s *Stream) Close(ctx context.Context) error { return s.conn.Close(ctx) }

// Next returns the next event. It returns ctx.Err() when ctx ends; wait
// bounds how long it blocks without an event (then it returns nil, nil), so
// the caller can flush an idle batch.
func (s *Stream) Next(ctx context.Context, wait time.Duration) (*Event, error) {
	if len(s.pending) > 0 {
		ev := s.pending[0]
		s.pending = s.pending[1:]
		return &ev, nil
	}
	deadline := time.Now().Add(wait)
	stop := context.AfterFunc(ctx, func() { _ = s.conn.Conn().SetReadDeadline(time.Now()) })
	defer stop()
	for {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !time.Now().Before(s.nextStatus) {
			if err := s.Flush(ctx); err != nil {
				return nil, err
			}
		}
		until := s.nextStatus
		if deadline.Before(until) {
			until = deadline
		}
		if !time.Now().Before(until) {
			return nil, nil
		}
		_ = s.conn.Conn().SetReadDeadline(until)
		msg, err := s.conn.ReceiveMessage(context.Background())
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return nil, fmt.Errorf("receive replication message: %w", err)
		}
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			ev, err := s.handle(ctx, m.Data)
			if err != nil {
				return nil, err
			}
			if ev != nil {
				return ev, nil
			}
		case *pgproto3.ErrorResponse:
			return nil, fmt.Errorf("replication stream: %w", pgconn.ErrorResponseToPgError(m))
		case *pgproto3.CopyDone:
			return nil, errors.New("replication stream ended by the source")
		}
	}
}

func (s *Stream) handle(ctx context.Context, data []byte) (*Event, error) {
	if len(data) == 0 {
		return nil, nil
	}
	switch data[0] {
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
		if err != nil {
			return nil, fmt.Errorf("parse keepalive: %w", err)
		}
		s.walEnd = uint64(ka.ServerWALEnd)
		if ka.ReplyRequested {
			s.nextStatus = time.Time{}
		}
		if !s.inTx {
			return &Event{Kind: EventProgress, LSN: uint64(ka.ServerWALEnd), ServerWALEnd: s.walEnd}, nil
		}
		return nil, nil
	case pglogrepl.XLogDataByteID:
		xld, err := pglogrepl.ParseXLogData(data[1:])
		if err != nil {
			return nil, fmt.Errorf("parse XLogData: %w", err)
		}
		if uint64(xld.ServerWALEnd) > s.walEnd {
			s.walEnd = uint64(xld.ServerWALEnd)
		}
		// pgconn reuses its buffer: the values decoded below point into
		// this copy, one allocation per message.
		own := make([]byte, len(xld.WALData))
		copy(own, xld.WALData)
		return s.decode(ctx, own, uint64(xld.WALStart))
	}
	return nil, nil
}

func (s *Stream) decode(ctx context.Context, data []byte, walStart uint64) (*Event, error) {
	msg, err := pglogrepl.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("parse pgoutput message: %w", err)
	}
	ev := func(e Event) *Event { e.ServerWALEnd = s.walEnd; return &e }
	switch m := msg.(type) {
	case *pglogrepl.BeginMessage:
		s.inTx = true
		return ev(Event{Kind: EventBegin}), nil
	case *pglogrepl.CommitMessage:
		s.inTx = false
		return ev(Event{Kind: EventCommit, LSN: uint64(m.TransactionEndLSN), CommitTime: m.CommitTime}), nil
	case *pglogrepl.RelationMessage:
		return s.relation(ctx, m)
	case *pglogrepl.InsertMessage:
		rel, err := s.rel(m.RelationID)
		if err != nil || rel.schema == nil {
			return nil, err
		}
		return ev(Event{Kind: EventChange, Table: rel.table, Change: connectors.Change{
			Kind: connectors.Insert, Table: rel.table, New: rel.values(m.Tuple)}}), nil
	case *pglogrepl.UpdateMessage:
		rel, err := s.rel(m.RelationID)
		if err != nil || rel.schema == nil {
			return nil, err
		}
		c := connectors.Change{Kind: connectors.Update, Table: rel.table, New: rel.values(m.NewTuple)}
		if m.OldTuple != nil {
			old := rel.values(m.OldTuple)
			if rel.keyChanged(old, c.New) {
				c.Old = old
			}
		}
		return ev(Event{Kind: EventChange, Table: rel.table, Change: c}), nil
	case *pglogrepl.DeleteMessage:
		rel, err := s.rel(m.RelationID)
		if err != nil || rel.schema == nil {
			return nil, err
		}
		return ev(Event{Kind: EventChange, Table: rel.table, Change: connectors.Change{
			Kind: connectors.Delete, Table: rel.table, Old: rel.values(m.OldTuple)}}), nil
	case *pglogrepl.TruncateMessage:
		for _, id := range m.RelationIDs {
			rel, err := s.rel(id)
			if err != nil {
				return nil, err
			}
			if rel.schema != nil {
				s.pending = append(s.pending, *ev(Event{Kind: EventChange, Table: rel.table,
					Change: connectors.Change{Kind: connectors.Truncate, Table: rel.table}}))
			}
		}
		if len(s.pending) == 0 {
			return nil, nil
		}
		first := s.pending[0]
		s.pending = s.pending[1:]
		return &first, nil
	case *pglogrepl.LogicalDecodingMessage:
		if !m.Transactional && !s.inTx {
			return ev(Event{Kind: EventProgress, LSN: uint64(m.LSN)}), nil
		}
	}
	return nil, nil
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
func (s *Stream) relation(ctx context.Context, m *pglogrepl.RelationMessage) (*Event, error) {
	name := connectors.TableName{Schema: m.Namespace, Name: m.RelationName}
	rel := &relation{table: name, schema: s.tables[name], index: make([]int, len(m.Columns))}
	s.relations[m.RelationID] = rel
	if rel.schema == nil {
		return nil, nil
	}
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
	return &Event{Kind: EventNewColumns, Table: name, NewColumns: added, ServerWALEnd: s.walEnd}, nil
}

// values maps a tuple onto the schema's columns. Schema columns the tuple
// lacks (e.g. dropped on the source) are Unchanged: the destination keeps
// what it has.
func (r *relation) values(t *pglogrepl.TupleData) []connectors.Value {
	out := make([]connectors.Value, len(r.schema.Columns))
	for i := range out {
		out[i].Kind = connectors.Unchanged
	}
	if t == nil {
		return out
	}
	for i, col := range t.Columns {
		if i >= len(r.index) || r.index[i] < 0 {
			continue
		}
		v := &out[r.index[i]]
		switch col.DataType {
		case pglogrepl.TupleDataTypeNull:
			v.Kind = connectors.Null
		case pglogrepl.TupleDataTypeToast:
			v.Kind = connectors.Unchanged
		default:
			v.Kind, v.Data = connectors.Binary, col.Data
		}
	}
	return out
}

// keyChanged reports whether an update moved the row to another key.
func (r *relation) keyChanged(old, new []connectors.Value) bool {
	for _, i := range r.schema.KeyIndexes() {
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
