package mysql

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/sluicedb/sluice/connectors"
)

// binlogPos is a point in a server's binary log: a binlog file and an
// offset in it.
//
// As a connectors.Position it reads
//
//	0000000042:000000001234 binlog.000042
//
// a fixed-width part that orders positions bytewise (the file's sequence
// number, the number after the last dot of its name, and the offset), then
// the file's name, to resume from. Every point has exactly one rendering:
// flows compare positions as strings, so two renderings of one point (say,
// one with a GTID state and one without) would order as different points.
// That is why a position holds no GTID state: a stream that resumes by
// GTID asks the server for the state at the position (BINLOG_GTID_POS).
// The order is that of one server's log; a stream moved to another server
// (a failover) cannot compare its positions with the old ones, so a mirror
// follows one server.
type binlogPos struct {
	// File is the binlog file's name, e.g. "binlog.000042".
	File string
	// Seq is File's sequence number (42).
	Seq uint64
	// Offset is the byte offset in File.
	Offset uint64
}

// Widths of the fixed part of a binlogPos as a Position.
const (
	seqDigits    = 10
	offsetDigits = 12
)

// offsetBits is how many low bits of a version hold the offset: binlog
// files are far smaller than 1 TB (max_binlog_size is at most 1 GB).
const offsetBits = 40

// newBinlogPos returns the position at offset of file.
func newBinlogPos(file string, offset uint64) (binlogPos, error) {
	seq, err := binlogSeq(file)
	if err != nil {
		return binlogPos{}, err
	}
	return binlogPos{File: file, Seq: seq, Offset: offset}, nil
}

// binlogSeq reads the sequence number of a binlog file's name: the digits
// after its last dot.
func binlogSeq(file string) (uint64, error) {
	dot := strings.LastIndexByte(file, '.')
	if dot < 0 || dot == len(file)-1 {
		return 0, fmt.Errorf("binlog file name %q has no sequence number", file)
	}
	seq, err := strconv.ParseUint(file[dot+1:], 10, 64)
	if err != nil || seq >= 1<<(64-offsetBits) {
		return 0, fmt.Errorf("binlog file name %q has no usable sequence number", file)
	}
	return seq, nil
}

// Position renders p as a connectors.Position.
func (p binlogPos) Position() connectors.Position {
	return connectors.Position(fmt.Sprintf("%0*d:%0*d %s", seqDigits, p.Seq, offsetDigits, p.Offset, p.File))
}

// Version is p as a number that grows with it: the sequence number in the
// high bits, the offset in the low offsetBits.
func (p binlogPos) Version() uint64 { return p.Seq<<offsetBits | p.Offset }

// String renders p for messages: file:offset.
func (p binlogPos) String() string { return p.File + ":" + strconv.FormatUint(p.Offset, 10) }

// parseBinlogPos reads a position Position rendered.
func parseBinlogPos(pos connectors.Position) (binlogPos, error) {
	fields := strings.Split(string(pos), " ")
	bad := func() (binlogPos, error) {
		return binlogPos{}, fmt.Errorf("not a MySQL binlog position: %q", string(pos))
	}
	if len(fields) != 2 || len(fields[0]) != seqDigits+1+offsetDigits || fields[0][seqDigits] != ':' {
		return bad()
	}
	seq, err1 := strconv.ParseUint(fields[0][:seqDigits], 10, 64)
	off, err2 := strconv.ParseUint(fields[0][seqDigits+1:], 10, 64)
	if err1 != nil || err2 != nil {
		return bad()
	}
	p := binlogPos{File: fields[1], Seq: seq, Offset: off}
	if s, err := binlogSeq(p.File); err != nil || s != seq {
		return bad()
	}
	return p, nil
}

// FormatPosition renders a MySQL source's position for messages
// (connectors.Kind.FormatPosition): file:offset, or the position as it is
// when it is not one.
func FormatPosition(pos connectors.Position) string {
	p, err := parseBinlogPos(pos)
	if err != nil {
		return string(pos)
	}
	return p.String()
}
