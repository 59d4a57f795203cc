package server

import (
	"encoding/binary"
	"sort"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/sluicedb/sluice/sqlerr"
)

// sendError turns e into an ErrorResponse: the only place that does.
func (c *conn) sendError(e *sqlerr.Error) {
	sev := e.Severity
	if sev == "" {
		sev = "ERROR"
	}
	c.be.Send(&pgproto3.ErrorResponse{
		Severity:            sev,
		SeverityUnlocalized: sev,
		Code:                e.Code,
		Message:             e.Message,
		Detail:              e.Detail,
		Hint:                e.Hint,
		Position:            int32(e.Position),
	})
}

// fatal marks e as ending the session.
func fatal(e *sqlerr.Error) *sqlerr.Error {
	cp := *e
	cp.Severity = "FATAL"
	return &cp
}

func uint32Bytes(v uint32) []byte {
	b := make([]byte, 4)
	binary.BigEndian.PutUint32(b, v)
	return b
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
