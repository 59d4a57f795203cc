package clickhouse

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/sluicedb/sluice/connectors"
)

// Row summaries for VALIDATE MIRROR (connectors.RowSummer): the rows as
// FINAL shows them, without those marked deleted or moved
// (_sluice_is_deleted != 0), counted and checksummed by the server in the
// form connectors/summary.go defines. Only columns whose values the server
// can render exactly as Postgres does are compared (SummaryColumns).

var _ connectors.RowSummer = (*Destination)(nil)

// SummaryColumns implements connectors.RowSummer. Compared: integers,
// bool, text-like types and enums (not char(n), whose padding Postgres's
// text output drops), jsonb, uuid, bytea, numeric(p,s) kept as Decimal,
// date as Date32 and timestamps as DateTime64. Skipped: floats (the two
// servers print them differently), arrays (a NULL array is stored empty),
// and every type kept as Postgres's text form rendered by Sluice or as
// text on old servers (time, interval, unconstrained numeric, ...).
func (d *Destination) SummaryColumns(t connectors.DestTable) ([]connectors.SummaryColumn, []string) {
	var cols []connectors.SummaryColumn
	var skipped []string
	for _, c := range t.Schema.Columns {
		key := slices.Contains(t.Schema.PrimaryKey, c.Name) || slices.Contains(t.OrderBy, c.Name)
		m, err := mapColumn(c, key, d.info)
		r := connectors.Rendering(0)
		switch {
		case err != nil || m.array:
		case m.kind == kInt16, m.kind == kInt32, m.kind == kInt64, m.kind == kUInt32, m.kind == kJSONB, m.kind == kUUID:
			r = connectors.RenderText
		case m.kind == kRawText && m.oid != pgtype.BPCharOID:
			r = connectors.RenderText
		case m.kind == kBool, m.kind == kBoolUInt8:
			r = connectors.RenderBool
		case m.kind == kDecimal:
			r = connectors.RenderTrimmedDecimal
		case m.kind == kBytes:
			r = connectors.RenderHex
		case m.kind == kDate32:
			r = connectors.RenderDate
		case m.kind == kTimestamp64:
			r = connectors.RenderEpochMicros
		}
		if r == 0 {
			skipped = append(skipped, fmt.Sprintf("%s (%s)", c.Name, c.Type))
			continue
		}
		cols = append(cols, connectors.SummaryColumn{Name: c.Name, Render: r})
	}
	return cols, skipped
}

// SummarizeRows implements connectors.RowSummer.
func (d *Destination) SummarizeRows(ctx context.Context, t connectors.DestTable, spec connectors.SummarySpec) (connectors.RowSummary, error) {
	var out connectors.RowSummary
	deleted := DefaultDeletedColumn
	if t.SoftDeleteColumn != "" {
		deleted = t.SoftDeleteColumn
	}
	from := qualified(t.Dest) + " FINAL WHERE " + quoteIdent(deleted) + " = 0"
	key, bucket := "CAST(NULL AS Nullable(Int64))", "toInt64(0)"
	if spec.Key != "" {
		key = "toNullable(toInt64(" + quoteIdent(spec.Key) + "))"
		if spec.Width > 0 {
			k := "toInt64(" + quoteIdent(spec.Key) + ")"
			bucket = fmt.Sprintf("toInt64(if(%[1]s >= 0, intDiv(%[1]s, %[2]d), intDiv(%[1]s + 1, %[2]d) - 1))", k, spec.Width)
		}
	}
	var sql string
	if !spec.Checksum {
		sql = fmt.Sprintf("SELECT toInt64(0), toInt64(count()), CAST(NULL AS Nullable(String)), min(%s), max(%s) FROM %s", key, key, from)
	} else {
		parts := []string{"''", "''"}
		for _, c := range spec.Columns {
			r := chRender(quoteIdent(c.Name), c.Render)
			parts = append(parts, fmt.Sprintf("ifNull(concat('v', toString(lengthUTF8(%[1]s)), ':', %[1]s), 'n')", r))
		}
		hash := "reinterpretAsUInt64(reverse(unhex(concat('0', substring(hex(MD5(concat(" + strings.Join(parts, ", ") + "))), 1, 15)))))"
		// Aliases in ClickHouse replace columns of the same name anywhere
		// in the query: theirs are Sluice's own.
		sql = fmt.Sprintf("SELECT _sluice_b, toInt64(count()), toNullable(toString(sum(_sluice_h))), min(_sluice_k), max(_sluice_k) "+
			"FROM (SELECT %s AS _sluice_b, %s AS _sluice_h, %s AS _sluice_k FROM %s) GROUP BY _sluice_b",
			bucket, hash, key, from)
	}
	rows, err := d.conn.Query(ctx, sql)
	if err != nil {
		return out, fmt.Errorf("summarize %s: %w", t.Dest, err)
	}
	defer rows.Close()
	for rows.Next() {
		var b, n int64
		var sum *string
		var lo, hi *int64
		if err := rows.Scan(&b, &n, &sum, &lo, &hi); err != nil {
			return out, fmt.Errorf("summarize %s: %w", t.Dest, err)
		}
		out.AddRange(spec, b, n, sum, lo, hi)
	}
	if err := rows.Err(); err != nil {
		return out, fmt.Errorf("summarize %s: %w", t.Dest, err)
	}
	return out, nil
}

// chRender renders column expression c as r asks, as Postgres renders it
// (see the postgres connector's pgRender).
func chRender(c string, r connectors.Rendering) string {
	switch r {
	case connectors.RenderBool:
		return "toString(toUInt8(" + c + "))"
	case connectors.RenderEpochMicros:
		return "toString(toUnixTimestamp64Micro(" + c + "))"
	case connectors.RenderHex:
		return "lower(hex(" + c + "))"
	case connectors.RenderTrimmedDecimal:
		// Servers before 21.x print the scale's trailing zeros, later ones
		// (output_format_decimal_trailing_zeros off) do not: trimmed here.
		return `replaceRegexpOne(replaceRegexpOne(toString(` + c + `), '(\\.[0-9]*[1-9])0+$', '\\1'), '\\.0+$', '')`
	}
	// Dates print as YYYY-MM-DD, UUIDs in lower case.
	return "toString(" + c + ")"
}
