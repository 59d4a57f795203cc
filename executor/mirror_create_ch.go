package executor

import (
	"context"
	"fmt"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/jackc/pgerrcode"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/clickhouse"
	"github.com/sluicedb/sluice/sqlerr"
	"github.com/sluicedb/sluice/sqlext"
)

// clickHouseDest is a ClickHouse mirrorDest. Destination tables are
// qualified by database (the peer's database by default).
type clickHouseDest struct {
	cfg  *clickhouse.PeerConfig
	conn driver.Conn
	info clickhouse.ServerInfo
}

func (s *session) openClickHouseDest(ctx context.Context, st *sqlext.CreateMirror, opts map[string]string) (mirrorDest, error) {
	cfg, err := clickhouse.ParsePeerOptions(opts)
	if err != nil {
		return nil, fmt.Errorf("peer %q: %w", st.Destination, err)
	}
	info, err := cfg.Inspect(ctx)
	if err == nil && !info.DatabaseExists {
		err = fmt.Errorf("database %q does not exist", cfg.Database)
	}
	var conn driver.Conn
	if err == nil {
		conn, err = cfg.Open(ctx)
	}
	if err != nil {
		return nil, sqlerr.New(pgerrcode.SQLClientUnableToEstablishSQLConnection, "create mirror %q: cannot connect to destination peer %q: %v",
			st.Name, st.Destination, err)
	}
	return &clickHouseDest{cfg: cfg, conn: conn, info: info}, nil
}

func (d *clickHouseDest) defaultSchema() string { return d.cfg.Database }
func (d *clickHouseDest) ordered() bool         { return true }
func (d *clickHouseDest) close()                { _ = d.conn.Close() }

// generatedNotices: sorting-key columns nullable in the source are made
// non-Nullable (nullableKeyNotice). A ClickHouse table does not get the
// source's generated columns. Logical replication does not send their values, and a
// Postgres expression is not a ClickHouse one, so Sluice leaves them out
// and says so, naming each.
func (d *clickHouseDest) generatedNotices(t mapping, ts *connectors.TableSchema) []string {
	var out []string
	orderBy := t.orderBy
	if len(orderBy) == 0 {
		orderBy = ts.PrimaryKey
	}
	if n := nullableKeyNotice(ts, t.source, orderBy); n != "" {
		out = append(out, n)
	}
	for _, g := range ts.Generated {
		from := ""
		if len(g.DependsOn) > 0 {
			from = " from " + strings.Join(quoteEach(g.DependsOn), ", ")
		}
		out = append(out, fmt.Sprintf("column %q of %s is generated on the source (as %s) and is not replicated to ClickHouse: "+
			"logical replication does not send generated columns, so %s has no column %q; compute it%s in your queries",
			g.Name, t.source, g.Expression, t.dest, g.Name, from))
	}
	return out
}

// quoteEach renders each name as a double-quoted string.
func quoteEach(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = fmt.Sprintf("%q", n)
	}
	return out
}

func (d *clickHouseDest) exists(ctx context.Context, name connectors.TableName) (bool, error) {
	return clickhouse.TableExists(ctx, d.conn, name)
}

// check builds each table's DDL, which refuses what ClickHouse cannot
// have (a sorting key column it cannot sort by, a column that clashes with
// Sluice's own).
func (d *clickHouseDest) check(cfg mirrorConfig, tables []mapping, schemas []*connectors.TableSchema) error {
	for i, t := range tables {
		if _, err := clickhouse.CreateTableDDL(t.dest, schemas[i], d.info, chTableOptions(cfg, t.orderBy)); err != nil {
			return sqlerr.New(pgerrcode.FeatureNotSupported, "destination table %s cannot be made: %v", t.dest, err).
				WithPosition(int(t.pos))
		}
	}
	return nil
}

func (d *clickHouseDest) prepare(ctx context.Context, cfg mirrorConfig, tables []mapping, schemas []*connectors.TableSchema) error {
	if err := clickhouse.EnsureMetadata(ctx, d.conn, d.cfg.Database); err != nil {
		return err
	}
	for i, t := range tables {
		if err := clickhouse.CreateTable(ctx, d.conn, t.dest, schemas[i], d.info, chTableOptions(cfg, t.orderBy)); err != nil {
			return err
		}
	}
	return nil
}

func (d *clickHouseDest) undo(tables []mapping) {
	for _, t := range tables {
		_ = clickhouse.DropTable(context.Background(), d.conn, t.dest)
	}
}

// chTableOptions are a ClickHouse table's options from the mirror's.
func chTableOptions(cfg mirrorConfig, orderBy []string) clickhouse.TableOptions {
	return clickhouse.TableOptions{OrderBy: orderBy, DeletedColumn: cfg.SoftDeleteColumn, SyncedAtColumn: cfg.SyncedAtColumn}
}

// nullableKeyNotice is the NOTICE for the columns of a ClickHouse sorting
// key that are nullable in source table ts (see
// clickhouse.NullableKeyColumns), or "" when there are none.
func nullableKeyNotice(ts *connectors.TableSchema, table connectors.TableName, orderBy []string) string {
	cols := clickhouse.NullableKeyColumns(ts, orderBy)
	if len(cols) == 0 {
		return ""
	}
	return fmt.Sprintf("order_by column(s) %s of %s are nullable in the source, and ClickHouse sorting keys cannot be Nullable: "+
		"they are created non-Nullable, and a NULL the source sends is stored as the type's default (0, '', 1970-01-01, ...) "+
		"and reported as a warning in mirror_events", strings.Join(quoteEach(cols), ", "), table)
}
