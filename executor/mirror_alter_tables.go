package executor

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgerrcode"
	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/executor/replication"
	"github.com/sluicedb/sluice/server"
	"github.com/sluicedb/sluice/sqlerr"
	"github.com/sluicedb/sluice/sqlext"
)

// ALTER MIRROR m ADD TABLE MAPPING (...) and ALTER MIRROR m DROP TABLE t
// change the tables of a streaming mirror.
//
// ADD TABLE checks the new tables as CREATE MIRROR checks its own
// (normalizeMappings, validateTables, PlanTable), plus that none is in the
// mirror already. Then it stops the mirror's flow, makes the destination
// tables, puts the source's stream's table list (a Postgres publication)
// to the mirror's tables and the new ones, and records the new tables in
// the catalog; a failure at any of these undoes the ones before. The flow
// restarts with the new tables in its stream. With do_initial_copy (the
// default) each new table is recorded with a table resync requested, so
// that the flow loads it exactly as RESYNC TABLE reloads a table (see
// executor/replication/resync_catchup.go): a copy under a snapshot of its
// own, then its changes after that snapshot, while the other tables
// stream. On a Postgres destination the resync empties the new (empty)
// table and loads it in place (strategy truncate); on ClickHouse it loads
// a shadow table and swaps it in. Without, the table's changes stream from
// the restart on, which is before the statement returns.
//
// DROP TABLE stops the flow, takes the table out of the source's stream,
// has the destination forget what it records for it (its loaded
// partitions, a resync's state and shadow table; connectors.TableRemover)
// and, with drop_destination_table, drop its table, removes it from the
// catalog and restarts the flow without it. A mirror's destination tables
// are tables Sluice made for it (CREATE MIRROR and ADD TABLE refuse a
// destination table that exists), the rule DROP MIRROR's
// drop_destination_tables follows; the same check of dependent objects
// refuses a drop that would break one.

// alterMirrorTables runs ALTER MIRROR's ADD TABLE and DROP TABLE on m.
func (s *session) alterMirrorTables(ctx context.Context, st *sqlext.AlterMirror, m catalog.Mirror, w server.ResultWriter) error {
	s.ex.tablesMu.Lock()
	defer s.ex.tablesMu.Unlock()
	m, err := s.getMirror(ctx, m.Name, st.NamePos) // as it is now that no other change runs
	if err != nil {
		return err
	}
	switch {
	case m.Resync != "":
		return sqlerr.New(pgerrcode.ObjectInUse, "mirror %q is being resynced as a whole: its tables can change once it streams again", m.Name).
			WithPosition(int(st.NamePos))
	case m.Phase == replication.PhaseCompleted:
		return sqlerr.New(pgerrcode.ObjectNotInPrerequisiteState, "mirror %q has completed its initial copy and streams nothing: its tables cannot change", m.Name).
			WithPosition(int(st.NamePos)).
			WithHint("Create a new mirror for the tables.")
	case m.Phase != catalog.PhaseCDC:
		return sqlerr.New(pgerrcode.ObjectNotInPrerequisiteState, "mirror %q is in its initial load (%s): its tables can change once it streams", m.Name, m.Phase).
			WithPosition(int(st.NamePos))
	}
	if st.Action == sqlext.AlterAddTable {
		return s.addTables(ctx, st, m, w)
	}
	return s.dropTable(ctx, st, m, w)
}

// boolOption parses the boolean option o.
func boolOption(o sqlext.Option) (bool, error) {
	switch strings.ToLower(o.Value.Text) {
	case "true", "on", "1":
		return true, nil
	case "false", "off", "0":
		return false, nil
	}
	return false, sqlerr.New(pgerrcode.InvalidParameterValue, "invalid value for option %q: %q is not a boolean", o.Key, o.Value.Text).
		WithPosition(int(o.Value.Pos))
}

// streamSpec names the mirror's stream on its source, for Prepare.
func streamSpec(m catalog.Mirror) connectors.StreamSpec {
	cfg := replication.ParseOptions(m.Options)
	spec := connectors.StreamSpec{Mirror: m.Name, Slot: cfg.Slot, Publication: cfg.Publication}
	if spec.Slot == "" {
		spec.Slot = m.Slot
	}
	if spec.Publication == "" {
		spec.Publication = m.Publication
	}
	return spec
}

// sourceTables are the source tables of m's mappings.
func sourceTables(m catalog.Mirror) ([]connectors.TableName, error) {
	out := make([]connectors.TableName, len(m.Tables))
	for i, t := range m.Tables {
		n, err := connectors.ParseTableName(t.Source)
		if err != nil {
			return nil, err
		}
		out[i] = n
	}
	return out, nil
}

// restarter restarts m's flow, stopped by an ALTER MIRROR, if it is to run.
func (s *session) restarter(m catalog.Mirror) func() {
	return func() {
		if m.Desired == catalog.DesiredRunning {
			s.ex.engine.Run(m.Name)
		}
	}
}

// addTables runs ALTER MIRROR m ADD TABLE MAPPING (...).
func (s *session) addTables(ctx context.Context, st *sqlext.AlterMirror, m catalog.Mirror, w server.ResultWriter) error {
	const tag = "ALTER MIRROR"
	doCopy := true
	for _, o := range st.With {
		if o.Key != "do_initial_copy" {
			return sqlerr.New(pgerrcode.SyntaxError, "unknown option %q: ALTER MIRROR ... ADD TABLE accepts do_initial_copy", o.Key).
				WithPosition(int(o.Pos))
		}
		var err error
		if doCopy, err = boolOption(o); err != nil {
			return err
		}
	}
	cfg := replication.ParseOptions(m.Options)
	srcPeer, err := s.mirrorSource(ctx, m.SourcePeer, 0)
	if err != nil {
		return err
	}
	dest, dstType, err := s.openMirrorDestination(ctx, m, "alter")
	if err != nil {
		return err
	}
	defer dest.Close(context.Background())
	_, ordered := dest.(connectors.SortingKeys)
	tables, err := normalizeMappings(&sqlext.CreateMirror{Source: m.SourcePeer, Mappings: st.Mappings},
		srcPeer.DefaultSchema(), dest.DefaultSchema(), ordered)
	if err != nil {
		return err
	}
	for _, t := range tables {
		for _, mt := range m.Tables {
			if mt.Source == t.source.String() {
				return sqlerr.New(pgerrcode.DuplicateObject, "table %s is already in mirror %q", t.source, m.Name).
					WithPosition(int(t.pos))
			}
			if mt.Destination == t.dest.String() {
				return sqlerr.New(pgerrcode.DuplicateObject, "destination table %s already receives %s in mirror %q", t.dest, mt.Source, m.Name).
					WithPosition(int(t.pos))
			}
		}
	}
	remover, ok := dest.(connectors.TableRemover)
	if !ok {
		return sqlerr.New(pgerrcode.FeatureNotSupported, "ALTER MIRROR ... ADD TABLE is not supported for %s destinations", dstType).
			WithHint("The mirror is unchanged.")
	}
	strategy := ""
	if doCopy {
		strategy = replication.StrategySwap
		_, empties := dest.(connectors.Emptier)
		if _, positions := dest.(connectors.TablePositions); empties && positions {
			strategy = replication.StrategyTruncate // the new table is empty: load it in place
		}
		if err := resyncAbility(dest, dstType, strategy); err != nil {
			return sqlerr.New(pgerrcode.FeatureNotSupported, "ALTER MIRROR ... ADD TABLE with an initial load is not supported for %s destinations", dstType).
				WithHint("Add the tables with (do_initial_copy = false), or create a new mirror for them. The mirror is unchanged.")
		}
	}
	src, err := srcPeer.OpenSource(ctx, "sluice-validate")
	if err != nil {
		return peerConnectError(err, "alter mirror %q: cannot connect to source peer %q", m.Name, m.SourcePeer)
	}
	defer src.Close(context.Background())
	if mc, ok := src.(connectors.MirrorChecker); ok {
		if err := mc.CanStream(ctx); err != nil {
			return aboutPeer(err, m.SourcePeer, 0)
		}
	}
	if _, ok := src.(connectors.TableSnapshotter); doCopy && !ok {
		return sqlerr.New(pgerrcode.FeatureNotSupported, "ALTER MIRROR ... ADD TABLE with an initial load is not supported for this mirror's source peer %q", m.SourcePeer).
			WithHint("Add the tables with (do_initial_copy = false). The mirror is unchanged.")
	}
	schemas, err := validateTables(ctx, src, dest, tables)
	if err != nil {
		return err
	}
	if err := checkAddedColumns(cfg, tables, schemas); err != nil {
		return err
	}
	dests := destTables(cfg, tables, schemas)
	var notices []string
	if planner, ok := dest.(connectors.TablePlanner); ok {
		for i, d := range dests {
			n, err := planner.PlanTable(d)
			if err != nil {
				return sqlerr.New(pgerrcode.FeatureNotSupported, "%v", err).WithPosition(int(tables[i].pos))
			}
			notices = append(notices, n...)
		}
	}
	old, err := sourceTables(m)
	if err != nil {
		return err
	}
	spec := streamSpec(m)

	// Checked: now make, each step undone when a later one fails.
	if err := s.ex.stopFlow(m.Name); err != nil {
		return err
	}
	defer s.restarter(m)()
	if err := s.claimStopped(ctx, m, dest); err != nil {
		return fmt.Errorf("alter mirror %q: add tables: %w (the mirror is unchanged)", m.Name, err)
	}
	var made []mapping
	undo := func(err error) error {
		for _, t := range made {
			_ = remover.RemoveTable(context.Background(), t.source, t.dest, true)
		}
		return fmt.Errorf("alter mirror %q: add tables: %w (the mirror is unchanged)", m.Name, err)
	}
	if _, err := dest.Applied(ctx); err != nil {
		return undo(err)
	}
	for i, d := range dests {
		if err := dest.CreateTable(ctx, d); err != nil {
			return undo(fmt.Errorf("create destination table %s: %w", d.Dest, err))
		}
		made = append(made, tables[i])
		if lf, ok := dest.(connectors.LoadFinisher); ok && !doCopy {
			// No load will build its key: the changes need it now. (A
			// load's resync empties the table and builds it after.)
			if err := lf.FinishLoad(ctx, d, d.Dest); err != nil {
				return undo(fmt.Errorf("build the key of destination table %s: %w", d.Dest, err))
			}
		}
		if err := addedTableIndexes(ctx, cfg, src, dest, d); err != nil {
			return undo(err)
		}
	}
	if err := src.Prepare(ctx, spec, append(old, sourceNames(tables)...), false); err != nil {
		return undo(err)
	}
	mts := make([]catalog.MirrorTable, len(tables))
	for i, t := range tables {
		mts[i] = catalog.MirrorTable{Source: t.source.String(), Destination: t.dest.String(), PartitionKey: t.key,
			Exclude: t.exclude, OrderBy: t.orderBy}
	}
	if err := s.ex.cfg.Store.AddMirrorTables(ctx, m.Name, mts, strategy); err != nil {
		_ = src.Prepare(context.Background(), spec, old, false)
		if errors.Is(err, catalog.ErrTableInMirror) { // added meanwhile
			err = sqlerr.New(pgerrcode.DuplicateObject, "%v", err)
		}
		return undo(err)
	}
	for _, n := range notices {
		_ = w.Notice(sqlerr.Notice("%s", n))
	}
	if m.Desired != catalog.DesiredRunning {
		_ = w.Notice(sqlerr.Notice("mirror %q is paused: the added tables load and stream when it is resumed", m.Name))
	}
	s.ex.cfg.Logger.InfoContext(ctx, "mirror tables added", "mirror", m.Name, "tables", len(tables), "initial_copy", doCopy)
	return w.Complete(tag)
}

// addedTableIndexes makes on an added table, still empty, the source's
// indexes when the mirror replicates them: a load's truncate resync keeps
// them aside during its copy and rebuilds them after (connectors.Emptier),
// as the initial load builds them after its copy. Foreign keys are not
// added (see docs/mirrors.md).
func addedTableIndexes(ctx context.Context, cfg replication.Options, src connectors.Source, dest connectors.Destination, d connectors.DestTable) error {
	if !cfg.ReplicateIndexes {
		return nil
	}
	def, ok := src.(connectors.IndexDefiner)
	ic, ok2 := dest.(connectors.IndexCreator)
	if !ok || !ok2 { // the mirror's flow refused replicate_indexes already
		return nil
	}
	stmts, err := def.IndexDDL(ctx, d.Schema, d.Dest)
	if err != nil {
		return err
	}
	if err := ic.CreateIndexes(ctx, d.Dest, stmts); err != nil {
		return fmt.Errorf("create the indexes of destination table %s: %w", d.Dest, err)
	}
	return nil
}

// dropTable runs ALTER MIRROR m DROP TABLE t.
func (s *session) dropTable(ctx context.Context, st *sqlext.AlterMirror, m catalog.Mirror, w server.ResultWriter) error {
	const tag = "ALTER MIRROR"
	dropDest := false
	for _, o := range st.With {
		if o.Key != "drop_destination_table" {
			return sqlerr.New(pgerrcode.SyntaxError, "unknown option %q: ALTER MIRROR ... DROP TABLE accepts drop_destination_table", o.Key).
				WithPosition(int(o.Pos))
		}
		var err error
		if dropDest, err = boolOption(o); err != nil {
			return err
		}
	}
	srcPeer, err := s.mirrorSource(ctx, m.SourcePeer, 0)
	if err != nil {
		return err
	}
	table, mt, err := s.mirrorTable(ctx, &m, st.Table)
	if err != nil {
		return err
	}
	if len(m.Tables) == 1 {
		return sqlerr.New(pgerrcode.ObjectNotInPrerequisiteState, "table %s is the last table of mirror %q", table, m.Name).
			WithPosition(int(st.Table.Pos)).
			WithHint("Drop the mirror instead (DROP MIRROR %s).", m.Name)
	}
	live, err := connectors.ParseTableName(mt.Destination)
	if err != nil {
		return err
	}
	dest, dstType, err := s.openMirrorDestination(ctx, m, "alter")
	if err != nil {
		return err
	}
	defer dest.Close(context.Background())
	remover, ok := dest.(connectors.TableRemover)
	if !ok {
		return sqlerr.New(pgerrcode.FeatureNotSupported, "ALTER MIRROR ... DROP TABLE is not supported for %s destinations", dstType).
			WithHint("The mirror is unchanged.")
	}
	if dropDest {
		deps, err := dest.Dependents(ctx, []connectors.TableName{live})
		if err != nil {
			return err
		}
		if len(deps) > 0 {
			return sqlerr.New(pgerrcode.DependentObjectsStillExist,
				"cannot drop destination table %s of %s because other objects depend on it: %s", live, table, strings.Join(deps, "; ")).
				WithPosition(int(st.Table.Pos)).WithDetail("%s", strings.Join(deps, "\n")).
				WithHint("The mirror is unchanged. Drop or change those objects first, or drop the table without drop_destination_table to keep it.")
		}
	}
	src, err := srcPeer.OpenSource(ctx, "sluice-validate")
	if err != nil {
		return peerConnectError(err, "alter mirror %q: cannot connect to source peer %q", m.Name, m.SourcePeer)
	}
	defer src.Close(context.Background())
	all, err := sourceTables(m)
	if err != nil {
		return err
	}
	var rest []connectors.TableName
	for _, t := range all {
		if t != table {
			rest = append(rest, t)
		}
	}
	spec := streamSpec(m)

	if err := s.ex.stopFlow(m.Name); err != nil {
		return err
	}
	defer s.restarter(m)()
	if err := s.claimStopped(ctx, m, dest); err != nil {
		return fmt.Errorf("alter mirror %q: drop table %s: %w (the mirror is unchanged)", m.Name, table, err)
	}
	if err := src.Prepare(ctx, spec, rest, false); err != nil {
		return fmt.Errorf("alter mirror %q: drop table %s: %w (the mirror is unchanged)", m.Name, table, err)
	}
	if err := remover.RemoveTable(ctx, table, live, dropDest); err != nil {
		_ = src.Prepare(context.Background(), spec, all, false)
		return fmt.Errorf("alter mirror %q: drop table %s: %w (the mirror is unchanged)", m.Name, table, err)
	}
	note := "destination table " + live.String() + " kept"
	if dropDest {
		note = "destination table " + live.String() + " dropped"
	}
	if err := s.ex.cfg.Store.RemoveMirrorTable(ctx, m.Name, table.String(), note); err != nil {
		return sqlerr.New(pgerrcode.ObjectNotInPrerequisiteState,
			"alter mirror %q: drop table %s: the source no longer streams it and the destination forgot it, but the catalog still lists it: %v", m.Name, table, err).
			WithHint("Run the statement again to finish.")
	}
	s.ex.cfg.Logger.InfoContext(ctx, "mirror table dropped", "mirror", m.Name, "table", table.String(), "drop_destination_table", dropDest)
	return w.Complete(tag)
}

// claimStopped claims dest (connectors.Fencer) for the epoch of m's stream
// lease, which stopFlow just stopped and left free and reserved for this
// statement, so that the destination writes the statement makes next
// (a table's removal, the keys it builds) are checked against that epoch:
// should this node be frozen past the reservation and a node start m's
// flow meanwhile, that flow's claim of a later epoch makes them fail with
// connectors.ErrFenced, changing nothing, rather than remove or change a
// table the flow streams into. A lease that a node holds again already is
// 55006; a mirror whose stream never ran under a lease (epoch 0), or a
// destination that keeps no epoch, claims nothing.
func (s *session) claimStopped(ctx context.Context, m catalog.Mirror, dest connectors.Destination) error {
	fc, ok := dest.(connectors.Fencer)
	if !ok {
		return nil
	}
	h, err := s.ex.cfg.Store.GetLeaseHolder(ctx, m.Name)
	if err != nil {
		return err
	}
	if h.Node != "" {
		return sqlerr.New(pgerrcode.ObjectInUse, "mirror %q runs again on node %s (lease epoch %d): its tables cannot change now", m.Name, h.Node, h.Epoch).
			WithHint("Try again.")
	}
	if h.Epoch == 0 {
		return nil
	}
	ended, err := fc.Fence(ctx, h.Epoch)
	for _, e := range ended {
		s.ex.cfg.Logger.InfoContext(ctx, "ended a stale node's session", "mirror", m.Name, "what", e, "epoch", h.Epoch)
	}
	return err
}
