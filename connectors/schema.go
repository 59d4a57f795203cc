package connectors

import (
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// TableName is a schema-qualified table name. Parts are stored as Postgres
// keeps them (unquoted names lower-cased by the parser).
type TableName struct {
	Schema string
	Name   string
}

// String renders schema.name with each part as Postgres's quote_ident
// renders it (public.users, "sch.ema"."Upper.Dot"): the form the catalog
// stores and status tables show, unambiguous, and read back by
// ParseTableName.
func (t TableName) String() string { return QuoteIdent(t.Schema) + "." + QuoteIdent(t.Name) }

// JoinNames renders names for a message: "a.b, c.d".
func JoinNames(names []TableName) string {
	var b strings.Builder
	for i, n := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(n.String())
	}
	return b.String()
}

// Keys returns the forms the name has been stored under in metadata: String,
// and before names were quoted, schema.name unquoted. Readers of metadata a
// Sluice before the change may have written match either.
func (t TableName) Keys() []string {
	if old := t.Schema + "." + t.Name; old != t.String() {
		return []string{t.String(), old}
	}
	return []string{t.String()}
}

// Quoted renders "schema"."name" for SQL.
func (t TableName) Quoted() string { return pgx.Identifier{t.Schema, t.Name}.Sanitize() }

// ParseTableName reads a table name as String renders it: two parts
// separated by a dot, each either a double-quoted identifier (with "" for a
// double quote) or a run of characters other than dots and double quotes,
// taken as is (no case folding). A name stored before names were quoted
// (schema.name unquoted, e.g. public.Upper.Dot) that does not read this way
// is split at its first dot, as it was then. Pure.
func ParseTableName(s string) (TableName, error) {
	t, err := parseQuotedTableName(s)
	if err != nil && !strings.Contains(s, `"`) {
		if schema, name, ok := strings.Cut(s, "."); ok && schema != "" && name != "" {
			return TableName{Schema: schema, Name: name}, nil
		}
	}
	return t, err
}

func parseQuotedTableName(s string) (TableName, error) {
	schema, rest, err := parseIdentPart(s)
	if err == nil {
		if r, ok := strings.CutPrefix(rest, "."); ok {
			var name, tail string
			name, tail, err = parseIdentPart(r)
			if err == nil && tail == "" {
				return TableName{Schema: schema, Name: name}, nil
			}
		}
	}
	return TableName{}, fmt.Errorf("invalid table name %q: want schema.table", s)
}

// parseIdentPart reads one identifier from the start of s and returns it
// and the rest of s.
func parseIdentPart(s string) (ident, rest string, err error) {
	if !strings.HasPrefix(s, `"`) {
		end := strings.IndexAny(s, `."`)
		if end < 0 {
			end = len(s)
		}
		if end == 0 {
			return "", "", errors.New("empty identifier")
		}
		return s[:end], s[end:], nil
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		if s[i] != '"' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '"' {
			b.WriteByte('"')
			i++
			continue
		}
		if b.Len() == 0 {
			return "", "", errors.New("empty identifier")
		}
		return b.String(), s[i+1:], nil
	}
	return "", "", errors.New("unterminated quoted identifier")
}

// Column is one column of a source table as replicated.
type Column struct {
	Name string
	// Type is the destination-ready type, e.g. "numeric(20,6)", "text[]",
	// "public.mood" (an enum recreated on the destination), or a domain's
	// base type.
	Type string
	// TypeOID is the source's type OID (of the base type for a domain).
	TypeOID  uint32
	NotNull  bool
	Position int // attnum on the source
}

// GeneratedColumn is a generated column of a source table.
type GeneratedColumn struct {
	Name string
	// Type is the destination-ready type, as Column.Type.
	Type    string
	NotNull bool
	// Expression is the generation expression as the source's pg_get_expr
	// renders it, e.g. "(id * 2)".
	Expression string
	// Virtual is true for a VIRTUAL generated column (Postgres 18), false
	// for a STORED one.
	Virtual bool
	// DependsOn lists the columns the expression reads.
	DependsOn []string
	Position  int // attnum on the source
}

// EnumType is a source enum type that a destination must recreate.
type EnumType struct {
	Schema string
	Name   string
	Labels []string
}

// TableSchema describes a source table: its columns in order (excluded
// columns already removed), its primary key and its size.
type TableSchema struct {
	Name    TableName
	OID     uint32
	Columns []Column
	// PrimaryKey lists key column names in key order; empty when the table
	// has none (then ReplicaIdentityFull must be true).
	PrimaryKey          []string
	ReplicaIdentityFull bool
	Enums               []EnumType
	// Exclude lists source columns deliberately not replicated.
	Exclude []string
	// Generated lists the source's generated columns that are not
	// excluded, in attnum order. They are never in Columns: logical
	// replication (pgoutput, Postgres 15) does not send them, so no change
	// carries their values. A Postgres destination computes them itself
	// with the same expression; a ClickHouse destination does not have
	// them (CREATE MIRROR says so).
	Generated []GeneratedColumn
	// EstimatedRows and Pages come from pg_class at describe time.
	EstimatedRows int64
	Pages         int64
}

// ColumnNames returns the names of t's columns, in order. The caller owns
// the slice.
func (t *TableSchema) ColumnNames() []string {
	out := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		out[i] = c.Name
	}
	return out
}

// ColumnIndex returns the index of the named column, or -1.
func (t *TableSchema) ColumnIndex(name string) int {
	for i, c := range t.Columns {
		if c.Name == name {
			return i
		}
	}
	return -1
}

// Excluded reports whether the named source column is excluded.
func (t *TableSchema) Excluded(name string) bool {
	for _, e := range t.Exclude {
		if e == name {
			return true
		}
	}
	return false
}

// KeyIndexes returns the column indexes of the primary key.
func (t *TableSchema) KeyIndexes() []int {
	idx := make([]int, len(t.PrimaryKey))
	for i, k := range t.PrimaryKey {
		idx[i] = t.ColumnIndex(k)
	}
	return idx
}
