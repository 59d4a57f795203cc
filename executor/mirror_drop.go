package executor

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/executor/replication"
	"github.com/sluicedb/sluice/server"
	"github.com/sluicedb/sluice/sqlerr"
	"github.com/sluicedb/sluice/sqlext"
)

// DROP MIRROR runs in this order, so that every failure leaves a state it
// can name truly:
//
//  1. check (changes nothing): both peers answer, and with
//     drop_destination_tables no object outside the mirror depends on a
//     destination table (a user's view, a foreign key of another table, a
//     ClickHouse materialized view): refused with 2BP01 naming it;
//  2. stop the mirror's flow;
//  3. on a Postgres destination, open a transaction that clears the
//     mirror's metadata and drops its resync tables and, if asked, its
//     tables in one DROP TABLE (foreign keys among them go with them;
//     nothing is CASCADEd) — not committed yet;
//  4. on the source, drop the publication and the slot in one transaction
//     (the slot's drop is the first step that cannot be undone);
//  5. commit the destination's transaction (ClickHouse, which has none:
//     clear its metadata and drop the tables now);
//  6. delete the catalog entry.
//
// A failure up to 4 rolls everything back and restarts the flow: the hint
// says the mirror is unchanged. A failure after 4 keeps the catalog entry
// with the error (the mirror shows FAILED and its flow stays stopped), and
// says what was dropped and what was not; every step is idempotent, so
// DROP MIRROR again finishes the job.

// dropMirror runs DROP MIRROR.
func (s *session) dropMirror(ctx context.Context, st *sqlext.DropMirror, w server.ResultWriter) error {
	dropTables, skipUnreachable := false, false
	for _, o := range st.Options {
		var set *bool
		switch o.Key {
		case "drop_destination_tables":
			set = &dropTables
		case "skip_unreachable_peers":
			set = &skipUnreachable
		default:
			return sqlerr.New(pgerrcode.SyntaxError, "unknown option %q: DROP MIRROR accepts drop_destination_tables and skip_unreachable_peers", o.Key).
				WithPosition(int(o.Pos))
		}
		switch o.Value.Text {
		case "true", "on", "1":
			*set = true
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
	d, err := s.ex.prepareDrop(ctx, m, dropTables, skipUnreachable)
	if err != nil {
		return err
	}
	defer d.close()
	if err := s.ex.runDrop(ctx, d); err != nil {
		return err
	}
	s.ex.cfg.Logger.InfoContext(ctx, "mirror dropped", "mirror", m.Name)
	for _, l := range d.left {
		_ = w.Notice(sqlerr.Warning("mirror %q dropped, but %s", m.Name, l).
			WithHint("Remove it on the peer yourself when it answers again."))
	}
	return w.Complete("DROP MIRROR")
}

// unchangedHint is the hint of a DROP MIRROR refused before it changed
// anything.
const unchangedHint = "The mirror is unchanged; fix the cause and run DROP MIRROR again."

// dropPlan is a checked DROP MIRROR: open connections to both peers and
// what to drop.
type dropPlan struct {
	m          catalog.Mirror
	dropTables bool
	spec       connectors.StreamSpec
	src        connectors.Source      // nil: unreachable, skipped with skip_unreachable_peers
	dst        connectors.Destination // nil: unreachable, skipped
	left       []string               // what skip_unreachable_peers left on unreachable peers, for warnings
	tables     []connectors.TableName // destination tables, in mapping order
	pending    *connectors.Pending    // the destination's teardown, between steps 3 and 5
}

func (d *dropPlan) close() {
	if d.pending != nil {
		d.pending.Abort()
		d.pending = nil
	}
	if d.src != nil {
		d.src.Close(context.Background())
	}
	if d.dst != nil {
		d.dst.Close(context.Background())
	}
}

// refuse is an error of a DROP MIRROR that changed nothing.
func refuse(m catalog.Mirror, code string, err error) error {
	return sqlerr.New(code, "drop mirror %q: %v", m.Name, err).WithHint(unchangedHint)
}

// prepareDrop is step 1: it connects to both peers and checks that the
// drop can be done. It changes nothing; its errors say so.
// With skipUnreachable, a peer that cannot be reached is skipped (d.left says what
// stays on it) instead of refusing the drop.
func (e *Executor) prepareDrop(ctx context.Context, m catalog.Mirror, dropTables, skipUnreachable bool) (_ *dropPlan, err error) {
	cfg := replication.ParseOptions(m.Options)
	d := &dropPlan{m: m, dropTables: dropTables, spec: connectors.StreamSpec{Mirror: m.Name, Slot: cfg.Slot, Publication: cfg.Publication}}
	if d.spec.Slot == "" {
		d.spec.Slot = m.Slot
	}
	if d.spec.Publication == "" {
		d.spec.Publication = m.Publication
	}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	for _, t := range m.Tables {
		name, err := connectors.ParseTableName(t.Destination)
		if err != nil {
			return nil, refuse(m, pgerrcode.InternalError, err)
		}
		d.tables = append(d.tables, name)
	}
	srcPeer, err := e.peerAs(ctx, m.SourcePeer)
	if err != nil {
		return nil, refuse(m, pgerrcode.ObjectNotInPrerequisiteState, err)
	}
	sp, ok := srcPeer.(connectors.SourcePeer)
	if !ok {
		return nil, refuse(m, pgerrcode.ObjectNotInPrerequisiteState, fmt.Errorf("peer %q cannot be a mirror's source", m.SourcePeer))
	}
	if d.src, err = sp.OpenSource(ctx, "sluice-drop-mirror"); err != nil {
		if !skipUnreachable {
			return nil, refuseUnreachable(m, "source", m.SourcePeer, err)
		}
		d.src = nil
		d.left = append(d.left, fmt.Sprintf("replication slot %q and publication %q stay on source peer %q, which cannot be reached: %v",
			d.spec.Slot, d.spec.Publication, m.SourcePeer, err))
	}
	dstPeer, err := e.peerAs(ctx, m.DestinationPeer)
	if err != nil {
		return nil, refuse(m, pgerrcode.ObjectNotInPrerequisiteState, err)
	}
	dp, ok := dstPeer.(connectors.DestinationPeer)
	if !ok {
		return nil, refuse(m, pgerrcode.ObjectNotInPrerequisiteState, fmt.Errorf("peer %q cannot be a mirror's destination", m.DestinationPeer))
	}
	if d.dst, err = dp.OpenDestination(ctx, "sluice-drop-mirror", m.Name); err != nil {
		d.dst = nil
		if !skipUnreachable {
			return nil, refuseUnreachable(m, "destination", m.DestinationPeer, err)
		}
		d.left = append(d.left, leftOnDestination(m, d, err))
		return d, nil
	}
	if !dropTables {
		return d, nil
	}
	deps, err := d.dst.Dependents(ctx, d.tables)
	if err != nil {
		return nil, refuse(m, pgerrcode.ObjectNotInPrerequisiteState, err)
	}
	return d, dependentsError(m, deps)
}

// refuseUnreachable refuses a drop whose peer cannot be reached.
func refuseUnreachable(m catalog.Mirror, role, peer string, err error) error {
	return peerConnectError(err, "drop mirror %q: cannot connect to %s peer %q", m.Name, role, peer).
		WithHint("The mirror is unchanged. Run DROP MIRROR again when the peer answers, or with (skip_unreachable_peers = true) to drop " +
			"what can be reached and leave the rest on that peer.")
}

// leftOnDestination says what skip_unreachable_peers leaves on an unreachable destination.
func leftOnDestination(m catalog.Mirror, d *dropPlan, err error) string {
	what := "its metadata"
	if d.dropTables {
		what = "its metadata and tables " + connectors.JoinNames(d.tables)
	}
	return fmt.Sprintf("%s stay on destination peer %q, which cannot be reached: %v", what, m.DestinationPeer, err)
}

// dependentsError refuses a drop_destination_tables that would break
// objects the mirror did not make (nil when deps is empty).
func dependentsError(m catalog.Mirror, deps []string) error {
	if len(deps) == 0 {
		return nil
	}
	return sqlerr.New(pgerrcode.DependentObjectsStillExist,
		"drop mirror %q: cannot drop its destination tables because other objects depend on them: %s",
		m.Name, strings.Join(deps, "; ")).
		WithDetail("%s", strings.Join(deps, "\n")).
		WithHint("The mirror is unchanged. Drop or change those objects on the destination first, or run DROP MIRROR without drop_destination_tables to keep the tables.")
}

// runDrop runs steps 2 to 6 of a checked drop.
func (e *Executor) runDrop(ctx context.Context, d *dropPlan) error {
	m := d.m
	if err := e.stopFlow(m.Name); err != nil {
		return err // the mirror is unchanged
	}
	undo := func(err error) error {
		if d.pending != nil {
			d.pending.Abort()
			d.pending = nil
		}
		if m.Desired == catalog.DesiredRunning && m.Phase != replication.PhaseCompleted {
			e.engine.Run(m.Name)
		}
		code := pgerrcode.ObjectNotInPrerequisiteState
		var pe *pgconn.PgError
		if errors.As(err, &pe) && (pe.Code == pgerrcode.DependentObjectsStillExist || pe.Code == pgerrcode.LockNotAvailable) {
			code = pe.Code
		}
		return refuse(m, code, err)
	}
	if d.dst != nil {
		var drop []connectors.TableName
		if d.dropTables {
			drop = d.tables
		}
		p, err := d.dst.Teardown(ctx, drop)
		if err != nil {
			return undo(err)
		}
		d.pending = &p
	}
	if d.src != nil {
		if err := d.src.Teardown(ctx, d.spec); err != nil {
			if !errors.Is(err, connectors.ErrTeardownUncertain) {
				return undo(err)
			}
			return e.dropIncomplete(ctx, d, fmt.Sprintf("the replication slot %q may be dropped and the destination is untouched", d.spec.Slot), err)
		}
	}
	if d.pending != nil {
		p := d.pending
		d.pending = nil
		if err := p.Commit(ctx); err != nil {
			return e.dropIncomplete(ctx, d, d.slotState()+", the destination is unchanged or only partly dropped", err)
		}
	}
	if err := e.cfg.Store.DeleteMirror(ctx, m.Name); err != nil {
		return sqlerr.New(pgerrcode.ObjectNotInPrerequisiteState,
			"drop mirror %q: %s and the destination objects are dropped, but the catalog entry is not: %v", m.Name, d.slotState(), err).
			WithHint("Run DROP MIRROR again to finish.")
	}
	return nil
}

// slotState says what became of the slot and publication once step 4 is
// past.
func (d *dropPlan) slotState() string {
	if d.src == nil {
		return "the replication slot and publication stay on the unreachable source"
	}
	return "the replication slot and publication are dropped"
}

// dropIncomplete reports a drop that failed after the slot was (or may
// have been) dropped: the mirror cannot stream any more, so it keeps its
// catalog entry with the error, marked as needing the user so that no
// retry (after a restart either) overwrites it, and its flow stays stopped.
func (e *Executor) dropIncomplete(ctx context.Context, d *dropPlan, state string, cause error) error {
	msg := fmt.Sprintf("drop mirror %q did not finish: %s: %v", d.m.Name, state, cause)
	if err := e.cfg.Store.SetActionError(ctx, d.m.Name, msg+"; run DROP MIRROR again to finish"); err != nil {
		e.cfg.Logger.ErrorContext(ctx, "record incomplete drop", "mirror", d.m.Name, "error", err)
	}
	return sqlerr.New(pgerrcode.ObjectNotInPrerequisiteState, "%s", msg).
		WithHint("The mirror can no longer stream. Run DROP MIRROR again to finish; every step skips what is already done.")
}
