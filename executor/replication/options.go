package replication

import (
	"strconv"
)

// Options are a mirror's settings as the flows read them, from the options
// CREATE MIRROR validated and stored (see executor's mirror options for
// their names, defaults and checks).
type Options struct {
	DoInitialCopy        bool
	InitialCopyOnly      bool
	Publication          string
	Slot                 string
	RowsPerPartition     int64
	PartitionsOverride   int64
	MaxParallelWorkers   int
	TablesInParallel     int
	MaxBatchSize         int
	SyncInterval         int
	SoftDeleteColumn     string
	SyncedAtColumn       string
	ReplicateIndexes     bool
	ReplicateForeignKeys bool
	ResyncStrategy       string
}

// ParseOptions reads a mirror's stored options. They were validated when
// stored: a value that does not parse reads as the zero value.
func ParseOptions(opts map[string]string) Options {
	atoi := func(k string) int64 { n, _ := strconv.ParseInt(opts[k], 10, 64); return n }
	return Options{
		DoInitialCopy:        opts["do_initial_copy"] == "true",
		InitialCopyOnly:      opts["initial_copy_only"] == "true",
		Publication:          opts["publication_name"],
		Slot:                 opts["replication_slot_name"],
		RowsPerPartition:     atoi("snapshot_num_rows_per_partition"),
		PartitionsOverride:   atoi("snapshot_num_partitions_override"),
		MaxParallelWorkers:   int(atoi("snapshot_max_parallel_workers")),
		TablesInParallel:     int(atoi("snapshot_num_tables_in_parallel")),
		MaxBatchSize:         int(atoi("max_batch_size")),
		SyncInterval:         int(atoi("sync_interval")),
		SoftDeleteColumn:     opts["soft_delete_col_name"],
		SyncedAtColumn:       opts["synced_at_col_name"],
		ReplicateIndexes:     opts["replicate_indexes"] == "true",
		ReplicateForeignKeys: opts["replicate_foreign_keys"] == "true",
		ResyncStrategy:       opts["resync_strategy"],
	}
}

// rowsPerPartition is the partition size of the initial load of a table of
// about estRows rows: snapshot_num_rows_per_partition, or, with
// snapshot_num_partitions_override, the size that splits the table into
// that many partitions (fewer when the table has fewer pages or rows).
func (o Options) rowsPerPartition(estRows int64) int64 {
	if o.PartitionsOverride <= 0 || estRows <= 0 {
		return o.RowsPerPartition
	}
	return max(1, (estRows+o.PartitionsOverride-1)/o.PartitionsOverride)
}

// Phases of a mirror besides the catalog's.
const (
	// PhaseCompleted marks a mirror with initial_copy_only whose copy is
	// done.
	PhaseCompleted = "COMPLETED"
)

// Resync strategies.
const (
	StrategySwap     = "swap"
	StrategyTruncate = "truncate"
)
