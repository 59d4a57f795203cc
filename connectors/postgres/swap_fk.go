package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/connectors"
)

// ForeignKeyDef is a foreign key constraint, as ReferencingForeignKeys
// lists it. It marshals to JSON (a caller stores it to re-add the
// constraint after a crash).
type ForeignKeyDef struct {
	Name string `json:"name"`
	// Table is the referencing table, the one the constraint is on.
	Table connectors.TableName `json:"table"`
	// Definition is pg_get_constraintdef's text ("FOREIGN KEY (a)
	// REFERENCES s.t(id) ..."), with the referenced table qualified.
	Definition string `json:"definition"`
}

// DropDDL returns the ALTER TABLE that drops the constraint if it exists.
// Idempotent.
func (d ForeignKeyDef) DropDDL() string {
	return "ALTER TABLE " + d.Table.Quoted() + " DROP CONSTRAINT IF EXISTS " + quoteIdent(d.Name)
}

// AddDDL returns a statement that adds the constraint unless d.Table has a
// constraint of that name already, so it is idempotent. With notValid the
// constraint is added NOT VALID (no scan of the table; VALIDATE CONSTRAINT
// can check it later), except on a partitioned table, which does not
// allow it, and except when Definition says NOT VALID already. A missing
// d.Table is an error when it runs.
func (d ForeignKeyDef) AddDDL(notValid bool) string {
	add := "ALTER TABLE " + d.Table.Quoted() + " ADD CONSTRAINT " + quoteIdent(d.Name) + " " + d.Definition
	addNotValid := add
	if notValid && !strings.HasSuffix(d.Definition, " NOT VALID") {
		addNotValid += " NOT VALID"
	}
	return doBlock(fmt.Sprintf(`
DECLARE
	rel regclass := %s::regclass;
BEGIN
	IF EXISTS (SELECT FROM pg_constraint WHERE conrelid = rel AND conname = %s) THEN
		RETURN;
	END IF;
	IF (SELECT relkind FROM pg_class WHERE oid = rel) = 'p' THEN
		%s;
	ELSE
		%s;
	END IF;
END
`, quoteLiteral(d.Table.Quoted()), quoteLiteral(d.Name), add, addNotValid))
}

// ReferencingForeignKeys returns the foreign keys that reference table:
// those of other tables and table's own self-references, by table and
// name. A foreign key inherited by a partition is left out (its parent's
// is listed). A missing table is an error wrapping ErrTableNotFound.
// Read-only.
func ReferencingForeignKeys(ctx context.Context, q Querier, table connectors.TableName) ([]ForeignKeyDef, error) {
	oid, err := tableOID(ctx, q, table)
	if err != nil {
		return nil, fmt.Errorf("list foreign keys referencing %s: %w", table, err)
	}
	fks, err := readForeignKeys(ctx, q, "con.confrelid = $1 AND con.conparentid = 0", oid)
	if err != nil {
		return nil, fmt.Errorf("list foreign keys referencing %s: %w", table, err)
	}
	out := make([]ForeignKeyDef, len(fks))
	for i, f := range fks {
		out[i] = f.ForeignKeyDef
	}
	return out, nil
}

// foreignKey is a foreign key with what SwapTable needs.
type foreignKey struct {
	ForeignKeyDef
	validated   bool
	partitioned bool // the referencing table is partitioned
	comment     string
}

// readForeignKeys reads the foreign keys matching where ($1 is an OID).
// pg_get_constraintdef qualifies the referenced table only when the
// search_path does not make it visible; the definition gets it qualified
// in any case.
func readForeignKeys(ctx context.Context, q Querier, where string, oid uint32) ([]foreignKey, error) {
	rows, err := q.Query(ctx, `
SELECT con.conname::text, n.nspname::text, c.relname::text, c.relkind = 'p', con.convalidated,
       pg_get_constraintdef(con.oid), quote_ident(rc.relname), quote_ident(rn.nspname) || '.' || quote_ident(rc.relname),
       pg_table_is_visible(rc.oid), coalesce(obj_description(con.oid, 'pg_constraint'), '')
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_class rc ON rc.oid = con.confrelid
JOIN pg_namespace rn ON rn.oid = rc.relnamespace
WHERE con.contype = 'f' AND `+where+`
ORDER BY n.nspname, c.relname, con.conname`, oid)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (foreignKey, error) {
		var f foreignKey
		var short, qualified string
		var visible bool
		err := r.Scan(&f.Name, &f.Table.Schema, &f.Table.Name, &f.partitioned, &f.validated,
			&f.Definition, &short, &qualified, &visible, &f.comment)
		if err == nil && visible {
			f.Definition = strings.Replace(f.Definition, " REFERENCES "+short+"(", " REFERENCES "+qualified+"(", 1)
		}
		return f, err
	})
}
