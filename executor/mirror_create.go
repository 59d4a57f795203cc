package executor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/postgres"
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
	cfg := configOf(opts)
	srcCfg, err := s.mirrorPeer(ctx, st.Source, st.SourcePos)
	if err != nil {
		return err
	}
	dest, err := s.openMirrorDest(ctx, st)
	if err != nil {
		return err
	}
	defer dest.close()
	tables, err := normalizeMappings(st, dest.defaultSchema(), dest.ordered())
	if err != nil {
		return err
	}
	if err := checkSource(ctx, srcCfg, "create", st.Name, st.Source, st.SourcePos); err != nil {
		return err
	}
	src, err := srcCfg.ConnectSQL(ctx, "sluice-validate")
	if err != nil {
		return peerConnectError(err, "create mirror %q: cannot connect to source peer %q", st.Name, st.Source)
	}
	defer src.Close(context.Background())
	schemas, err := validateTables(ctx, src, dest, tables)
	if err != nil {
		return err
	}
	if err := validateNames(ctx, src, cfg); err != nil {
		return err
	}
	if err := checkAddedColumns(cfg, tables, schemas); err != nil {
		return err
	}
	if err := dest.check(cfg, tables, schemas); err != nil {
		return err
	}

	m := catalog.Mirror{Name: st.Name, SourcePeer: st.Source, DestinationPeer: st.Destination, Options: opts,
		Publication: cfg.Publication, Slot: cfg.Slot}
	for _, t := range tables {
		m.Tables = append(m.Tables, catalog.MirrorTable{Source: t.source.String(), Destination: t.dest.String(),
			PartitionKey: t.key, Exclude: t.exclude, OrderBy: t.orderBy})
	}
	if err := store.CreateMirror(ctx, m); err != nil {
		if errors.Is(err, catalog.ErrMirrorExists) {
			return sqlerr.New(pgerrcode.DuplicateObject, "mirror %q already exists", st.Name).WithPosition(int(st.NamePos))
		}
		return err
	}
	err = postgres.CreatePublication(ctx, src, cfg.Publication, sourceNames(tables))
	if err == nil {
		err = dest.prepare(ctx, cfg, tables, schemas)
	}
	if err != nil {
		// Undo, so that nothing is left half made.
		_ = postgres.DropPublication(context.Background(), src, cfg.Publication)
		dest.undo(tables)
		_ = store.DiscardMirror(context.Background(), st.Name)
		return fmt.Errorf("create mirror %q: %w", st.Name, err)
	}
	for i, t := range tables {
		notices = append(notices, dest.generatedNotices(t, schemas[i])...)
	}
	for _, n := range notices {
		_ = w.Notice(sqlerr.Notice("%s", n))
	}
	for _, t := range tables {
		if t.key != "" {
			_ = w.Notice(sqlerr.Notice("partition key %q of %s is checked but not needed: Sluice partitions the initial load by physical row location", t.key, t.source))
		}
	}
	s.ex.sup.start(st.Name)
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

// mirrorDest is the destination of a mirror being created: CREATE MIRROR
// validates against it and then prepares it.
type mirrorDest interface {
	// defaultSchema qualifies destination names given without one.
	defaultSchema() string
	// ordered reports whether mappings may set order_by.
	ordered() bool
	// exists reports whether a destination table exists.
	exists(ctx context.Context, name connectors.TableName) (bool, error)
	// check refuses, naming the table, what prepare would fail to make
	// from tables (their source schemas in schemas). No I/O.
	check(cfg mirrorConfig, tables []mapping, schemas []*connectors.TableSchema) error
	// prepare makes the metadata and the destination tables.
	prepare(ctx context.Context, cfg mirrorConfig, tables []mapping, schemas []*connectors.TableSchema) error
	// undo drops what prepare made, best effort.
	undo(tables []mapping)
	// generatedNotices says what becomes of the generated columns of the
	// source table ts mapped by t, one notice per column; none when the
	// destination has them as the source does.
	generatedNotices(t mapping, ts *connectors.TableSchema) []string
	close()
}

// openMirrorDest connects to the destination peer of st.
func (s *session) openMirrorDest(ctx context.Context, st *sqlext.CreateMirror) (mirrorDest, error) {
	p, err := s.ex.cfg.Store.GetPeer(ctx, st.Destination)
	if errors.Is(err, catalog.ErrNotFound) {
		return nil, sqlerr.New(pgerrcode.UndefinedObject, "peer %q does not exist", st.Destination).WithPosition(int(st.DestPos))
	}
	if err != nil {
		return nil, err
	}
	if p.Type == string(sqlext.PeerClickHouse) {
		return s.openClickHouseDest(ctx, st, p.Options)
	}
	cfg, err := s.mirrorPeer(ctx, st.Destination, st.DestPos)
	if err != nil {
		return nil, err
	}
	conn, err := cfg.ConnectSQL(ctx, "sluice-validate")
	if err != nil {
		return nil, peerConnectError(err, "create mirror %q: cannot connect to destination peer %q", st.Name, st.Destination)
	}
	return &postgresDest{conn: conn, meta: metadataSchema(p.Options)}, nil
}

// postgresDest is a Postgres mirrorDest.
type postgresDest struct {
	conn *pgx.Conn
	meta string
}

func (d *postgresDest) defaultSchema() string { return "public" }
func (d *postgresDest) ordered() bool         { return false }
func (d *postgresDest) close()                { d.conn.Close(context.Background()) }

// generatedNotices: none, a Postgres destination table has the source's
// generated columns with the same expressions (see postgres.CreateTableDDL).
func (d *postgresDest) generatedNotices(mapping, *connectors.TableSchema) []string { return nil }

// check: nothing beyond checkAddedColumns; a Postgres destination table
// has the source's columns and types.
func (d *postgresDest) check(mirrorConfig, []mapping, []*connectors.TableSchema) error { return nil }

func (d *postgresDest) exists(ctx context.Context, name connectors.TableName) (bool, error) {
	return postgres.TableExists(ctx, d.conn, name)
}

func (d *postgresDest) prepare(ctx context.Context, cfg mirrorConfig, tables []mapping, schemas []*connectors.TableSchema) error {
	if err := postgres.EnsureMetadata(ctx, d.conn, d.meta); err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, d.conn, func(tx pgx.Tx) error {
		for i, t := range tables {
			if err := postgres.CreateTable(ctx, tx, t.dest, schemas[i], cfg.SoftDeleteColumn, cfg.SyncedAtColumn); err != nil {
				return fmt.Errorf("create destination table %s: %w", t.dest, err)
			}
		}
		return nil
	})
}

func (d *postgresDest) undo(tables []mapping) {
	for _, t := range tables {
		_ = postgres.DropTableIfExists(context.Background(), d.conn, t.dest)
	}
}

// checkSource connects to a mirror's source peer and checks it can be a CDC
// source; verb (create, resync) and pos (0 for none) shape the error.
func checkSource(ctx context.Context, cfg *postgres.PeerConfig, verb, mirror, peer string, pos sqlext.Pos) error {
	info, err := cfg.Inspect(ctx)
	if err != nil {
		return peerConnectError(err, "%s mirror %q: cannot connect to source peer %q", verb, mirror, peer)
	}
	if ok, why := info.CanBeSource(); !ok {
		e := sqlerr.New(pgerrcode.ObjectNotInPrerequisiteState, "peer %q cannot be a CDC source: %s", peer, why).
			WithHint("A source needs wal_level = logical and a user with the REPLICATION privilege.")
		if pos > 0 {
			e = e.WithPosition(int(pos))
		}
		return e
	}
	return nil
}

// mirrorPeer loads a peer named in CREATE MIRROR.
func (s *session) mirrorPeer(ctx context.Context, name string, pos sqlext.Pos) (*postgres.PeerConfig, error) {
	p, err := s.ex.cfg.Store.GetPeer(ctx, name)
	if errors.Is(err, catalog.ErrNotFound) {
		return nil, sqlerr.New(pgerrcode.UndefinedObject, "peer %q does not exist", name).WithPosition(int(pos))
	}
	if err != nil {
		return nil, err
	}
	if p.Type != string(sqlext.PeerPostgres) {
		return nil, sqlerr.New(pgerrcode.FeatureNotSupported, "mirrors with %s peer %q are not supported yet", p.Type, name).
			WithPosition(int(pos))
	}
	return postgres.ParsePeerOptions(p.Options)
}

// mapping is a validated table mapping.
type mapping struct {
	source, dest connectors.TableName
	key          string
	exclude      []string
	orderBy      []string
	pos          sqlext.Pos
}

// normalizeMappings applies the default schemas (public on the source,
// destSchema on the destination) and refuses a table mapped twice, two
// tables mapped to one, or order_by where the destination has no use for
// it (ordered false).
func normalizeMappings(st *sqlext.CreateMirror, destSchema string, ordered bool) ([]mapping, error) {
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
		m := mapping{source: qualify(mp.Source, "public"), dest: qualify(mp.Destination, destSchema), key: mp.PartitionKey,
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
func validateTables(ctx context.Context, src *pgx.Conn, dst mirrorDest, tables []mapping) ([]*connectors.TableSchema, error) {
	schemas := make([]*connectors.TableSchema, len(tables))
	for i, t := range tables {
		ts, err := postgres.DescribeTable(ctx, src, t.source, t.exclude)
		if err != nil {
			return nil, describeError(err, t)
		}
		if len(ts.PrimaryKey) == 0 {
			return nil, sqlerr.New(pgerrcode.ObjectNotInPrerequisiteState, "table %s has no primary key", t.source).
				WithPosition(int(t.pos)).
				WithHint("Add a primary key to the table; tables with only REPLICA IDENTITY FULL are not supported yet.")
		}
		if t.key != "" && ts.ColumnIndex(t.key) < 0 {
			return nil, sqlerr.New(pgerrcode.UndefinedColumn, "partition key column %q does not exist in %s", t.key, t.source).
				WithPosition(int(t.pos))
		}
		if err := checkOrderBy(ts, t.source, t.orderBy, t.pos); err != nil {
			return nil, err
		}
		exists, err := dst.exists(ctx, t.dest)
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
func checkAddedColumns(cfg mirrorConfig, tables []mapping, schemas []*connectors.TableSchema) error {
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
	var unsupported *postgres.UnsupportedTypeError
	switch {
	case errors.Is(err, postgres.ErrTableNotFound):
		if rest, ok := strings.CutPrefix(msg, postgres.ErrTableNotFound.Error()+": "); ok {
			return sqlerr.New(pgerrcode.WrongObjectType, "source table %s cannot be mirrored: %s", t.source, rest).WithPosition(int(t.pos))
		}
		return sqlerr.New(pgerrcode.UndefinedTable, "source table %s does not exist", t.source).WithPosition(int(t.pos))
	case errors.Is(err, postgres.ErrNoPrimaryKey):
		return sqlerr.New(pgerrcode.ObjectNotInPrerequisiteState, "source table %s has no primary key", t.source).
			WithPosition(int(t.pos)).
			WithHint("Add a primary key to the table; tables with only REPLICA IDENTITY FULL are not supported yet.")
	case errors.As(err, &unsupported):
		return sqlerr.New(pgerrcode.FeatureNotSupported, "source table %s: %s", t.source, msg).WithPosition(int(t.pos)).
			WithHint("Exclude the column with {from: ..., to: ..., exclude: [column]}.")
	case strings.HasPrefix(msg, "excluded column"):
		return sqlerr.New(pgerrcode.UndefinedColumn, "source table %s: %s", t.source, msg).WithPosition(int(t.pos))
	case strings.HasPrefix(msg, "cannot exclude"):
		return sqlerr.New(pgerrcode.InvalidColumnReference, "source table %s: %s", t.source, msg).WithPosition(int(t.pos))
	}
	return sqlerr.New(pgerrcode.FeatureNotSupported, "source table %s: %s", t.source, msg).WithPosition(int(t.pos))
}

// validateNames refuses a publication or slot name already in use.
func validateNames(ctx context.Context, src *pgx.Conn, cfg mirrorConfig) error {
	var pub bool
	if err := src.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)`, cfg.Publication).Scan(&pub); err != nil {
		return err
	}
	if pub {
		return sqlerr.New(pgerrcode.DuplicateObject, "publication %q already exists on the source", cfg.Publication).
			WithHint("Choose another name with publication_name, or drop the publication.")
	}
	slot, err := postgres.SlotExists(ctx, src, cfg.Slot)
	if err != nil {
		return err
	}
	if slot {
		return sqlerr.New(pgerrcode.DuplicateObject, "replication slot %q already exists on the source", cfg.Slot).
			WithHint("Choose another name with replication_slot_name, or drop the slot.")
	}
	return nil
}
