package clickhouse

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/sluicedb/sluice/connectors"
)

// Metadata tables, in each destination database:
//
//	_sluice_mirror_state        (mirror String, lsn UInt64, updated_at DateTime,
//	                            position String)
//	                            ReplacingMergeTree(lsn) ORDER BY mirror
//	_sluice_snapshot_partitions (mirror, source_table String, partition Int32,
//	                            rows Int64, version UInt64)
//	                            ReplacingMergeTree(version) ORDER BY (mirror, source_table, partition)
//	_sluice_owned_tables        temporary tables Sluice made (see owned.go)
//	_sluice_mirror_epoch        (mirror String, epoch UInt64)
//	                            ReplacingMergeTree(epoch) ORDER BY mirror
//
// _sluice_mirror_state also has epoch UInt64 (added to tables made
// before, where old rows read 0): the lease epoch of the node that
// recorded the position. _sluice_mirror_epoch holds the epochs that
// claimed the mirror (Fence, fence.go); a merge keeps the highest.
//
// Rows are only ever inserted; readers take the newest (max position,
// argMax by version), so a merge that has not happened yet changes nothing.
// Clearing uses ALTER TABLE ... DELETE and waits for the mutation.
//
// A mirror's position is opaque (connectors.Position) and lives in
// position. Before positions, rows held only a Postgres LSN in lsn (and
// position was added with the default ''): such a row is read as the LSN's
// Postgres encoding (lsnPosition). A row written now also sets lsn, to the
// position's LSN when it is a Postgres one (positionLSN), else to its
// lease epoch: lsn is the table's ReplacingMergeTree version, so a merge
// keeps the newest row of a mirror whose older rows were written before
// positions, and, for other positions, a row of the highest epoch (a row
// a stale node wrote after a later epoch claimed the mirror never
// outlives the new owner's). With Postgres LSNs a merge keeps the highest
// LSN, whichever epoch wrote it: a stale node's row can then only be
// ahead of the new owner's, and only by rows it wrote before it recorded
// them (fence.go), which the new owner's replay writes identically.

// Names of the metadata tables.
const (
	MirrorStateTable        = "_sluice_mirror_state"
	SnapshotPartitionsTable = "_sluice_snapshot_partitions"
	MirrorEpochTable        = "_sluice_mirror_epoch"
)

func metaTable(db, table string) string { return quoteIdent(db) + "." + quoteIdent(table) }

// EnsureMetadata creates the metadata tables in database db if missing.
// Idempotent; the database must exist.
func EnsureMetadata(ctx context.Context, conn driver.Conn, db string) error {
	for _, ddl := range []string{
		"CREATE TABLE IF NOT EXISTS " + metaTable(db, MirrorStateTable) +
			" (mirror String, lsn UInt64, updated_at DateTime, position String) ENGINE = ReplacingMergeTree(lsn) ORDER BY mirror",
		"CREATE TABLE IF NOT EXISTS " + metaTable(db, SnapshotPartitionsTable) +
			" (mirror String, source_table String, `partition` Int32, rows Int64, version UInt64)" +
			" ENGINE = ReplacingMergeTree(version) ORDER BY (mirror, source_table, `partition`)",
		"CREATE TABLE IF NOT EXISTS " + metaTable(db, OwnedTablesTable) + ownedDDL,
		"CREATE TABLE IF NOT EXISTS " + metaTable(db, MirrorEpochTable) +
			" (mirror String, epoch UInt64) ENGINE = ReplacingMergeTree(epoch) ORDER BY mirror",
	} {
		if err := conn.Exec(ctx, ddl); err != nil {
			return fmt.Errorf("create metadata tables in %s: %w", db, err)
		}
	}
	for _, c := range []struct{ name, typ string }{{"position", "String"}, {"epoch", "UInt64"}} {
		if err := addStateColumn(ctx, conn, db, c.name, c.typ); err != nil {
			return err
		}
	}
	return nil
}

// addStateColumn adds column name of type typ to a mirror state table an
// older Sluice made (position before positions, epoch before fencing;
// old rows read the type's default: ” and 0). Safe when another caller
// adds it first.
func addStateColumn(ctx context.Context, conn driver.Conn, db, name, typ string) error {
	has := func() (bool, error) {
		var n uint64
		err := conn.QueryRow(ctx, "SELECT count() FROM system.columns WHERE database = ? AND table = ? AND name = ?",
			db, MirrorStateTable, name).Scan(&n)
		return n > 0, err
	}
	ok, err := has()
	if err == nil && !ok {
		if err = conn.Exec(ctx, "ALTER TABLE "+metaTable(db, MirrorStateTable)+" ADD COLUMN "+quoteIdent(name)+" "+typ); err != nil {
			if ok, _ = has(); ok {
				err = nil // added meanwhile
			}
		}
	}
	if err != nil {
		return fmt.Errorf("add %s to %s.%s: %w", name, db, MirrorStateTable, err)
	}
	return nil
}

// lsnPosition is the Postgres encoding of an LSN as a position
// (postgres.LSNPosition), for rows written before positions, which only
// ever held Postgres LSNs.
func lsnPosition(lsn uint64) connectors.Position {
	if lsn == 0 {
		return ""
	}
	return connectors.Position(fmt.Sprintf("%016X", lsn))
}

// positionLSN is the LSN of a position in the Postgres encoding
// (postgres.PositionLSN), or 0 when pos is not one.
func positionLSN(pos connectors.Position) uint64 {
	if len(pos) != 16 {
		return 0
	}
	lsn, err := strconv.ParseUint(string(pos), 16, 64)
	if err != nil || lsnPosition(lsn) != pos {
		return 0
	}
	return lsn
}

// LastPosition returns the position recorded for mirror in db, and
// whether there is one: the highest position recorded under the highest
// lease epoch (see Fence), so that a stale node that records a position
// after a later epoch claimed the mirror changes nothing. Without epochs
// (all 0), the highest ever recorded. It only reads.
func LastPosition(ctx context.Context, conn driver.Conn, db, mirror string) (connectors.Position, bool, error) {
	var pos string
	var lsn, n uint64
	if err := conn.QueryRow(ctx, "SELECT argMax(position, (epoch, position)), max(lsn), count() FROM "+metaTable(db, MirrorStateTable)+
		" WHERE mirror = ?", mirror).Scan(&pos, &lsn, &n); err != nil {
		return "", false, fmt.Errorf("read recorded position of mirror %q: %w", mirror, err)
	}
	if pos == "" {
		// Only rows written before positions: their LSN.
		return lsnPosition(lsn), n > 0, nil
	}
	return connectors.Position(pos), true, nil
}

// SetPosition records pos (not "") as mirror's position, under no lease
// epoch (SetPositionAt with 0). Idempotent.
func SetPosition(ctx context.Context, conn driver.Conn, db, mirror string, pos connectors.Position) error {
	return SetPositionAt(ctx, conn, db, mirror, pos, 0)
}

// SetPositionAt records pos (not "") as mirror's position under lease
// epoch epoch. A position below the recorded one of its epoch, or of an
// epoch below the highest recorded, changes nothing (see LastPosition).
// Idempotent.
func SetPositionAt(ctx context.Context, conn driver.Conn, db, mirror string, pos connectors.Position, epoch int64) error {
	if pos == "" {
		return fmt.Errorf("record position of mirror %q: no position", mirror)
	}
	lsn := positionLSN(pos)
	if lsn == 0 {
		// Not a Postgres LSN: the merge version is the epoch, so that a
		// merge keeps a row of the highest epoch (see the note above).
		lsn = uint64(epoch)
	}
	if err := insertRow(ctx, conn, metaTable(db, MirrorStateTable)+" (mirror, lsn, updated_at, position, epoch)",
		mirror, lsn, time.Now().UTC().Truncate(time.Second), string(pos), uint64(epoch)); err != nil {
		return fmt.Errorf("record position of mirror %q: %w", mirror, err)
	}
	return nil
}

// MarkPartitionDone records that partition of source table source was
// loaded with rows rows. Marking again replaces the row count. Idempotent.
func MarkPartitionDone(ctx context.Context, conn driver.Conn, db, mirror string, source connectors.TableName, partition int, rows int64) error {
	if err := insertRow(ctx, conn, metaTable(db, SnapshotPartitionsTable)+" (mirror, source_table, `partition`, rows, version)",
		mirror, source.String(), int32(partition), rows, uint64(time.Now().UnixNano())); err != nil {
		return fmt.Errorf("record partition %d of %s done: %w", partition, source, err)
	}
	return nil
}

// DonePartitions returns the partitions of source recorded done for
// mirror, with their row counts. It only reads.
func DonePartitions(ctx context.Context, conn driver.Conn, db, mirror string, source connectors.TableName) (map[int]int64, error) {
	rows, err := conn.Query(ctx, "SELECT `partition`, argMax(rows, version) FROM "+metaTable(db, SnapshotPartitionsTable)+
		" WHERE mirror = ? AND source_table IN ("+quoteStrings(source.Keys())+") GROUP BY `partition`", mirror)
	if err != nil {
		return nil, fmt.Errorf("read done partitions of %s: %w", source, err)
	}
	defer rows.Close()
	done := make(map[int]int64)
	for rows.Next() {
		var p int32
		var n int64
		if err := rows.Scan(&p, &n); err != nil {
			return nil, fmt.Errorf("read done partitions of %s: %w", source, err)
		}
		done[int(p)] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read done partitions of %s: %w", source, err)
	}
	return done, nil
}

// ClearMirror deletes everything recorded for mirror (its position and
// its partitions) and waits until the deletes are done. Idempotent.
func ClearMirror(ctx context.Context, conn driver.Conn, db, mirror string) error {
	return clearMirror(ctx, conn, db, mirror, 0)
}

// clearMirror is ClearMirror; with upTo > 0 it deletes only the positions
// recorded under epochs up to upTo, so that a stale node's clear never
// deletes what a later epoch recorded (see Destination.ForgetLoad).
func clearMirror(ctx context.Context, conn driver.Conn, db, mirror string, upTo int64) error {
	state := "mirror = " + quoteString(mirror)
	if upTo > 0 {
		state += fmt.Sprintf(" AND epoch <= %d", upTo)
	}
	for _, t := range []struct{ table, cond string }{
		{MirrorStateTable, state},
		{SnapshotPartitionsTable, "mirror = " + quoteString(mirror)},
	} {
		if err := deleteWhere(ctx, conn, db, t.table, t.cond); err != nil {
			return fmt.Errorf("clear mirror %q: %w", mirror, err)
		}
	}
	return nil
}

// ClearTable deletes the partitions recorded for source table source of
// mirror (before the table is loaded again) and waits until the delete is
// done. Idempotent.
func ClearTable(ctx context.Context, conn driver.Conn, db, mirror string, source connectors.TableName) error {
	if err := deleteWhere(ctx, conn, db, SnapshotPartitionsTable,
		"mirror = "+quoteString(mirror)+" AND source_table IN ("+quoteStrings(source.Keys())+")"); err != nil {
		return fmt.Errorf("clear partitions of %s: %w", source, err)
	}
	return nil
}

// quoteStrings renders string literals separated by commas.
func quoteStrings(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = quoteString(s)
	}
	return strings.Join(q, ", ")
}

// insertRow inserts one row with a native batch (an inline INSERT ...
// VALUES hangs on 18.16).
func insertRow(ctx context.Context, conn driver.Conn, into string, vals ...any) error {
	b, err := conn.PrepareBatch(ctx, "INSERT INTO "+into)
	if err != nil {
		return err
	}
	if err := b.Append(vals...); err != nil {
		_ = b.Abort()
		return err
	}
	return b.Send()
}

// deleteWhere runs ALTER TABLE ... DELETE WHERE cond on a metadata table
// and waits for the mutation (asynchronous on every server) to finish.
func deleteWhere(ctx context.Context, conn driver.Conn, db, table, cond string) error {
	if err := conn.Exec(ctx, "ALTER TABLE "+metaTable(db, table)+" DELETE WHERE "+cond); err != nil {
		return err
	}
	for {
		var pending uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM system.mutations WHERE database = ? AND table = ? AND is_done = 0",
			db, table).Scan(&pending); err != nil {
			return fmt.Errorf("wait for delete: %w", err)
		}
		if pending == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
