package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/connectors"
)

// Row summaries for VALIDATE MIRROR (connectors.SnapshotSummer on the
// source, connectors.RowSummer on the destination): counts and checksums
// computed by the server in one query per table, in the form
// connectors/summary.go defines, so that a Postgres source and a
// ClickHouse destination agree on equal data.

var (
	_ connectors.SnapshotSummer = (*Source)(nil)
	_ connectors.RowSummer      = (*Destination)(nil)
)

// SummarizeSnapshot implements connectors.SnapshotSummer: it reads table on
// a reader connection of its own, in a transaction under snapshot.
func (s *Source) SummarizeSnapshot(ctx context.Context, snapshot string, table connectors.TableName,
	spec connectors.SummarySpec) (connectors.RowSummary, error) {
	conn, err := s.peer.connectReader(ctx, s.appName)
	if err != nil {
		return connectors.RowSummary{}, err
	}
	defer conn.Close(context.Background())
	tx, err := BeginSnapshot(ctx, conn, snapshot)
	if err != nil {
		return connectors.RowSummary{}, err
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // read only
	return summarize(ctx, tx, table, "", spec)
}

// CanRender implements connectors.SnapshotSummer: a Postgres source renders
// every column every way.
func (s *Source) CanRender(connectors.Column, connectors.Rendering) bool { return true }

// SummaryColumns implements connectors.RowSummer: a Postgres destination
// has the source's types, so every column compares by its text output.
func (d *Destination) SummaryColumns(t connectors.DestTable) ([]connectors.SummaryColumn, []string) {
	cols := make([]connectors.SummaryColumn, len(t.Schema.Columns))
	for i, c := range t.Schema.Columns {
		cols[i] = connectors.SummaryColumn{Name: c.Name, Render: connectors.RenderText}
	}
	return cols, nil
}

// SummarizeRows implements connectors.RowSummer: the rows of t.Dest not
// marked deleted (t.SoftDeleteColumn).
func (d *Destination) SummarizeRows(ctx context.Context, t connectors.DestTable, spec connectors.SummarySpec) (connectors.RowSummary, error) {
	where := ""
	if t.SoftDeleteColumn != "" {
		where = ident(t.SoftDeleteColumn) + " IS NOT TRUE"
	}
	// A transaction of its own, for the settings summarize pins.
	tx, err := d.conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return connectors.RowSummary{}, fmt.Errorf("summarize %s: %w", t.Dest, err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // read only
	return summarize(ctx, tx, t.Dest, where, spec)
}

// pinTextOutput sets, for the transaction, the settings that the text
// output of values depends on to what a source of another kind renders
// (MySQL's, connectors/mysql/summary.go): timestamptz in UTC ("+00"),
// ISO dates, bytea in hex. Two Postgres servers with different defaults
// then agree too.
const pinTextOutput = `SELECT set_config('TimeZone', 'UTC', true), set_config('DateStyle', 'ISO, MDY', true),
  set_config('bytea_output', 'hex', true), set_config('IntervalStyle', 'postgres', true)`

// summarize runs spec's summary of table's rows that satisfy where (all
// when ""), in transaction q.
func summarize(ctx context.Context, q pgx.Tx, table connectors.TableName, where string,
	spec connectors.SummarySpec) (connectors.RowSummary, error) {
	var out connectors.RowSummary
	if _, err := q.Exec(ctx, pinTextOutput); err != nil {
		return out, fmt.Errorf("summarize %s: %w", table, err)
	}
	rows, err := q.Query(ctx, summarySQL(table, where, spec))
	if err != nil {
		return out, fmt.Errorf("summarize %s: %w", table, err)
	}
	defer rows.Close()
	for rows.Next() {
		var bucket, n int64
		var sum *string
		var lo, hi *int64
		if err := rows.Scan(&bucket, &n, &sum, &lo, &hi); err != nil {
			return out, fmt.Errorf("summarize %s: %w", table, err)
		}
		out.AddRange(spec, bucket, n, sum, lo, hi)
	}
	if err := rows.Err(); err != nil {
		return out, fmt.Errorf("summarize %s: %w", table, err)
	}
	return out, nil
}

// summarySQL is the query of summarize: one row per range (bucket, count,
// checksum, min and max key), or one row for the whole table.
func summarySQL(table connectors.TableName, where string, spec connectors.SummarySpec) string {
	key, bucket := "NULL::bigint", "0::bigint"
	if spec.Key != "" {
		key = ident(spec.Key) + "::bigint"
		if spec.Width > 0 {
			bucket = fmt.Sprintf("(CASE WHEN %[1]s >= 0 THEN %[1]s / %[2]d ELSE (%[1]s + 1) / %[2]d - 1 END)", key, spec.Width)
		}
	}
	filter := ""
	if where != "" {
		filter = " WHERE " + where
	}
	if !spec.Checksum {
		return fmt.Sprintf("SELECT 0::bigint, count(*), NULL::text, min(%s), max(%s) FROM %s%s", key, key, table.Quoted(), filter)
	}
	parts := []string{"''"}
	for _, c := range spec.Columns {
		r := pgRender(ident(c.Name), c.Render)
		parts = append(parts, fmt.Sprintf("coalesce('v' || length(%[1]s) || ':' || %[1]s, 'n')", r))
	}
	hash := "('x' || substr(md5(" + strings.Join(parts, " || ") + "), 1, 15))::bit(60)::bigint"
	return fmt.Sprintf(`SELECT _sluice_b, count(*), (sum(_sluice_h) %% 18446744073709551616)::text, min(_sluice_k), max(_sluice_k)
FROM (SELECT %s AS _sluice_b, %s AS _sluice_h, %s AS _sluice_k FROM %s%s) s GROUP BY _sluice_b`, bucket, hash, key, table.Quoted(), filter)
}

// pgRender renders column expression c as r asks (connectors.Rendering).
func pgRender(c string, r connectors.Rendering) string {
	switch r {
	case connectors.RenderBool:
		return c + "::int::text"
	case connectors.RenderEpochMicros:
		// Exact on every version (extract is a float before 14): whole
		// seconds, then the microseconds within the second.
		return fmt.Sprintf("(extract(epoch from date_trunc('second', %[1]s))::bigint * 1000000 + "+
			"extract(microseconds from %[1]s)::bigint %% 1000000)::text", c)
	case connectors.RenderDate:
		return fmt.Sprintf("to_char(%s, 'YYYY-MM-DD')", c)
	case connectors.RenderHex:
		return fmt.Sprintf("encode(%s, 'hex')", c)
	case connectors.RenderTrimmedDecimal:
		// trim_scale (Postgres 13) without needing it.
		return fmt.Sprintf("(CASE WHEN %[1]s::text LIKE '%%.%%' THEN rtrim(rtrim(%[1]s::text, '0'), '.') ELSE %[1]s::text END)", c)
	}
	return c + "::text"
}
