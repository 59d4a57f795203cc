package postgres

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"sync"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sluicedb/sluice/connectors"
)

// Binary COPY stream.
//
// The format (COPY ... FROM STDIN (FORMAT binary)): the signature
// "PGCOPY\n\377\r\n\0", int32 flags 0, int32 header-extension length 0; per
// row an int16 field count, then per field an int32 length (-1 for NULL) and
// that many bytes of the type's binary send format; an int16 -1 trailer.

var copySignature = []byte("PGCOPY\n\377\r\n\000\000\000\000\000\000\000\000\000")

// firstNormalOID is FirstNormalObjectId: OIDs at or above it belong to
// objects created after initdb (user types), so they differ between clusters.
const firstNormalOID = 16384

// copyChunk is roughly how much a Read produces at a time.
const copyChunk = 64 << 10

// stagedRow is one row of a COPY stream: an entry and, for the staging
// table, its group.
type stagedRow struct {
	e     *entry
	group *flushGroup
}

// copyStream is an io.Reader producing the binary COPY stream of rows,
// encoding lazily so a large flush never holds a second copy of its rows.
//
// pgx reads it on a goroutine of its own, which it does not wait for when
// the connection fails in the middle of the COPY: that goroutine may go on
// reading after CopyFrom returned, while the applier rolls back and reuses
// the rows' memory. So a stream is only used through copyRows, which
// closes it when CopyFrom returns; a read after that (or one under way,
// which close waits for) touches no row.
type copyStream struct {
	mu     sync.Mutex
	closed bool
	rows   []stagedRow
	encode func(b []byte, r stagedRow) []byte
	next   int
	buf    []byte
	off    int
	header bool
	done   bool
}

// errCopyClosed is what a read of a closed copyStream returns.
var errCopyClosed = errors.New("copy stream closed: the COPY ended")

// copyRows copies rows into the destination with the COPY statement sql,
// each row encoded by encode, and returns when nothing reads the rows any
// more.
func copyRows(ctx context.Context, conn *pgconn.PgConn, sql string, rows []stagedRow, encode func(b []byte, r stagedRow) []byte) error {
	src := &copyStream{rows: rows, encode: encode}
	_, err := conn.CopyFrom(ctx, src, sql)
	src.close()
	return err
}

// close ends the stream: it waits for a read under way and makes later
// ones fail without touching the rows.
func (s *copyStream) close() {
	s.mu.Lock()
	s.closed = true
	s.rows, s.buf = nil, nil
	s.mu.Unlock()
}

func (s *copyStream) Read(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, errCopyClosed
	}
	for s.off == len(s.buf) {
		if s.done {
			return 0, io.EOF
		}
		s.fill()
	}
	n := copy(p, s.buf[s.off:])
	s.off += n
	return n, nil
}

func (s *copyStream) fill() {
	b := s.buf[:0]
	s.off = 0
	if !s.header {
		b = append(b, copySignature...)
		s.header = true
	}
	for len(b) < copyChunk && s.next < len(s.rows) {
		b = s.encode(b, s.rows[s.next])
		s.next++
	}
	if s.next == len(s.rows) {
		b = binary.BigEndian.AppendUint16(b, 0xffff)
		s.done = true
	}
	s.buf = b
}

// appendRow encodes one staging row: the replicated columns the row's group
// uses (others NULL) and the group number.
func (ts *tableState) appendRow(b []byte, r stagedRow) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(ts.cols)+1))
	for i := range ts.cols {
		if !r.group.known[i] {
			b = binary.BigEndian.AppendUint32(b, 0xffffffff)
			continue
		}
		b = ts.appendValue(b, i, &r.e.vals[i])
	}
	b = binary.BigEndian.AppendUint32(b, 4)
	return binary.BigEndian.AppendUint32(b, uint32(r.group.id))
}

// appendDirectRow encodes a complete row for the destination itself: every
// replicated column, then the soft-delete flag and the synced-at time when
// the table has them.
func (ts *tableState) appendDirectRow(b []byte, r stagedRow, now []byte) []byte {
	n := len(ts.cols)
	if ts.SoftDeleteColumn != "" {
		n++
	}
	if now != nil {
		n++
	}
	b = binary.BigEndian.AppendUint16(b, uint16(n))
	for i := range ts.cols {
		b = ts.appendValue(b, i, &r.e.vals[i])
	}
	if ts.SoftDeleteColumn != "" {
		b = binary.BigEndian.AppendUint32(b, 1)
		b = append(b, boolByte(r.e.deleted))
	}
	if now != nil {
		b = binary.BigEndian.AppendUint32(b, uint32(len(now)))
		b = append(b, now...)
	}
	return b
}

// appendValue encodes column i's value v (NULL unless Binary).
func (ts *tableState) appendValue(b []byte, i int, v *connectors.Value) []byte {
	if v.Kind != connectors.Binary {
		return binary.BigEndian.AppendUint32(b, 0xffffffff)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(v.Data)))
	start := len(b)
	b = append(b, v.Data...)
	if oid := ts.elemOID[i]; oid != 0 {
		patchArrayElemOID(b[start:], oid)
	}
	return b
}

// patchArrayElemOID rewrites the element type OID in an array's binary
// form (int32 ndim, int32 flags, uint32 element OID, ...) to oid when
// either OID is a user type's. array_recv insists the OID matches the
// column's element type, and a user type (an enum recreated on the
// destination, say) has a different OID on each cluster; the elements'
// own binary forms do not depend on it.
func patchArrayElemOID(arr []byte, oid uint32) {
	if len(arr) < 12 {
		return
	}
	have := binary.BigEndian.Uint32(arr[8:12])
	if have != oid && (have >= firstNormalOID || oid >= firstNormalOID) {
		binary.BigEndian.PutUint32(arr[8:12], oid)
	}
}
