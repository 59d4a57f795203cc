package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/sluicedb/sluice/connectors"
)

// ConnectReplication opens a logical replication connection to the peer
// (replication=database). Cancelling a context passed to it closes the
// connection: replication connections are not reused after an interruption.
func (c *PeerConfig) ConnectReplication(ctx context.Context, appName string) (*pgconn.PgConn, error) {
	cfg, err := c.ConnConfig(appName)
	if err != nil {
		return nil, err
	}
	cfg.RuntimeParams["replication"] = "database"
	cfg.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.DeadlineContextWatcherHandler{Conn: pc.Conn()}
	}
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open replication connection: %w", connectFailed(fmt.Sprintf("%s:%d", c.Host, c.Port), err))
	}
	return conn, nil
}

// ConnectSQL opens an ordinary pgx connection to the peer.
func (c *PeerConfig) ConnectSQL(ctx context.Context, appName string) (*pgx.Conn, error) {
	pcfg, err := c.ConnConfig(appName)
	if err != nil {
		return nil, err
	}
	return c.connectSQL(ctx, pcfg)
}

// connectSQL opens a pgx connection to the peer with pcfg.
func (c *PeerConfig) connectSQL(ctx context.Context, pcfg *pgconn.Config) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig("")
	if err != nil {
		return nil, err
	}
	cfg.Config = *pcfg
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, connectFailed(fmt.Sprintf("%s:%d", c.Host, c.Port), err)
	}
	return conn, nil
}

// Slot is a replication slot made for a mirror.
type Slot struct {
	Name string
	// ConsistentLSN is where streaming starts: every change committed after
	// it is streamed, every one before it is in the exported snapshot.
	ConsistentLSN uint64
	// Snapshot names the exported snapshot; valid only while the
	// replication connection that made the slot is open and idle.
	Snapshot string
}

// CreateSlot creates a pgoutput logical slot with an exported snapshot on
// a replication connection.
func CreateSlot(ctx context.Context, conn *pgconn.PgConn, name string) (Slot, error) {
	res, err := pglogrepl.CreateReplicationSlot(ctx, conn, name, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{SnapshotAction: "EXPORT_SNAPSHOT"})
	if err != nil {
		return Slot{}, fmt.Errorf("create replication slot %q: %w", name, err)
	}
	lsn, err := pglogrepl.ParseLSN(res.ConsistentPoint)
	if err != nil {
		return Slot{}, fmt.Errorf("create replication slot %q: parse consistent point: %w", name, err)
	}
	return Slot{Name: name, ConsistentLSN: uint64(lsn), Snapshot: res.SnapshotName}, nil
}

// SlotExists reports whether a replication slot named name exists.
func SlotExists(ctx context.Context, conn *pgx.Conn, name string) (bool, error) {
	var ok bool
	err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)`, name).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("look up replication slot %q: %w", name, err)
	}
	return ok, nil
}

// DropSlot drops the slot if it exists, first ending a walsender still
// using it (a sluice that was killed may leave one behind for a while).
// Idempotent.
func DropSlot(ctx context.Context, conn *pgx.Conn, name string) error {
	for attempt := 0; ; attempt++ {
		_, err := conn.Exec(ctx, `
SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL`, name)
		if err != nil {
			return fmt.Errorf("drop replication slot %q: %w", name, err)
		}
		_, err = conn.Exec(ctx, `
SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, name)
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "55006" && attempt < 50 { // object_in_use: still active
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if err != nil {
			return fmt.Errorf("drop replication slot %q: %w", name, err)
		}
		return nil
	}
}

// CreatePublication creates a publication for the tables (idempotent: an
// existing publication is altered to exactly these tables).
func CreatePublication(ctx context.Context, conn *pgx.Conn, name string, tables []connectors.TableName) error {
	list := make([]string, len(tables))
	for i, t := range tables {
		list[i] = t.Quoted()
	}
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)`, name).Scan(&exists); err != nil {
		return fmt.Errorf("look up publication %q: %w", name, err)
	}
	verb := "CREATE PUBLICATION %s FOR TABLE %s"
	if exists {
		verb = "ALTER PUBLICATION %s SET TABLE %s"
	}
	if _, err := conn.Exec(ctx, fmt.Sprintf(verb, pgx.Identifier{name}.Sanitize(), strings.Join(list, ", "))); err != nil {
		return fmt.Errorf("create publication %q: %w", name, err)
	}
	return nil
}

// DropPublication drops the publication if it exists. Idempotent.
func DropPublication(ctx context.Context, conn *pgx.Conn, name string) error {
	if _, err := conn.Exec(ctx, "DROP PUBLICATION IF EXISTS "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("drop publication %q: %w", name, err)
	}
	return nil
}

// EmitHeartbeat writes a non-transactional logical message on the source so
// that an idle slot's position can advance.
func EmitHeartbeat(ctx context.Context, conn *pgx.Conn) error {
	if _, err := conn.Exec(ctx, `SELECT pg_logical_emit_message(false, 'sluice_heartbeat', '')`); err != nil {
		return fmt.Errorf("emit heartbeat: %w", err)
	}
	return nil
}

// CurrentWALLSN returns the source's current WAL insert position.
func CurrentWALLSN(ctx context.Context, conn *pgx.Conn) (uint64, error) {
	var s string
	if err := conn.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&s); err != nil {
		return 0, fmt.Errorf("read current WAL position: %w", err)
	}
	lsn, err := pglogrepl.ParseLSN(s)
	return uint64(lsn), err
}
