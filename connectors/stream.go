package connectors

import (
	"context"
	"errors"
	"time"
)

// EventKind tells what a stream Event carries.
type EventKind int

// Kinds of stream event.
const (
	// EventBegin starts a transaction; Change events of it follow. Pos is
	// where its commit record starts: the transaction's end (the Pos of its
	// EventCommit) is beyond it. Version is the same point as a number:
	// the row version of the transaction's changes (Change.Version).
	EventBegin EventKind = iota
	// EventChange is one row change (or truncate) of a mirrored table.
	EventChange
	// EventCommit ends a transaction; Pos is its end position.
	EventCommit
	// EventNewColumns reports columns the source added to a mirrored table;
	// the stream decodes the changes after it with them (appended to the
	// table's columns).
	EventNewColumns
	// EventProgress reports a position with nothing left to apply before it
	// (idle keepalive or heartbeat): it may be acknowledged once everything
	// received earlier has been applied.
	EventProgress
	// EventAbort ends an open transaction (an EventBegin with Open) that
	// the source rolled back: none of the changes since its EventBegin
	// are to be applied. Only an early stream (EarlyStreamer) sends it.
	EventAbort
)

// Event is one decoded item of a source's change stream.
type Event struct {
	Kind   EventKind
	Change Change // EventChange
	// Pos is, for EventBegin, where the transaction's commit record
	// starts; for EventCommit, the transaction's end; for EventProgress,
	// the position reported. Unset for other kinds.
	Pos Position
	// Version is, for EventBegin, Pos as a number that increases with it:
	// what the batcher sets as Change.Version of the transaction's changes.
	// 0 when Open; the EventCommit of an Open transaction then carries it
	// (where its commit record starts, as a number: the version its
	// changes would have had, sent at its commit).
	Version uint64
	// Open is, for EventBegin, that the transaction is still in progress
	// on the source: a large transaction an early stream (EarlyStreamer)
	// sends before it commits. Its commit is then known only to come
	// after Pos and after the position the stream started at; it ends
	// with an EventCommit or an EventAbort.
	Open       bool
	CommitTime time.Time // EventBegin, EventCommit
	Table      TableName
	NewColumns []Column // EventNewColumns
	// Latest is, for EventBegin, EventCommit and EventProgress, the end of
	// the source's change history as the source last reported it (for a
	// Postgres source, the server's WAL end); "" when not known. Nothing
	// computes lag from it today (lag is measured on the source by the
	// slot monitor), so it is a Position like the others: a flow may only
	// compare it.
	Latest Position
}

// Stream is a source's change stream, started at a position: the changes
// of the transactions committed after it, in commit order, for the
// mirrored tables (an early stream sends a large transaction before its
// commit: see EarlyStreamer). Read, Ack, KeepAlive and Close are not safe for
// concurrent use (one goroutine owns the stream); Heartbeat is safe to call
// concurrently with them.
type Stream interface {
	// Read decodes the next events and appends them to buf. It blocks until
	// an event comes or wait has passed (then it returns buf unchanged and
	// no error, so the caller can act on an idle stream), and appends at
	// most about max events. It returns ctx.Err() when ctx ends; on any
	// error the events it appended are dropped. The events' values live in
	// memory the stream never reuses.
	Read(ctx context.Context, buf []Event, max int, wait time.Duration) ([]Event, error)
	// Ack records that everything up to pos is durably applied on the
	// destination; the source may discard it. Only the highest pos counts;
	// "" acknowledges nothing.
	Ack(pos Position)
	// KeepAlive tells the source, if it is due, that the reader is alive
	// and what is acknowledged: a caller that stops reading for a while
	// calls it now and then.
	KeepAlive(ctx context.Context) error
	// Heartbeat makes the source send, soon, an EventProgress at a
	// position beyond everything committed so far, so that an idle stream's
	// position advances. Safe for concurrent use with the other methods.
	Heartbeat(ctx context.Context) error
	// Close ends the stream and releases what it holds. The stream is not
	// used after.
	Close(ctx context.Context) error
}

// ErrEarlyAbandoned is what an early stream (EarlyStreamer) returns,
// wrapped, when a transaction it sent open can no longer be applied as
// one: the source rolled back part of it (a savepoint) after other
// transactions were folded into it, or a second large transaction began
// streaming before the first ended. The caller rolls back the
// destination's transaction and starts the stream again without early
// sending, from the position the destination has.
var ErrEarlyAbandoned = errors.New("a transaction sent before its commit cannot be applied as one")

// ByteCounter is a Stream's ability to tell how much it received from the
// source: the metrics' fetched bytes. Streams without it are not counted.
type ByteCounter interface {
	// ReceivedBytes returns the bytes the stream received from the source
	// since it started (the protocol's messages, as they came), a total
	// that only grows. Called by the goroutine that owns the stream.
	ReceivedBytes() int64
}
