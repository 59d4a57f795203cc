package server

import (
	"encoding/binary"
	"sort"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/sluicedb/sluice/sqlerr"
)

// sendError turns e into an ErrorResponse: the only place that does.
func (c *conn) sendError(e *sqlerr.Error) {
	c.be.Send(errorResponse(e, "ERROR", ""))
}

// sendNotice turns n into a NoticeResponse: the only place that does. An
// empty severity is NOTICE; an empty code is 00000 for a notice and 01000
// for a warning.
func (c *conn) sendNotice(n *sqlerr.Error) {
	code := pgerrcode.SuccessfulCompletion
	if n.Severity == "WARNING" {
		code = pgerrcode.Warning
	}
	c.be.Send((*pgproto3.NoticeResponse)(errorResponse(n, "NOTICE", code)))
}

// errorResponse holds every field of e, with the given defaults for an empty
// severity and code.
func errorResponse(e *sqlerr.Error, severity, code string) *pgproto3.ErrorResponse {
	if e.Severity != "" {
		severity = e.Severity
	}
	if e.Code != "" {
		code = e.Code
	}
	return &pgproto3.ErrorResponse{
		Severity:            severity,
		SeverityUnlocalized: severity,
		Code:                code,
		Message:             e.Message,
		Detail:              e.Detail,
		Hint:                e.Hint,
		Position:            int32(e.Position),
		InternalPosition:    int32(e.InternalPosition),
		InternalQuery:       e.InternalQuery,
		Where:               e.Where,
		SchemaName:          e.SchemaName,
		TableName:           e.TableName,
		ColumnName:          e.ColumnName,
		DataTypeName:        e.DataTypeName,
		ConstraintName:      e.ConstraintName,
		File:                e.File,
		Line:                int32(e.Line),
		Routine:             e.Routine,
	}
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
