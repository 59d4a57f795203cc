package replication

import (
	"strconv"

	"github.com/sluicedb/sluice/connectors"
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

// The automatic partition size (snapshot_num_rows_per_partition 0, the
// default): a table of at most wholeTableBytes is copied whole, in one
// partition, and a larger one in partitions of autoRowsPerPartition rows.
//
// Why whole: partitions pay for parallel streams, and a load adds a
// stream only when what is left takes at least windowWorthIt (2.8 s) at
// the current rate, after the first stream's settle and sample (0.7 s,
// load_window.go). One stream copies 1.3M rows (160 MB) a second on the
// benchmark's 2 shared cores: at twice that speed a 1 GB table takes 3.2
// s, so below that size a second stream would rarely be tried. And a
// partition costs the source more than the whole table: Postgres reads a
// ctid range with the executor and through shared buffers (no bulk-read
// ring), the whole table with COPY table TO: on pgbench_accounts the
// partitioned read took 1.15-1.57 s of the source's CPU against 0.73-1.11
// s for the whole table in the same runs, and the load 0.83-0.88 of a COPY
// pipe's speed against 0.94-1.06. A kill in the middle redoes the whole
// table: at most a few seconds of copying. Sizes are the source's (Pages,
// 8 kB each); a source that reports none (MySQL) gets partitions.
const (
	wholeTableBytes      = 1 << 30
	autoRowsPerPartition = 250_000
	pageBytes            = 8 << 10
)

// partitionRows returns the partition size of the initial load of a
// table described by ts, as a function of its estimated rows (what
// connectors.Source.Plan calls; 0 is one partition):
// snapshot_num_partitions_override's size when it is above 0, else
// snapshot_num_rows_per_partition, or, when that is 0 (automatic), 0 for
// a table of at most wholeTableBytes and autoRowsPerPartition for a
// larger one or one of unknown size.
func (o Options) partitionRows(ts *connectors.TableSchema) func(estRows int64) int64 {
	return func(estRows int64) int64 {
		if o.PartitionsOverride > 0 && estRows > 0 {
			return max(1, (estRows+o.PartitionsOverride-1)/o.PartitionsOverride)
		}
		if o.RowsPerPartition > 0 {
			return o.RowsPerPartition
		}
		if ts != nil && ts.Pages > 0 && ts.Pages <= wholeTableBytes/pageBytes {
			return 0
		}
		return autoRowsPerPartition
	}
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
