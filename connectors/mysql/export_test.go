package mysql

import (
	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/sqlerr"
)

// What the package's tests (package mysql_test: they use internal/testbed,
// which imports every connector) need of its internals.

// ColType is colType.
type ColType = colType

// DescribeCols is describeTable on s's connection.
func (s *Source) DescribeCols(table connectors.TableName, exclude []string) (*connectors.TableSchema, []ColType, error) {
	return describeTable(s.conn, s.flavor, table, exclude)
}

// Exec runs sql on s's connection.
func (s *Source) Exec(sql string) (*gomysql.Result, error) { return s.conn.Execute(sql) }

// EncodeBinlog is encodeBinlog.
func EncodeBinlog(c *ColType, v any) (connectors.Value, error) { return encodeBinlog(c, v) }

// CanStreamInfo is canStream.
func CanStreamInfo(info ServerInfo, mechanism string) error { return canStream(info, mechanism) }

// GrantsReplication is grantsReplication.
func GrantsReplication(grants []string) (slave, client bool) { return grantsReplication(grants) }

// RetentionNotice is retentionNotice.
func RetentionNotice(name string, s map[string]string) *sqlerr.Error { return retentionNotice(name, s) }

// ParseLabels is parseLabels.
func ParseLabels(s string) ([]string, error) { return parseLabels(s) }

// EncodeNumeric is encodeNumeric for a decimal column.
func EncodeNumeric(s string) (connectors.Value, error) {
	return encodeNumeric(&colType{Name: "d", Enc: encNumeric}, s)
}

// SameReplica is sameReplica.
func SameReplica(err error) bool { return sameReplica(err) }

// Render is render of column col of table as s describes it.
func Render(t interface{ Fatal(...any) }, s *Source, table connectors.TableName, col string, r connectors.Rendering) string {
	all, err := describeColumns(s.conn, s.flavor, table)
	if err != nil {
		t.Fatal(err)
	}
	for i := range all {
		if all[i].Name == col {
			if err := mapType(&all[i]); err != nil {
				t.Fatal(err)
			}
			sql, err := render(&all[i], r)
			if err != nil {
				t.Fatal(err)
			}
			return sql
		}
	}
	t.Fatal("no column " + col)
	return ""
}
