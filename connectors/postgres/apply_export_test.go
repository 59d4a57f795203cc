package postgres

// SetRetainChanges makes a keep copies of at most n changes of a
// transaction for a redo (see Applier.Add), so tests reach the guarded
// flushes with small transactions.
func SetRetainChanges(a *Applier, n int) { a.retain = n }
