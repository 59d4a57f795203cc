package clickhouse

// SetWindow sets the bounds of a's windows (Applier.windowKeys and
// windowBytes; 0 keeps one), so that a test's small transaction is written
// in several windows.
func SetWindow(a *Applier, keys, bytes int) {
	if keys > 0 {
		a.windowKeys = keys
	}
	if bytes > 0 {
		a.windowBytes = bytes
	}
}
