package mysql

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/sluicedb/sluice/connectors"
)

var _ connectors.Stream = (*binlogStream)(nil)

// binlogConfig is what a binlog stream needs of its peer and of the rest of
// the connector.
type binlogConfig struct {
	Host     string
	Port     uint16
	User     string
	Password string
	// TLS, when not nil, secures the replication connection.
	TLS *tls.Config
	// Flavor is gomysql.MySQLFlavor or gomysql.MariaDBFlavor.
	Flavor string
	// ServerID is the replica id the stream registers with; it must differ
	// from every other replica's of the server.
	ServerID uint32
	// GTIDAt, when not nil, returns the server's GTID state at a binlog
	// position: the stream then resumes by GTID rather than by file and
	// offset.
	GTIDAt func(ctx context.Context, p BinlogPos) (string, error)
	// Describe reads a mirrored table's schema as it is now, without the
	// columns in exclude: the stream calls it when a table's columns in
	// the binlog change.
	Describe func(ctx context.Context, t connectors.TableName, exclude []string) (*connectors.TableSchema, error)
	// Encoder returns the encoder of column c, which is column i of the
	// rows tm describes.
	Encoder func(c connectors.Column, tm *replication.TableMapEvent, i int) (binlogEncoder, error)
}

// binlogEncoder turns a value as go-mysql decodes it from a row event
// into the Postgres binary form of its column's type.
type binlogEncoder func(v any) (connectors.Value, error)

// heartbeatPeriod is how often an idle server sends a heartbeat, which the
// stream reports as progress.
const heartbeatPeriod = time.Second

// eventCache bounds the binlog events go-mysql reads ahead (each holds up
// to a row event's rows, 8 kB by default), and itemQueue the decoded items
// ahead of Read: memory stays bounded whatever a transaction's size.
const (
	eventCache = 256
	itemQueue  = 64
)

// streamItem is what the decoding goroutine hands to Read: the events of
// one binlog event, or the error that ended the stream.
type streamItem struct {
	events []connectors.Event
	err    error
}

// binlogStream is a MySQL or MariaDB change stream: a replica connection
// reading the binlog from a position, decoded on a goroutine of its own
// into transactions of the mirrored tables' row changes. The server keeps
// no state for it: acknowledging only records how far the destination is
// (binlogs are purged by the server's retention, which the checks report).
type binlogStream struct {
	syncer *replication.BinlogSyncer
	items  chan streamItem
	cancel context.CancelFunc
	done   chan struct{}
	// pending are events of an item Read could not take whole.
	pending []connectors.Event
	acked   connectors.Position
	err     error
	// received counts the bytes of the binlog events read, by the
	// decoding goroutine (connectors.ByteCounter).
	received atomic.Int64
}

var _ connectors.ByteCounter = (*binlogStream)(nil)

// ReceivedBytes implements connectors.ByteCounter: the bytes of the binlog
// events read so far (their headers' event sizes), heartbeats included.
func (s *binlogStream) ReceivedBytes() int64 { return s.received.Load() }

// startBinlogStream starts reading the binlog at from ("" is not allowed:
// a mirror's stream starts at a snapshot's position) for tables.
func startBinlogStream(ctx context.Context, cfg binlogConfig, from connectors.Position,
	tables map[connectors.TableName]*connectors.TableSchema, log *slog.Logger) (*binlogStream, error) {
	start, err := DecodePosition(from)
	if err != nil {
		return nil, err
	}
	seq, err := fileSeq(start.File)
	if err != nil {
		return nil, err
	}
	dial := func(ctx context.Context) (*replication.BinlogSyncer, *replication.BinlogStreamer, error) {
		syncer := replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
			ServerID: cfg.ServerID, Flavor: cfg.Flavor,
			Host: cfg.Host, Port: cfg.Port, User: cfg.User, Password: cfg.Password, TLSConfig: cfg.TLS,
			// Values as strings: the encoders parse decimals and times
			// exactly, and a TIMESTAMP in UTC.
			TimestampStringLocation: time.UTC,
			HeartbeatPeriod:         heartbeatPeriod,
			ReadTimeout:             3 * heartbeatPeriod,
			// The flow restarts the stream from the applied position; the
			// syncer must not reconnect on its own.
			DisableRetrySync:     true,
			MaxReconnectAttempts: 1,
			EventCacheCount:      eventCache,
			Logger:               log,
		})
		var streamer *replication.BinlogStreamer
		var err error
		if cfg.GTIDAt != nil {
			var set gomysql.GTIDSet
			state, gerr := cfg.GTIDAt(ctx, start)
			if gerr == nil {
				set, gerr = gomysql.ParseGTIDSet(cfg.Flavor, state)
			}
			if gerr != nil {
				syncer.Close()
				return nil, nil, fmt.Errorf("read the GTID state at %s: %w", FormatPosition(from), gerr)
			}
			streamer, err = syncer.StartSyncGTID(set)
		} else {
			streamer, err = syncer.StartSync(gomysql.Position{Name: start.File, Pos: uint32(start.Offset)})
		}
		if err != nil {
			syncer.Close()
			return nil, nil, fmt.Errorf("start reading the binlog at %s: %w", FormatPosition(from), err)
		}
		return syncer, streamer, nil
	}
	syncer, streamer, err := dial(ctx)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &binlogStream{syncer: syncer, items: make(chan streamItem, itemQueue), cancel: cancel, done: make(chan struct{})}
	d := newBinlogDecoder(cfg, point{file: start.File, seq: seq, off: start.Offset}, tables)
	go s.run(rctx, streamer, d, cfg.ServerID)
	return s, nil
}

// sameReplica reports whether err is the server ending a replica's dump
// because a newer connection registered with the same replica id
// (MariaDB's ER_SLAVE_SAME_ID, 4052: a COM_BINLOG_DUMP ends any earlier
// dump of its server id, whose reader gets the error). A stream restarted
// at once does not meet it (Close ends the old connection first, and the
// new dump would end the old one's, not its own): another stream of the
// replica id does, another mirror's.
func sameReplica(err error) bool {
	var me *gomysql.MyError
	return errors.As(err, &me) && me.Code == 4052 || strings.Contains(err.Error(), "same server_uuid/server_id")
}

// run decodes binlog events into items until ctx ends or the stream fails.
// serverID is the stream's replica id, which the error names when another
// stream of it ended this one (sameReplica).
func (s *binlogStream) run(ctx context.Context, streamer *replication.BinlogStreamer, d *binlogDecoder, serverID uint32) {
	defer close(s.done)
	send := func(it streamItem) bool {
		select {
		case s.items <- it:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		ev, err := streamer.GetEvent(ctx)
		if err != nil {
			if ctx.Err() == nil {
				if sameReplica(err) {
					err = fmt.Errorf("another connection read the binlog with this mirror's replica id %d, which ended this one "+
						"(another mirror of the same name reads this server, from another Sluice or on a peer with the same server_id, "+
						"or a mirror whose name gives the same id: give one of the peers another server_id): %w", serverID, err)
				}
				send(streamItem{err: fmt.Errorf("read the binlog: %w", err)})
			}
			return
		}
		if ev.Header != nil {
			s.received.Add(int64(ev.Header.EventSize))
		}
		out, err := d.decode(ctx, ev)
		if err != nil {
			send(streamItem{err: err})
			return
		}
		if len(out) > 0 && !send(streamItem{events: out}) {
			return
		}
	}
}

// Read implements connectors.Stream.
func (s *binlogStream) Read(ctx context.Context, buf []connectors.Event, max int, wait time.Duration) ([]connectors.Event, error) {
	if s.err != nil {
		return buf, s.err
	}
	start := len(buf)
	take := func(evs []connectors.Event) {
		room := max - (len(buf) - start)
		if room < len(evs) {
			buf = append(buf, evs[:room]...)
			s.pending = evs[room:]
			return
		}
		buf = append(buf, evs...)
	}
	if len(s.pending) > 0 {
		evs := s.pending
		s.pending = nil
		take(evs)
		if len(buf)-start >= max {
			return buf, nil
		}
	}
	if len(buf) == start {
		timer := time.NewTimer(wait)
		defer timer.Stop()
		select {
		case it := <-s.items:
			if it.err != nil {
				s.err = it.err
				return buf[:start], it.err
			}
			take(it.events)
		case <-timer.C:
			return buf, nil
		case <-ctx.Done():
			return buf[:start], ctx.Err()
		}
	}
	for len(buf)-start < max && len(s.pending) == 0 {
		select {
		case it := <-s.items:
			if it.err != nil {
				s.err = it.err
				return buf[:start], it.err
			}
			take(it.events)
		default:
			return buf, nil
		}
	}
	return buf, nil
}

// Ack implements connectors.Stream. The server keeps nothing for a
// replica, so the position is only recorded.
func (s *binlogStream) Ack(pos connectors.Position) { s.acked = connectors.MaxPosition(s.acked, pos) }

// KeepAlive implements connectors.Stream: the replication protocol needs no
// reply from a replica (the server's heartbeats keep the connection busy).
func (s *binlogStream) KeepAlive(context.Context) error { return nil }

// Heartbeat implements connectors.Stream: the server sends a heartbeat
// every heartbeatPeriod while it has nothing else to send, which the
// stream reports as progress, so there is nothing to ask for.
func (s *binlogStream) Heartbeat(context.Context) error { return nil }

// Close implements connectors.Stream.
func (s *binlogStream) Close(context.Context) error {
	s.cancel()
	// The syncer has the server kill its connection before it returns.
	// The server may hold the dump a moment longer: a stream started next
	// with the replica id then ends that dump, whose reader is gone (the
	// server ends the older dump, never refuses the newer).
	s.syncer.Close()
	<-s.done
	return nil
}

// errDDL wraps the errors of DDL the stream does not follow.
var errDDL = errors.New("source DDL not followed")
