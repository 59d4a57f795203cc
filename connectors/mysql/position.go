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
//	SSSSSSOOOOOOOOOO FILE GTID
//
// 16 upper-case hexadecimal digits first, the Version: the file's sequence
// number in 24 bits (16.7 million files) and the offset in 40 bits (1 TiB,
// beyond max_binlog_size's 1 GiB even for a transaction that overruns it);
// then, after a space, the file's name and the GTID state after the
// position (MariaDB's gtid_binlog_pos form, MySQL's executed GTID set;
// "" where GTIDs are off), which the stream resumes from by GTID where it
// can (replication_mechanism) and by file and offset otherwise. The hex
// part alone decides the order: two positions with the same one are the
// same point. The Version is the hex part read as a number.
//
// The order holds within one server's binlog history: RESET MASTER (which
// starts again at file 1) or a failover to another server, whose files are
// numbered otherwise, breaks it; the stream must see this (its GTID state
// tells) and report the mirror's stream lost (connectors.ErrStreamLost).

// BinlogPos is a decoded position: a point in a server's binlog.
type BinlogPos struct {
	// File is the binlog file's name, e.g. "mysql-bin.000042"; its
	// extension is the sequence number.
	File string
	// Offset is the byte offset in File.
	Offset uint64
	// GTID is the server's GTID state at the position ("" when GTIDs are
	// off): MariaDB's domain-server-sequence list, MySQL's GTID set.
	GTID string
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
	if strings.ContainsAny(p.File, " ") || strings.ContainsAny(p.GTID, " ") {
		return "", 0, fmt.Errorf("binlog position %s:%d %q: a space in the file name or GTID state", p.File, p.Offset, p.GTID)
	}
	return connectors.Position(fmt.Sprintf("%016X %s %s", v, p.File, p.GTID)), v, nil
}

// DecodePosition reads a Position that BinlogPos.Position made.
func DecodePosition(pos connectors.Position) (BinlogPos, error) {
	parts := strings.SplitN(string(pos), " ", 3)
	if len(parts) != 3 || len(parts[0]) != 16 {
		return BinlogPos{}, fmt.Errorf("%q is not a MySQL binlog position", pos)
	}
	v, err := strconv.ParseUint(parts[0], 16, 64)
	if err != nil {
		return BinlogPos{}, fmt.Errorf("%q is not a MySQL binlog position", pos)
	}
	p := BinlogPos{File: parts[1], Offset: v & maxOffset, GTID: parts[2]}
	if seq, err := fileSeq(p.File); err != nil || seq != v>>offsetBits {
		return BinlogPos{}, fmt.Errorf("%q is not a MySQL binlog position: the file does not match the number", pos)
	}
	return p, nil
}

// FormatPosition renders a position for messages: "mysql-bin.000042:1234
// (GTID 0-1-77)"; one it cannot read is shown as it is.
func FormatPosition(pos connectors.Position) string {
	p, err := DecodePosition(pos)
	if err != nil {
		return string(pos)
	}
	s := fmt.Sprintf("%s:%d", p.File, p.Offset)
	if p.GTID != "" {
		s += " (GTID " + p.GTID + ")"
	}
	return s
}
