package server

import (
	"encoding/binary"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/sluicedb/sluice/sqlerr"
)

// Start-up packets are read here rather than by pgproto3, which refuses any
// protocol version but 3.0 and 3.2 without a word; Postgres answers them
// (ProcessStartupPacket in src/backend/postmaster/postmaster.c).

const (
	// maxStartupPacket is Postgres' MAX_STARTUP_PACKET_LENGTH.
	maxStartupPacket = 10000
	// requestMajor is the major "version" of SSLRequest, GSSENCRequest and
	// CancelRequest.
	requestMajor = 1234
	// protocolMajor is the one major protocol version served, at minor 0.
	protocolMajor = 3
	// protocolOptionPrefix starts a protocol option in a startup packet.
	protocolOptionPrefix = "_pq_."
)

// unsupportedProtocolError is what a start-up with an unsupported major
// protocol version gets, in Postgres' words.
func unsupportedProtocolError(version uint32) *sqlerr.Error {
	return sqlerr.New(pgerrcode.FeatureNotSupported,
		"unsupported frontend protocol %d.%d: server supports %d.0 to %d.0",
		version>>16, version&0xffff, protocolMajor, protocolMajor)
}

// readStartupPacket reads one start-up packet straight from r (nothing is
// buffered past it) and returns an SSLRequest, GSSEncRequest, CancelRequest
// or StartupMessage. A StartupMessage keeps the version the client asked for;
// protocol options ("_pq_." parameters) are moved out of its parameters and
// returned apart. An unsupported major version is a *sqlerr.Error to send.
func readStartupPacket(r io.Reader) (pgproto3.FrontendMessage, []string, error) {
	var head [4]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return nil, nil, err
	}
	n := int(int32(binary.BigEndian.Uint32(head[:]))) - 4
	if n < 4 || n > maxStartupPacket {
		return nil, nil, fmt.Errorf("invalid length of startup packet: %d", n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, nil, err
	}
	code := binary.BigEndian.Uint32(body)
	if code>>16 == requestMajor {
		var msg interface {
			pgproto3.FrontendMessage
			Decode([]byte) error
		}
		switch code {
		case 80877103:
			msg = &pgproto3.SSLRequest{}
		case 80877104:
			msg = &pgproto3.GSSEncRequest{}
		case 80877102:
			msg = &pgproto3.CancelRequest{}
		default:
			return nil, nil, fmt.Errorf("unknown startup request code %d", code)
		}
		if err := msg.Decode(body); err != nil {
			return nil, nil, err
		}
		return msg, nil, nil
	}
	if code>>16 != protocolMajor {
		return nil, nil, unsupportedProtocolError(code)
	}
	// pgproto3 decodes only 3.0 and 3.2; any 3.x has the same layout.
	binary.BigEndian.PutUint32(body, pgproto3.ProtocolVersion30)
	m := &pgproto3.StartupMessage{}
	if err := m.Decode(body); err != nil {
		return nil, nil, err
	}
	m.ProtocolVersion = code
	var options []string
	for k := range m.Parameters {
		if strings.HasPrefix(k, protocolOptionPrefix) {
			options = append(options, k)
			delete(m.Parameters, k)
		}
	}
	sort.Strings(options)
	return m, options, nil
}

// negotiation is the NegotiateProtocolVersion owed to a client that asked for
// a newer minor version or sent protocol options, or nil. As in Postgres, it
// names the newest version served (3.0) and every option, none of which is
// recognised; the session then goes on at 3.0.
func negotiation(m *pgproto3.StartupMessage, options []string) *pgproto3.NegotiateProtocolVersion {
	if m.ProtocolVersion == pgproto3.ProtocolVersion30 && len(options) == 0 {
		return nil
	}
	if options == nil {
		options = []string{}
	}
	return &pgproto3.NegotiateProtocolVersion{NewestMinorProtocol: pgproto3.ProtocolVersion30, UnrecognizedOptions: options}
}
