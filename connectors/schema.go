package connectors

import (
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

// String renders schema.name without quoting, as status tables show it.
func (t TableName) String() string { return t.Schema + "." + t.Name }

// Quoted renders "schema"."name" for SQL.
func (t TableName) Quoted() string { return pgx.Identifier{t.Schema, t.Name}.Sanitize() }

// ParseTableName splits "schema.name" (no quoting) as String renders it.
func ParseTableName(s string) (TableName, error) {
	schema, name, ok := strings.Cut(s, ".")
	if !ok || schema == "" || name == "" {
		return TableName{}, fmt.Errorf("invalid table name %q: want schema.table", s)
	}
	return TableName{Schema: schema, Name: name}, nil
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
	// EstimatedRows and Pages come from pg_class at describe time.
	EstimatedRows int64
	Pages         int64
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
