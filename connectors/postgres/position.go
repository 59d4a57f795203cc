package postgres

import (
	"fmt"
	"strconv"

	"github.com/sluicedb/sluice/connectors"
)

// LSNPosition encodes lsn as a connectors.Position: 16 upper-case
// hexadecimal digits, which order bytewise as the LSNs do. LSN 0 is the
// zero Position.
func LSNPosition(lsn uint64) connectors.Position {
	if lsn == 0 {
		return ""
	}
	return connectors.Position(fmt.Sprintf("%016X", lsn))
}

// PositionLSN decodes a Position that LSNPosition made; "" is LSN 0.
func PositionLSN(p connectors.Position) (uint64, error) {
	if p == "" {
		return 0, nil
	}
	if len(p) != 16 {
		return 0, fmt.Errorf("position %q is not a Postgres LSN", string(p))
	}
	lsn, err := strconv.ParseUint(string(p), 16, 64)
	if err != nil {
		return 0, fmt.Errorf("position %q is not a Postgres LSN: %w", string(p), err)
	}
	return lsn, nil
}

// FormatPosition renders a Position that LSNPosition made as Postgres
// writes an LSN ("0/16B3748"); another position is shown as it is.
func FormatPosition(p connectors.Position) string {
	lsn, err := PositionLSN(p)
	if err != nil {
		return string(p)
	}
	return fmt.Sprintf("%X/%X", lsn>>32, uint32(lsn))
}
