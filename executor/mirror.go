package executor

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgerrcode"
	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/postgres"
	"github.com/sluicedb/sluice/server"
	"github.com/sluicedb/sluice/sqlerr"
	"github.com/sluicedb/sluice/sqlext"
)

// mirrorStatement runs the mirror statements.
func (s *session) mirrorStatement(ctx context.Context, st sqlext.Statement, w server.ResultWriter) error {
	switch st := st.(type) {
	case *sqlext.CreateMirror:
		return s.createMirror(ctx, st, w)
	case *sqlext.DropMirror:
		return s.dropMirror(ctx, st, w)
	case *sqlext.PauseMirror:
		return s.setDesired(ctx, st.Name, st.IfExists, st.NamePos, catalog.DesiredPaused, "PAUSE MIRROR", w)
	case *sqlext.ResumeMirror:
		return s.setDesired(ctx, st.Name, st.IfExists, st.NamePos, catalog.DesiredRunning, "RESUME MIRROR", w)
	case *sqlext.ResyncMirror:
		return s.resyncMirror(ctx, st, w)
	case *sqlext.ResyncTable:
		return s.resyncTable(ctx, st, w)
	case *sqlext.ExecuteMirror:
		return sqlerr.New(pgerrcode.FeatureNotSupported,
			"EXECUTE MIRROR (PeerDB query replication) is not supported")
	}
	return sqlerr.New(pgerrcode.FeatureNotSupported, "%s is not implemented yet in this version of Sluice", verb(st))
}

// getMirror loads a mirror, turning "not found" into 42704 at pos.
func (s *session) getMirror(ctx context.Context, name string, pos sqlext.Pos) (catalog.Mirror, error) {
	m, err := s.ex.cfg.Store.GetMirror(ctx, name)
	if errors.Is(err, catalog.ErrMirrorNotFound) {
		return m, sqlerr.New(pgerrcode.UndefinedObject, "mirror %q does not exist", name).WithPosition(int(pos))
	}
	return m, err
}

func (s *session) setDesired(ctx context.Context, name string, ifExists bool, pos sqlext.Pos, desired, tag string, w server.ResultWriter) error {
	m, err := s.getMirror(ctx, name, pos)
	if err != nil {
		if ifExists && isCode(err, pgerrcode.UndefinedObject) {
			_ = w.Notice(sqlerr.Notice("mirror %q does not exist, skipping", name))
			return w.Complete(tag)
		}
		return err
	}
	if m.Phase == phaseCompleted {
		return sqlerr.New(pgerrcode.ObjectNotInPrerequisiteState, "mirror %q has completed its initial copy and has nothing to stream", name)
	}
	if m.Desired == desired {
		_ = w.Notice(sqlerr.Notice("mirror %q is already %s", name, map[string]string{
			catalog.DesiredPaused: "paused", catalog.DesiredRunning: "running"}[desired]))
		if desired == catalog.DesiredRunning {
			s.ex.sup.start(name)
		}
		return w.Complete(tag)
	}
	if err := s.ex.cfg.Store.SetDesired(ctx, name, desired); err != nil {
		return err
	}
	if desired == catalog.DesiredPaused {
		s.ex.sup.stop(name)
	} else {
		s.ex.sup.start(name)
	}
	s.ex.cfg.Logger.InfoContext(ctx, "mirror "+map[string]string{catalog.DesiredPaused: "paused", catalog.DesiredRunning: "resumed"}[desired], "mirror", name)
	return w.Complete(tag)
}

func isCode(err error, code string) bool {
	var e *sqlerr.Error
	return errors.As(err, &e) && e.Code == code
}

// dropMirror stops the mirror, removes its slot and publication from the
// source and its metadata from the destination, and forgets it. The
// destination tables stay unless drop_destination_tables = true (they are
// dropped without CASCADE: a dependent view stops the drop).
func (s *session) dropMirror(ctx context.Context, st *sqlext.DropMirror, w server.ResultWriter) error {
	dropTables := false
	for _, o := range st.Options {
		if o.Key != "drop_destination_tables" {
			return sqlerr.New(pgerrcode.SyntaxError, "unknown option %q: DROP MIRROR accepts drop_destination_tables", o.Key).
				WithPosition(int(o.Pos))
		}
		switch o.Value.Text {
		case "true", "on", "1":
			dropTables = true
		case "false", "off", "0":
		default:
			return sqlerr.New(pgerrcode.InvalidParameterValue, "invalid value for option %q: %q is not a boolean", o.Key, o.Value.Text).
				WithPosition(int(o.Value.Pos))
		}
	}
	m, err := s.getMirror(ctx, st.Name, st.NamePos)
	if err != nil {
		if st.IfExists && isCode(err, pgerrcode.UndefinedObject) {
			_ = w.Notice(sqlerr.Notice("mirror %q does not exist, skipping", st.Name))
			return w.Complete("DROP MIRROR")
		}
		return err
	}
	s.ex.sup.stop(m.Name)
	if err := s.ex.teardown(ctx, m, dropTables); err != nil {
		if m.Desired == catalog.DesiredRunning {
			s.ex.sup.start(m.Name)
		}
		return sqlerr.New(pgerrcode.ObjectNotInPrerequisiteState, "drop mirror %q: %v", m.Name, err).
			WithHint("The mirror is unchanged; fix the cause and run DROP MIRROR again.")
	}
	if err := s.ex.cfg.Store.DeleteMirror(ctx, m.Name); err != nil {
		return err
	}
	s.ex.cfg.Logger.InfoContext(ctx, "mirror dropped", "mirror", m.Name)
	return w.Complete("DROP MIRROR")
}

// teardown removes what a mirror made on its peers. Idempotent.
func (e *Executor) teardown(ctx context.Context, m catalog.Mirror, dropTables bool) error {
	cfg := configOf(m.Options)
	srcCfg, err := e.postgresPeer(ctx, m.SourcePeer)
	if err != nil {
		return err
	}
	src, err := srcCfg.ConnectSQL(ctx, "sluice-teardown")
	if err != nil {
		return err
	}
	defer src.Close(context.Background())
	if err := postgres.DropSlot(ctx, src, cfg.Slot); err != nil {
		return err
	}
	if err := postgres.DropPublication(ctx, src, cfg.Publication); err != nil {
		return err
	}
	dstPeer, err := e.cfg.Store.GetPeer(ctx, m.DestinationPeer)
	if err != nil {
		return err
	}
	if dstPeer.Type == string(sqlext.PeerClickHouse) {
		return e.teardownClickHouse(ctx, m, dstPeer.Options, dropTables)
	}
	dstCfg, err := postgres.ParsePeerOptions(dstPeer.Options)
	if err != nil {
		return err
	}
	dst, err := dstCfg.ConnectSQL(ctx, "sluice-teardown")
	if err != nil {
		return err
	}
	defer dst.Close(context.Background())
	meta := metadataSchema(dstPeer.Options)
	if err := postgres.EnsureMetadata(ctx, dst, meta); err != nil {
		return err
	}
	if err := postgres.ClearMirror(ctx, dst, meta, m.Name); err != nil {
		return err
	}
	// Shadow tables of a resync under way: only those recorded as
	// Sluice's own (by OID), never a same-named table it did not create.
	if err := postgres.DropAllOwned(ctx, dst, meta, m.Name); err != nil {
		return err
	}
	if dropTables {
		for _, t := range m.Tables {
			name, err := connectors.ParseTableName(t.Destination)
			if err != nil {
				return err
			}
			if _, err := dst.Exec(ctx, "DROP TABLE IF EXISTS "+name.Quoted()); err != nil {
				return fmt.Errorf("drop destination table %s: %w", name, err)
			}
		}
	}
	return nil
}

// tableSet renders names for messages.
func tableSet(names []connectors.TableName) string {
	out := ""
	for i, n := range names {
		if i > 0 {
			out += ", "
		}
		out += n.String()
	}
	return out
}
