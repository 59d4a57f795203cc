package postgres

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/sluicedb/sluice/connectors"
)

var (
	_ connectors.PartitionReader = (*partitionReader)(nil)
	_ connectors.Stream          = (*sourceStream)(nil)
)

// readerBufferSize is the read buffer of a partition reader's connection.
// A binary COPY TO sends each row in a message of its own, and pgproto3
// reads the socket into an 8 kB buffer, one system call each: loading
// pgbench_accounts at scale 30 (330 MB) spent 220 ms of Sluice's 580 ms of
// CPU in those reads. While the destination is the slower side the socket
// holds far more than 8 kB, and one read takes it all (50 ms).
const readerBufferSize = 256 << 10

// connectReader is ConnectSQL for a partition reader: the same connection,
// reading the socket through a buffer of readerBufferSize. The connection
// must not be hijacked (pgconn's SyncConn does not see that buffer).
func (c *PeerConfig) connectReader(ctx context.Context, appName string) (*pgx.Conn, error) {
	pcfg, err := c.ConnConfig(appName)
	if err != nil {
		return nil, err
	}
	pcfg.BuildFrontend = func(r io.Reader, w io.Writer) *pgproto3.Frontend {
		return pgproto3.NewFrontend(bufio.NewReaderSize(r, readerBufferSize), w)
	}
	return c.connectSQL(ctx, pcfg)
}

// partitionReader is the Source's connectors.PartitionReader: a connection
// of its own inside a snapshot transaction.
type partitionReader struct {
	conn *pgx.Conn
	tx   pgx.Tx
}

// snapshotConn returns the reader's connection, inside its snapshot
// transaction, for a Postgres destination that copies a partition straight
// from it (CopyPartition). The reader keeps owning it.
func (r *partitionReader) snapshotConn() *pgx.Conn { return r.conn }

// decodePartition decodes a partition that Source.Plan made.
func (r *partitionReader) decodePartition(p connectors.Partition) (Partition, error) {
	var part Partition
	if err := json.Unmarshal(p, &part); err != nil {
		return Partition{}, fmt.Errorf("decode partition %s: %w", p, err)
	}
	return part, nil
}

// Read implements connectors.PartitionReader with ReadPartition: the
// columns of ts, in the binary send format of their types.
func (r *partitionReader) Read(ctx context.Context, table connectors.TableName, ts *connectors.TableSchema,
	part connectors.Partition, batch int, fn func(rows [][]connectors.Value) error, progress func(rows int64)) (int64, error) {
	p, err := r.decodePartition(part)
	if err != nil {
		return 0, err
	}
	return ReadPartition(ctx, r.conn, table, ts.ColumnNames(), p, batch, fn, progress)
}

// Close implements connectors.PartitionReader: it rolls the snapshot
// transaction back and closes the connection.
func (r *partitionReader) Close(ctx context.Context) error {
	_ = r.tx.Rollback(ctx)
	return r.conn.Close(ctx)
}

// ReadColumns implements connectors.ColumnReader: key and then cols of
// every row of table, in binary form (ReadPartition over the whole table),
// read on a connection of its own in a snapshot transaction.
func (s *Source) ReadColumns(ctx context.Context, table connectors.TableName, key, cols []string, batch int,
	fn func(rows [][]connectors.Value) error) (int64, error) {
	r, err := s.OpenReader(ctx, "")
	if err != nil {
		return 0, err
	}
	defer r.Close(context.Background())
	all := append(append([]string{}, key...), cols...)
	n, err := ReadPartition(ctx, r.(*partitionReader).conn, table, all, Partition{StartPage: 0, EndPage: -1}, batch, fn, nil)
	if err != nil {
		return n, fmt.Errorf("read columns of %s: %w", table, err)
	}
	return n, nil
}

// sourceStream is the Source's stream: a Stream with an SQL connection of
// its own, closed with it, whose read errors name a lost slot.
type sourceStream struct {
	*Stream
	sql     *pgx.Conn
	src     *PeerConfig
	appName string
	spec    connectors.StreamSpec
}

// Read implements connectors.Stream: Stream.Read, with an error wrapping
// connectors.ErrStreamLost when the source invalidated the slot.
func (s *sourceStream) Read(ctx context.Context, buf []connectors.Event, max int, wait time.Duration) ([]connectors.Event, error) {
	out, err := s.Stream.Read(ctx, buf, max, wait)
	if err != nil {
		return out, explainStreamError(ctx, s.src, s.appName, s.spec, err)
	}
	return out, nil
}

// Close implements connectors.Stream: it closes the replication connection
// and the stream's SQL connection (after a Heartbeat under way ends).
func (s *sourceStream) Close(ctx context.Context) error {
	err := s.Stream.Close(ctx)
	s.sqlMu.Lock()
	defer s.sqlMu.Unlock()
	if cerr := s.sql.Close(ctx); err == nil {
		err = cerr
	}
	return err
}
