package mysql

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/sluicedb/sluice/connectors"
)

// Row summaries for VALIDATE MIRROR (connectors.SnapshotSummer): counts and
// checksums computed by MariaDB in one query per table, in the form
// connectors/summary.go defines, each column rendered as the destination
// renders the value Sluice mirrored (types.go's mapping, encode.go's
// values).
//
// The snapshot: MySQL cannot hand a transaction's snapshot to another
// connection, so SummarySnapshot keeps the connection that took it, in its
// transaction, on the Source, and SummarizeSnapshot queries on it (one at a
// time). Only MariaDB tells the exact binlog position of a consistent
// snapshot (binlog_snapshot_file and _position); MySQL's position is read
// before the snapshot is taken, and a transaction committed in between
// would be in the snapshot and after the position, a false difference.
// MySQL sources are refused.

var (
	_ connectors.SnapshotSummer     = (*Source)(nil)
	_ connectors.SummarySnapshotter = (*Source)(nil)
)

// heldSnapshot is a snapshot transaction kept open for summaries.
type heldSnapshot struct {
	name string
	conn *client.Conn
}

// SummarySnapshot implements connectors.SummarySnapshotter: a consistent
// snapshot on a connection of its own, kept open (its transaction too)
// until the snapshot or the Source is closed. A Source holds one: taking
// another releases the first. Refused for MySQL (see the file comment).
func (s *Source) SummarySnapshot(ctx context.Context) (*connectors.Snapshot, error) {
	if s.flavor != FlavorMariaDB {
		return nil, errors.New("VALIDATE MIRROR needs the exact binlog position of a consistent snapshot, " +
			"which only MariaDB reports (binlog_snapshot_position); a MySQL source is not supported")
	}
	conn, err := s.peer.Connect(ctx)
	if err != nil {
		return nil, err
	}
	pos, err := snapshotPosition(conn, s.flavor)
	if err != nil {
		conn.Close()
		return nil, err
	}
	p, v, err := pos.Position()
	if err != nil {
		conn.Close()
		return nil, err
	}
	h := &heldSnapshot{name: fmt.Sprintf("mysql-summary-snapshot-%d", snapSeq.Add(1)), conn: conn}
	s.mu.Lock()
	prev := s.held
	s.held = h
	s.mu.Unlock()
	if prev != nil {
		prev.conn.Close()
	}
	return connectors.NewSnapshot(h.name, p, v, func() { s.release(h.name) }), nil
}

// release ends the held snapshot name, if it is still held; "": whichever
// is held.
func (s *Source) release(name string) {
	s.mu.Lock()
	h := s.held
	if h != nil && (name == "" || h.name == name) {
		s.held = nil
	}
	s.mu.Unlock()
	if h != nil && (name == "" || h.name == name) {
		h.conn.Close() // the transaction ends with it (read only: nothing to roll back)
	}
}

// SummarizeSnapshot implements connectors.SnapshotSummer: table summarized
// in the snapshot SummarySnapshot holds under that name.
func (s *Source) SummarizeSnapshot(ctx context.Context, snapshot string, table connectors.TableName,
	spec connectors.SummarySpec) (connectors.RowSummary, error) {
	var out connectors.RowSummary
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held == nil || s.held.name != snapshot {
		return out, fmt.Errorf("summarize %s: snapshot %q is not held by this source", table, snapshot)
	}
	conn := s.held.conn
	if err := ctx.Err(); err != nil {
		return out, err
	}
	// The client does not watch ctx: a query still running when it ends
	// is killed from a connection of its own.
	defer context.AfterFunc(ctx, func() { s.killQuery(conn.GetConnectionID()) })()
	q, err := s.summarySQL(conn, table, spec)
	if err != nil {
		return out, err
	}
	r, err := conn.Execute(q)
	if err != nil {
		return out, fmt.Errorf("summarize %s: %w", table, err)
	}
	for i := range r.Values {
		row := r.Values[i]
		if len(row) != 5 {
			return out, fmt.Errorf("summarize %s: %d columns in a summary row", table, len(row))
		}
		bucket, n := fieldInt(row[0]), fieldInt(row[1])
		var sum *string
		if row[2].Type != gomysql.FieldValueTypeNull {
			v := string(row[2].AsString())
			sum = &v
		}
		lo, hi := fieldInt(row[3]), fieldInt(row[4]) // nil without a key
		if bucket == nil || n == nil {
			return out, fmt.Errorf("summarize %s: a summary row without its range or count", table)
		}
		out.AddRange(spec, *bucket, *n, sum, lo, hi)
	}
	return out, nil
}

// killQuery ends the query running on connection id, if any (best effort:
// the summary then fails with the server's error).
func (s *Source) killQuery(id uint32) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := s.peer.Connect(ctx)
	if err != nil {
		return
	}
	defer conn.Close()
	_, _ = conn.Execute(fmt.Sprintf("KILL QUERY %d", id))
}

// fieldInt reads an integer the text protocol returned (parsed or as
// text); nil for NULL or what is not an integer.
func fieldInt(v gomysql.FieldValue) *int64 {
	var n int64
	switch v.Type {
	case gomysql.FieldValueTypeSigned:
		n = v.AsInt64()
	case gomysql.FieldValueTypeUnsigned:
		n = int64(v.AsUint64())
	case gomysql.FieldValueTypeString:
		if _, err := fmt.Sscan(string(v.AsString()), &n); err != nil {
			return nil
		}
	default:
		return nil
	}
	return &n
}

// CanRender implements connectors.SnapshotSummer: what MariaDB renders
// exactly as a destination renders the mirrored value (c is the column as
// the destination has it, of types.go's Postgres types). Not: floats
// (Postgres prints the shortest exact digits, MariaDB does not), time
// (interval's text), set (text[]'s quoting), json (jsonb's text is
// normalized: key order, spacing), bool (no MySQL type maps to it).
func (s *Source) CanRender(c connectors.Column, r connectors.Rendering) bool {
	switch c.TypeOID {
	case pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID, pgtype.VarcharOID, pgtype.TextOID, pgtype.VarbitOID:
		return r == connectors.RenderText
	case pgtype.NumericOID:
		return r == connectors.RenderText || r == connectors.RenderTrimmedDecimal
	case pgtype.DateOID:
		return r == connectors.RenderText || r == connectors.RenderDate
	case pgtype.TimestampOID, pgtype.TimestamptzOID:
		return r == connectors.RenderText || r == connectors.RenderEpochMicros
	case pgtype.ByteaOID:
		return r == connectors.RenderText || r == connectors.RenderHex
	}
	return false
}

// summarySQL is the query of SummarizeSnapshot: one row per range (bucket,
// count, checksum, min and max key), or one row for the whole table. Run
// on conn, in the snapshot, whose session is in UTC (Connect).
func (s *Source) summarySQL(conn *client.Conn, table connectors.TableName, spec connectors.SummarySpec) (string, error) {
	key, bucket := "CAST(NULL AS SIGNED)", "0"
	if spec.Key != "" {
		key = "CAST(" + quoteIdent(spec.Key) + " AS SIGNED)"
		if spec.Width > 0 {
			bucket = fmt.Sprintf("(CASE WHEN %[1]s >= 0 THEN %[1]s DIV %[2]d ELSE (%[1]s + 1) DIV %[2]d - 1 END)", key, spec.Width)
		}
	}
	if !spec.Checksum {
		return fmt.Sprintf("SELECT 0, COUNT(*), NULL, MIN(%s), MAX(%s) FROM %s", key, key, quoteTable(table)), nil
	}
	all, err := describeColumns(conn, s.flavor, table)
	if err != nil {
		return "", err
	}
	parts := []string{"''"}
	for _, sc := range spec.Columns {
		var c *colType
		for i := range all {
			if all[i].Name == sc.Name {
				c = &all[i]
				break
			}
		}
		if c == nil {
			return "", fmt.Errorf("summarize %s: column %q is gone from the source", table, sc.Name)
		}
		if err := mapType(c); err != nil {
			return "", fmt.Errorf("summarize %s: %w", table, err)
		}
		r, err := render(c, sc.Render)
		if err != nil {
			return "", fmt.Errorf("summarize %s: %w", table, err)
		}
		parts = append(parts, fmt.Sprintf("IFNULL(CONCAT('v', CHAR_LENGTH(%[1]s), ':', %[1]s), 'n')", r))
	}
	row := "CONVERT(CONCAT(" + strings.Join(parts, ", ") + ") USING utf8mb4)"
	hash := "CAST(CONV(SUBSTRING(MD5(" + row + "), 1, 15), 16, 10) AS UNSIGNED)"
	return fmt.Sprintf(`SELECT _sluice_b, COUNT(*), CAST(MOD(SUM(_sluice_h), 18446744073709551616) AS CHAR), MIN(_sluice_k), MAX(_sluice_k)
FROM (SELECT %s AS _sluice_b, %s AS _sluice_h, %s AS _sluice_k FROM %s) s GROUP BY _sluice_b`, bucket, hash, key, quoteTable(table)), nil
}
