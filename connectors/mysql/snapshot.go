package mysql

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/go-mysql-org/go-mysql/client"
	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/sluicedb/sluice/connectors"
)

// The initial load: a snapshot with its binlog position, a plan of
// primary-key ranges, and readers that read a range in a consistent
// snapshot with the text protocol (encodeText).
//
// MySQL cannot share one transaction's snapshot with another connection
// (Postgres exports it), so each reader takes a consistent snapshot of its
// own, at or after the mirror's: rows it reads may hold changes committed
// after the snapshot's Position. The stream replays from that Position, and
// since the binlog carries whole rows (binlog_row_image=FULL), keyed by
// the primary key, replaying a change onto a row that already holds it
// converges: nothing is lost, nothing is applied twice in effect.
//
// The snapshot's position: MariaDB reports where a transaction's
// consistent snapshot stands in the binlog (binlog_snapshot_file and
// binlog_snapshot_position, taken with the snapshot under the binlog's
// lock), so the stream starts exactly at the snapshot. MySQL has no such status: its position is
// read (SHOW MASTER STATUS) before the snapshot is taken, so the stream
// may replay some changes the snapshot holds, which converges as above.

var snapSeq atomic.Int64

// StartMirror implements connectors.Source: the binlog position of a
// consistent snapshot (see above), read on a connection of its own. The
// snapshot's Name only identifies it: readers take snapshots of their own,
// so the transaction that told the position is ended at once rather than
// held (and holding back the server's purge of old row versions) for the
// whole load.
func (s *Source) StartMirror(ctx context.Context, _ connectors.StreamSpec) (*connectors.Snapshot, error) {
	conn, err := s.peer.Connect(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	pos, err := snapshotPosition(conn, s.flavor)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Execute("COMMIT"); err != nil {
		return nil, fmt.Errorf("end the snapshot transaction: %w", err)
	}
	p, v, err := pos.Position()
	if err != nil {
		return nil, err
	}
	name := fmt.Sprintf("mysql-snapshot-%d", snapSeq.Add(1))
	return connectors.NewSnapshot(name, p, v, nil), nil
}

// TableSnapshot is StartMirror for a table resync: the mirror's stream is
// not touched (a MySQL source keeps nothing per mirror anyway).
func (s *Source) TableSnapshot(ctx context.Context) (*connectors.Snapshot, error) {
	return s.StartMirror(ctx, connectors.StreamSpec{})
}

var _ connectors.TableSnapshotter = (*Source)(nil)

// snapshotPosition starts a consistent-snapshot transaction on conn and
// returns its binlog position.
func snapshotPosition(conn *client.Conn, flavor string) (BinlogPos, error) {
	var before BinlogPos
	if flavor == FlavorMySQL {
		// MySQL 8.4 removed SHOW MASTER STATUS for SHOW BINARY LOG STATUS
		// (8.2 and later).
		r, err := conn.Execute("SHOW BINARY LOG STATUS")
		if err != nil {
			r, err = conn.Execute("SHOW MASTER STATUS")
		}
		if err != nil {
			return BinlogPos{}, fmt.Errorf("read the binlog position: %w", err)
		}
		if r.RowNumber() == 0 {
			return BinlogPos{}, fmt.Errorf("read the binlog position: the binlog is off")
		}
		before.File, _ = r.GetString(0, 0)
		before.Offset, _ = r.GetUint(0, 1)
	}
	if err := beginSnapshot(conn); err != nil {
		return BinlogPos{}, err
	}
	if flavor == FlavorMySQL {
		return before, nil
	}
	r, err := conn.Execute("SHOW STATUS WHERE Variable_name IN ('binlog_snapshot_file', 'binlog_snapshot_position')")
	if err != nil {
		return BinlogPos{}, fmt.Errorf("read the snapshot's binlog position: %w", err)
	}
	var p BinlogPos
	for i := range r.RowNumber() {
		name, _ := r.GetString(i, 0)
		value, _ := r.GetString(i, 1)
		switch strings.ToLower(name) {
		case "binlog_snapshot_file":
			p.File = value
		case "binlog_snapshot_position":
			p.Offset, _ = strconv.ParseUint(value, 10, 64)
		}
	}
	if p.File == "" {
		return BinlogPos{}, fmt.Errorf("read the snapshot's binlog position: the server reports none (is log_bin on?)")
	}
	return p, nil
}

// beginSnapshot starts a read-only REPEATABLE READ transaction with a
// consistent snapshot on conn.
func beginSnapshot(conn *client.Conn) error {
	if _, err := conn.Execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ"); err != nil {
		return fmt.Errorf("set isolation level: %w", err)
	}
	if _, err := conn.Execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"); err != nil {
		return fmt.Errorf("start a consistent snapshot: %w", err)
	}
	return nil
}

// keyRange is one partition of a table's initial load: the rows whose
// first primary-key column is in [Lo, Hi); a nil bound is open. Stored as
// JSON, opaque to the flows.
type keyRange struct {
	Index int
	Lo    *int64 `json:",omitempty"`
	Hi    *int64 `json:",omitempty"`
}

// Plan implements connectors.Source: a table whose first key column is an
// integer is cut into ranges of that column's values, evenly between its
// current minimum and maximum, about rowsPerPartition(estimate) rows each
// (the first and last ranges are open, so rows added later are read too);
// any other table is one partition.
func (s *Source) Plan(_ context.Context, table connectors.TableName, ts *connectors.TableSchema,
	rowsPerPartition func(estimatedRows int64) int64) (connectors.PartitionPlan, error) {
	plan := connectors.PartitionPlan{EstimatedRows: ts.EstimatedRows}
	parts := []keyRange{{}}
	if len(ts.PrimaryKey) > 0 && rowsPerPartition != nil && ts.EstimatedRows > 0 {
		key := ts.Columns[ts.ColumnIndex(ts.PrimaryKey[0])]
		per := rowsPerPartition(ts.EstimatedRows)
		if isIntegerKey(key) && per > 0 && per < ts.EstimatedRows {
			r, err := s.conn.Execute(fmt.Sprintf("SELECT MIN(%[1]s), MAX(%[1]s) FROM %[2]s", quoteIdent(key.Name), quoteTable(table)))
			if err != nil {
				return plan, fmt.Errorf("plan %s: %w", table, err)
			}
			lo, err1 := r.GetInt(0, 0)
			hi, err2 := r.GetInt(0, 1)
			if err1 == nil && err2 == nil && hi > lo {
				parts = splitRange(lo, hi, (ts.EstimatedRows+per-1)/per)
			}
		}
	}
	for i := range parts {
		parts[i].Index = i
		raw, err := json.Marshal(parts[i])
		if err != nil {
			return plan, fmt.Errorf("plan %s: %w", table, err)
		}
		plan.Partitions = append(plan.Partitions, raw)
	}
	return plan, nil
}

// isIntegerKey reports whether a key column's values are integers that fit
// an int64 (bigint unsigned is numeric and is not split).
func isIntegerKey(c connectors.Column) bool {
	switch c.Type {
	case "smallint", "integer", "bigint":
		return true
	}
	return false
}

// splitRange cuts [lo, hi] into n ranges, the first open below and the
// last open above.
func splitRange(lo, hi, n int64) []keyRange {
	if n < 2 {
		return []keyRange{{}}
	}
	span := uint64(hi - lo)
	step := span / uint64(n)
	if step == 0 {
		step = 1
	}
	var out []keyRange
	var prev *int64
	for i := int64(1); i < n; i++ {
		b := lo + int64(step*uint64(i))
		if b > hi {
			break
		}
		bound := b
		out = append(out, keyRange{Lo: prev, Hi: &bound})
		prev = &bound
	}
	return append(out, keyRange{Lo: prev})
}

// quoteTable quotes database.table.
func quoteTable(t connectors.TableName) string {
	return quoteIdent(t.Schema) + "." + quoteIdent(t.Name)
}

// OpenReader implements connectors.Source: a new connection in a
// consistent snapshot of its own (see the file comment; snapshot is not
// used). Safe for concurrent use.
func (s *Source) OpenReader(ctx context.Context, _ string) (connectors.PartitionReader, error) {
	conn, err := s.peer.Connect(ctx)
	if err != nil {
		return nil, err
	}
	if err := beginSnapshot(conn); err != nil {
		conn.Close()
		return nil, err
	}
	return &partitionReader{conn: conn, flavor: s.flavor, cols: map[connectors.TableName][]colType{}}, nil
}

// partitionReader reads key ranges in its connection's snapshot. Not safe
// for concurrent use.
type partitionReader struct {
	conn   *client.Conn
	flavor string
	cols   map[connectors.TableName][]colType
}

// Read implements connectors.PartitionReader: SELECT the columns of ts
// (selectExpr) in the key range part, encoded with encodeText.
func (r *partitionReader) Read(ctx context.Context, table connectors.TableName, ts *connectors.TableSchema,
	part connectors.Partition, batch int, fn func(rows [][]connectors.Value) error, progress func(rows int64)) (int64, error) {
	var kr keyRange
	if err := json.Unmarshal(part, &kr); err != nil {
		return 0, fmt.Errorf("read %s: bad partition %s: %w", table, part, err)
	}
	cols, err := r.columns(table, ts)
	if err != nil {
		return 0, err
	}
	exprs := make([]string, len(cols))
	for i := range cols {
		exprs[i] = selectExpr(&cols[i])
	}
	q := "SELECT " + strings.Join(exprs, ", ") + " FROM " + quoteTable(table)
	var conds []string
	if len(ts.PrimaryKey) > 0 {
		k := quoteIdent(ts.PrimaryKey[0])
		if kr.Lo != nil {
			conds = append(conds, k+" >= "+strconv.FormatInt(*kr.Lo, 10))
		}
		if kr.Hi != nil {
			conds = append(conds, k+" < "+strconv.FormatInt(*kr.Hi, 10))
		}
	}
	if len(conds) > 0 {
		q += " WHERE " + strings.Join(conds, " AND ")
	}
	if batch <= 0 {
		batch = 1000
	}
	var n int64
	rows := make([][]connectors.Value, 0, batch)
	var result gomysql.Result
	err = r.conn.ExecuteSelectStreaming(q, &result, func(row []gomysql.FieldValue) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		vals := make([]connectors.Value, len(cols))
		for i := range cols {
			v, err := encodeText(&cols[i], row[i])
			if err != nil {
				return fmt.Errorf("read %s: %w", table, err)
			}
			vals[i] = v
		}
		rows = append(rows, vals)
		n++
		if len(rows) == batch {
			if err := fn(rows); err != nil {
				return err
			}
			rows = make([][]connectors.Value, 0, batch)
			if progress != nil {
				progress(n)
			}
		}
		return nil
	}, nil)
	if err != nil {
		return n, fmt.Errorf("read %s: %w", table, err)
	}
	if len(rows) > 0 {
		if err := fn(rows); err != nil {
			return n, err
		}
	}
	return n, nil
}

// columns returns the described columns of table that ts has, in ts's
// order (described once per table and reader).
func (r *partitionReader) columns(table connectors.TableName, ts *connectors.TableSchema) ([]colType, error) {
	all, ok := r.cols[table]
	if !ok {
		var err error
		if all, err = describeColumns(r.conn, r.flavor, table); err != nil {
			return nil, err
		}
		r.cols[table] = all
	}
	out := make([]colType, len(ts.Columns))
	for i, c := range ts.Columns {
		found := false
		for _, d := range all {
			if d.Name == c.Name {
				out[i], found = d, true
				if err := mapType(&out[i]); err != nil {
					return nil, err
				}
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("read %s: column %q is gone from the source", table, c.Name)
		}
	}
	return out, nil
}

// Close implements connectors.PartitionReader.
func (r *partitionReader) Close(context.Context) error {
	r.conn.Close()
	return nil
}
