package postgres

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// copyOut is a binary COPY ... TO STDOUT read straight off the source
// connection's socket: an io.Reader of the COPY's data (the CopyData
// messages' contents, the binary COPY format with its header and trailer)
// that counts the rows as it goes (calling progress after each).
//
// pgconn's CopyTo hands each row (one CopyData message each) to a Writer;
// relaying them to a destination's COPY FROM then took a pipe and a
// goroutine hand-off per 64 kB, and pgconn's work per message: the relay
// was 10-15% slower than psql ... | psql .... copyOut parses the message
// frames itself and copies each row's bytes once, into the buffer its
// caller reads into (pgconn's CopyFrom sends that buffer as one CopyData).
//
// copyOut uses the connection below pgconn (after pgconn's SyncConn), which
// must be idle (between queries: pgconn has read everything the server
// sent, up to its ReadyForQuery) and not used by anything else until the
// copy ends. The server sends nothing unasked between queries, so nothing
// is read ahead of the copy, and reading stops at the copy's
// ReadyForQuery: pgconn finds the connection as it left it. A copy that
// fails on the server (an ErrorResponse) is read to its ReadyForQuery too,
// and the connection stays usable (its transaction aborted). Any other
// failure (a network error, the context done, abort) leaves the connection
// in an unknown state: copyOut closes it.
type copyOut struct {
	conn     net.Conn
	br       *bufio.Reader
	progress func(int64)
	quit     chan struct{}
	watching chan struct{}
	ended    sync.Once // of finish

	mu     sync.Mutex
	rem    int   // bytes left of the current CopyData message
	rows   int64 // rows read so far
	tag    pgconn.CommandTag
	done   bool  // ReadyForQuery read: the copy ended
	err    error // the copy failed; every later Read returns it
	closed bool  // the connection was closed
}

// copyOutBufferSize is copyOut's read buffer (see readerBufferSize).
const copyOutBufferSize = readerBufferSize

// errCopyOutAborted is what a copyOut returns once aborted.
var errCopyOutAborted = errors.New("copy aborted")

// startCopyOut sends query, a COPY ... TO STDOUT (FORMAT binary), on
// conn, idle, and reads up to the start of its data. progress, when not
// nil, is called with the rows read so far after each row. The copy's
// reads stop when ctx is done (the connection is then closed). The caller
// reads the copy to its end (io.EOF) and calls result, or calls abort.
func startCopyOut(ctx context.Context, conn *pgconn.PgConn, query string, progress func(int64)) (*copyOut, error) {
	// pgconn may still have a read of its own under way (its background
	// reader, started when a write was slow): SyncConn waits for it.
	if err := conn.SyncConn(ctx); err != nil {
		return nil, err
	}
	buf, err := (&pgproto3.Query{String: query}).Encode(nil)
	if err != nil {
		return nil, err
	}
	c := &copyOut{conn: conn.Conn(), br: bufio.NewReaderSize(conn.Conn(), copyOutBufferSize), progress: progress,
		quit: make(chan struct{}), watching: make(chan struct{})}
	go func() {
		defer close(c.watching)
		select {
		case <-ctx.Done():
			// Unblock a read; the copy then fails and closes conn.
			_ = c.conn.SetDeadline(time.Unix(1, 0))
		case <-c.quit:
		}
	}()
	if _, err := c.conn.Write(buf); err != nil {
		c.fail(err)
		return nil, c.finish(ctx)
	}
	// The response: CopyOutResponse, or an error (ErrorResponse, then
	// ReadyForQuery).
	for {
		typ, body, err := c.next()
		if err != nil {
			c.fail(err)
			return nil, c.finish(ctx)
		}
		switch typ {
		case 'H':
			return c, nil
		case 'E':
			c.serverError(body)
			return nil, c.finish(ctx)
		case 'N', 'S', 'A':
		default:
			c.fail(fmt.Errorf("unexpected message %q in response to COPY", typ))
			return nil, c.finish(ctx)
		}
	}
}

// next reads the next message whole: its type and its body (valid until
// the next read).
func (c *copyOut) next() (byte, []byte, error) {
	hdr, err := c.br.Peek(5)
	if err != nil {
		return 0, nil, err
	}
	typ, n := hdr[0], int(binary.BigEndian.Uint32(hdr[1:]))-4
	if n < 0 {
		return 0, nil, fmt.Errorf("invalid message length %d", n+4)
	}
	if _, err := c.br.Discard(5); err != nil {
		return 0, nil, err
	}
	if n > c.br.Size() {
		// Longer than the buffer (an error with a long detail): read
		// it into memory of its own.
		body := make([]byte, n)
		_, err := io.ReadFull(c.br, body)
		return typ, body, err
	}
	body, err := c.br.Peek(n)
	if err != nil {
		return 0, nil, err
	}
	_, err = c.br.Discard(n)
	return typ, body, err
}

// Read implements io.Reader: the copy's data, io.EOF at its end. It
// returns what the connection's buffer holds once it has read something,
// rather than wait for more.
func (c *copyOut) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	n := 0
	for n < len(p) && !c.done {
		if c.rem == 0 {
			if n > 0 && c.br.Buffered() < 5 {
				break
			}
			if err := c.frame(); err != nil {
				c.fail(err)
			}
			if c.err != nil {
				break
			}
			continue
		}
		if n > 0 && c.br.Buffered() == 0 {
			break
		}
		k, err := c.br.Read(p[n:min(len(p), n+c.rem)])
		n += k
		c.rem -= k
		if err != nil {
			c.fail(err)
			break
		}
	}
	switch {
	case n > 0:
		return n, nil
	case c.err != nil:
		return 0, c.err
	case c.done:
		return 0, io.EOF
	}
	return 0, nil
}

// frame reads the header of the next message of the copy and what comes
// whole (everything but a CopyData's contents, which Read copies): a
// CopyData starts a row (or the header, or the trailer), and the copy's
// end reads CopyDone, CommandComplete and ReadyForQuery.
func (c *copyOut) frame() error {
	hdr, err := c.br.Peek(5)
	if err != nil {
		return err
	}
	if hdr[0] == 'd' {
		n := int(binary.BigEndian.Uint32(hdr[1:])) - 4
		if n < 0 {
			return fmt.Errorf("invalid CopyData length %d", n+4)
		}
		if _, err := c.br.Discard(5); err != nil {
			return err
		}
		row := true
		if n <= copyHeaderSize+2 {
			// The trailer, or the header alone or with the trailer:
			// not a row (isCopyRow).
			msg, err := c.br.Peek(n)
			if err != nil {
				return err
			}
			row = isCopyRow(msg)
		}
		if row {
			c.rows++
			if c.progress != nil {
				c.progress(c.rows)
			}
		}
		c.rem = n
		return nil
	}
	typ, body, err := c.next()
	if err != nil {
		return err
	}
	switch typ {
	case 'c', 'N', 'S', 'A':
	case 'C':
		c.tag = pgconn.NewCommandTag(string(trimNUL(body)))
	case 'Z':
		c.done = true
	case 'E':
		// Recorded as the copy's error; the connection stays open.
		c.serverError(body)
	default:
		return fmt.Errorf("unexpected message %q in a COPY", typ)
	}
	return nil
}

// serverError records the server's ErrorResponse body as the copy's
// error and reads on to the ReadyForQuery that follows it, so that the
// connection stays usable.
func (c *copyOut) serverError(body []byte) {
	var msg pgproto3.ErrorResponse
	if err := msg.Decode(body); err != nil {
		c.fail(fmt.Errorf("decode error response: %w", err))
		return
	}
	perr := pgconn.ErrorResponseToPgError(&msg)
	for {
		typ, _, err := c.next()
		if err != nil {
			c.fail(err)
			return
		}
		if typ == 'Z' {
			c.err, c.done = perr, true
			return
		}
	}
}

// fail records err, unless an error is recorded already, and closes the
// connection, whose state is then unknown.
func (c *copyOut) fail(err error) {
	if c.err == nil {
		c.err = err
	}
	if !c.closed {
		c.closed = true
		_ = c.conn.Close()
	}
}

// finish ends the watch of the context and returns the copy's error: the
// context's when it ended the copy.
func (c *copyOut) finish(ctx context.Context) error {
	c.ended.Do(func() { close(c.quit) })
	<-c.watching
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil && !c.done {
		c.fail(errCopyOutAborted)
	}
	if c.err != nil && !c.closed && ctx.Err() != nil {
		// The deadline may be set: the connection cannot be trusted.
		c.fail(c.err)
	}
	if !c.closed {
		_ = c.conn.SetDeadline(time.Time{})
	}
	if c.err != nil && ctx.Err() != nil {
		var perr *pgconn.PgError
		if !errors.As(c.err, &perr) {
			return fmt.Errorf("%w: %v", ctx.Err(), c.err)
		}
	}
	return c.err
}

// abort ends a copy its caller stops reading (the destination failed) and
// returns the copy's own error, if it failed first. A copy not read to its
// end has its connection closed: a Read blocked on it returns, and every
// later Read fails.
func (c *copyOut) abort(ctx context.Context) error {
	c.mu.Lock()
	done := c.done
	c.mu.Unlock()
	if !done {
		_ = c.conn.Close()
	}
	c.mu.Lock()
	err := c.err
	if !done {
		c.closed = true
		if c.err == nil {
			c.err = errCopyOutAborted
		}
	}
	c.mu.Unlock()
	_ = c.finish(ctx)
	return err
}

// result ends a copy read to its end (or failed) and returns its rows:
// the rows counted, which must be those the server's command tag says.
func (c *copyOut) result(ctx context.Context) (int64, error) {
	if err := c.finish(ctx); err != nil {
		return 0, err
	}
	if c.tag.RowsAffected() != c.rows {
		return 0, fmt.Errorf("source sent %d rows but its COPY reports %d", c.rows, c.tag.RowsAffected())
	}
	return c.rows, nil
}

// trimNUL drops a C string's terminating NUL.
func trimNUL(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] == 0 {
		return b[:len(b)-1]
	}
	return b
}
