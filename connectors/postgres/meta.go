package postgres

import (
	"context"
	"errors"
	"fmt"

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
// transaction as the rows (SetPosition), so the two never disagree.
// snapshot_partitions records the initial-load partitions already copied,
// written in the transaction that copied them (MarkPartitionDone).
//
// Positions are opaque (connectors.Position) and live in the text column
// position of mirror_state and table_state. Before positions, both tables
// held a Postgres LSN in the bigint column lsn, which is kept: a row
// written before has position NULL and is read as LSNPosition(lsn) (such
// metadata only ever held LSNs); a row written now has lsn set to the
// position's LSN when the position is one (PositionLSN), else 0, so that
// the Postgres LSN of a mirror stays readable in lsn.
// EnsureMetadata adds the position columns to tables made before.
//
// mirror_state.epoch is the lease epoch of the node that applies the
// mirror's changes (Fence, fence.go): 0 in rows made before it (and by a
// single node that never fenced). EnsureMetadata adds it to tables made
// before.
const (
	metaMirrorStateDDL = `CREATE TABLE IF NOT EXISTS %s.mirror_state (
	mirror text PRIMARY KEY,
	lsn bigint NOT NULL,
	position text,
	updated_at timestamptz NOT NULL DEFAULT now(),
	epoch bigint NOT NULL DEFAULT 0)`
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
	position text,
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
		fmt.Sprintf(metaRetiredDDL, s),
	} {
		if err := execRetryingUnique(ctx, conn, sql); err != nil {
			return fmt.Errorf("create metadata schema %s: %w", s, err)
		}
	}
	return addColumns(ctx, conn, s)
}

// addColumns adds the columns an older Sluice did not make to its
// metadata tables: position (before positions) and mirror_state.epoch
// (before fencing). It alters a table only when the column is missing:
// ALTER TABLE locks the table, which the appliers of every mirror on the
// destination write in their transactions.
func addColumns(ctx context.Context, conn *pgx.Conn, s string) error {
	for _, c := range []struct{ table, column, def string }{
		{"mirror_state", "position", "text"},
		{"table_state", "position", "text"},
		{"mirror_state", "epoch", "bigint NOT NULL DEFAULT 0"},
	} {
		var has bool
		err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_attribute
WHERE attrelid = to_regclass($1) AND attname = $2 AND NOT attisdropped)`, s+"."+c.table, c.column).Scan(&has)
		if err != nil {
			return fmt.Errorf("check metadata table %s.%s: %w", s, c.table, err)
		}
		if has {
			continue
		}
		if err := execRetryingUnique(ctx, conn, "ALTER TABLE "+s+"."+c.table+" ADD COLUMN IF NOT EXISTS "+c.column+" "+c.def); err != nil {
			return fmt.Errorf("add %s to metadata table %s.%s: %w", c.column, s, c.table, err)
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

// storedPosition is the position of a metadata row: its position column,
// or, in a row written before positions (position NULL), its LSN.
func storedPosition(pos *string, lsn int64) connectors.Position {
	if pos != nil {
		return connectors.Position(*pos)
	}
	return LSNPosition(uint64(lsn))
}

// lsnColumn is what a metadata row's lsn column holds for pos: its LSN
// when pos is one (an LSN above 2^63 wraps, as the catalog's bigints do),
// else 0.
func lsnColumn(pos connectors.Position) int64 {
	lsn, err := PositionLSN(pos)
	if err != nil {
		return 0
	}
	return int64(lsn)
}

// LastPosition returns the position recorded for mirror: every source
// change committed up to it is applied on the destination. ok is false when
// the mirror has recorded nothing yet (a row only Fence made, or
// ForgetMirror emptied, records none). EnsureMetadata must have run.
func LastPosition(ctx context.Context, conn *pgx.Conn, meta, mirror string) (pos connectors.Position, ok bool, err error) {
	var p *string
	var lsn int64
	err = conn.QueryRow(ctx, "SELECT position, lsn FROM "+metaSchema(meta)+".mirror_state WHERE mirror = $1", mirror).Scan(&p, &lsn)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read last position of mirror %s: %w", mirror, err)
	}
	pos = storedPosition(p, lsn)
	return pos, pos != "", nil
}

// SetPosition records pos as mirror's applied position (an upsert; it may
// move the position backwards, so callers pass only positions they
// applied). Call it inside the transaction that applied the changes up to
// pos.
func SetPosition(ctx context.Context, tx pgx.Tx, meta, mirror string, pos connectors.Position) error {
	_, err := tx.Exec(ctx, "INSERT INTO "+metaSchema(meta)+`.mirror_state AS m (mirror, lsn, position) VALUES ($1, $2, $3)
ON CONFLICT (mirror) DO UPDATE SET lsn = excluded.lsn, position = excluded.position, updated_at = now()`,
		mirror, lsnColumn(pos), string(pos))
	if err != nil {
		return fmt.Errorf("record position of mirror %s: %w", mirror, err)
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
// with rows rows. Call it in the transaction that copied the partition.
//
// With once (the rows were appended by a plain COPY, which a second copy
// would duplicate), a partition recorded already is an error, which rolls
// that transaction back: two workers that loaded the same partition (a
// node frozen past its lease wakes up and commits a partition another
// node redid meanwhile) cannot both commit. The second waits on the
// first's key and then fails. Without once (an upserting copy, which
// converges however often it runs), a repeat overwrites the row count.
func MarkPartitionDone(ctx context.Context, tx pgx.Tx, meta, mirror string, table connectors.TableName, partition int, rows int64,
	once bool) error {
	q := "INSERT INTO " + metaSchema(meta) + `.snapshot_partitions AS p (mirror, source_table, partition, rows)
VALUES ($1, $2, $3, $4)`
	if !once {
		q += " ON CONFLICT (mirror, source_table, partition) DO UPDATE SET rows = excluded.rows, done_at = now()"
	}
	_, err := tx.Exec(ctx, q, mirror, table.String(), int32(partition), rows)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == pgerrcode.UniqueViolation {
		return fmt.Errorf("partition %d of %s was loaded meanwhile by another worker of mirror %s (a node that lost its lease?): this copy is rolled back",
			partition, table, mirror)
	}
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

// ForgetMirror is ClearMirror for a full resync, which starts the mirror
// over under the same lease: it keeps the mirror's row in mirror_state
// with its epoch (Fence) and empties its position, so that a stale node
// stays fenced. Idempotent.
func ForgetMirror(ctx context.Context, db Beginner, meta, mirror string) error {
	s := metaSchema(meta)
	b := &pgx.Batch{}
	b.Queue("UPDATE "+s+".mirror_state SET position = NULL, lsn = 0, updated_at = now() WHERE mirror = $1", mirror)
	b.Queue("DELETE FROM "+s+".snapshot_partitions WHERE mirror = $1", mirror)
	b.Queue("DELETE FROM "+s+".table_state WHERE mirror = $1", mirror)
	if err := sendInTx(ctx, db, b); err != nil {
		return fmt.Errorf("clear metadata of mirror %s: %w", mirror, err)
	}
	return nil
}

// ClearTable deletes the done partitions of one table of mirror, so its
// initial load starts over. Idempotent.
func ClearTable(ctx context.Context, db Execer, meta, mirror string, table connectors.TableName) error {
	_, err := db.Exec(ctx, "DELETE FROM "+metaSchema(meta)+".snapshot_partitions WHERE mirror = $1 AND source_table = ANY($2)",
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
