package executor

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/clickhouse"
	"github.com/sluicedb/sluice/connectors/postgres"
)

// Columns the source adds to a table mirrored into ClickHouse are added to
// the ClickHouse table, at the start of CDC (columns added while the
// mirror was stopped) and when the stream reports them. Rows already
// there read the value the source's rows that predate the column have:
// the constant Postgres stored for a non-volatile default becomes the
// ClickHouse column's DEFAULT. A column added without a default reads
// NULL; one with a volatile default (each source row got its own value)
// or an array default reads NULL (or the type's zero when NOT NULL), and
// an event says so: RESYNC TABLE loads the source's values.

// chAddColumns adds to dest the columns of cols (the table's full column
// list) it lacks, reading the source's values for older rows through src,
// and records what it did as events. Idempotent.
func (f *flow) chAddColumns(ctx context.Context, src *pgx.Conn, conn driver.Conn, info clickhouse.ServerInfo,
	source, dest connectors.TableName, cols []connectors.Column) error {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name
	}
	existing, err := postgres.MissingValues(ctx, src, source, names)
	if err != nil {
		return err
	}
	added, skipped, err := clickhouse.AddMissingColumns(ctx, conn, info, dest, cols, existing)
	if err != nil {
		return err
	}
	if len(added) == 0 {
		return nil
	}
	list := make([]string, len(added))
	for i, c := range added {
		list[i] = c.Name
		if _, ok := existing[c.Name]; !ok {
			list[i] += " (existing rows: NULL)"
		}
	}
	for _, s := range skipped {
		for i, c := range added {
			if c.Name == s.Column {
				list[i] = c.Name + " (existing rows: NULL or zero; " + s.Reason + ")"
			}
		}
	}
	f.log.InfoContext(ctx, "source added columns", "table", source.String(), "columns", len(added))
	return f.ex.cfg.Store.AddEvent(ctx, f.m.Name, "schema",
		fmt.Sprintf("%s gained column(s) %s; added on ClickHouse table %s", source, strings.Join(list, ", "), dest))
}

// chColumnAdder is the batcher's hook for columns the stream reports on a
// ClickHouse mirror: it opens its own source connection (the stream's is
// shared with the reader), and returns a new schema: a table copy under
// way reads the old one.
func (f *flow) chColumnAdder(conn driver.Conn, info clickhouse.ServerInfo) columnAdder {
	return func(ctx context.Context, d connectors.DestTable, cols []connectors.Column) (*connectors.TableSchema, error) {
		src, err := f.src.ConnectSQL(ctx, "sluice-alter")
		if err != nil {
			return nil, err
		}
		defer src.Close(context.Background())
		all := append(append([]connectors.Column(nil), d.Schema.Columns...), cols...)
		if err := f.chAddColumns(ctx, src, conn, info, d.Source, d.Dest, all); err != nil {
			return nil, err
		}
		ts := *d.Schema
		ts.Columns = append(slices.Clip(ts.Columns), cols...)
		return &ts, nil
	}
}

// chCheckTypes fails, naming the column and saying what to do, when a
// column of dest has a ClickHouse type other than the one the source's
// current type maps to: the source changed the column's type, which Sluice
// does not follow (writing the new values into the old column would
// truncate or misread them).
func (f *flow) chCheckTypes(ctx context.Context, conn driver.Conn, info clickhouse.ServerInfo, t mirrorTable, ts *connectors.TableSchema) error {
	changed, err := clickhouse.ChangedColumns(ctx, conn, info, t.dest, ts, t.catalog.OrderBy)
	if err != nil || len(changed) == 0 {
		return err
	}
	c := changed[0]
	return &userError{fmt.Errorf("column %q of %s changed type on the source to %s, which maps to ClickHouse %s, but %s has %s: "+
		"Sluice does not follow a column's type change; RESYNC MIRROR %s rebuilds the ClickHouse tables with the new types",
		c.Name, t.source, c.SourceType, c.Want, t.dest, c.Have, connectors.QuoteIdent(f.m.Name))}
}
