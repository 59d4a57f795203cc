package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/connectors"
)

// AddMissingColumns adds to the destination table every column of cols it
// lacks (nullable, so existing rows stay valid), on db (a connection, or a
// transaction to add them with what else it does). It returns the columns
// it added. Idempotent.
func AddMissingColumns(ctx context.Context, db interface {
	Querier
	Execer
}, dest connectors.TableName, cols []connectors.Column) ([]connectors.Column, error) {
	rows, err := db.Query(ctx, `
SELECT a.attname FROM pg_attribute a
WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`, dest.Quoted())
	if err != nil {
		return nil, fmt.Errorf("list columns of %s: %w", dest, err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list columns of %s: %w", dest, err)
	}
	have := make(map[string]bool, len(names))
	for _, n := range names {
		have[n] = true
	}
	var added []connectors.Column
	for _, c := range cols {
		if have[c.Name] {
			continue
		}
		sql := fmt.Sprintf("ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s %s", dest.Quoted(), pgx.Identifier{c.Name}.Sanitize(), c.Type)
		if _, err := db.Exec(ctx, sql); err != nil {
			return nil, fmt.Errorf("add column %s to %s: %w", c.Name, dest, err)
		}
		added = append(added, c)
	}
	return added, nil
}

// BackfillColumns copies the current source values of cols into the
// destination rows with the same primary key. It fills columns the source
// added with a default (existing source rows have it, while no change event
// carries it); the stream's later changes then apply on top, so the
// destination converges. Rows are matched by key; rows missing on either
// side are left alone. It returns the number of rows updated. Idempotent.
func BackfillColumns(ctx context.Context, src, dst *pgx.Conn, source, dest connectors.TableName, key, cols []string) (int64, error) {
	if len(cols) == 0 {
		return 0, nil
	}
	tx, err := dst.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("backfill %s: %w", dest, err)
	}
	defer tx.Rollback(context.Background())
	n, err := backfillIn(ctx, src, tx, source, dest, key, cols)
	if err != nil {
		return 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("backfill %s: %w", dest, err)
	}
	return n, nil
}

// backfillStage is the temporary table a back-fill stages the source's
// values in.
var backfillStage = pgx.Identifier{"pg_temp", "_sluice_backfill"}.Sanitize()

// backfillIn is BackfillColumns in the caller's transaction tx on the
// destination.
func backfillIn(ctx context.Context, src *pgx.Conn, tx pgx.Tx, source, dest connectors.TableName, key, cols []string) (int64, error) {
	if len(cols) == 0 {
		return 0, nil
	}
	var hasValues bool
	conds := make([]string, len(cols))
	for i, c := range cols {
		conds[i] = quoteIdent(c) + " IS NOT NULL"
	}
	err := src.QueryRow(ctx, fmt.Sprintf("SELECT EXISTS (SELECT 1 FROM %s WHERE %s)", source.Quoted(), strings.Join(conds, " OR "))).Scan(&hasValues)
	if err != nil {
		return 0, fmt.Errorf("backfill %s: %w", dest, err)
	}
	if !hasValues {
		return 0, nil
	}
	list := quoteIdents(append(append([]string{}, key...), cols...))
	if _, err := tx.Exec(ctx, backfillStageDDL(dest, key, cols)); err != nil {
		return 0, fmt.Errorf("backfill %s: stage: %w", dest, err)
	}
	if _, err := pipeCopy(ctx, src.PgConn(), tx.Conn().PgConn(),
		fmt.Sprintf("COPY (SELECT %s FROM %s) TO STDOUT (FORMAT binary)", list, source.Quoted()),
		fmt.Sprintf("COPY %s (%s) FROM STDIN (FORMAT binary)", backfillStage, list), nil); err != nil {
		return 0, fmt.Errorf("backfill %s: copy: %w", dest, err)
	}
	tag, err := tx.Exec(ctx, backfillUpdateSQL(dest, key, cols))
	if err != nil {
		return 0, fmt.Errorf("backfill %s: update: %w", dest, err)
	}
	return tag.RowsAffected(), nil
}

// backfillStageDDL creates backfillStage, dropped at commit, with dest's
// key and cols columns.
func backfillStageDDL(dest connectors.TableName, key, cols []string) string {
	return fmt.Sprintf("CREATE TEMP TABLE %s ON COMMIT DROP AS SELECT %s FROM %s LIMIT 0",
		backfillStage, quoteIdents(append(append([]string{}, key...), cols...)), dest.Quoted())
}

// backfillUpdateSQL sets cols of dest's rows to the values staged in
// backfillStage for their key, where they differ.
func backfillUpdateSQL(dest connectors.TableName, key, cols []string) string {
	sets := make([]string, len(cols))
	diff := make([]string, len(cols))
	for i, c := range cols {
		q := quoteIdent(c)
		sets[i] = q + " = s." + q
		diff[i] = "d." + q + " IS DISTINCT FROM s." + q
	}
	match := make([]string, len(key))
	for i, k := range key {
		q := quoteIdent(k)
		match[i] = "d." + q + " = s." + q
	}
	return fmt.Sprintf("UPDATE %s AS d SET %s FROM %s AS s WHERE %s AND (%s)",
		dest.Quoted(), strings.Join(sets, ", "), backfillStage, strings.Join(match, " AND "), strings.Join(diff, " OR "))
}

// MissingValues returns, by column name, the value that rows of table which
// predate each of cols read: the constant Postgres stored when the column
// was added with a non-volatile default (pg_attribute.attmissingval), in
// binary form. A column absent from the result has no such value: it was
// added without a default (those rows read NULL), with a volatile one (the
// table was rewritten, each row has its own value), or is an array (left
// out). It only reads.
func MissingValues(ctx context.Context, conn *pgx.Conn, table connectors.TableName, cols []string) (map[string]connectors.Value, error) {
	rows, err := conn.Query(ctx, `
SELECT a.attname::text, a.attmissingval::text, format_type(a.atttypid, a.atttypmod)
FROM pg_attribute a
WHERE a.attrelid = to_regclass($1) AND a.attname = ANY($2) AND a.atthasmissing AND NOT a.attisdropped
  AND a.attndims = 0 AND NOT EXISTS (SELECT FROM pg_type t WHERE t.oid = a.atttypid AND t.typcategory = 'A')`,
		table.Quoted(), cols)
	if err != nil {
		return nil, fmt.Errorf("read the defaults of new columns of %s: %w", table, err)
	}
	type missing struct{ name, text, typ string }
	ms, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (missing, error) {
		var m missing
		err := r.Scan(&m.name, &m.text, &m.typ)
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("read the defaults of new columns of %s: %w", table, err)
	}
	out := make(map[string]connectors.Value, len(ms))
	for _, m := range ms {
		// attmissingval is a one-element array of the column's type.
		rows, err := conn.Query(ctx, fmt.Sprintf("SELECT ($1::text::%s[])[1]", m.typ),
			pgx.QueryResultFormats{pgx.BinaryFormatCode}, m.text)
		if err != nil {
			return nil, fmt.Errorf("read the default of %s.%s: %w", table, m.name, err)
		}
		v := connectors.Value{Kind: connectors.Null}
		for rows.Next() {
			if raw := rows.RawValues()[0]; raw != nil {
				v = connectors.Value{Kind: connectors.Binary, Data: append([]byte(nil), raw...)}
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read the default of %s.%s: %w", table, m.name, err)
		}
		out[m.name] = v
	}
	return out, nil
}
