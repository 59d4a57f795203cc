package postgres

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sluicedb/sluice/connectors"
)

// Early streaming (connectors.EarlyStreamer): pgoutput's protocol version 2
// with streaming on. A transaction whose decoded changes outgrow the WAL
// sender's logical_decoding_work_mem is sent in blocks while it is still in
// progress (Stream Start, its changes each with its transaction id, Stream
// Stop), then ended by a Stream Commit or a Stream Abort. Without it the
// WAL sender decodes the whole transaction, spilling it to disk, before it
// sends the first change, and the destination waits.
//
// The stream hands such a transaction over as an open one (EventBegin with
// Open) from the first change of a mirrored table in its blocks (pgoutput
// sends a Relation message before it): one that changes only tables the
// publication leaves out (a bulk load elsewhere) is never handed over, and
// the transactions that commit while it streams are handed over as they
// come, not held until its end. Transactions that commit while it is open
// come between its blocks, whole: their changes are handed over as the open
// transaction's, in the order they came (a row the open transaction
// changes after another committed it comes after that commit), so the
// destination commits them with it. Those the stream's start says the
// destination has (committed before it) are dropped, as the flow would.
// They wait for the open one's commit at most foldWait.
// When the open transaction cannot be applied as one, Read fails with
// connectors.ErrEarlyAbandoned: the source rolled back a savepoint of it
// (its changes are in the destination's transaction among the others), or
// rolled it back after others were folded into it, or a second transaction
// began streaming while it was open, or transactions folded into it waited
// longer than foldWait.

const (
	// earlyMinServer is the first server version with streaming in
	// pgoutput (protocol version 2).
	earlyMinServer = 140000
	// earlyWorkMem is the WAL sender's logical_decoding_work_mem for an
	// early stream: the decoded changes it holds before it sends the
	// largest transaction's. Small, so that the destination starts soon:
	// at the server's default (64 MB), a transaction of 400,000 updates was
	// two-thirds decoded before its first block.
	earlyWorkMem = "8MB"
	// foldWait is how long transactions folded into an open one may wait
	// for its commit: past it the stream is abandoned (and, for a while,
	// sent at commits), so that a transaction that stays open on the
	// source for minutes does not hold the others back as long.
	foldWait = 10 * time.Second
)

// earlyState is a Stream's state for early streaming.
type earlyState struct {
	on    bool
	start uint64 // the stream's start: transactions committed before it are applied
	// inBlock: between Stream Start and Stream Stop (messages carry their
	// transaction's id).
	inBlock bool
	// open is the transaction sent early and not yet ended (0: none).
	open uint32
	// pending: open has sent no change of a mirrored table yet, so it was
	// not handed over (beginOpen); transactions that commit meanwhile go
	// through as they are.
	pending bool
	// folded: a committed transaction was folded into it, the first at
	// foldedAt; inFold: one is being received; skip: the one being
	// received is applied (dropped).
	folded, inFold, skip bool
	foldedAt             time.Time
}

// overdue returns an error wrapping connectors.ErrEarlyAbandoned when
// transactions folded into the open one have waited for it longer than
// foldWait. Checked when a block, a folded transaction or a keepalive or
// heartbeat comes: an open transaction idle on the source gets the
// batcher's heartbeats.
func (e *earlyState) overdue() error {
	if e.open != 0 && e.folded && time.Since(e.foldedAt) > foldWait {
		return fmt.Errorf("transactions committed while %d was open waited for it over %s: %w", e.open, foldWait,
			connectors.ErrEarlyAbandoned)
	}
	return nil
}

// earlyArgs returns pgoutput's arguments args for an early stream on conn,
// after setting the WAL sender's logical_decoding_work_mem, and true. A
// server older than 14 gets args and false: its stream sends transactions
// at their commit.
func earlyArgs(ctx context.Context, conn *pgconn.PgConn, args []string) ([]string, bool, error) {
	if v, err := serverVersionNum(ctx, conn); err != nil || v < earlyMinServer {
		return args, false, err
	}
	if _, err := conn.Exec(ctx, "SET logical_decoding_work_mem = '"+earlyWorkMem+"'").ReadAll(); err != nil {
		return nil, false, fmt.Errorf("set logical_decoding_work_mem: %w", err)
	}
	args[0] = "proto_version '2'"
	return append(args, "streaming 'on'"), true, nil
}

// serverVersionNum asks conn for server_version_num.
func serverVersionNum(ctx context.Context, conn *pgconn.PgConn) (int, error) {
	res, err := conn.Exec(ctx, "SHOW server_version_num").ReadAll()
	if err != nil {
		return 0, fmt.Errorf("read server_version_num: %w", err)
	}
	if len(res) == 0 || len(res[0].Rows) == 0 || len(res[0].Rows[0]) == 0 {
		return 0, fmt.Errorf("read server_version_num: no row")
	}
	return strconv.Atoi(string(res[0].Rows[0][0]))
}

// decodeEarly handles msg, sent as of WAL position at, for early
// streaming: the stream's own messages (done), and the others in a block or
// in a transaction folded into the open one, which it returns as decode
// takes them (version 1 messages; skip and inFold tell decode what to drop).
func (s *Stream) decodeEarly(buf []connectors.Event, msg pglogrepl.Message, at uint64) ([]connectors.Event, pglogrepl.Message, bool, error) {
	e := &s.early
	switch msg.(type) {
	case *pglogrepl.StreamStartMessageV2, *pglogrepl.BeginMessage, *pglogrepl.LogicalDecodingMessageV2:
		if err := e.overdue(); err != nil {
			return buf, nil, true, err
		}
	}
	switch m := msg.(type) {
	case *pglogrepl.StreamStartMessageV2:
		switch {
		case e.open == m.Xid:
		case e.open != 0:
			return buf, nil, true, fmt.Errorf("transaction %d began streaming while %d was open: %w", m.Xid, e.open,
				connectors.ErrEarlyAbandoned)
		case s.inTx || m.FirstSegment != 1:
			return buf, nil, true, fmt.Errorf("replication stream: transaction %d streamed from its middle", m.Xid)
		default:
			e.open, e.folded, e.pending = m.Xid, false, true
		}
		e.inBlock = true
		return buf, nil, true, nil
	case *pglogrepl.StreamStopMessageV2:
		e.inBlock = false
		return buf, nil, true, nil
	case *pglogrepl.StreamCommitMessageV2:
		if m.Xid != e.open {
			return buf, nil, true, fmt.Errorf("replication stream: commit of transaction %d, which was not open", m.Xid)
		}
		if e.pending {
			// Nothing of it was handed over: nothing to commit.
			e.open, e.pending = 0, false
			return buf, nil, true, nil
		}
		e.open, s.inTx = 0, false
		buf = append(buf, connectors.Event{Kind: connectors.EventCommit, Pos: LSNPosition(uint64(m.TransactionEndLSN)),
			Version: uint64(m.CommitLSN), CommitTime: m.CommitTime, Latest: s.latestPos()})
		return buf, nil, true, nil
	case *pglogrepl.StreamAbortMessageV2:
		switch {
		case m.Xid != e.open:
			// Nothing of it was handed over.
			return buf, nil, true, nil
		case e.pending:
			// Nothing of it was handed over: the whole, or a savepoint.
			if m.SubXid == m.Xid {
				e.open, e.pending = 0, false
			}
			return buf, nil, true, nil
		case m.SubXid != m.Xid:
			return buf, nil, true, fmt.Errorf("transaction %d rolled back a savepoint: %w", m.Xid, connectors.ErrEarlyAbandoned)
		case e.folded:
			return buf, nil, true, fmt.Errorf("transaction %d rolled back after others were folded into it: %w", m.Xid,
				connectors.ErrEarlyAbandoned)
		}
		e.open, s.inTx = 0, false
		return append(buf, connectors.Event{Kind: connectors.EventAbort, Latest: s.latestPos()}), nil, true, nil
	case *pglogrepl.BeginMessage:
		if e.open == 0 || e.pending {
			return buf, msg, false, nil
		}
		// Committed while the open one streams: folded into it, unless
		// the destination has it.
		e.inFold, e.skip = true, uint64(m.FinalLSN) < e.start
		if !e.folded && !e.skip {
			e.folded, e.foldedAt = true, time.Now()
		}
		return buf, nil, true, nil
	case *pglogrepl.CommitMessage:
		if !e.inFold {
			return buf, msg, false, nil
		}
		e.inFold, e.skip = false, false
		return buf, nil, true, nil
	case *pglogrepl.RelationMessageV2:
		if e.pending && e.inBlock {
			buf = s.beginOpen(buf, at)
		}
		return buf, &m.RelationMessage, false, nil
	case *pglogrepl.TruncateMessageV2:
		if e.pending && e.inBlock {
			buf = s.beginOpen(buf, at)
		}
		return buf, &m.TruncateMessage, false, nil
	case *pglogrepl.LogicalDecodingMessageV2:
		return buf, &m.LogicalDecodingMessage, false, nil
	}
	return buf, msg, false, nil
}

// beginOpen hands the pending open transaction over (an EventBegin with
// Open), at its first message about a mirrored table, sent as of WAL
// position at.
func (s *Stream) beginOpen(buf []connectors.Event, at uint64) []connectors.Event {
	s.early.pending, s.inTx = false, true
	// Its commit comes after everything of it sent so far (at) and after
	// the stream's start (the source streams no transaction before it
	// passed the start).
	pos := max(at, s.early.start)
	return append(buf, connectors.Event{Kind: connectors.EventBegin, Open: true, Pos: LSNPosition(pos),
		Latest: s.latestPos()})
}
