package executor

import (
	"context"

	"github.com/jackc/pgerrcode"
	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/sqlerr"
	"github.com/sluicedb/sluice/sqlext"
)

// mirrorTable resolves the table a statement names in mirror m (RESYNC
// TABLE, PAUSE and RESUME MIRROR ... TABLE, ALTER MIRROR ... DROP TABLE,
// VALIDATE MIRROR ... TABLE): a source table of the mirror, its schema the
// source peer's default when not given (Postgres: public; MySQL: the
// peer's database), as CREATE MIRROR resolved it. It returns the table's
// name and its entry in m.Tables, or an undefined_table error naming it.
func (s *session) mirrorTable(ctx context.Context, m *catalog.Mirror, q sqlext.QualifiedName) (connectors.TableName, *catalog.MirrorTable, error) {
	schema := q.Schema
	if schema == "" {
		sp, err := s.mirrorSource(ctx, m.SourcePeer, 0)
		if err != nil {
			return connectors.TableName{}, nil, err
		}
		schema = sp.DefaultSchema()
	}
	t := connectors.TableName{Schema: schema, Name: q.Name}
	for i := range m.Tables {
		if m.Tables[i].Source == t.String() {
			return t, &m.Tables[i], nil
		}
	}
	return t, nil, sqlerr.New(pgerrcode.UndefinedTable, "table %s is not in mirror %q", t, m.Name).
		WithPosition(int(q.Pos)).
		WithHint("Name the source table, as in SELECT source_table FROM mirror_tables WHERE mirror = '%s'.", m.Name)
}
