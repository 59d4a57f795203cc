package executor

import (
	"context"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/sluicedb/sluice/server"
)

// preparePeerStatement prepares a forwarded write (peerwrite.go) or a
// statement on a peer's cursor (peercursor.go) for the extended protocol:
// on the peer connection it runs on, so that parameters and result
// columns (FETCH's, RETURNING's) are the peer's own.
func (s *session) preparePeerStatement(ctx context.Context, r route, paramOIDs []uint32) (server.Statement, error) {
	if s.TxStatus() == 'E' {
		return nil, errAborted()
	}
	if r.cursor != nil && r.cursor.closeAll {
		return &closeAllStatement{s: s, r: r}, nil
	}
	readOnly := r.write == ""
	conn, err := s.peerConn(ctx, r.peer, readOnly)
	if err != nil {
		return nil, err
	}
	if r.cursor != nil && r.cursor.declare {
		if err := s.checkCalls(ctx, r.peer, r.guard, r.at); err != nil {
			return nil, err
		}
	}
	bs, err := s.prepareOn(ctx, conn, r.sql, paramOIDs, true, r.position)
	if err != nil {
		return nil, err
	}
	bs.peer, bs.readOnly = r.peer, readOnly
	bs.guard = func(ctx context.Context) error {
		if err := s.checkOwned(ctx, r.guard, r.at); err != nil || !readOnly {
			return err
		}
		return s.checkCalls(ctx, r.peer, r.guard, r.at)
	}
	return &peerStatement{backendStatement: bs, r: r}, nil
}

// peerStatement is a forwarded write or a cursor statement prepared on a
// peer.
type peerStatement struct {
	*backendStatement
	r route
}

func (p *peerStatement) Execute(ctx context.Context, params [][]byte, paramFormats, resultFormats []int16, w server.ResultWriter) error {
	s := p.s
	if s.TxStatus() == 'E' {
		s.abortBlock(ctx)
		return errAborted()
	}
	if p.r.write != "" {
		s.warnOwnTransaction(p.r, w)
		return p.backendStatement.Execute(ctx, params, paramFormats, resultFormats, w)
	}
	if p.r.cursor.declare {
		conn, err := s.peerConn(ctx, p.r.peer, true)
		if err == nil {
			err = s.beforeDeclare(ctx, p.r, conn)
		}
		if err != nil {
			s.abortBlock(ctx)
			return withoutRoles(err)
		}
	}
	err := p.backendStatement.Execute(ctx, params, paramFormats, resultFormats, w)
	s.afterCursor(ctx, p.r, err)
	return err
}

// closeAllStatement is CLOSE ALL prepared while peers hold cursors.
type closeAllStatement struct {
	s *session
	r route
}

func (c *closeAllStatement) ParamOIDs() []uint32                 { return nil }
func (c *closeAllStatement) Fields() []pgproto3.FieldDescription { return nil }
func (c *closeAllStatement) Close(context.Context) error         { return nil }

func (c *closeAllStatement) Execute(ctx context.Context, _ [][]byte, _, _ []int16, w server.ResultWriter) error {
	c.s.notices = w
	defer func() { c.s.notices = nil }()
	err := c.s.peerStatement(ctx, c.r, w)
	if err != nil {
		c.s.abortBlock(ctx)
	}
	return withoutRoles(err)
}
