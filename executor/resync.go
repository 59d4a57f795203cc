package executor

import (
	"context"
	"errors"
	"strings"

	"github.com/jackc/pgerrcode"
	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/executor/replication"
	"github.com/sluicedb/sluice/server"
	"github.com/sluicedb/sluice/sqlerr"
	"github.com/sluicedb/sluice/sqlext"
)

// resyncMirror validates, then puts the whole mirror through a resync: new
// slot and publication, shadow tables loaded, swapped in at once (see
// executor/replication/fullresync.go). A failing validation changes nothing.
func (s *session) resyncMirror(ctx context.Context, st *sqlext.ResyncMirror, w server.ResultWriter) error {
	const tag = "RESYNC MIRROR"
	for _, o := range st.Options {
		return sqlerr.New(pgerrcode.SyntaxError, "unknown option %q: RESYNC MIRROR accepts no options", o.Key).
			WithPosition(int(o.Pos))
	}
	m, err := s.getMirror(ctx, st.Name, st.NamePos)
	if err != nil {
		if st.IfExists && isCode(err, pgerrcode.UndefinedObject) {
			_ = w.Notice(sqlerr.Notice("mirror %q does not exist, skipping", st.Name))
			return w.Complete(tag)
		}
		return err
	}
	if m.Resync != "" {
		return sqlerr.New(pgerrcode.ObjectInUse, "a resync of mirror %q is already under way (phase %s)", m.Name, m.Phase).
			WithPosition(int(st.NamePos)).
			WithHint("Watch it with SELECT * FROM mirrors; it resumes by itself after a restart.")
	}
	if err := s.validateResync(ctx, m); err != nil {
		return err
	}
	if err := s.ex.stopFlow(m.Name); err != nil {
		return err
	}
	if err := s.ex.cfg.Store.StartMirrorResync(ctx, m.Name); err != nil {
		if m.Desired == catalog.DesiredRunning {
			s.ex.engine.Run(m.Name)
		}
		return err
	}
	if m.Desired == catalog.DesiredRunning {
		s.ex.engine.Run(m.Name)
	} else {
		_ = w.Notice(sqlerr.Notice("mirror %q is paused: the resync starts when it is resumed", m.Name))
	}
	s.ex.cfg.Logger.InfoContext(ctx, "mirror resync started", "mirror", m.Name)
	return w.Complete(tag)
}

// validateResync checks that both peers are reachable, the source can
// still be one, the destination can swap tables in, and every source
// table can still be mirrored.
func (s *session) validateResync(ctx context.Context, m catalog.Mirror) error {
	src, err := s.openMirrorSource(ctx, m, "resync")
	if err != nil {
		return err
	}
	defer src.Close(context.Background())
	if mc, ok := src.(connectors.MirrorChecker); ok {
		if err := mc.CanStream(ctx); err != nil {
			return aboutPeer(err, m.SourcePeer, 0)
		}
	}
	dst, dstType, err := s.openMirrorDestination(ctx, m, "resync")
	if err != nil {
		return err
	}
	defer dst.Close(context.Background())
	sw, ok := dst.(connectors.ShadowSwapper)
	if !ok {
		return sqlerr.New(pgerrcode.FeatureNotSupported, "RESYNC MIRROR is not supported for %s destinations", dstType).
			WithHint("The mirror is unchanged.")
	}
	for _, t := range m.Tables {
		source, _ := connectors.ParseTableName(t.Source)
		ts, err := src.Describe(ctx, source, t.Exclude)
		if err != nil {
			return describeError(err, mapping{source: source})
		}
		if len(ts.PrimaryKey) == 0 {
			return sqlerr.New(pgerrcode.ObjectNotInPrerequisiteState, "source table %s has no primary key", source)
		}
		dest, _ := connectors.ParseTableName(t.Destination)
		if err := sw.CheckSwappable(ctx, dest); err != nil {
			return sqlerr.New(pgerrcode.DependentObjectsStillExist, "resync mirror %q: %v", m.Name, err).
				WithHint("The mirror is unchanged.")
		}
	}
	return nil
}

// openMirrorSource connects to the mirror's source peer for a check of
// verb (resync, ...).
func (s *session) openMirrorSource(ctx context.Context, m catalog.Mirror, verb string) (connectors.Source, error) {
	sp, err := s.mirrorSource(ctx, m.SourcePeer, 0)
	if err != nil {
		return nil, err
	}
	src, err := sp.OpenSource(ctx, "sluice-validate")
	if err != nil {
		return nil, peerConnectError(err, "%s mirror %q: cannot connect to source peer %q", verb, m.Name, m.SourcePeer)
	}
	return src, nil
}

// openMirrorDestination connects to the mirror's destination peer for a
// check of verb, and returns it with its peer type.
func (s *session) openMirrorDestination(ctx context.Context, m catalog.Mirror, verb string) (connectors.Destination, string, error) {
	p, typ, err := s.mirrorPeer(ctx, m.DestinationPeer, 0)
	if err != nil {
		return nil, "", err
	}
	dp, ok := p.(connectors.DestinationPeer)
	if !ok {
		return nil, "", sqlerr.New(pgerrcode.FeatureNotSupported, "%s peer %q cannot be a mirror's destination", typ, m.DestinationPeer)
	}
	dst, err := dp.OpenDestination(ctx, "sluice-validate", m.Name)
	if err != nil {
		return nil, "", peerConnectError(err, "%s mirror %q: cannot connect to destination peer %q", verb, m.Name, m.DestinationPeer)
	}
	return dst, typ, nil
}

// resyncTable asks for a resync of one table; the mirror's flow runs it
// while the other tables keep streaming (see executor/replication/resync_catchup.go).
func (s *session) resyncTable(ctx context.Context, st *sqlext.ResyncTable, w server.ResultWriter) error {
	const tag = "RESYNC TABLE"
	m, err := s.getMirror(ctx, st.Mirror, st.NamePos)
	if err != nil {
		return err
	}
	dst, dstType, err := s.openMirrorDestination(ctx, m, "resync table of")
	if err != nil {
		return err
	}
	defer dst.Close(context.Background())
	_, onClickHouse := dst.(connectors.SortingKeys)
	strategy := replication.ParseOptions(m.Options).ResyncStrategy
	if strategy == "" {
		strategy = replication.StrategyTruncate
	}
	var orderBy []string
	var orderByPos sqlext.Pos
	for _, o := range st.Options {
		if o.Key == "order_by" && onClickHouse {
			orderByPos = o.Value.Pos
			for _, c := range strings.Split(o.Value.Text, ",") {
				if c = strings.TrimSpace(c); c != "" {
					orderBy = append(orderBy, c)
				}
			}
			if len(orderBy) == 0 {
				return sqlerr.New(pgerrcode.InvalidParameterValue, "order_by names no column").WithPosition(int(o.Value.Pos))
			}
			continue
		}
		if o.Key != "strategy" {
			accepts := "strategy"
			if onClickHouse {
				accepts = "strategy and order_by"
			}
			return sqlerr.New(pgerrcode.SyntaxError, "unknown option %q: RESYNC TABLE accepts %s", o.Key, accepts).
				WithPosition(int(o.Pos))
		}
		switch v := strings.ToLower(o.Value.Text); v {
		case replication.StrategySwap, replication.StrategyTruncate:
			strategy = v
		default:
			return sqlerr.New(pgerrcode.InvalidParameterValue, "invalid value for option \"strategy\": %q is not swap or truncate", o.Value.Text).
				WithPosition(int(o.Value.Pos))
		}
	}
	table, mt, err := s.mirrorTable(ctx, &m, st.Table)
	if err != nil {
		return err
	}
	switch {
	case m.Resync != "":
		return sqlerr.New(pgerrcode.ObjectInUse, "mirror %q is being resynced as a whole", m.Name).WithPosition(int(st.NamePos))
	case m.Phase == replication.PhaseCompleted:
		return sqlerr.New(pgerrcode.ObjectNotInPrerequisiteState, "mirror %q has completed its initial copy and has nothing to stream", m.Name).
			WithPosition(int(st.NamePos)).
			WithHint("Use RESYNC MIRROR to copy it again.")
	case m.Phase != catalog.PhaseCDC:
		return sqlerr.New(pgerrcode.ObjectNotInPrerequisiteState, "mirror %q is in its initial load (%s): its tables can be resynced once it streams", m.Name, m.Phase).
			WithPosition(int(st.NamePos))
	case mt.ResyncStatus == catalog.ResyncPending || mt.ResyncStatus == catalog.ResyncInProgress:
		return sqlerr.New(pgerrcode.ObjectInUse, "a resync of %s in mirror %q is already under way", table, m.Name).
			WithPosition(int(st.Table.Pos))
	}
	if err := resyncAbility(dst, dstType, strategy); err != nil {
		return err.WithPosition(int(st.Table.Pos))
	}
	notice := ""
	if onClickHouse && orderBy != nil {
		if notice, err = s.checkOrderBy(ctx, m, mt, dst, orderBy, orderByPos); err != nil {
			return err
		}
	}
	if _, versioned := dst.(connectors.VersionedRows); strategy == replication.StrategySwap && !versioned {
		if err := checkSwappable(ctx, dst, mt); err != nil {
			return err
		}
	}
	if err := s.ex.cfg.Store.StartTableResync(ctx, m.Name, table.String(), strategy, orderBy); err != nil {
		if errors.Is(err, catalog.ErrResyncInProgress) {
			return sqlerr.New(pgerrcode.ObjectInUse, "a resync of %s in mirror %q is already under way", table, m.Name).
				WithPosition(int(st.Table.Pos))
		}
		return err
	}
	if notice != "" {
		_ = w.Notice(sqlerr.Notice("%s", notice))
	}
	if m.Desired == catalog.DesiredRunning {
		s.ex.engine.Run(m.Name)
		s.ex.engine.Wake(m.Name) // a running flow picks the request up now
	} else {
		_ = w.Notice(sqlerr.Notice("mirror %q is paused: the resync of %s starts when it is resumed", m.Name, table))
	}
	s.ex.cfg.Logger.InfoContext(ctx, "table resync requested", "mirror", m.Name, "table", table.String(), "strategy", strategy)
	return w.Complete(tag)
}

// resyncAbility refuses a table resync with strategy that dst (of peer
// type dstType) cannot run: one that keeps a position per table runs both
// strategies with what each needs; one whose rows carry versions swaps in
// a shadow table whatever the strategy.
func resyncAbility(dst connectors.Destination, dstType, strategy string) *sqlerr.Error {
	_, swaps := dst.(connectors.ShadowSwapper)
	if _, versioned := dst.(connectors.VersionedRows); versioned && swaps {
		return nil
	}
	if _, ok := dst.(connectors.TablePositions); !ok {
		return sqlerr.New(pgerrcode.FeatureNotSupported, "RESYNC TABLE is not supported for %s destinations", dstType).
			WithHint("Use RESYNC MIRROR. The mirror is unchanged.")
	}
	_, empties := dst.(connectors.Emptier)
	if strategy == replication.StrategySwap && !swaps || strategy == replication.StrategyTruncate && !empties {
		return sqlerr.New(pgerrcode.FeatureNotSupported, "strategy '%s' is not supported for %s destinations", strategy, dstType).
			WithHint("Use the other strategy. The mirror is unchanged.")
	}
	return nil
}

// checkSwappable refuses a swap whose destination table has dependent
// objects the swap cannot carry over, before anything changes.
func checkSwappable(ctx context.Context, dst connectors.Destination, mt *catalog.MirrorTable) error {
	sw := dst.(connectors.ShadowSwapper) // resyncAbility checked
	dest, _ := connectors.ParseTableName(mt.Destination)
	if err := sw.CheckSwappable(ctx, dest); err != nil {
		return sqlerr.New(pgerrcode.DependentObjectsStillExist, "cannot resync %s with the swap strategy: %v", mt.Source, err).
			WithHint("Use strategy = 'truncate', or drop the dependent object first. The mirror is unchanged.")
	}
	return nil
}

// checkOrderBy checks a new sorting key for a table, as CREATE MIRROR
// checks order_by, and returns the destination's notice for it ("" when
// none).
func (s *session) checkOrderBy(ctx context.Context, m catalog.Mirror, mt *catalog.MirrorTable, dst connectors.Destination,
	orderBy []string, pos sqlext.Pos) (string, error) {
	src, err := s.openMirrorSource(ctx, m, "resync table of")
	if err != nil {
		return "", err
	}
	defer src.Close(context.Background())
	source, _ := connectors.ParseTableName(mt.Source)
	ts, err := src.Describe(ctx, source, mt.Exclude)
	if err != nil {
		return "", describeError(err, mapping{source: source})
	}
	if err := checkOrderBy(ts, source, orderBy, pos); err != nil {
		return "", err
	}
	planner, ok := dst.(connectors.TablePlanner)
	if !ok {
		return "", nil
	}
	dest, _ := connectors.ParseTableName(mt.Destination)
	notices, err := planner.PlanTable(connectors.DestTable{Source: source, Dest: dest, Schema: ts, OrderBy: orderBy})
	if err != nil {
		return "", sqlerr.New(pgerrcode.FeatureNotSupported, "%v", err).WithPosition(int(pos))
	}
	var out []string
	for _, n := range notices {
		if strings.Contains(n, "order_by") {
			out = append(out, n)
		}
	}
	return strings.Join(out, "\n"), nil
}
