package postgres

import (
	"testing"

	"github.com/sluicedb/sluice/connectors"
)

func TestLSNPositionOrdersAsLSNs(t *testing.T) {
	lsns := []uint64{0, 1, 0xF, 0x10, 0x16B3748, 0x1_0000_0000, 0xFFFF_FFFF_FFFF_FFFF}
	for i, a := range lsns {
		got, err := PositionLSN(LSNPosition(a))
		if err != nil || got != a {
			t.Fatalf("PositionLSN(LSNPosition(%X)) = %X, %v", a, got, err)
		}
		for _, b := range lsns[i+1:] {
			if !LSNPosition(a).Before(LSNPosition(b)) {
				t.Errorf("LSNPosition(%X) is not before LSNPosition(%X)", a, b)
			}
		}
	}
	if _, err := PositionLSN("not an lsn"); err == nil {
		t.Error("PositionLSN accepted a foreign position")
	}
}

func TestFormatPosition(t *testing.T) {
	for p, want := range map[string]string{"": "0/0", "00000000016B3748": "0/16B3748", "0000000100000010": "1/10", "other": "other"} {
		if got := FormatPosition(connectors.Position(p)); got != want {
			t.Errorf("FormatPosition(%q) = %q, want %q", p, got, want)
		}
	}
}
