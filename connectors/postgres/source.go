package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sluicedb/sluice/connectors"
)

// The Postgres side of connectors.Source: a mirror's publication and slot,
// the initial load's snapshot and partitions, and the change stream, each
// wrapping the functions of this package that do the work.

var (
	_ connectors.SourcePeer       = (*PeerConfig)(nil)
	_ connectors.Source           = (*Source)(nil)
	_ connectors.TableSnapshotter = (*Source)(nil)
	_ connectors.EarlyStreamer    = (*Source)(nil)
	_ connectors.IndexDefiner     = (*Source)(nil)
	_ connectors.ColumnReader     = (*Source)(nil)
)

// smallTablePages is the size, in heap pages, up to which Plan counts the
// rows of a table that has no row estimate (never analyzed); a bigger one
// is assumed to hold defaultRowsPerPage rows a page.
const smallTablePages = 10000

// DefaultSchema implements connectors.SourcePeer: public, where a table
// named without a schema is for a session with the default search_path.
func (c *PeerConfig) DefaultSchema() string { return "public" }

// OpenSource implements connectors.SourcePeer: it opens an ordinary SQL
// connection (ConnectSQL) as appName. Other connections the Source needs
// (replication, readers, streams) are opened as appName too.
func (c *PeerConfig) OpenSource(ctx context.Context, appName string) (connectors.Source, error) {
	conn, err := c.ConnectSQL(ctx, appName)
	if err != nil {
		return nil, err
	}
	return &Source{peer: c, appName: appName, conn: conn}, nil
}

// Source is a connection to a Postgres mirror source (connectors.Source,
// with the abilities connectors.TableSnapshotter, connectors.IndexDefiner
// and connectors.ColumnReader). Not safe for concurrent use; the readers,
// streams and snapshots it returns have connections of their own.
type Source struct {
	peer    *PeerConfig
	appName string
	conn    *pgx.Conn
}

// sqlConn returns the Source's SQL connection, for a Postgres destination
// that copies straight from it (BackfillColumns). The caller does not use
// the Source meanwhile and does not close the connection.
func (s *Source) sqlConn() *pgx.Conn { return s.conn }

// Describe implements connectors.Source with DescribeTable.
func (s *Source) Describe(ctx context.Context, table connectors.TableName, exclude []string) (*connectors.TableSchema, error) {
	return DescribeTable(ctx, s.conn, table, exclude)
}

// Prepare implements connectors.Source: it creates spec's publication for
// tables, or sets its tables (CreatePublication); with replace it drops it
// first. Idempotent.
func (s *Source) Prepare(ctx context.Context, spec connectors.StreamSpec, tables []connectors.TableName, replace bool) error {
	if replace {
		if err := DropPublication(ctx, s.conn, spec.Publication); err != nil {
			return err
		}
	}
	return CreatePublication(ctx, s.conn, spec.Publication, tables)
}

// StartMirror implements connectors.Source: it drops spec's slot if one
// exists (DropSlot) and creates it anew (CreateSlot) on a replication
// connection of its own, which the snapshot's Close closes: the exported
// snapshot is importable (OpenReader) while it is open. The snapshot's
// Position is the slot's consistent point.
func (s *Source) StartMirror(ctx context.Context, spec connectors.StreamSpec) (*connectors.Snapshot, error) {
	if err := DropSlot(ctx, s.conn, spec.Slot); err != nil {
		return nil, err
	}
	repl, err := s.peer.ConnectReplication(ctx, s.appName)
	if err != nil {
		return nil, err
	}
	slot, err := CreateSlot(ctx, repl, spec.Slot)
	if err != nil {
		repl.Close(context.Background())
		return nil, err
	}
	return connectors.NewSnapshot(slot.Snapshot, LSNPosition(slot.ConsistentLSN), slot.ConsistentLSN,
		func() { repl.Close(context.Background()) }), nil
}

// Plan implements connectors.Source with PlanPartitions. A table without a
// row estimate is counted (CountRows) when it has at most smallTablePages
// pages, else assumed to hold defaultRowsPerPage rows a page. Each
// partition is a Partition in JSON: {"Index":0,"StartPage":0,"EndPage":-1}.
// rowsPerPartition may be nil (one partition). ts is not modified.
func (s *Source) Plan(ctx context.Context, table connectors.TableName, ts *connectors.TableSchema,
	rowsPerPartition func(estimatedRows int64) int64) (connectors.PartitionPlan, error) {
	est := ts.EstimatedRows
	if est <= 0 && ts.Pages > 0 {
		if ts.Pages <= smallTablePages {
			n, err := CountRows(ctx, s.conn, table)
			if err != nil {
				return connectors.PartitionPlan{}, err
			}
			est = n
		} else {
			est = ts.Pages * defaultRowsPerPage
		}
	}
	var per int64
	if rowsPerPartition != nil {
		per = rowsPerPartition(est)
	}
	parts := PlanPartitions(ts.Pages, est, per)
	plan := connectors.PartitionPlan{Partitions: make([]connectors.Partition, len(parts)), EstimatedRows: est}
	for i, p := range parts {
		raw, err := json.Marshal(p)
		if err != nil {
			return connectors.PartitionPlan{}, fmt.Errorf("plan %s: %w", table, err)
		}
		plan.Partitions[i] = raw
	}
	return plan, nil
}

// OpenReader implements connectors.Source: a new SQL connection
// (connectReader) in a snapshot transaction (BeginSnapshot) under snapshot,
// or under a fresh snapshot when it is "".
func (s *Source) OpenReader(ctx context.Context, snapshot string) (connectors.PartitionReader, error) {
	conn, err := s.peer.connectReader(ctx, s.appName)
	if err != nil {
		return nil, err
	}
	tx, err := BeginSnapshot(ctx, conn, snapshot)
	if err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	return &partitionReader{conn: conn, tx: tx}, nil
}

// Stream implements connectors.Source: it starts streaming spec's slot at
// from (StartStream) on a replication connection, with an SQL connection
// of the stream's own for heartbeats and new columns' types; the stream's
// Close closes both. No heartbeat is sent. When the stream cannot start, or
// a Read fails, because the source invalidated the slot, the error wraps
// connectors.ErrStreamLost (see CheckStream).
func (s *Source) Stream(ctx context.Context, spec connectors.StreamSpec, from connectors.Position,
	tables map[connectors.TableName]*connectors.TableSchema) (connectors.Stream, error) {
	return s.stream(ctx, spec, from, tables, false)
}

// StreamEarly implements connectors.EarlyStreamer: Stream, with large
// transactions sent before they commit on Postgres 14 and later
// (stream_early.go); an older server's stream sends them at their commit.
func (s *Source) StreamEarly(ctx context.Context, spec connectors.StreamSpec, from connectors.Position,
	tables map[connectors.TableName]*connectors.TableSchema) (connectors.Stream, error) {
	return s.stream(ctx, spec, from, tables, true)
}

func (s *Source) stream(ctx context.Context, spec connectors.StreamSpec, from connectors.Position,
	tables map[connectors.TableName]*connectors.TableSchema, early bool) (connectors.Stream, error) {
	// Both connections at once: each costs the start of a server process.
	var repl *pgconn.PgConn
	var replErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		repl, replErr = s.peer.ConnectReplication(ctx, s.appName)
	}()
	sql, err := s.peer.ConnectSQL(ctx, s.appName)
	<-done
	if err != nil || replErr != nil {
		if err == nil {
			sql.Close(context.Background())
			err = replErr
		} else if replErr == nil {
			repl.Close(context.Background())
		}
		return nil, err
	}
	st, err := StartStream(ctx, repl, StreamConfig{
		Slot: spec.Slot, Publication: spec.Publication, Start: from, Tables: tables, SQL: sql, Early: early,
	})
	if err != nil {
		repl.Close(context.Background())
		sql.Close(context.Background())
		return nil, s.explainStreamError(ctx, spec, err)
	}
	return &sourceStream{Stream: st, sql: sql, src: s.peer, appName: s.appName, spec: spec}, nil
}

// CheckStream implements connectors.Source: spec's slot is lost when its
// wal_status is "lost" (the source removed WAL it still needed). A missing
// slot, or one whose status is not reported, is not lost.
func (s *Source) CheckStream(ctx context.Context, spec connectors.StreamSpec) error {
	return checkSlot(ctx, s.conn, spec)
}

// checkSlot returns an error wrapping connectors.ErrStreamLost when spec's
// slot in conn's database is invalidated.
func checkSlot(ctx context.Context, conn *pgx.Conn, spec connectors.StreamSpec) error {
	var status *string
	err := conn.QueryRow(ctx, `SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1 AND database = current_database()`,
		spec.Slot).Scan(&status)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read replication slot %q: %w", spec.Slot, err)
	}
	if status != nil && *status == "lost" {
		return fmt.Errorf("replication slot %q was invalidated: the source removed WAL the slot still needed "+
			"(max_slot_wal_keep_size exceeded), so changes since the mirror's position are lost: %w",
			spec.Slot, connectors.ErrStreamLost)
	}
	return nil
}

// explainStreamError returns, for err that stopped or kept from starting
// spec's stream, an error wrapping connectors.ErrStreamLost (and err) when
// the slot is invalidated, checked on a connection of its own; else err.
func explainStreamError(ctx context.Context, peer *PeerConfig, appName string, spec connectors.StreamSpec, err error) error {
	if err == nil || ctx.Err() != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, cerr := peer.ConnectSQL(cctx, appName)
	if cerr != nil {
		return err
	}
	defer conn.Close(context.Background())
	if lost := checkSlot(cctx, conn, spec); errors.Is(lost, connectors.ErrStreamLost) {
		return fmt.Errorf("%w (the stream stopped with: %w)", lost, err)
	}
	return err
}

func (s *Source) explainStreamError(ctx context.Context, spec connectors.StreamSpec, err error) error {
	return explainStreamError(ctx, s.peer, s.appName, spec, err)
}

// Teardown implements connectors.Source with DropSlotAndPublication: an
// error wrapping ErrDropUncertain means the slot may be dropped while the
// publication is not. Idempotent.
func (s *Source) Teardown(ctx context.Context, spec connectors.StreamSpec) error {
	return DropSlotAndPublication(ctx, s.conn, spec.Slot, spec.Publication)
}

// Close implements connectors.Source.
func (s *Source) Close(ctx context.Context) error { return s.conn.Close(ctx) }

// TableSnapshot implements connectors.TableSnapshotter: a temporary slot,
// which streams nothing, made with an exported snapshot on a replication
// connection of its own; the snapshot's Close closes the connection, which
// drops the slot. Its Position is the slot's consistent point.
func (s *Source) TableSnapshot(ctx context.Context) (*connectors.Snapshot, error) {
	repl, err := s.peer.ConnectReplication(ctx, s.appName)
	if err != nil {
		return nil, err
	}
	res, err := pglogrepl.CreateReplicationSlot(ctx, repl, fmt.Sprintf("sluice_resync_%016x", rand.Uint64()), "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Temporary: true, SnapshotAction: "EXPORT_SNAPSHOT"})
	if err != nil {
		repl.Close(context.Background())
		return nil, fmt.Errorf("create temporary slot for a table snapshot: %w", err)
	}
	at, err := pglogrepl.ParseLSN(res.ConsistentPoint)
	if err != nil {
		repl.Close(context.Background())
		return nil, fmt.Errorf("parse consistent point %q: %w", res.ConsistentPoint, err)
	}
	lsn := uint64(at)
	return connectors.NewSnapshot(res.SnapshotName, LSNPosition(lsn), lsn, func() { repl.Close(context.Background()) }), nil
}

// IndexDDL implements connectors.IndexDefiner with IndexDDL.
func (s *Source) IndexDDL(ctx context.Context, ts *connectors.TableSchema, dest connectors.TableName) ([]string, error) {
	return IndexDDL(ctx, s.conn, ts, dest)
}

// ForeignKeyDDL implements connectors.IndexDefiner with ForeignKeyDDL.
func (s *Source) ForeignKeyDDL(ctx context.Context, ts *connectors.TableSchema, dest connectors.TableName,
	names map[connectors.TableName]connectors.TableName) ([]string, error) {
	return ForeignKeyDDL(ctx, s.conn, ts, dest, names)
}

// CurrentValues implements connectors.ColumnReader with MissingValues.
func (s *Source) CurrentValues(ctx context.Context, table connectors.TableName, cols []string) (map[string]connectors.Value, error) {
	return MissingValues(ctx, s.conn, table, cols)
}
