package clickhouse

import (
	"testing"

	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/postgres"
)

// TestLegacyLSNEncoding: the metadata's LSN fallback encodes and decodes
// LSNs as the Postgres source does (rows written before positions held
// its LSNs; rows written now keep lsn in step with position).
func TestLegacyLSNEncoding(t *testing.T) {
	for _, lsn := range []uint64{0, 1, 0x16B3748, 0xFFFFFFFF, 1 << 32, 0xFFFFFFFF0, 0x1234ABCD5678EF90, 1<<64 - 1} {
		if got, want := lsnPosition(lsn), postgres.LSNPosition(lsn); got != want {
			t.Errorf("lsnPosition(%X) = %q, want %q", lsn, got, want)
		}
		if got := positionLSN(postgres.LSNPosition(lsn)); got != lsn {
			t.Errorf("positionLSN(%q) = %X, want %X", postgres.LSNPosition(lsn), got, lsn)
		}
	}
	for _, p := range []connectors.Position{"", "binlog.000003:42", "00000000016b3748", "0000000016B3748", "00000000016B37480"} {
		if got := positionLSN(p); got != 0 {
			t.Errorf("positionLSN(%q) = %X, want 0 (not a Postgres LSN)", p, got)
		}
	}
}
