package mysql_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/mysql"
)

// allTypesDDL is a table with a column of every type the mapping covers,
// shared by the Describe and encoding tests.
const allTypesDDL = `CREATE TABLE %s.edge (
	id int PRIMARY KEY,
	ti tinyint, tiu tinyint unsigned, b1 tinyint(1), si smallint, siu smallint unsigned,
	mi mediumint, miu mediumint unsigned, i int, iu int unsigned, bi bigint, biu bigint unsigned,
	d decimal(20,6), dz decimal(65,30), f float, db double, bt bit(10), b64 bit(64),
	dt date, dtm datetime(6), dtm0 datetime, ts timestamp(3) NULL DEFAULT NULL, tm time(6), tm0 time, yr year,
	c char(5), vc varchar(20), tx text, lat varchar(10) CHARACTER SET latin1,
	bn binary(4), vb varbinary(10), bl blob,
	en enum('a','b c','it''s'), st set('x','y','z'), js json, g geometry
)`

// allTypesWant is the mapping of allTypesDDL's columns, in order.
var allTypesWant = []string{
	"id integer", "ti smallint", "tiu smallint", "b1 smallint", "si smallint", "siu integer",
	"mi integer", "miu integer", "i integer", "iu bigint", "bi bigint", "biu numeric(20,0)",
	"d numeric(20,6)", "dz numeric(65,30)", "f real", "db double precision", "bt bit varying(10)", "b64 bit varying(64)",
	"dt date", "dtm timestamp(6) without time zone", "dtm0 timestamp(0) without time zone",
	"ts timestamp(3) with time zone", "tm interval(6)", "tm0 interval(0)", "yr smallint",
	"c character varying(5)", "vc character varying(20)", "tx text", "lat character varying(10)",
	"bn bytea", "vb bytea", "bl bytea", "en text", "st text[]", "js jsonb", "g bytea",
}

func TestDescribe(t *testing.T) {
	db := newDB(t)
	maria.Exec(t, "", fmt.Sprintf(allTypesDDL, db),
		"CREATE TABLE "+db+".nokey (a int)",
		"CREATE TABLE "+db+".multi (a int NOT NULL, b varchar(5) NOT NULL, c int, PRIMARY KEY (b, a))",
		"CREATE VIEW "+db+".v AS SELECT 1 AS x",
		"CREATE TABLE "+db+".odd (id int PRIMARY KEY, u uuid)")
	src := openSource(t, db)
	ctx := testCtx(t)
	ts, err := src.Describe(ctx, connectors.TableName{Schema: db, Name: "edge"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range ts.Columns {
		got = append(got, c.Name+" "+c.Type)
	}
	if strings.Join(got, ", ") != strings.Join(allTypesWant, ", ") {
		t.Errorf("columns:\n got %s\nwant %s", strings.Join(got, ", "), strings.Join(allTypesWant, ", "))
	}
	if len(ts.PrimaryKey) != 1 || ts.PrimaryKey[0] != "id" || !ts.Columns[0].NotNull || ts.Columns[1].NotNull {
		t.Errorf("key %v, not null %v %v", ts.PrimaryKey, ts.Columns[0].NotNull, ts.Columns[1].NotNull)
	}

	ts, err = src.Describe(ctx, connectors.TableName{Schema: db, Name: "multi"}, []string{"c"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(ts.PrimaryKey, ",") != "b,a" || len(ts.Columns) != 2 || ts.Columns[1].Position != 2 || ts.Exclude[0] != "c" {
		t.Errorf("multi: %+v", ts)
	}
	for _, c := range []struct {
		table   string
		exclude []string
		is      error
		want    string
	}{
		{"missing", nil, connectors.ErrTableNotFound, "missing"},
		{"v", nil, connectors.ErrTableNotFound, "is a view"},
		{"nokey", nil, connectors.ErrNoPrimaryKey, "primary key"},
		{"odd", nil, connectors.ErrUnsupportedType, `column "u": type uuid`},
		{"multi", []string{"a"}, nil, `cannot exclude column "a": it is part of the primary key`},
		{"multi", []string{"zz"}, nil, `excluded column "zz" does not exist`},
	} {
		_, err := src.Describe(ctx, connectors.TableName{Schema: db, Name: c.table}, c.exclude)
		if err == nil || (c.is != nil && !errors.Is(err, c.is)) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %v: err = %v, want %v saying %q", c.table, c.exclude, err, c.is, c.want)
		}
	}
	if _, err := src.Describe(ctx, connectors.TableName{Schema: db, Name: "odd"}, []string{"u"}); err != nil {
		t.Errorf("odd without its uuid column: %v", err)
	}
}

func TestParseLabels(t *testing.T) {
	got, err := mysql.ParseLabels(`'a','b c','it''s','back\\slash',''`)
	if err != nil || strings.Join(got, "|") != `a|b c|it's|back\slash|` {
		t.Errorf("labels %q, %v", got, err)
	}
	if _, err := mysql.ParseLabels(`'a`); err == nil {
		t.Error("unterminated label accepted")
	}
}
