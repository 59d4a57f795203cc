package executor

import (
	"context"
	"errors"

	"github.com/jackc/pgerrcode"
	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/executor/replication"
	"github.com/sluicedb/sluice/server"
	"github.com/sluicedb/sluice/sqlerr"
	"github.com/sluicedb/sluice/sqlext"
)

// PAUSE MIRROR m TABLE t and RESUME MIRROR m TABLE t: one table of a
// streaming mirror stops receiving changes, or comes back, while the others
// stream. The statement records a request in the catalog and wakes the
// mirror's flow, which holds the table, or brings it back from where it
// stopped (executor/replication/held.go; on a destination with versioned
// rows and no positions per table, by a copy: held_versioned.go). A table
// that failed on its own (status failed) is resumed the same way once its
// cause is fixed.

// holdTable records request (catalog.HoldPause or catalog.HoldResume) for
// table q of mirror name.
func (s *session) holdTable(ctx context.Context, name string, ifExists bool, namePos sqlext.Pos, q *sqlext.QualifiedName,
	request, tag string, w server.ResultWriter) error {
	m, err := s.getMirror(ctx, name, namePos)
	if err != nil {
		if ifExists && isCode(err, pgerrcode.UndefinedObject) {
			_ = w.Notice(sqlerr.Notice("mirror %q does not exist, skipping", name))
			return w.Complete(tag)
		}
		return err
	}
	table, mt, err := s.mirrorTable(ctx, &m, *q)
	if err != nil {
		return err
	}
	switch {
	case m.Phase == replication.PhaseCompleted:
		return sqlerr.New(pgerrcode.ObjectNotInPrerequisiteState, "mirror %q has completed its initial copy and has nothing to stream", m.Name).
			WithPosition(int(namePos))
	case m.Phase != catalog.PhaseCDC || m.Resync != "":
		return sqlerr.New(pgerrcode.ObjectNotInPrerequisiteState, "mirror %q is in its initial load (%s): its tables can be paused once it streams", m.Name, m.Phase).
			WithPosition(int(namePos))
	case request == catalog.HoldPause && (mt.ResyncStatus == catalog.ResyncPending || mt.ResyncStatus == catalog.ResyncInProgress):
		return sqlerr.New(pgerrcode.ObjectInUse, "a resync of %s in mirror %q is under way: it cannot be paused until it is done", table, m.Name).
			WithPosition(int(q.Pos))
	}
	dst, dstType, err := s.openMirrorDestination(ctx, m, "pause or resume a table of")
	if err != nil {
		return err
	}
	_, positions := dst.(connectors.TablePositions)
	_, versioned := dst.(connectors.VersionedRows)
	_, swaps := dst.(connectors.ShadowSwapper)
	dst.Close(context.Background())
	if !positions && !(versioned && swaps) {
		return sqlerr.New(pgerrcode.FeatureNotSupported, "%s is not supported for %s destinations", tag+" ... TABLE", dstType).
			WithPosition(int(q.Pos)).
			WithHint("Pause the whole mirror. The mirror is unchanged.")
	}
	holds, err := s.ex.cfg.Store.TableHolds(ctx, m.Name)
	if err != nil {
		return err
	}
	h := holds[table.String()]
	held := h.Status == catalog.TableStatusPaused || h.Status == catalog.TableStatusFailed
	switch {
	case request == catalog.HoldPause && held && h.Request != catalog.HoldResume,
		request == catalog.HoldPause && h.Request == catalog.HoldPause:
		_ = w.Notice(sqlerr.Notice("table %s of mirror %q is already %s", table, m.Name, heldWord(h, held)))
		return w.Complete(tag)
	case request == catalog.HoldResume && !held && h.Request == catalog.HoldPause:
		// Not held yet: the pause is called off.
		request = ""
	case request == catalog.HoldResume && !held:
		_ = w.Notice(sqlerr.Notice("table %s of mirror %q is not paused", table, m.Name))
		return w.Complete(tag)
	case request == catalog.HoldResume && h.Request == catalog.HoldResume:
		_ = w.Notice(sqlerr.Notice("table %s of mirror %q is already being resumed", table, m.Name))
		return w.Complete(tag)
	}
	if request == catalog.HoldResume && !positions {
		// Rows with versions, no position per table (ClickHouse): the
		// table comes back by a copy, as RESYNC TABLE does.
		return s.resumeByCopy(ctx, m, table, q.Pos, tag, w)
	}
	if err := s.ex.cfg.Store.RequestTableHold(ctx, m.Name, table.String(), request); err != nil {
		if errors.Is(err, catalog.ErrTableNotInMirror) {
			return sqlerr.New(pgerrcode.UndefinedTable, "table %s is not in mirror %q", table, m.Name).WithPosition(int(q.Pos))
		}
		return err
	}
	if m.Desired == catalog.DesiredRunning {
		s.ex.engine.Run(m.Name)
		s.ex.engine.Wake(m.Name) // a running flow picks the request up now
	} else {
		_ = w.Notice(sqlerr.Notice("mirror %q is paused: this takes effect for %s when it is resumed", m.Name, table))
	}
	s.ex.cfg.Logger.InfoContext(ctx, "table "+request+" requested", "mirror", m.Name, "table", table.String())
	return w.Complete(tag)
}

// heldWord says how a table is held, for a notice.
func heldWord(h catalog.TableHold, held bool) string {
	switch {
	case !held:
		return "being paused"
	case h.Status == catalog.TableStatusFailed:
		return "held (failed: " + h.Error + ")"
	}
	return "paused"
}

// resumeByCopy resumes held table of m on a destination without positions
// per table (versioned rows): a resync copies it under a snapshot of its
// own while it streams again, and swaps the copy in with the rows it
// received since (executor/replication/held_versioned.go).
func (s *session) resumeByCopy(ctx context.Context, m catalog.Mirror, table connectors.TableName, pos sqlext.Pos, tag string, w server.ResultWriter) error {
	if err := s.ex.cfg.Store.StartTableResync(ctx, m.Name, table.String(), replication.StrategySwap, nil); err != nil {
		if errors.Is(err, catalog.ErrResyncInProgress) {
			return sqlerr.New(pgerrcode.ObjectInUse, "a resync of %s in mirror %q is already under way", table, m.Name).
				WithPosition(int(pos))
		}
		return err
	}
	_ = w.Notice(sqlerr.Notice("%s is copied again to resume it: the destination keeps no position per table", table))
	if m.Desired == catalog.DesiredRunning {
		s.ex.engine.Run(m.Name)
		s.ex.engine.Wake(m.Name)
	}
	s.ex.cfg.Logger.InfoContext(ctx, "table resume by copy requested", "mirror", m.Name, "table", table.String())
	return w.Complete(tag)
}
