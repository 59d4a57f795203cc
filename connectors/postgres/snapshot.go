package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sluicedb/sluice/connectors"
)

// Partition is a range of heap pages of a source table, the unit of the
// initial load: [StartPage, EndPage), or every page from StartPage on when
// EndPage < 0 (the last partition, so that rows stored beyond the pages
// counted at planning time are copied too).
type Partition struct {
	Index     int
	StartPage int64
	EndPage   int64
}

// defaultRowsPerPage is the density PlanPartitions assumes for a table
// that has pages but no row estimate (never analyzed): about 130-byte rows.
const defaultRowsPerPage = 50

// maxPartitions bounds the partitions of one table, whatever the sizes.
const maxPartitions = 1_000_000

// PlanPartitions splits a table of pages heap pages and about estRows rows
// into partitions of roughly rowsPerPartition rows each, assuming rows are
// spread evenly over the pages. The partitions are numbered from 0, cover
// the pages from 0 contiguously, and the last is open-ended. There is always
// at least one; an empty table, or rowsPerPartition <= 0, gives a single
// open-ended partition. A partition is never smaller than one page, and
// there are at most maxPartitions. When estRows is unknown (0) for a table
// with pages, a density of defaultRowsPerPage rows per page is assumed: a
// wrong estimate changes the partitions' sizes, never which rows are
// copied. PlanPartitions is a pure function.
func PlanPartitions(pages, estRows, rowsPerPartition int64) []Partition {
	if pages <= 0 || rowsPerPartition <= 0 {
		return []Partition{{Index: 0, StartPage: 0, EndPage: -1}}
	}
	if estRows <= 0 {
		estRows = pages * defaultRowsPerPage
	}
	n := (estRows-1)/rowsPerPartition + 1
	n = max(1, min(n, pages, maxPartitions))
	parts := make([]Partition, n)
	// bound(i) = i*pages/n without overflow.
	bound := func(i int64) int64 {
		hi, lo := bits.Mul64(uint64(i), uint64(pages))
		q, _ := bits.Div64(hi, lo, uint64(n))
		return int64(q)
	}
	for i := range n {
		parts[i] = Partition{Index: int(i), StartPage: bound(i), EndPage: bound(i + 1)}
	}
	parts[n-1].EndPage = -1
	return parts
}

// CountRows counts the rows of source table t (SELECT count(*)), for a
// table whose size pg_class does not know yet (never analyzed). It only
// reads, in q's transaction if q is one.
func CountRows(ctx context.Context, q Querier, t connectors.TableName) (int64, error) {
	var n int64
	if err := q.QueryRow(ctx, "SELECT count(*) FROM "+t.Quoted()).Scan(&n); err != nil {
		return 0, fmt.Errorf("count rows of %s: %w", t, err)
	}
	return n, nil
}

// PartitionQuery returns the SELECT of columns cols of table src whose rows
// lie in partition p, as a TID range (a TID Range Scan from Postgres 14 on;
// older servers filter a sequential scan). A partition of the whole table
// (a table loaded in one) reads it with a plain sequential scan: Postgres
// begins a TID range scan without the bulk-read strategy, so it reads
// through shared buffers, and on pgbench_accounts at scale 30 it costs the
// source about 20% more CPU than the sequential scan, which reads through a
// small ring of buffers.
func PartitionQuery(src connectors.TableName, cols []string, p Partition) string {
	exprs := make([]string, len(cols))
	for i, c := range cols {
		exprs[i] = quoteIdent(c)
	}
	return partitionQuery(src, exprs, p)
}

func partitionQuery(src connectors.TableName, exprs []string, p Partition) string {
	q := fmt.Sprintf("SELECT %s FROM %s", strings.Join(exprs, ", "), src.Quoted())
	if p.StartPage <= 0 && p.EndPage < 0 {
		return q
	}
	q += fmt.Sprintf(" WHERE ctid >= '(%d,0)'::tid", p.StartPage)
	if p.EndPage >= 0 {
		q += fmt.Sprintf(" AND ctid < '(%d,0)'::tid", p.EndPage)
	}
	return q
}

// BeginSnapshot starts a REPEATABLE READ, READ ONLY transaction on conn
// that reads under the exported snapshot snapshotName (from
// pg_export_snapshot or a replication slot made with an exported
// snapshot), or under a fresh snapshot, taken at its first query, when
// snapshotName is empty. The caller owns the transaction and ends it.
func BeginSnapshot(ctx context.Context, conn *pgx.Conn, snapshotName string) (pgx.Tx, error) {
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("begin snapshot transaction: %w", err)
	}
	if snapshotName != "" {
		if _, err := tx.Exec(ctx, "SET TRANSACTION SNAPSHOT "+quoteLiteral(snapshotName)); err != nil {
			_ = tx.Rollback(ctx)
			return nil, fmt.Errorf("import snapshot %q: %w", snapshotName, err)
		}
	}
	return tx, nil
}

// CopyJob is one partition of one table to load. The destination table
// exists (see CreateTableDDL) and has the columns.
type CopyJob struct {
	Source, Dest connectors.TableName
	// Columns are the replicated columns, named as on both sides.
	Columns []string
	// PrimaryKey is the destination's primary key; required with Upsert.
	PrimaryKey []string
	Partition  Partition
	// Meta is the destination's metadata schema ("" for the default) and
	// Mirror the mirror's name, for MarkPartitionDone, which records the
	// partition under Source.
	Meta, Mirror string
	// Upsert loads through a temporary table and INSERT ... ON CONFLICT
	// (PrimaryKey) DO UPDATE, for a load resumed under a newer snapshot
	// than the one some rows were loaded with. The primary key must exist.
	Upsert bool
	// SoftDeleteColumn and SyncedAtColumn, when set, are reset by an
	// upsert to false and now() on rows that already existed.
	SoftDeleteColumn, SyncedAtColumn string
	// Progress, when set, is called after each row read from the source
	// with the number of rows of the partition read so far (not yet
	// committed), from a goroutine of CopyPartition's, never after
	// CopyPartition returns. It slows the copy by what it takes.
	Progress func(rows int64)
	// Epoch is the lease epoch the load was planned under (0: no check):
	// a partition of an earlier epoch than Meta records for Mirror is
	// refused, with a *connectors.FencedError, and nothing is written
	// (checkLoadEpoch).
	Epoch int64
}

// loadStageTable is the temporary table a staged load copies into.
const loadStageTable = `pg_temp."_sluice_load"`

// errCopyAborted is what the source side of a copy sees when the
// destination side stopped reading.
var errCopyAborted = errors.New("copy aborted: the destination side failed")

// CopyPartition copies partition job.Partition of job.Source, read on src,
// into job.Dest on dst, and returns the number of rows copied.
//
// src must be inside a transaction under the load's snapshot (see
// BeginSnapshot); dst must be idle, outside a transaction. The rows stream
// as binary COPY from src straight into a COPY on dst, with no decoding and
// no staging on disk, in one dst transaction that also records the
// partition with MarkPartitionDone: on success the partition is loaded and
// marked, on error neither. A partition of a stale lease epoch
// (job.Epoch) is refused in that transaction, nothing written. Arrays of enums, whose binary form names the
// source's enum OID, are sent as text[] into a temporary table and cast on
// insert; arrays of domains are sent as arrays of their base type.
//
// An error on either side stops the other, and CopyPartition returns once
// both have (no goroutine outlives it). After an error the caller treats
// the source transaction as finished (it is aborted, or its connection was
// closed to abandon the COPY): it rolls it back and, to retry, takes a new
// connection or snapshot transaction. dst stays usable unless its
// connection broke (a cancelled ctx may close either connection, as its
// context watcher decides).
//
// CopyPartition uses src and dst exclusively until it returns. To load
// partitions in parallel, give each worker its own pair of connections,
// each source connection importing the same exported snapshot.
func CopyPartition(ctx context.Context, src *pgx.Conn, dst *pgx.Conn, job CopyJob) (rows int64, err error) {
	fail := func(err error) (int64, error) {
		return 0, fmt.Errorf("copy %s partition %d into %s: %w", job.Source, job.Partition.Index, job.Dest, err)
	}
	if len(job.Columns) == 0 {
		return fail(errors.New("no columns to copy"))
	}
	if job.Upsert && len(job.PrimaryKey) == 0 {
		return fail(errors.New("an upsert needs the primary key"))
	}
	plan, err := planCopy(ctx, src, job)
	if err != nil {
		return fail(err)
	}

	tx, err := dst.Begin(ctx)
	if err != nil {
		return fail(err)
	}
	defer func() {
		if err != nil {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			_ = tx.Rollback(rctx)
			cancel()
		}
	}()
	if err = checkLoadEpoch(ctx, tx, job.Meta, job.Mirror, job.Epoch, false); err != nil {
		return fail(err)
	}

	target := job.Dest.Quoted()
	if plan.staged {
		if err := plan.destTypes(ctx, tx, job.Dest); err != nil {
			return fail(err)
		}
		if _, err := tx.Exec(ctx, plan.createStage(job.Dest)); err != nil {
			return fail(fmt.Errorf("create staging table: %w", err))
		}
		target = loadStageTable
	}
	out := plan.copyOut(job.Source, job.Partition)
	in := "COPY " + target + " (" + quoteIdents(job.Columns) + ") FROM STDIN (FORMAT binary)"
	rows, err = pipeCopy(ctx, src.PgConn(), tx.Conn().PgConn(), out, in, job.Progress)
	if err != nil {
		return fail(err)
	}
	if plan.staged {
		if _, err := tx.Exec(ctx, plan.insertFromStage(job)); err != nil {
			return fail(fmt.Errorf("insert from staging table: %w", err))
		}
	}
	if err = checkLoadEpoch(ctx, tx, job.Meta, job.Mirror, job.Epoch, true); err != nil {
		return fail(err)
	}
	if err = MarkPartitionDone(ctx, tx, job.Meta, job.Mirror, job.Source, job.Partition.Index, rows, !job.Upsert); err != nil {
		return fail(err)
	}
	if err = tx.Commit(ctx); err != nil {
		return fail(fmt.Errorf("commit: %w", err))
	}
	return rows, nil
}

// pipeCopy runs COPY out on src and COPY in on dst, feeding the first's
// data to the second, and returns the row count.
//
// The source's COPY is read off its socket (copyOut) straight into the
// buffers the destination's COPY sends. When one side fails the other is
// stopped, and pipeCopy returns once both have; the first error wins. A
// failed source ends the destination's COPY with CopyFail, so dst stays
// usable. A failed destination leaves the source's COPY unread: its
// connection is closed. progress, when not nil, gets the rows read so far.
func pipeCopy(ctx context.Context, src, dst *pgconn.PgConn, out, in string, progress func(int64)) (int64, error) {
	r, err := startCopyOut(ctx, src, out, progress)
	if err != nil {
		return 0, fmt.Errorf("source: %w", err)
	}
	inTag, err := dst.CopyFrom(ctx, r, in)
	if err != nil {
		if serr := r.abort(ctx); serr != nil && !errors.Is(serr, errCopyOutAborted) {
			err = fmt.Errorf("source: %w", serr)
		} else {
			err = fmt.Errorf("destination: %w", err)
		}
		// A done context can surface as any network error: say why.
		if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
			return 0, fmt.Errorf("%w: %v", cerr, err)
		}
		return 0, err
	}
	rows, err := r.result(ctx)
	if err != nil {
		return 0, fmt.Errorf("source: %w", err)
	}
	if rows != inTag.RowsAffected() {
		return 0, fmt.Errorf("source sent %d rows but destination received %d", rows, inTag.RowsAffected())
	}
	return rows, nil
}

// copyBufferSize is the size of the chunks a copy sends to the destination.
const copyBufferSize = 64 << 10

// countRows returns w, or, when progress is not nil, a writer that passes a
// binary COPY TO stream through to w and calls progress with the number
// of rows written so far after each row. pgconn's CopyTo writes each
// CopyData message with one Write, and the server sends each row in a
// message of its own: the header goes with the first row (alone, or with
// the trailer, when there is no row) and the trailer alone. So the count
// is exact after each row, and at the end equals the rows COPY reports.
func countRows(w io.Writer, progress func(int64)) io.Writer {
	if progress == nil {
		return w
	}
	return &rowCounter{w: w, progress: progress}
}

type rowCounter struct {
	w        io.Writer
	n        int64
	progress func(int64)
}

func (c *rowCounter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	if err == nil && isCopyRow(p) {
		c.n++
		c.progress(c.n)
	}
	return n, err
}

// copyHeaderSize is the size of a binary COPY header without extension:
// the signature, int32 flags, int32 extension length.
const copyHeaderSize = 19

// isCopyRow reports whether a CopyData message of a binary COPY TO holds a
// row: it is not the trailer (int16 -1), nor the header alone or with the
// trailer. A row takes at least 6 bytes (a field count and one field's
// length), so the header with a row is longer than with the trailer.
func isCopyRow(msg []byte) bool {
	if len(msg) == 2 && msg[0] == 0xff && msg[1] == 0xff {
		return false
	}
	return !(len(msg) <= copyHeaderSize+2 && bytes.HasPrefix(msg, copySignature[:11]))
}

// copyPlan is how the columns of a job travel.
type copyPlan struct {
	cols     []string
	srcExprs []string // source SELECT list
	// asText marks arrays of enums, sent as text[]; their destination
	// types (destType) are read from dst.
	asText   []bool
	destType []string
	upsert   bool
	staged   bool
	table    bool // the source is a plain table (not a view, a partitioned table...)
}

// copyOut returns the COPY that reads partition p of src. A partition of
// the whole of a plain table whose columns all travel as stored is read by
// COPY table (columns) TO, which scans the table without the executor: on
// pgbench_accounts it cost the source about 10% less CPU than COPY (SELECT
// ...) TO. Anything else is the SELECT of partitionQuery.
func (p *copyPlan) copyOut(src connectors.TableName, part Partition) string {
	plain := p.table && part.StartPage <= 0 && part.EndPage < 0
	for i, c := range p.cols {
		plain = plain && p.srcExprs[i] == quoteIdent(c)
	}
	if plain {
		return "COPY " + src.Quoted() + " (" + quoteIdents(p.cols) + ") TO STDOUT (FORMAT binary)"
	}
	return "COPY (" + partitionQuery(src, p.srcExprs, part) + ") TO STDOUT (FORMAT binary)"
}

// The oids of xml and xml[] (pg_type.dat), whose values the load reads as
// text (see planCopy).
const (
	xmlOID      = 142
	xmlArrayOID = 143
)

// planCopy reads the source types of the job's columns (inside the
// snapshot transaction) and decides how each travels.
func planCopy(ctx context.Context, src *pgx.Conn, job CopyJob) (*copyPlan, error) {
	p := &copyPlan{cols: job.Columns, srcExprs: make([]string, len(job.Columns)), asText: make([]bool, len(job.Columns)),
		upsert: job.Upsert, staged: job.Upsert}
	// Only user-defined types (or arrays of them) can need a conversion.
	rows, err := src.Query(ctx, `
SELECT a.attname::text, a.atttypid, a.atttypmod, format_type(a.atttypid, a.atttypmod),
       a.atttypid >= $3 OR coalesce(t.typelem >= $3, false), c.relkind::text
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid JOIN pg_class c ON c.oid = a.attrelid
WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped AND a.attname = ANY($2)`,
		job.Source.Quoted(), job.Columns, uint32(firstUserOID))
	if err != nil {
		return nil, fmt.Errorf("read column types: %w", err)
	}
	type attr struct {
		name     string
		typ      uint32
		typmod   int32
		declared string
		user     bool
		relkind  string
	}
	attrs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (attr, error) {
		var a attr
		err := r.Scan(&a.name, &a.typ, &a.typmod, &a.declared, &a.user, &a.relkind)
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("read column types: %w", err)
	}
	if len(attrs) == 0 {
		return nil, fmt.Errorf("read column types: %w: %s", ErrTableNotFound, job.Source)
	}
	p.table = attrs[0].relkind == "r"
	res := &typeResolver{q: src}
	for i, c := range job.Columns {
		k := -1
		for j := range attrs {
			if attrs[j].name == c {
				k = j
			}
		}
		if k < 0 {
			return nil, fmt.Errorf("column %s of %s not found on the source", c, job.Source)
		}
		p.srcExprs[i] = quoteIdent(c)
		switch attrs[k].typ {
		case xmlOID:
			// xml's output and send functions drop a declaration that
			// says only version="1.0"; the value's text is as stored, and
			// text's binary form is what xml's receive function reads.
			p.srcExprs[i] = quoteIdent(c) + "::text"
			continue
		case xmlArrayOID:
			// An array's binary form names its element type: staged as
			// text[], cast to xml[] on the destination.
			p.srcExprs[i] = quoteIdent(c) + "::text[]"
			p.asText[i] = true
			p.staged = true
			continue
		}
		if !attrs[k].user {
			continue
		}
		rt, err := res.resolve(ctx, attrs[k].typ, attrs[k].typmod)
		if errors.Is(err, errUnsupportedType) {
			return nil, &UnsupportedTypeError{Table: job.Source, Column: c, Type: attrs[k].declared}
		}
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", c, err)
		}
		switch {
		case rt.array && rt.enum != nil:
			p.srcExprs[i] = quoteIdent(c) + "::text[]"
			p.asText[i] = true
			p.staged = true
		case rt.array && rt.domain:
			p.srcExprs[i] = quoteIdent(c) + "::" + rt.sql
		}
	}
	return p, nil
}

// destTypes reads the destination types of the columns sent as text.
func (p *copyPlan) destTypes(ctx context.Context, tx pgx.Tx, dest connectors.TableName) error {
	p.destType = make([]string, len(p.cols))
	for i, c := range p.cols {
		if !p.asText[i] {
			continue
		}
		err := tx.QueryRow(ctx, `
SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
WHERE a.attrelid = to_regclass($1) AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped`,
			dest.Quoted(), c).Scan(&p.destType[i])
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("column %s of %s not found on the destination", c, dest)
		}
		if err != nil {
			return fmt.Errorf("read type of column %s of %s: %w", c, dest, err)
		}
	}
	return nil
}

// createStage makes the temporary table a staged copy lands in: the
// destination's columns, text[] for arrays of enums, no constraints.
func (p *copyPlan) createStage(dest connectors.TableName) string {
	sel := make([]string, len(p.cols))
	for i, c := range p.cols {
		sel[i] = quoteIdent(c)
		if p.asText[i] {
			sel[i] = "NULL::text[] AS " + quoteIdent(c)
		}
	}
	return "CREATE TEMP TABLE " + loadStageTable + " ON COMMIT DROP AS SELECT " + strings.Join(sel, ", ") +
		" FROM " + dest.Quoted() + " WITH NO DATA"
}

// insertFromStage moves the staged rows into the destination table.
func (p *copyPlan) insertFromStage(job CopyJob) string {
	sel := make([]string, len(p.cols))
	for i, c := range p.cols {
		sel[i] = quoteIdent(c)
		if p.asText[i] {
			sel[i] += "::" + p.destType[i]
		}
	}
	q := "INSERT INTO " + job.Dest.Quoted() + " (" + quoteIdents(p.cols) + ") SELECT " + strings.Join(sel, ", ") + " FROM " + loadStageTable
	if !p.upsert {
		return q
	}
	var set []string
	for _, c := range p.cols {
		if !slices.Contains(job.PrimaryKey, c) {
			set = append(set, quoteIdent(c)+" = EXCLUDED."+quoteIdent(c))
		}
	}
	if job.SoftDeleteColumn != "" {
		set = append(set, quoteIdent(job.SoftDeleteColumn)+" = false")
	}
	if job.SyncedAtColumn != "" {
		set = append(set, quoteIdent(job.SyncedAtColumn)+" = now()")
	}
	q += " ON CONFLICT (" + quoteIdents(job.PrimaryKey) + ")"
	if len(set) == 0 {
		return q + " DO NOTHING"
	}
	return q + " DO UPDATE SET " + strings.Join(set, ", ")
}
