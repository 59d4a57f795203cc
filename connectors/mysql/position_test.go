package mysql_test

import (
	"strings"
	"testing"

	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/mysql"
)

// TestPositionOrder checks that positions order bytewise as the binlog
// does (file sequence, then offset), that the Version follows, and that a
// position reads back.
func TestPositionOrder(t *testing.T) {
	in := []mysql.BinlogPos{
		{File: "mysql-bin.000001", Offset: 4},
		{File: "mysql-bin.000001", Offset: 256},
		{File: "mysql-bin.000001", Offset: 1 << 30},
		{File: "mysql-bin.000002", Offset: 4},
		{File: "mysql-bin.000010", Offset: 0},
		{File: "mysql-bin.1000000", Offset: 120},
	}
	var prev connectors.Position
	var prevV uint64
	for i, p := range in {
		pos, v, err := p.Position()
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 && (!prev.Before(pos) || v <= prevV) {
			t.Errorf("%+v: %q (v %d) not after %q (v %d)", p, pos, v, prev, prevV)
		}
		back, err := mysql.DecodePosition(pos)
		if err != nil || back != p {
			t.Errorf("%q decodes to %+v, %v", pos, back, err)
		}
		if got, _ := p.Version(); got != v {
			t.Errorf("Version %d, Position's %d", got, v)
		}
		prev, prevV = pos, v
	}
	pos, _, _ := in[1].Position()
	if s := mysql.FormatPosition(pos); s != "mysql-bin.000001:256" {
		t.Errorf("FormatPosition = %q", s)
	}
	if s := mysql.FormatPosition("junk"); s != "junk" {
		t.Errorf("FormatPosition(junk) = %q", s)
	}
	for _, bad := range []mysql.BinlogPos{{File: "nodot", Offset: 1}, {File: "bin.x", Offset: 1},
		{File: "bin.000001", Offset: 1 << 40}, {File: "bin.99999999", Offset: 1}, {File: "a b.000001"}} {
		if _, _, err := bad.Position(); err == nil {
			t.Errorf("%+v encoded", bad)
		}
	}
	for _, bad := range []connectors.Position{"", "00000100000004D2", "00000100000004D2 bin.000002", "00000100000004D2 bin.000001 0-1-9", "zz 1"} {
		if _, err := mysql.DecodePosition(bad); err == nil || !strings.Contains(err.Error(), "not a MySQL binlog position") {
			t.Errorf("DecodePosition(%q): %v", bad, err)
		}
	}
}
