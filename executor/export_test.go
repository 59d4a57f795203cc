package executor

// SetCopyRowHook makes every copy call fn after each row it reads (see
// copyRowHook) until restore is called.
func SetCopyRowHook(fn func(mirror string, rows int64)) (restore func()) {
	old := copyRowHook.Swap(&fn)
	return func() { copyRowHook.Store(old) }
}

// SetStepHook makes the flows call fn after each table step they record
// (see stepHook) until restore is called.
func SetStepHook(fn func(mirror, step string)) (restore func()) {
	old := stepHook.Swap(&fn)
	return func() { stepHook.Store(old) }
}
