package executor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/postgres"
	"github.com/sluicedb/sluice/server"
	"github.com/sluicedb/sluice/sqlerr"
	"github.com/sluicedb/sluice/sqlext"
)

// peerValidationTimeout bounds how long CREATE PEER waits for the peer.
const peerValidationTimeout = 20 * time.Second

// createPeer validates the options, connects to the peer to check it, and
// only then stores it: a peer that fails validation leaves nothing behind.
func (s *session) createPeer(ctx context.Context, st *sqlext.CreatePeer, w server.ResultWriter) error {
	opts := make(map[string]string, len(st.Options))
	for _, o := range st.Options {
		opts[o.Key] = o.Value.Text
	}
	if st.Type != sqlext.PeerPostgres {
		return sqlerr.New(pgerrcode.FeatureNotSupported, "%s peers are not supported yet", st.Type).
			WithPosition(int(st.TypePos)).WithHint("Sluice supports POSTGRES peers today")
	}
	cfg, err := postgres.ParsePeerOptions(opts)
	if err != nil {
		return optionError(err, st.Options, st.NamePos)
	}
	if _, err := s.ex.cfg.Store.GetPeer(ctx, st.Name); err == nil {
		if st.IfNotExists {
			_ = w.Notice("NOTICE", fmt.Sprintf("peer %q already exists, skipping", st.Name), "")
			return w.Complete("CREATE PEER")
		}
		return sqlerr.New(pgerrcode.DuplicateObject, "peer %q already exists", st.Name).WithPosition(int(st.NamePos))
	} else if !errors.Is(err, catalog.ErrNotFound) {
		return err
	}
	vctx, cancel := context.WithTimeout(ctx, peerValidationTimeout)
	defer cancel()
	info, err := cfg.Inspect(vctx)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return sqlerr.New(pgerrcode.SQLClientUnableToEstablishSQLConnection,
			"create peer %q: cannot connect: %v", st.Name, err).
			WithHint("check host, port, user, password and database; nothing was stored")
	}
	err = s.ex.cfg.Store.CreatePeer(ctx, catalog.Peer{Name: st.Name, Type: string(st.Type), Options: opts})
	if errors.Is(err, catalog.ErrExists) {
		if st.IfNotExists {
			_ = w.Notice("NOTICE", fmt.Sprintf("peer %q already exists, skipping", st.Name), "")
			return w.Complete("CREATE PEER")
		}
		return sqlerr.New(pgerrcode.DuplicateObject, "peer %q already exists", st.Name).WithPosition(int(st.NamePos))
	}
	if err != nil {
		return fmt.Errorf("create peer %q: %w", st.Name, err)
	}
	replication := "no"
	if info.Replication {
		replication = "yes"
	}
	_ = w.Notice("NOTICE", fmt.Sprintf("peer %q: PostgreSQL %s, wal_level=%s, replication privilege: %s",
		st.Name, info.Version, info.WalLevel, replication), "")
	if ok, why := info.CanBeSource(); !ok {
		_ = w.Notice("WARNING", fmt.Sprintf("peer %q can be a destination but not a CDC source: %s", st.Name, why),
			"a source needs wal_level=logical (ALTER SYSTEM SET wal_level = logical, then restart) "+
				"and a user with the REPLICATION privilege")
	}
	s.ex.cfg.Logger.InfoContext(ctx, "peer created", "peer", st.Name, "type", st.Type, "version", info.Version)
	return w.Complete("CREATE PEER")
}

// optionError turns a connector's option error into a SQL error pointing at
// the option (or at fallback when the option is missing).
func optionError(err error, opts sqlext.Options, fallback sqlext.Pos) error {
	var oe *connectors.OptionError
	if !errors.As(err, &oe) {
		return err
	}
	pos := fallback
	if o, ok := opts.Get(oe.Key); ok {
		pos = o.Pos
	}
	code := pgerrcode.InvalidParameterValue
	if oe.Unknown {
		code = pgerrcode.SyntaxError
	}
	return sqlerr.New(code, "%s", oe.Error()).WithPosition(int(pos))
}

func (s *session) dropPeer(ctx context.Context, st *sqlext.DropPeer, w server.ResultWriter) error {
	err := s.ex.cfg.Store.DropPeer(ctx, st.Name)
	if errors.Is(err, catalog.ErrNotFound) {
		if st.IfExists {
			_ = w.Notice("NOTICE", fmt.Sprintf("peer %q does not exist, skipping", st.Name), "")
			return w.Complete("DROP PEER")
		}
		return sqlerr.New(pgerrcode.UndefinedObject, "peer %q does not exist", st.Name).WithPosition(int(st.NamePos))
	}
	if err != nil {
		return fmt.Errorf("drop peer %q: %w", st.Name, err)
	}
	if pc, ok := s.peers[st.Name]; ok {
		pc.conn.Close(ctx)
		delete(s.peers, st.Name)
	}
	s.ex.cfg.Logger.InfoContext(ctx, "peer dropped", "peer", st.Name)
	return w.Complete("DROP PEER")
}

// executePeer runs raw SQL on a peer and relays every result.
// EXECUTE name('x') is also SQL's way to run a prepared statement: when no
// peer has that name but the session prepared a statement with it (PREPARE),
// the statement runs on the catalog as SQL.
func (s *session) executePeer(ctx context.Context, st *sqlext.ExecutePeer, w server.ResultWriter) error {
	conn, err := s.peerConn(ctx, st.Peer)
	if err != nil && s.hasPreparedStatement(ctx, st.Peer) {
		cat, cerr := s.catalogConn(ctx)
		if cerr != nil {
			return cerr
		}
		return relayAll(cat.Exec(ctx, st.Text), w, false)
	}
	if err != nil {
		var e *sqlerr.Error
		if errors.As(err, &e) && e.Code == pgerrcode.UndefinedObject {
			e.Position = int(st.PeerPos)
		}
		return err
	}
	return relayAll(conn.Exec(ctx, st.Query), w, true)
}

// hasPreparedStatement reports whether the session's catalog connection has
// a SQL-level prepared statement called name.
func (s *session) hasPreparedStatement(ctx context.Context, name string) bool {
	cat, err := s.catalogConn(ctx)
	if err != nil {
		return false
	}
	res := cat.ExecParams(ctx, "SELECT 1 FROM pg_prepared_statements WHERE name = $1",
		[][]byte{[]byte(name)}, nil, nil, nil).Read()
	return res.Err == nil && len(res.Rows) == 1
}
