package executor

import "github.com/sluicedb/sluice/executor/replication"

// SetCopyRowHook makes every copy call fn after each row it reads until
// restore is called (replication.SetCopyRowHook).
func SetCopyRowHook(fn func(mirror string, rows int64)) (restore func()) {
	return replication.SetCopyRowHook(fn)
}

// SetStepHook makes the flows call fn after each table step they record
// until restore is called (replication.SetStepHook).
func SetStepHook(fn func(mirror, step string)) (restore func()) {
	return replication.SetStepHook(fn)
}

// SetBatchHook makes the flows call fn after each batch they apply until
// restore is called (replication.SetBatchHook).
func SetBatchHook(fn func(mirror string, rows, maxBatch int)) (restore func()) {
	return replication.SetBatchHook(fn)
}
