package executor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgerrcode"
	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/executor/replication"
	"github.com/sluicedb/sluice/server"
	"github.com/sluicedb/sluice/sqlerr"
	"github.com/sluicedb/sluice/sqlext"
)

// createMirror validates everything before touching anything, then stores
// the mirror, makes the publication and the destination tables, and hands
// the mirror to its runner, which creates the slot and loads and streams.
// A failure before the hand-off undoes what was made: no publication, table,
// catalog row or mirror event is left behind (store.DiscardMirror). The row
// is stored before the publication and tables are made so that a Sluice
// killed half-way resumes the mirror's setup rather than leaving them
// orphaned.
func (s *session) createMirror(ctx context.Context, st *sqlext.CreateMirror, w server.ResultWriter) error {
	store := s.ex.cfg.Store
	if m, err := store.GetMirror(ctx, st.Name); err == nil {
		if wantsResync(st) {
			return s.recreateMirror(ctx, st, m, w)
		}
		if st.IfNotExists {
			_ = w.Notice(sqlerr.Notice("mirror %q already exists, skipping", st.Name))
			return w.Complete("CREATE MIRROR")
		}
		return sqlerr.New(pgerrcode.DuplicateObject, "mirror %q already exists", st.Name).WithPosition(int(st.NamePos))
	} else if !errors.Is(err, catalog.ErrMirrorNotFound) {
		return err
	}
	opts, notices, err := validateMirrorOptions(st.Name, st.Options)
	if err != nil {
		return optionError(err, st.Options, st.NamePos)
	}
	delete(opts, "resync") // an action on an existing mirror, not a setting
	cfg := replication.ParseOptions(opts)
	srcPeer, err := s.mirrorSource(ctx, st.Source, st.SourcePos)
	if err != nil {
		return err
	}
	if err := s.streamObjectOptions(ctx, st, opts, &cfg); err != nil {
		return err
	}
	dstPeer, err := s.mirrorDestination(ctx, st.Destination, st.DestPos)
	if err != nil {
		return err
	}
	dest, err := dstPeer.OpenDestination(ctx, "sluice-validate", st.Name)
	if err != nil {
		return peerConnectError(err, "create mirror %q: cannot connect to destination peer %q", st.Name, st.Destination)
	}
	defer dest.Close(context.Background())
	_, ordered := dest.(connectors.SortingKeys)
	tables, err := normalizeMappings(st, srcPeer.DefaultSchema(), dest.DefaultSchema(), ordered)
	if err != nil {
		return err
	}
	src, err := srcPeer.OpenSource(ctx, "sluice-validate")
	if err != nil {
		return peerConnectError(err, "create mirror %q: cannot connect to source peer %q", st.Name, st.Source)
	}
	defer src.Close(context.Background())
	spec := connectors.StreamSpec{Mirror: st.Name, Slot: cfg.Slot, Publication: cfg.Publication}
	if mc, ok := src.(connectors.MirrorChecker); ok {
		if err := mc.CanStream(ctx); err != nil {
			return aboutPeer(err, st.Source, st.SourcePos)
		}
	}
	schemas, err := validateTables(ctx, src, dest, tables)
	if err != nil {
		return err
	}
	if mc, ok := src.(connectors.MirrorChecker); ok {
		if err := mc.NamesFree(ctx, spec); err != nil {
			return err
		}
	}
	if err := checkAddedColumns(cfg, tables, schemas); err != nil {
		return err
	}
	dests := destTables(cfg, tables, schemas)
	if planner, ok := dest.(connectors.TablePlanner); ok {
		for i, d := range dests {
			n, err := planner.PlanTable(d)
			if err != nil {
				return sqlerr.New(pgerrcode.FeatureNotSupported, "%v", err).
					WithPosition(int(tables[i].pos))
			}
			notices = append(notices, n...)
		}
	}

	m := catalog.Mirror{Name: st.Name, SourcePeer: st.Source, DestinationPeer: st.Destination, Options: opts,
		Publication: cfg.Publication, Slot: cfg.Slot}
	for _, t := range tables {
		m.Tables = append(m.Tables, catalog.MirrorTable{Source: t.source.String(), Destination: t.dest.String(),
			PartitionKey: t.key, Exclude: t.exclude, OrderBy: t.orderBy})
	}
	// Reserved until prepared: a node's look that ran the mirror meanwhile
	// would make its publication again after an undo.
	if err := store.CreateMirror(ctx, m, s.ex.engine.ReserveFor()); err != nil {
		if errors.Is(err, catalog.ErrMirrorExists) {
			return sqlerr.New(pgerrcode.DuplicateObject, "mirror %q already exists", st.Name).WithPosition(int(st.NamePos))
		}
		return err
	}
	err = src.Prepare(ctx, spec, sourceNames(tables), false)
	if err == nil {
		err = prepareDestination(ctx, dest, dests)
	}
	if err != nil {
		// Undo, so that nothing is left half made.
		_ = src.Teardown(context.Background(), spec)
		if p, terr := dest.Teardown(context.Background(), destNames(tables)); terr == nil {
			_ = p.Commit(context.Background())
		}
		_ = store.DiscardMirror(context.Background(), st.Name)
		return fmt.Errorf("create mirror %q: %w", st.Name, err)
	}
	for _, n := range notices {
		_ = w.Notice(sqlerr.Notice("%s", n))
	}
	for _, t := range tables {
		if t.key != "" {
			_ = w.Notice(sqlerr.Notice("partition key %q of %s is checked but not needed: Sluice partitions the initial load by physical row location", t.key, t.source))
		}
	}
	if err := store.Unreserve(ctx, st.Name); err != nil {
		// Run takes it here all the same (a statement may take a reserved lease).
		s.ex.cfg.Logger.WarnContext(ctx, "new mirror stays reserved for this node", "mirror", st.Name, "error", err)
	}
	s.ex.engine.Run(st.Name)
	s.ex.cfg.Logger.InfoContext(ctx, "mirror created", "mirror", st.Name, "tables", len(tables))
	return w.Complete("CREATE MIRROR")
}

func sourceNames(tables []mapping) []connectors.TableName {
	names := make([]connectors.TableName, len(tables))
	for i, t := range tables {
		names[i] = t.source
	}
	return names
}

func destNames(tables []mapping) []connectors.TableName {
	names := make([]connectors.TableName, len(tables))
	for i, t := range tables {
		names[i] = t.dest
	}
	return names
}

// destTables are the destination's views of the mapped tables.
func destTables(cfg replication.Options, tables []mapping, schemas []*connectors.TableSchema) []connectors.DestTable {
	out := make([]connectors.DestTable, len(tables))
	for i, t := range tables {
		out[i] = connectors.DestTable{Source: t.source, Dest: t.dest, Schema: schemas[i], OrderBy: t.orderBy,
			SoftDeleteColumn: cfg.SoftDeleteColumn, SyncedAtColumn: cfg.SyncedAtColumn}
	}
	return out
}

// prepareDestination makes the destination's metadata and tables.
func prepareDestination(ctx context.Context, dest connectors.Destination, dests []connectors.DestTable) error {
	if _, err := dest.Applied(ctx); err != nil {
		return err
	}
	for _, d := range dests {
		if err := dest.CreateTable(ctx, d); err != nil {
			return fmt.Errorf("create destination table %s: %w", d.Dest, err)
		}
	}
	return nil
}

// aboutPeer names peer in a connector's *sqlerr.Error about it ("peer
// \"src\" cannot be a CDC source: ...") and points it at pos (0: nowhere).
// Other errors are returned as they are.
func aboutPeer(err error, peer string, pos sqlext.Pos) error {
	var e *sqlerr.Error
	if !errors.As(err, &e) {
		return err
	}
	c := *e
	c.Message = fmt.Sprintf("peer %q %s", peer, e.Message)
	if pos > 0 && c.Position == 0 {
		c.Position = int(pos)
	}
	return &c
}

// mirrorSource loads a peer named as a mirror's source.
func (s *session) mirrorSource(ctx context.Context, name string, pos sqlext.Pos) (connectors.SourcePeer, error) {
	p, typ, err := s.mirrorPeer(ctx, name, pos)
	if err != nil {
		return nil, err
	}
	sp, ok := p.(connectors.SourcePeer)
	if !ok {
		return nil, sqlerr.New(pgerrcode.FeatureNotSupported, "%s peer %q cannot be a mirror's source", typ, name).WithPosition(int(pos))
	}
	return sp, nil
}

// streamObjectOptions applies the source kind's StreamObjects to a new
// mirror's options: a source that makes no publication or slot (MySQL)
// refuses publication_name and replication_slot_name, naming the one
// given, and the mirror records none (its status shows NULL).
func (s *session) streamObjectOptions(ctx context.Context, st *sqlext.CreateMirror, opts map[string]string, cfg *replication.Options) error {
	p, err := s.ex.cfg.Store.GetPeer(ctx, st.Source)
	if err != nil {
		return err
	}
	kind, ok := s.ex.cfg.Kinds.Lookup(p.Type)
	if !ok || kind.StreamObjects {
		return nil
	}
	for _, k := range []string{"publication_name", "replication_slot_name"} {
		if o, given := st.Options.Get(k); given {
			return sqlerr.New(pgerrcode.InvalidParameterValue, "option %q does not apply to %s source peer %q: it keeps nothing per mirror", k, kind.Name, st.Source).
				WithPosition(int(o.Pos)).WithHint("Leave the option out.")
		}
		delete(opts, k)
	}
	cfg.Publication, cfg.Slot = "", ""
	return nil
}

// mirrorDestination loads a peer named as a mirror's destination.
func (s *session) mirrorDestination(ctx context.Context, name string, pos sqlext.Pos) (connectors.DestinationPeer, error) {
	p, typ, err := s.mirrorPeer(ctx, name, pos)
	if err != nil {
		return nil, err
	}
	dp, ok := p.(connectors.DestinationPeer)
	if !ok {
		return nil, sqlerr.New(pgerrcode.FeatureNotSupported, "%s peer %q cannot be a mirror's destination", typ, name).WithPosition(int(pos))
	}
	return dp, nil
}

// mirrorPeer loads and parses a peer named in a mirror statement.
func (s *session) mirrorPeer(ctx context.Context, name string, pos sqlext.Pos) (connectors.Peer, string, error) {
	p, err := s.ex.cfg.Store.GetPeer(ctx, name)
	if errors.Is(err, catalog.ErrNotFound) {
		return nil, "", sqlerr.New(pgerrcode.UndefinedObject, "peer %q does not exist", name).WithPosition(int(pos))
	}
	if err != nil {
		return nil, "", err
	}
	peer, err := s.ex.parsePeer(p)
	if err != nil {
		return nil, p.Type, sqlerr.New(pgerrcode.FeatureNotSupported, "mirrors with %s peer %q are not supported: %v", p.Type, name, err).
			WithPosition(int(pos))
	}
	return peer, p.Type, nil
}

// mapping is a validated table mapping.
type mapping struct {
	source, dest connectors.TableName
	key          string
	exclude      []string
	orderBy      []string
	pos          sqlext.Pos
}

// normalizeMappings applies the default schemas (srcSchema on the source,
// destSchema on the destination) and refuses a source table named without
// a schema when srcSchema is "" (a MySQL peer without a database), a table
// mapped twice, two tables mapped to one, or order_by where the
// destination has no use for it (ordered false).
func normalizeMappings(st *sqlext.CreateMirror, srcSchema, destSchema string, ordered bool) ([]mapping, error) {
	if len(st.Mappings) == 0 {
		return nil, sqlerr.New(pgerrcode.SyntaxError, "a mirror needs at least one table mapping")
	}
	qualify := func(q sqlext.QualifiedName, def string) connectors.TableName {
		schema := q.Schema
		if schema == "" {
			schema = def
		}
		return connectors.TableName{Schema: schema, Name: q.Name}
	}
	seenSrc := make(map[connectors.TableName]bool)
	seenDst := make(map[connectors.TableName]bool)
	var out []mapping
	for _, mp := range st.Mappings {
		if mp.Source.Schema == "" && srcSchema == "" {
			return nil, sqlerr.New(pgerrcode.InvalidParameterValue,
				"source table %q names no schema (database), and source peer %q has no database option", mp.Source.Name, st.Source).
				WithHint("Name it as database.table in the mapping.").WithPosition(int(mp.Pos))
		}
		m := mapping{source: qualify(mp.Source, srcSchema), dest: qualify(mp.Destination, destSchema), key: mp.PartitionKey,
			exclude: mp.Exclude, orderBy: mp.OrderBy, pos: mp.Pos}
		if len(mp.OrderBy) > 0 && !ordered {
			return nil, sqlerr.New(pgerrcode.FeatureNotSupported, "order_by applies to ClickHouse destinations only").
				WithPosition(int(mp.Pos))
		}
		if seenSrc[m.source] {
			return nil, sqlerr.New(pgerrcode.DuplicateObject, "table %s is mapped twice", m.source).WithPosition(int(mp.Pos))
		}
		if seenDst[m.dest] {
			return nil, sqlerr.New(pgerrcode.DuplicateObject, "two tables are mapped to %s", m.dest).WithPosition(int(mp.Pos))
		}
		seenSrc[m.source], seenDst[m.dest] = true, true
		out = append(out, m)
	}
	return out, nil
}

// validateTables checks every source table can be mirrored, every
// order_by names its columns and includes the primary key, and every
// destination name is free.
func validateTables(ctx context.Context, src connectors.Source, dst connectors.Destination, tables []mapping) ([]*connectors.TableSchema, error) {
	schemas := make([]*connectors.TableSchema, len(tables))
	for i, t := range tables {
		ts, err := src.Describe(ctx, t.source, t.exclude)
		if err != nil {
			return nil, describeError(err, t)
		}
		if len(ts.PrimaryKey) == 0 {
			return nil, sqlerr.New(pgerrcode.ObjectNotInPrerequisiteState, "table %s has no primary key", t.source).
				WithPosition(int(t.pos)).
				WithHint("Add a primary key to the table (on a Postgres source, tables with only REPLICA IDENTITY FULL are not supported yet).")
		}
		if t.key != "" && ts.ColumnIndex(t.key) < 0 {
			return nil, sqlerr.New(pgerrcode.UndefinedColumn, "partition key column %q does not exist in %s", t.key, t.source).
				WithPosition(int(t.pos))
		}
		if err := checkOrderBy(ts, t.source, t.orderBy, t.pos); err != nil {
			return nil, err
		}
		exists, err := dst.TableExists(ctx, t.dest)
		if err != nil {
			return nil, err
		}
		if exists {
			return nil, sqlerr.New(pgerrcode.DuplicateTable, "destination table %s already exists", t.dest).
				WithPosition(int(t.pos)).
				WithHint("Map the table to another name, or drop the destination table first.")
		}
		schemas[i] = ts
	}
	return schemas, nil
}

// checkAddedColumns refuses a soft_delete_col_name or synced_at_col_name
// that is the name of a replicated or generated column of a source table:
// the destination table could not have both.
func checkAddedColumns(cfg replication.Options, tables []mapping, schemas []*connectors.TableSchema) error {
	for i, t := range tables {
		for _, opt := range []struct{ key, col string }{
			{"soft_delete_col_name", cfg.SoftDeleteColumn}, {"synced_at_col_name", cfg.SyncedAtColumn},
		} {
			if opt.col == "" {
				continue
			}
			clash := schemas[i].ColumnIndex(opt.col) >= 0
			for _, g := range schemas[i].Generated {
				clash = clash || g.Name == opt.col
			}
			if clash {
				return sqlerr.New(pgerrcode.DuplicateColumn, "%s %q is a column of source table %s", opt.key, opt.col, t.source).
					WithPosition(int(t.pos)).
					WithHint("Choose another name for the column Sluice adds, or exclude the source column.")
			}
		}
	}
	return nil
}

// checkOrderBy checks a ClickHouse sorting key of table: its columns exist
// and it includes the primary key. A column nullable in the source may be
// in it (see nullableKeyNotice).
func checkOrderBy(ts *connectors.TableSchema, table connectors.TableName, orderBy []string, pos sqlext.Pos) error {
	for _, c := range orderBy {
		i := ts.ColumnIndex(c)
		if i < 0 {
			return sqlerr.New(pgerrcode.UndefinedColumn, "order_by column %q does not exist in %s", c, table).WithPosition(int(pos))
		}
	}
	if len(orderBy) > 0 {
		for _, k := range ts.PrimaryKey {
			if !slices.Contains(orderBy, k) {
				return sqlerr.New(pgerrcode.InvalidParameterValue, "order_by of %s must include the primary key column %q", table, k).
					WithPosition(int(pos)).
					WithHint("Rows are deduplicated by the sorting key: it must identify a row.")
			}
		}
	}
	return nil
}

// describeError turns a failure to describe a source table into a SQL
// error naming the table.
func describeError(err error, t mapping) error {
	msg := strings.TrimPrefix(err.Error(), "describe table "+t.source.String()+": ")
	switch {
	case errors.Is(err, connectors.ErrTableNotFound):
		if rest, ok := strings.CutPrefix(msg, connectors.ErrTableNotFound.Error()+": "); ok {
			return sqlerr.New(pgerrcode.WrongObjectType, "source table %s cannot be mirrored: %s", t.source, rest).WithPosition(int(t.pos))
		}
		return sqlerr.New(pgerrcode.UndefinedTable, "source table %s does not exist", t.source).WithPosition(int(t.pos))
	case errors.Is(err, connectors.ErrNoPrimaryKey):
		return sqlerr.New(pgerrcode.ObjectNotInPrerequisiteState, "source table %s has no primary key", t.source).
			WithPosition(int(t.pos)).
			WithHint("Add a primary key to the table (on a Postgres source, tables with only REPLICA IDENTITY FULL are not supported yet).")
	case errors.Is(err, connectors.ErrUnsupportedType):
		return sqlerr.New(pgerrcode.FeatureNotSupported, "source table %s: %s", t.source, msg).WithPosition(int(t.pos)).
			WithHint("Exclude the column with {from: ..., to: ..., exclude: [column]}.")
	case strings.HasPrefix(msg, "excluded column"):
		return sqlerr.New(pgerrcode.UndefinedColumn, "source table %s: %s", t.source, msg).WithPosition(int(t.pos))
	case strings.HasPrefix(msg, "cannot exclude"):
		return sqlerr.New(pgerrcode.InvalidColumnReference, "source table %s: %s", t.source, msg).WithPosition(int(t.pos))
	}
	return sqlerr.New(pgerrcode.FeatureNotSupported, "source table %s: %s", t.source, msg).WithPosition(int(t.pos))
}
