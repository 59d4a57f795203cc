package server

import (
	"context"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/sluicedb/sluice/sqlerr"
)

// extendedState holds a session's prepared statements and portals.
type extendedState struct {
	stmts      map[string]Statement
	portals    map[string]*portal
	skipToSync bool
}

type portal struct {
	stmt          Statement
	params        [][]byte
	paramFormats  []int16
	resultFormats []int16
	fields        []pgproto3.FieldDescription

	// Set once a partial (maxRows) execution has run the statement.
	executed bool
	buffered [][][]byte
	tag      string
}

// handleExtended runs one extended-protocol message; after an error the
// server skips messages until Sync, as Postgres does.
func (c *conn) handleExtended(ctx context.Context, f func(ctx context.Context) error) {
	if err := c.run(ctx, f); err != nil {
		c.sendError(sqlerr.From(err))
		c.ext.skipToSync = true
	}
}

func (c *conn) parse(ctx context.Context, m *pgproto3.Parse) error {
	if c.ext.stmts == nil {
		c.ext.stmts = make(map[string]Statement)
	}
	if old, ok := c.ext.stmts[m.Name]; ok {
		if m.Name != "" {
			return sqlerr.New(pgerrcode.DuplicatePreparedStatement, "prepared statement %q already exists", m.Name)
		}
		_ = old.Close(ctx)
		delete(c.ext.stmts, m.Name)
	}
	oids := append([]uint32(nil), m.ParameterOIDs...)
	stmt, err := c.sess.Prepare(ctx, m.Query, oids)
	if err != nil {
		return err
	}
	c.ext.stmts[m.Name] = stmt
	c.be.Send(&pgproto3.ParseComplete{})
	return nil
}

func (c *conn) bind(m *pgproto3.Bind) error {
	stmt, ok := c.ext.stmts[m.PreparedStatement]
	if !ok {
		return sqlerr.New(pgerrcode.InvalidSQLStatementName, "prepared statement %q does not exist", m.PreparedStatement)
	}
	if c.ext.portals == nil {
		c.ext.portals = make(map[string]*portal)
	}
	if _, ok := c.ext.portals[m.DestinationPortal]; ok && m.DestinationPortal != "" {
		return sqlerr.New(pgerrcode.DuplicateCursor, "portal %q already exists", m.DestinationPortal)
	}
	if want := len(stmt.ParamOIDs()); len(m.Parameters) != want && want > 0 {
		return sqlerr.New(pgerrcode.ProtocolViolation,
			"bind message supplies %d parameters, but prepared statement %q requires %d",
			len(m.Parameters), m.PreparedStatement, want)
	}
	fields, err := applyFormats(stmt.Fields(), m.ResultFormatCodes)
	if err != nil {
		return err
	}
	// pgproto3 reuses the message's buffers: copy what we keep.
	params := make([][]byte, len(m.Parameters))
	for i, p := range m.Parameters {
		if p != nil {
			params[i] = append([]byte{}, p...)
		}
	}
	c.ext.portals[m.DestinationPortal] = &portal{
		stmt:          stmt,
		params:        params,
		paramFormats:  append([]int16(nil), m.ParameterFormatCodes...),
		resultFormats: append([]int16(nil), m.ResultFormatCodes...),
		fields:        fields,
	}
	c.be.Send(&pgproto3.BindComplete{})
	return nil
}

// applyFormats returns fields with the Bind message's result format codes.
func applyFormats(fields []pgproto3.FieldDescription, formats []int16) ([]pgproto3.FieldDescription, error) {
	if fields == nil {
		return nil, nil
	}
	if len(formats) > 1 && len(formats) != len(fields) {
		return nil, sqlerr.New(pgerrcode.ProtocolViolation,
			"bind message has %d result formats but query has %d columns", len(formats), len(fields))
	}
	out := make([]pgproto3.FieldDescription, len(fields))
	copy(out, fields)
	for i := range out {
		switch {
		case len(formats) == 1:
			out[i].Format = formats[0]
		case len(formats) > 1:
			out[i].Format = formats[i]
		default:
			out[i].Format = 0
		}
	}
	return out, nil
}

func (c *conn) describe(m *pgproto3.Describe) error {
	switch m.ObjectType {
	case 'S':
		stmt, ok := c.ext.stmts[m.Name]
		if !ok {
			return sqlerr.New(pgerrcode.InvalidSQLStatementName, "prepared statement %q does not exist", m.Name)
		}
		c.be.Send(&pgproto3.ParameterDescription{ParameterOIDs: stmt.ParamOIDs()})
		sendRowDescription(c.be, stmt.Fields())
	case 'P':
		p, ok := c.ext.portals[m.Name]
		if !ok {
			return sqlerr.New(pgerrcode.InvalidCursorName, "portal %q does not exist", m.Name)
		}
		sendRowDescription(c.be, p.fields)
	default:
		return sqlerr.New(pgerrcode.ProtocolViolation, "invalid DESCRIBE message subtype %d", m.ObjectType)
	}
	return nil
}

func sendRowDescription(be *pgproto3.Backend, fields []pgproto3.FieldDescription) {
	if fields == nil {
		be.Send(&pgproto3.NoData{})
		return
	}
	be.Send(&pgproto3.RowDescription{Fields: fields})
}

func (c *conn) execute(ctx context.Context, m *pgproto3.Execute) error {
	p, ok := c.ext.portals[m.Portal]
	if !ok {
		return sqlerr.New(pgerrcode.InvalidCursorName, "portal %q does not exist", m.Portal)
	}
	if m.MaxRows == 0 && !p.executed {
		w := &streamWriter{c: c}
		p.executed = true
		p.tag = ""
		return p.stmt.Execute(ctx, p.params, p.paramFormats, p.resultFormats, w)
	}
	if !p.executed {
		bw := &bufferWriter{c: c}
		p.executed = true
		if err := p.stmt.Execute(ctx, p.params, p.paramFormats, p.resultFormats, bw); err != nil {
			return err
		}
		p.buffered, p.tag = bw.rows, bw.tag
	}
	n := len(p.buffered)
	if m.MaxRows > 0 && int(m.MaxRows) < n {
		n = int(m.MaxRows)
	}
	for _, row := range p.buffered[:n] {
		c.be.Send(&pgproto3.DataRow{Values: row})
	}
	p.buffered = p.buffered[n:]
	if len(p.buffered) > 0 {
		c.be.Send(&pgproto3.PortalSuspended{})
		return nil
	}
	tag := p.tag
	if tag == "" {
		tag = "SELECT 0"
	}
	p.tag = "SELECT 0"
	c.be.Send(&pgproto3.CommandComplete{CommandTag: []byte(tag)})
	return nil
}

func (c *conn) closeMsg(ctx context.Context, m *pgproto3.Close) error {
	switch m.ObjectType {
	case 'S':
		if stmt, ok := c.ext.stmts[m.Name]; ok {
			delete(c.ext.stmts, m.Name)
			if err := stmt.Close(ctx); err != nil {
				return err
			}
		}
	case 'P':
		delete(c.ext.portals, m.Name)
	default:
		return sqlerr.New(pgerrcode.ProtocolViolation, "invalid CLOSE message subtype %d", m.ObjectType)
	}
	c.be.Send(&pgproto3.CloseComplete{})
	return nil
}

// closeUnnamedPortal drops the unnamed portal, which lives until Sync.
func (s *extendedState) closeUnnamedPortal() {
	delete(s.portals, "")
}

// closeUnnamed drops the unnamed statement and portal (a simple query does).
func (s *extendedState) closeUnnamed(ctx context.Context) {
	delete(s.portals, "")
	if stmt, ok := s.stmts[""]; ok {
		delete(s.stmts, "")
		_ = stmt.Close(ctx)
	}
}

// closeAll releases every statement at the end of the session.
func (s *extendedState) closeAll(ctx context.Context) {
	for name, stmt := range s.stmts {
		_ = stmt.Close(ctx)
		delete(s.stmts, name)
	}
	s.portals = nil
}

// bufferWriter keeps a statement's rows for a portal executed in pieces.
// Notices are not kept: they go to the client at once, as Postgres sends
// them while the statement runs.
type bufferWriter struct {
	c    *conn
	rows [][][]byte
	tag  string
}

func (w *bufferWriter) Fields([]pgproto3.FieldDescription) error { return nil }

func (w *bufferWriter) Row(values [][]byte) error {
	row := make([][]byte, len(values))
	for i, v := range values {
		if v != nil {
			row[i] = append([]byte{}, v...)
		}
	}
	w.rows = append(w.rows, row)
	return nil
}

func (w *bufferWriter) Complete(tag string) error { w.tag = tag; return nil }

func (w *bufferWriter) EmptyQuery() error { return nil }

func (w *bufferWriter) Notice(n *sqlerr.Error) error {
	w.c.sendNotice(n)
	return nil
}
