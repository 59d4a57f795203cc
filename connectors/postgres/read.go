package postgres

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/connectors"
)

// ReadPartition reads partition p of table source on src, which must be
// inside a snapshot transaction (see BeginSnapshot), as rows of
// connectors.Value in the binary send format of each column's type (the
// form CDC changes carry), for destinations that are not Postgres. It
// calls fn with each row, in batches of up to batch rows; fn owns nothing
// it is given once it returns (the rows are reused). It returns the number
// of rows read. An error of fn stops the read (the source transaction is
// then finished: roll it back). progress, when not nil, is called after
// each row the source sends with the number of rows received so far, from
// a goroutine of ReadPartition's (as CopyJob.Progress), ahead of fn.
func ReadPartition(ctx context.Context, src *pgx.Conn, source connectors.TableName, columns []string, p Partition,
	batch int, fn func(rows [][]connectors.Value) error, progress func(rows int64)) (int64, error) {
	if len(columns) == 0 {
		return 0, errors.New("read partition: no columns")
	}
	exprs, err := readExprs(ctx, src, source, columns)
	if err != nil {
		return 0, fmt.Errorf("read %s partition %d: %w", source, p.Index, err)
	}
	query := "COPY (" + partitionQuery(source, exprs, p) + ") TO STDOUT (FORMAT binary)"
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		bw := bufio.NewWriterSize(pw, copyBufferSize)
		_, err := src.PgConn().CopyTo(rctx, countRows(bw, progress), query)
		if err == nil {
			err = bw.Flush()
		}
		pw.CloseWithError(err)
		done <- err
	}()
	n, err := decodeCopy(pr, len(columns), max(batch, 1), fn)
	if err != nil {
		pr.CloseWithError(err)
		cancel()
		<-done
		return n, fmt.Errorf("read %s partition %d: %w", source, p.Index, err)
	}
	if err := <-done; err != nil {
		return n, fmt.Errorf("read %s partition %d: %w", source, p.Index, err)
	}
	return n, nil
}

// readExprs returns the SELECT expressions that read columns of source:
// each column quoted, xml ones cast to text. xml's send function drops a
// declaration that says only version="1.0"; the text is the value as
// stored, and its binary form is the same string xml's would be.
func readExprs(ctx context.Context, src *pgx.Conn, source connectors.TableName, columns []string) ([]string, error) {
	rows, err := src.Query(ctx, `
SELECT a.attname::text FROM pg_attribute a
WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped AND a.atttypid = $2 AND a.attname = ANY($3)`,
		source.Quoted(), uint32(xmlOID), columns)
	if err != nil {
		return nil, fmt.Errorf("read column types: %w", err)
	}
	xml, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read column types: %w", err)
	}
	exprs := quotedList(columns)
	for i, c := range columns {
		if slices.Contains(xml, c) {
			exprs[i] += "::text"
		}
	}
	return exprs, nil
}

func quotedList(columns []string) []string {
	out := make([]string, len(columns))
	for i, c := range columns {
		out[i] = quoteIdent(c)
	}
	return out
}

// readN returns the next n bytes of br (valid until its next read) and
// moves past them.
func readN(br *bufio.Reader, n int) ([]byte, error) {
	p, err := br.Peek(n)
	if err != nil {
		if err == io.EOF && len(p) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	_, _ = br.Discard(n) // cannot fail after a successful Peek
	return p, nil
}

// decodeCopy parses a binary COPY stream of rows of width columns. Each
// batch's rows share one array of values, and their data blocks of
// arenaSize bytes: a few allocations per batch instead of one per row and
// value. Nothing is reused: fn may keep what it is given.
func decodeCopy(r io.Reader, width, batch int, fn func([][]connectors.Value) error) (int64, error) {
	br := bufio.NewReaderSize(r, copyBufferSize)
	// The signature (11 bytes), int32 flags, int32 extension length.
	head := make([]byte, 19)
	if _, err := io.ReadFull(br, head); err != nil {
		return 0, fmt.Errorf("copy header: %w", err)
	}
	if !bytes.Equal(head[:11], copySignature[:11]) {
		return 0, errors.New("not a binary COPY stream")
	}
	if ext := binary.BigEndian.Uint32(head[15:]); ext > 0 {
		if _, err := br.Discard(int(ext)); err != nil {
			return 0, fmt.Errorf("copy header extension: %w", err)
		}
	}
	rows := make([][]connectors.Value, 0, batch)
	var vals []connectors.Value // the batch's values still free
	var arena []byte            // the current data block's free bytes
	var n int64
	for {
		p, err := readN(br, 2)
		if err != nil {
			return n, fmt.Errorf("row %d: %w", n, err)
		}
		fields := int16(binary.BigEndian.Uint16(p))
		if fields == -1 {
			break
		}
		if int(fields) != width {
			return n, fmt.Errorf("row %d has %d fields, want %d", n, fields, width)
		}
		if len(vals) < width {
			vals = make([]connectors.Value, width*(batch-len(rows)))
		}
		row := vals[:width:width]
		vals = vals[width:]
		for i := range row {
			p, err := readN(br, 4)
			if err != nil {
				return n, fmt.Errorf("row %d: %w", n, err)
			}
			size := int(int32(binary.BigEndian.Uint32(p)))
			if size < 0 {
				row[i] = connectors.Value{Kind: connectors.Null}
				continue
			}
			var data []byte
			if size > arenaSize/8 {
				data = make([]byte, size)
			} else {
				if len(arena) < size {
					arena = make([]byte, arenaSize)
				}
				data, arena = arena[:size:size], arena[size:]
			}
			if _, err := io.ReadFull(br, data); err != nil {
				return n, fmt.Errorf("row %d: %w", n, err)
			}
			row[i] = connectors.Value{Kind: connectors.Binary, Data: data}
		}
		rows = append(rows, row)
		n++
		if len(rows) == batch {
			if err := fn(rows); err != nil {
				return n, err
			}
			rows, vals = rows[:0], nil
		}
	}
	if len(rows) > 0 {
		if err := fn(rows); err != nil {
			return n, err
		}
	}
	return n, nil
}
