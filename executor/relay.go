package executor

import (
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/sluicedb/sluice/server"
)

// firstUserOID is the first OID Postgres gives to objects users create:
// below it, a type OID means the same on every server.
const firstUserOID = 16384

// textOID is the OID of type text.
const textOID = 25

// relay copies every result of rr to w. describe sends RowDescription (the
// simple protocol). fromPeer marks a peer's results (see fieldsOf).
func relay(rr *pgconn.ResultReader, w server.ResultWriter, describe, fromPeer bool) error {
	if describe {
		if fds := rr.FieldDescriptions(); fds != nil {
			if err := w.Fields(fieldsOf(fds, fromPeer)); err != nil {
				rr.Close()
				return err
			}
		}
	}
	for rr.NextRow() {
		if err := w.Row(rr.Values()); err != nil {
			rr.Close()
			return err
		}
	}
	tag, err := rr.Close()
	if err != nil {
		return err
	}
	return w.Complete(tag.String())
}

// relayAll copies every result of a multi-statement Exec to w.
func relayAll(mrr *pgconn.MultiResultReader, w server.ResultWriter, fromPeer bool) error {
	var firstErr error
	for mrr.NextResult() {
		if err := relay(mrr.ResultReader(), w, true, fromPeer); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if err := mrr.Close(); err != nil && firstErr == nil {
		firstErr = err
	}
	return firstErr
}

// fieldsOf describes result columns to the client. A peer's table OIDs and
// the OIDs of its own types (enums, composites, arrays of them: OIDs from
// 16384 on) mean nothing to the client, which looks types up in the
// catalog: such columns are described as text, whose text-format bytes are
// the peer's text output (see peerFormats).
func fieldsOf(fds []pgconn.FieldDescription, fromPeer bool) []pgproto3.FieldDescription {
	out := make([]pgproto3.FieldDescription, len(fds))
	for i, fd := range fds {
		out[i] = pgproto3.FieldDescription{
			Name:                 []byte(fd.Name),
			TableOID:             fd.TableOID,
			TableAttributeNumber: fd.TableAttributeNumber,
			DataTypeOID:          fd.DataTypeOID,
			DataTypeSize:         fd.DataTypeSize,
			TypeModifier:         fd.TypeModifier,
			Format:               fd.Format,
		}
		if fromPeer {
			out[i].TableOID, out[i].TableAttributeNumber = 0, 0
			if fd.DataTypeOID >= firstUserOID {
				out[i].DataTypeOID, out[i].DataTypeSize, out[i].TypeModifier = textOID, -1, -1
			}
		}
	}
	return out
}

// peerFormats returns the formats to use with a peer for values of the
// given types (result columns or parameters), given the client's formats
// (none: all text; one: for all; else one each): text for the peer's own
// types, described to the client as text (see fieldsOf), whatever the client
// chose. The text encoding of a text value is also its binary encoding, so
// those bytes are right in either format, both ways.
func peerFormats(oids []uint32, formats []int16) []int16 {
	user := false
	for _, oid := range oids {
		if oid >= firstUserOID {
			user = true
		}
	}
	if !user || len(formats) == 0 {
		return formats
	}
	out := make([]int16, len(oids))
	for i, oid := range oids {
		switch {
		case oid >= firstUserOID:
			out[i] = 0
		case len(formats) == 1:
			out[i] = formats[0]
		case i < len(formats):
			out[i] = formats[i]
		}
	}
	return out
}

// oidsOf returns the type OIDs of result columns.
func oidsOf(fds []pgconn.FieldDescription) []uint32 {
	oids := make([]uint32, len(fds))
	for i, fd := range fds {
		oids[i] = fd.DataTypeOID
	}
	return oids
}
