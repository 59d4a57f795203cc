package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/connectors"
)

// Querier is what the catalog readers of this package need: satisfied by
// *pgx.Conn and pgx.Tx, so a description can be read inside a snapshot
// transaction and agree with the rows copied under it.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// ErrTableNotFound is wrapped by errors about a table that does not exist,
// or whose name belongs to a relation that is not a table (a view, a
// foreign table, ...; the message says which). It is
// connectors.ErrTableNotFound, so errors.Is matches either name.
var ErrTableNotFound = connectors.ErrTableNotFound

// ErrNoPrimaryKey is wrapped by DescribeTable's error for a table that has
// neither a primary key nor REPLICA IDENTITY FULL, so that updates and
// deletes could not be matched on the destination. It is
// connectors.ErrNoPrimaryKey, so errors.Is matches either name.
var ErrNoPrimaryKey = connectors.ErrNoPrimaryKey

// UnsupportedTypeError reports a column whose type cannot be mirrored yet:
// composite types, user-defined base and range types, extension types.
// Excluding the column is the way around it.
type UnsupportedTypeError struct {
	Table  connectors.TableName
	Column string
	Type   string // the column's declared type, as format_type renders it
}

// Unwrap makes the error match connectors.ErrUnsupportedType.
func (e *UnsupportedTypeError) Unwrap() error { return connectors.ErrUnsupportedType }

func (e *UnsupportedTypeError) Error() string {
	return fmt.Sprintf("type %s of column %s is not supported yet (exclude the column to mirror the rest of %s)",
		e.Type, e.Column, e.Table)
}

// firstUserOID is FirstNormalObjectId, the first OID handed out after
// initdb: types below it are built in, with the same OID, name and binary
// format on every cluster.
const firstUserOID = 16384

// DescribeTable reads the definition of source table name and returns it
// ready for the destination, without the columns in exclude.
//
// Columns come in attnum order. Dropped columns are skipped, and generated
// columns are listed apart in Generated, with their expression (pg_get_expr)
// and the columns it reads: pgoutput does not send them, so no change
// carries their values, and a destination that wants them computes them
// itself. Column.Type is a destination type: built-in types as format_type
// renders them (numeric(20,6), character varying(10), integer[], ...);
// enums as their quoted schema-qualified name (with "[]" for arrays), each
// enum also listed once in Enums with its labels in sort order; domains as
// their base type with the domain's modifier, recursively (also arrays of
// domains). Any other type is an error wrapping an *UnsupportedTypeError
// (only the replicated columns' types matter: excluding a column is the way
// around it). Column.TypeOID is the source OID of the resulting type (the
// base type of a domain, the base array type of an array of domains).
//
// Errors wrap ErrTableNotFound when name is not an ordinary table (it is
// missing, or a view, foreign table, partitioned table...) and
// ErrNoPrimaryKey when the table has neither a primary key nor REPLICA
// IDENTITY FULL. An excluded column that does not exist, or that belongs to
// the primary key, is an error naming it.
//
// Pages is measured with pg_relation_size, which is current even before
// the first ANALYZE (pg_class.relpages is not); EstimatedRows is
// pg_class.reltuples, 0 when unknown. Partitioned tables are refused: their
// partitions can be mirrored one by one. DescribeTable only reads; it is
// safe to call concurrently on distinct queriers.
func DescribeTable(ctx context.Context, q Querier, name connectors.TableName, exclude []string) (*connectors.TableSchema, error) {
	ts := &connectors.TableSchema{Name: name, Exclude: slices.Clone(exclude)}
	var (
		relkind, replident string
		reltuples          float64
	)
	err := q.QueryRow(ctx, `
SELECT c.oid, c.relkind::text, c.relreplident::text, c.reltuples::float8,
       pg_relation_size(c.oid) / current_setting('block_size')::bigint
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2`, name.Schema, name.Name).Scan(&ts.OID, &relkind, &replident, &reltuples, &ts.Pages)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("describe table %s: %w", name, ErrTableNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("describe table %s: %w", name, err)
	}
	if relkind != "r" {
		return nil, fmt.Errorf("describe table %s: %w: %s is %s, not a table", name, ErrTableNotFound, name, relkindName(relkind))
	}
	ts.ReplicaIdentityFull = replident == "f"
	if reltuples > 0 {
		ts.EstimatedRows = int64(math.Round(reltuples))
	}

	type attr struct {
		num       int
		name      string
		typ       uint32
		typmod    int32
		notNull   bool
		generated string // attgenerated: "", "s" (stored) or "v" (virtual)
		declared  string
		expr      string   // the generation expression
		deps      []string // the columns it reads
	}
	rows, err := q.Query(ctx, `
SELECT a.attnum::int, a.attname::text, a.atttypid, a.atttypmod, a.attnotnull, a.attgenerated::text,
       format_type(a.atttypid, a.atttypmod), coalesce(pg_get_expr(d.adbin, d.adrelid), ''),
       ARRAY(SELECT r.attname::text FROM pg_depend dep
             JOIN pg_attribute r ON r.attrelid = dep.refobjid AND r.attnum = dep.refobjsubid
             WHERE dep.classid = 'pg_attrdef'::regclass AND dep.objid = d.oid
               AND dep.refclassid = 'pg_class'::regclass AND dep.refobjid = a.attrelid AND dep.refobjsubid > 0 AND dep.refobjsubid <> a.attnum
             ORDER BY r.attnum)
FROM pg_attribute a
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum AND a.attgenerated <> ''
WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum`, ts.OID)
	if err != nil {
		return nil, fmt.Errorf("describe table %s: list columns: %w", name, err)
	}
	attrs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (attr, error) {
		var a attr
		err := r.Scan(&a.num, &a.name, &a.typ, &a.typmod, &a.notNull, &a.generated, &a.declared, &a.expr, &a.deps)
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("describe table %s: list columns: %w", name, err)
	}
	for _, e := range exclude {
		if !slices.ContainsFunc(attrs, func(a attr) bool { return a.name == e }) {
			return nil, &connectors.MissingExcludeError{Table: name, Column: e}
		}
	}

	rows, err = q.Query(ctx, `
SELECT a.attname::text, a.attgenerated <> ''
FROM pg_index i
CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = $1 AND i.indisprimary AND k.ord <= i.indnkeyatts
ORDER BY k.ord`, ts.OID)
	if err != nil {
		return nil, fmt.Errorf("describe table %s: read primary key: %w", name, err)
	}
	type keyCol struct {
		name      string
		generated bool
	}
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (keyCol, error) {
		var k keyCol
		err := r.Scan(&k.name, &k.generated)
		return k, err
	})
	if err != nil {
		return nil, fmt.Errorf("describe table %s: read primary key: %w", name, err)
	}
	for _, k := range keys {
		if slices.Contains(exclude, k.name) {
			return nil, fmt.Errorf("describe table %s: cannot exclude column %q: it is part of the primary key", name, k.name)
		}
		if k.generated {
			return nil, fmt.Errorf("describe table %s: primary key column %q is generated, and generated columns are not replicated", name, k.name)
		}
		ts.PrimaryKey = append(ts.PrimaryKey, k.name)
	}
	if len(ts.PrimaryKey) == 0 && !ts.ReplicaIdentityFull {
		return nil, fmt.Errorf("describe table %s: %w (add a primary key, or ALTER TABLE ... REPLICA IDENTITY FULL)", name, ErrNoPrimaryKey)
	}

	res := &typeResolver{q: q}
	for _, a := range attrs {
		if slices.Contains(exclude, a.name) {
			continue
		}
		rt, err := res.resolve(ctx, a.typ, a.typmod)
		if errors.Is(err, errUnsupportedType) {
			return nil, fmt.Errorf("describe table %s: %w", name, &UnsupportedTypeError{Table: name, Column: a.name, Type: a.declared})
		}
		if err != nil {
			return nil, fmt.Errorf("describe table %s: column %s: %w", name, a.name, err)
		}
		if a.generated != "" {
			for _, d := range a.deps {
				if slices.Contains(exclude, d) {
					return nil, fmt.Errorf("describe table %s: cannot exclude column %q: generated column %q is computed from it (exclude %q too)",
						name, d, a.name, a.name)
				}
			}
			ts.Generated = append(ts.Generated, connectors.GeneratedColumn{
				Name: a.name, Type: rt.sql, NotNull: a.notNull, Expression: a.expr, Virtual: a.generated == "v",
				DependsOn: a.deps, Position: a.num,
			})
		} else {
			ts.Columns = append(ts.Columns, connectors.Column{
				Name: a.name, Type: rt.sql, TypeOID: rt.oid, NotNull: a.notNull, Position: a.num,
			})
		}
		if rt.enum != nil && !slices.ContainsFunc(ts.Enums, func(e connectors.EnumType) bool {
			return e.Schema == rt.enum.Schema && e.Name == rt.enum.Name
		}) {
			ts.Enums = append(ts.Enums, *rt.enum)
		}
	}
	return ts, nil
}

func relkindName(k string) string {
	switch k {
	case "v":
		return "a view"
	case "m":
		return "a materialized view"
	case "f":
		return "a foreign table"
	case "p":
		return "a partitioned table (mirror its partitions instead)"
	case "S":
		return "a sequence"
	case "i", "I":
		return "an index"
	case "c":
		return "a composite type"
	case "t":
		return "a TOAST table"
	}
	return "a relation of kind " + k
}

// resolvedType is a source type as the destination declares it.
type resolvedType struct {
	sql string // destination type
	oid uint32 // source OID of sql's type
	// arrayOID is the OID of the array type over oid (0 if none).
	arrayOID uint32
	array    bool
	// enum is the enum type of the value or of its elements.
	enum *connectors.EnumType
	// domain reports that a domain was resolved on the way.
	domain bool
}

// errUnsupportedType marks a type resolve cannot map; DescribeTable turns
// it into an *UnsupportedTypeError naming the column.
var errUnsupportedType = errors.New("unsupported type")

// typeResolver maps source types to destination types, caching enums.
type typeResolver struct {
	q     Querier
	enums map[uint32]*connectors.EnumType
}

func (r *typeResolver) resolve(ctx context.Context, oid uint32, typmod int32) (resolvedType, error) {
	return r.resolveDepth(ctx, oid, typmod, 0)
}

func (r *typeResolver) resolveDepth(ctx context.Context, oid uint32, typmod int32, depth int) (resolvedType, error) {
	if depth > 32 {
		return resolvedType{}, fmt.Errorf("resolve type %d: domains nested too deeply", oid)
	}
	var (
		typtype, schema, name string
		elem, base, arrayOID  uint32
		baseTypmod            int32
		isArray               bool
		formatted             string
	)
	err := r.q.QueryRow(ctx, `
SELECT t.typtype::text, n.nspname::text, t.typname::text, t.typelem, t.typbasetype, t.typtypmod, t.typarray,
       t.typelem <> 0 AND coalesce(e.typarray = t.oid, false), format_type(t.oid, $2)
FROM pg_type t
JOIN pg_namespace n ON n.oid = t.typnamespace
LEFT JOIN pg_type e ON e.oid = t.typelem
WHERE t.oid = $1`, oid, typmod).Scan(&typtype, &schema, &name, &elem, &base, &baseTypmod, &arrayOID, &isArray, &formatted)
	if err != nil {
		return resolvedType{}, fmt.Errorf("resolve type %d: %w", oid, err)
	}
	switch {
	case isArray:
		el, err := r.resolveDepth(ctx, elem, typmod, depth+1)
		if err != nil {
			return resolvedType{}, err
		}
		if el.array {
			return resolvedType{}, errUnsupportedType // an array of a domain over an array
		}
		if el.arrayOID == 0 {
			return resolvedType{}, fmt.Errorf("resolve type %s: its element type %s has no array type", formatted, el.sql)
		}
		if el.enum == nil && !el.domain {
			// A built-in array: keep format_type's canonical spelling.
			return resolvedType{sql: formatted, oid: oid, array: true}, nil
		}
		return resolvedType{sql: el.sql + "[]", oid: el.arrayOID, array: true, enum: el.enum, domain: el.domain}, nil
	case typtype == "d":
		rt, err := r.resolveDepth(ctx, base, baseTypmod, depth+1)
		rt.domain = true
		return rt, err
	case typtype == "e":
		e, err := r.enum(ctx, oid, schema, name)
		if err != nil {
			return resolvedType{}, err
		}
		return resolvedType{sql: pgx.Identifier{schema, name}.Sanitize(), oid: oid, arrayOID: arrayOID, enum: e}, nil
	case (typtype == "b" || typtype == "r" || typtype == "m") && oid < firstUserOID:
		return resolvedType{sql: formatted, oid: oid, arrayOID: arrayOID}, nil
	}
	return resolvedType{}, errUnsupportedType
}

func (r *typeResolver) enum(ctx context.Context, oid uint32, schema, name string) (*connectors.EnumType, error) {
	if e, ok := r.enums[oid]; ok {
		return e, nil
	}
	rows, err := r.q.Query(ctx, `SELECT enumlabel::text FROM pg_enum WHERE enumtypid = $1 ORDER BY enumsortorder`, oid)
	if err != nil {
		return nil, fmt.Errorf("read labels of enum %s.%s: %w", schema, name, err)
	}
	labels, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read labels of enum %s.%s: %w", schema, name, err)
	}
	e := &connectors.EnumType{Schema: schema, Name: name, Labels: labels}
	if r.enums == nil {
		r.enums = make(map[uint32]*connectors.EnumType)
	}
	r.enums[oid] = e
	return e, nil
}
