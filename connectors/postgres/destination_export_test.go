package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/connectors"
)

// Test-only stand-ins for the Postgres source's reader and Source, with the
// unexported methods the destination's fast paths look for.

// errFastPathMissed is what the test reader's Read returns: a Loader given
// it must copy through snapshotConn instead.
var errFastPathMissed = errors.New("test snapshot reader: Read called, the fast path was not taken")

// testSnapshotReader is a snapshotReader over a connection inside a
// snapshot transaction.
type testSnapshotReader struct {
	conn *pgx.Conn
	tx   pgx.Tx
}

// NewTestSnapshotReader returns a PartitionReader that a Postgres Loader
// copies from directly: conn, put in a snapshot transaction under snapshot
// (BeginSnapshot; "" for a fresh one). Its Read fails. Close rolls the
// transaction back; the caller closes conn.
func NewTestSnapshotReader(ctx context.Context, conn *pgx.Conn, snapshot string) (connectors.PartitionReader, error) {
	tx, err := BeginSnapshot(ctx, conn, snapshot)
	if err != nil {
		return nil, err
	}
	return &testSnapshotReader{conn: conn, tx: tx}, nil
}

func (r *testSnapshotReader) snapshotConn() *pgx.Conn { return r.conn }

func (r *testSnapshotReader) decodePartition(p connectors.Partition) (Partition, error) {
	var part Partition
	if err := json.Unmarshal(p, &part); err != nil {
		return Partition{}, fmt.Errorf("decode partition %s: %w", p, err)
	}
	return part, nil
}

func (r *testSnapshotReader) Read(context.Context, connectors.TableName, *connectors.TableSchema, connectors.Partition, int,
	func([][]connectors.Value) error, func(int64)) (int64, error) {
	return 0, errFastPathMissed
}

func (r *testSnapshotReader) Close(ctx context.Context) error { return r.tx.Rollback(ctx) }

// testSQLSource is a Source with a SQL connection (sqlSource) and nothing
// else: any other method panics.
type testSQLSource struct {
	connectors.Source
	conn *pgx.Conn
}

func (s testSQLSource) sqlConn() *pgx.Conn { return s.conn }

// NewTestSQLSource returns a Source whose back-fills a Postgres destination
// copies straight from conn. Only that is implemented.
func NewTestSQLSource(conn *pgx.Conn) connectors.Source { return testSQLSource{conn: conn} }
