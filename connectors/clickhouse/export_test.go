package clickhouse

import "time"

// SetLoadLimits sets the rows and bytes of l's blocks, the rows of its
// inserts and the time after which an idle insert ends, for tests of loads
// that span several blocks and inserts.
func SetLoadLimits(l *Loader, blockRows, blockBytes, insertRows int, idle time.Duration) {
	l.limits = loadLimits{blockRows: blockRows, blockBytes: blockBytes, insertRows: insertRows, idle: idle}
}
