package executor

import (
	"context"
	"errors"

	"github.com/jackc/pgerrcode"
	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/executor/replication"
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
		if st.Table != nil {
			return s.holdTable(ctx, st.Name, st.IfExists, st.NamePos, st.Table, catalog.HoldPause, "PAUSE MIRROR", w)
		}
		return s.setDesired(ctx, st.Name, st.IfExists, st.NamePos, catalog.DesiredPaused, "PAUSE MIRROR", w)
	case *sqlext.ResumeMirror:
		if st.Table != nil {
			return s.holdTable(ctx, st.Name, st.IfExists, st.NamePos, st.Table, catalog.HoldResume, "RESUME MIRROR", w)
		}
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
	if m.Phase == replication.PhaseCompleted {
		return sqlerr.New(pgerrcode.ObjectNotInPrerequisiteState, "mirror %q has completed its initial copy and has nothing to stream", name)
	}
	if m.Desired == desired {
		_ = w.Notice(sqlerr.Notice("mirror %q is already %s", name, map[string]string{
			catalog.DesiredPaused: "paused", catalog.DesiredRunning: "running"}[desired]))
		if desired == catalog.DesiredRunning {
			s.ex.engine.Run(name)
		} else if err := s.ex.stopFlow(name); err != nil {
			return err // a node still runs it (docs/cluster.md)
		}
		return w.Complete(tag)
	}
	if err := s.ex.cfg.Store.SetDesired(ctx, name, desired); err != nil {
		return err
	}
	if desired == catalog.DesiredPaused {
		if err := s.ex.stopFlow(name); err != nil {
			return err // paused; the node that runs it stops when it sees that
		}
	} else {
		s.ex.engine.Run(name)
	}
	s.ex.cfg.Logger.InfoContext(ctx, "mirror "+map[string]string{catalog.DesiredPaused: "paused", catalog.DesiredRunning: "resumed"}[desired], "mirror", name)
	return w.Complete(tag)
}

func isCode(err error, code string) bool {
	var e *sqlerr.Error
	return errors.As(err, &e) && e.Code == code
}
