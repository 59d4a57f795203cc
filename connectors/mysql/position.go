package mysql

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/sluicedb/sluice/connectors"
)

// Positions. A connectors.Position must order bytewise and map to a uint64
// Version that increases with it; a GTID set does neither (MariaDB's
// "0-1-42,1-2-7" and MySQL's "uuid:1-42" are sets, not points on a line).
// What does order, on one server, is the binlog itself: the sequence
// number of a binlog file (binlog.000042 -> 42) and the byte offset in it.
// So a position is
//
//	SSSSSSOOOOOOOOOO FILE
//
// 16 upper-case hexadecimal digits first, the Version: the file's sequence
// number in 24 bits (16.7 million files) and the offset in 40 bits (1 TiB,
// beyond max_binlog_size's 1 GiB even for a transaction that overruns it);
// then, after a space, the file's name, which the stream resumes from.
//
// Every point has exactly one rendering. Flows compare positions as
// strings, so two renderings of one point (one with a GTID state and one
// without, say) would compare as different points, and a transaction that
// begins where the applied position ends would look applied. That is why
// a position holds no GTID state: a stream that resumes by GTID asks the
// server for the state at the position (MariaDB's BINLOG_GTID_POS).
//
// The order holds within one server's binlog history: RESET MASTER (which
// starts again at file 1) or a failover to another server, whose files are
// numbered otherwise, breaks it; a mirror follows one server.

// BinlogPos is a decoded position: a point in a server's binlog.
type BinlogPos struct {
	// File is the binlog file's name, e.g. "mysql-bin.000042"; its
	// extension is the sequence number.
	File string
	// Offset is the byte offset in File.
	Offset uint64
}

// Limits of the Version's parts.
const (
	offsetBits = 40
	maxFileSeq = 1<<(64-offsetBits) - 1
	maxOffset  = 1<<offsetBits - 1
)

// fileSeq returns the sequence number of a binlog file name (the digits
// after the last dot).
func fileSeq(file string) (uint64, error) {
	i := strings.LastIndexByte(file, '.')
	if i < 0 || i == len(file)-1 {
		return 0, fmt.Errorf("binlog file name %q has no sequence number", file)
	}
	n, err := strconv.ParseUint(file[i+1:], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("binlog file name %q has no sequence number", file)
	}
	if n > maxFileSeq {
		return 0, fmt.Errorf("binlog file %q: sequence number beyond %d", file, maxFileSeq)
	}
	return n, nil
}

// Version returns p as the number a Position's order follows.
func (p BinlogPos) Version() (uint64, error) {
	seq, err := fileSeq(p.File)
	if err != nil {
		return 0, err
	}
	if p.Offset > maxOffset {
		return 0, fmt.Errorf("binlog offset %d in %s beyond %d", p.Offset, p.File, uint64(maxOffset))
	}
	return seq<<offsetBits | p.Offset, nil
}

// Position encodes p (see the comment at the top of the file). A file name
// without a sequence number, or with a space, is an error.
func (p BinlogPos) Position() (connectors.Position, uint64, error) {
	v, err := p.Version()
	if err != nil {
		return "", 0, err
	}
	if strings.ContainsAny(p.File, " ") {
		return "", 0, fmt.Errorf("binlog position %s:%d: a space in the file name", p.File, p.Offset)
	}
	return encodePosition(v, p.File), v, nil
}

// DecodePosition reads a Position that BinlogPos.Position made.
func DecodePosition(pos connectors.Position) (BinlogPos, error) {
	parts := strings.Split(string(pos), " ")
	if len(parts) != 2 || len(parts[0]) != 16 {
		return BinlogPos{}, fmt.Errorf("%q is not a MySQL binlog position", pos)
	}
	v, err := strconv.ParseUint(parts[0], 16, 64)
	if err != nil {
		return BinlogPos{}, fmt.Errorf("%q is not a MySQL binlog position", pos)
	}
	p := BinlogPos{File: parts[1], Offset: v & maxOffset}
	if seq, err := fileSeq(p.File); err != nil || seq != v>>offsetBits {
		return BinlogPos{}, fmt.Errorf("%q is not a MySQL binlog position: the file does not match the number", pos)
	}
	return p, nil
}

// encodePosition renders the position of version v, in file: what
// BinlogPos.Position returns once it checked the parts.
func encodePosition(v uint64, file string) connectors.Position {
	return connectors.Position(fmt.Sprintf("%016X %s", v, file))
}

// FormatPosition renders a position for messages: "mysql-bin.000042:1234";
// one it cannot read is shown as it is (connectors.Kind.FormatPosition).
func FormatPosition(pos connectors.Position) string {
	p, err := DecodePosition(pos)
	if err != nil {
		return string(pos)
	}
	return fmt.Sprintf("%s:%d", p.File, p.Offset)
}
