package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sluicedb/sluice/connectors"
)

// DefaultMetadataSchema is the destination schema holding Sluice's
// bookkeeping when a peer does not name another one. Every function below
// treats an empty meta argument as this name.
const DefaultMetadataSchema = "_sluice"

// Bookkeeping tables on the destination. mirror_state holds, per mirror, the
// source position whose changes are all applied: it is written in the same
// transaction as the rows (SetLSN), so the two never disagree.
// snapshot_partitions records the initial-load partitions already copied,
// written in the transaction that copied them (MarkPartitionDone).
const (
	metaMirrorStateDDL = `CREATE TABLE IF NOT EXISTS %s.mirror_state (
	mirror text PRIMARY KEY,
	lsn bigint NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now())`
	metaPartitionsDDL = `CREATE TABLE IF NOT EXISTS %s.snapshot_partitions (
	mirror text,
	source_table text,
	partition int,
	rows bigint NOT NULL,
	done_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (mirror, source_table, partition))`
	metaTableStateDDL = `CREATE TABLE IF NOT EXISTS %s.table_state (
	mirror text,
	source_table text,
	stage text NOT NULL,
	strategy text NOT NULL,
	lsn bigint NOT NULL DEFAULT 0,
	saved jsonb,
	updated_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (mirror, source_table))`
)

func metaSchema(meta string) string {
	if meta == "" {
		meta = DefaultMetadataSchema
	}
	return pgx.Identifier{meta}.Sanitize()
}

// EnsureMetadata creates the metadata schema and its tables when missing.
// Idempotent, and safe when several callers race: CREATE ... IF NOT EXISTS
// can still fail when two sessions create the same object at once (a unique
// violation on pg_namespace or pg_type, or "already exists" when the
// winner committed between the check and the creation); the loser retries
// and then finds it.
func EnsureMetadata(ctx context.Context, conn *pgx.Conn, meta string) error {
	s := metaSchema(meta)
	for _, sql := range []string{
		"CREATE SCHEMA IF NOT EXISTS " + s,
		fmt.Sprintf(metaMirrorStateDDL, s),
		fmt.Sprintf(metaPartitionsDDL, s),
		fmt.Sprintf(metaTableStateDDL, s),
		fmt.Sprintf(metaOwnedDDL, s),
	} {
		if err := execRetryingUnique(ctx, conn, sql); err != nil {
			return fmt.Errorf("create metadata schema %s: %w", s, err)
		}
	}
	return nil
}

// execRetryingUnique runs an idempotent DDL statement, retrying when a
// concurrent session won the race to create the same catalog entry.
func execRetryingUnique(ctx context.Context, conn *pgx.Conn, sql string) error {
	var err error
	for range 5 {
		if _, err = conn.Exec(ctx, sql); err == nil || !lostCreateRace(err) {
			return err
		}
	}
	return err
}

func lostCreateRace(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code {
	case pgerrcode.UniqueViolation, pgerrcode.DuplicateObject, pgerrcode.DuplicateTable, pgerrcode.DuplicateSchema:
		return true
	}
	return false
}

func lsnParam(lsn uint64) (int64, error) {
	if lsn > math.MaxInt64 {
		return 0, fmt.Errorf("lsn %X does not fit the metadata's bigint", lsn)
	}
	return int64(lsn), nil
}

// LastLSN returns the position recorded for mirror: every source change
// committed up to it is applied on the destination. ok is false when the
// mirror has recorded nothing yet. EnsureMetadata must have run.
func LastLSN(ctx context.Context, conn *pgx.Conn, meta, mirror string) (lsn uint64, ok bool, err error) {
	var v int64
	err = conn.QueryRow(ctx, "SELECT lsn FROM "+metaSchema(meta)+".mirror_state WHERE mirror = $1", mirror).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read last lsn of mirror %s: %w", mirror, err)
	}
	return uint64(v), true, nil
}

// SetLSN records lsn as mirror's applied position (an upsert; it may move
// the position backwards, so callers pass only positions they applied).
// Call it inside the transaction that applied the changes up to lsn.
func SetLSN(ctx context.Context, tx pgx.Tx, meta, mirror string, lsn uint64) error {
	v, err := lsnParam(lsn)
	if err != nil {
		return fmt.Errorf("record lsn of mirror %s: %w", mirror, err)
	}
	_, err = tx.Exec(ctx, "INSERT INTO "+metaSchema(meta)+`.mirror_state AS m (mirror, lsn) VALUES ($1, $2)
ON CONFLICT (mirror) DO UPDATE SET lsn = excluded.lsn, updated_at = now()`, mirror, v)
	if err != nil {
		return fmt.Errorf("record lsn of mirror %s: %w", mirror, err)
	}
	return nil
}

// DonePartitions returns the initial-load partitions of table already
// copied for mirror, with the rows each copied. Empty (not nil) when none.
func DonePartitions(ctx context.Context, conn *pgx.Conn, meta, mirror string, table connectors.TableName) (map[int]int64, error) {
	rows, err := conn.Query(ctx, "SELECT partition, rows FROM "+metaSchema(meta)+
		".snapshot_partitions WHERE mirror = $1 AND source_table = ANY($2)", mirror, table.Keys())
	if err != nil {
		return nil, fmt.Errorf("read done partitions of %s in mirror %s: %w", table, mirror, err)
	}
	done := make(map[int]int64)
	var p int32
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&p, &n}, func() error {
		done[int(p)] = n
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read done partitions of %s in mirror %s: %w", table, mirror, err)
	}
	return done, nil
}

// MarkPartitionDone records that partition of table was copied for mirror
// with rows rows. Idempotent (a repeat overwrites the row count). Call it in
// the transaction that copied the partition.
func MarkPartitionDone(ctx context.Context, tx pgx.Tx, meta, mirror string, table connectors.TableName, partition int, rows int64) error {
	_, err := tx.Exec(ctx, "INSERT INTO "+metaSchema(meta)+`.snapshot_partitions AS p (mirror, source_table, partition, rows)
VALUES ($1, $2, $3, $4)
ON CONFLICT (mirror, source_table, partition) DO UPDATE SET rows = excluded.rows, done_at = now()`,
		mirror, table.String(), int32(partition), rows)
	if err != nil {
		return fmt.Errorf("mark partition %d of %s done in mirror %s: %w", partition, table, mirror, err)
	}
	return nil
}

// ClearMirror deletes everything recorded for mirror (its position, its
// done partitions and its table resync states), for DROP MIRROR or a full
// resync, in one transaction (a savepoint when db is a transaction, so the
// caller's transaction decides). Idempotent.
func ClearMirror(ctx context.Context, db Beginner, meta, mirror string) error {
	s := metaSchema(meta)
	b := &pgx.Batch{}
	b.Queue("DELETE FROM "+s+".mirror_state WHERE mirror = $1", mirror)
	b.Queue("DELETE FROM "+s+".snapshot_partitions WHERE mirror = $1", mirror)
	b.Queue("DELETE FROM "+s+".table_state WHERE mirror = $1", mirror)
	if err := sendInTx(ctx, db, b); err != nil {
		return fmt.Errorf("clear metadata of mirror %s: %w", mirror, err)
	}
	return nil
}

// ClearTable deletes the done partitions of one table of mirror, so its
// initial load starts over. Idempotent.
func ClearTable(ctx context.Context, conn *pgx.Conn, meta, mirror string, table connectors.TableName) error {
	_, err := conn.Exec(ctx, "DELETE FROM "+metaSchema(meta)+".snapshot_partitions WHERE mirror = $1 AND source_table = ANY($2)",
		mirror, table.Keys())
	if err != nil {
		return fmt.Errorf("clear done partitions of %s in mirror %s: %w", table, mirror, err)
	}
	return nil
}

// Beginner is a connection or a transaction: what can begin a transaction
// (a savepoint, in a transaction).
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// sendInTx runs a batch of statements in one transaction.
func sendInTx(ctx context.Context, db Beginner, b *pgx.Batch) error {
	return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		return tx.SendBatch(ctx, b).Close()
	})
}
