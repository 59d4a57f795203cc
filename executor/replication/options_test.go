package replication

import (
	"testing"

	"github.com/sluicedb/sluice/connectors"
)

// partitionRows: an explicit snapshot_num_rows_per_partition is kept
// whatever the table's size, snapshot_num_partitions_override wins over
// it, and the automatic size (0) copies a table of up to 1 GB whole and
// splits a larger one, or one whose size the source does not report, into
// 250,000-row partitions.
func TestPartitionRows(t *testing.T) {
	small := &connectors.TableSchema{Pages: 49_181}                      // pgbench_accounts at scale 30, 384 MB
	limit := &connectors.TableSchema{Pages: wholeTableBytes / pageBytes} // 1 GB
	big := &connectors.TableSchema{Pages: wholeTableBytes/pageBytes + 1}
	unknown := &connectors.TableSchema{}
	for _, c := range []struct {
		name           string
		rows, override int64
		ts             *connectors.TableSchema
		est, want      int64
	}{
		{"auto, 384 MB", 0, 0, small, 3_000_000, 0},
		{"auto, 1 GB", 0, 0, limit, 8_000_000, 0},
		{"auto, just over 1 GB", 0, 0, big, 8_000_000, autoRowsPerPartition},
		{"auto, size unknown", 0, 0, unknown, 3_000_000, autoRowsPerPartition},
		{"auto, no schema", 0, 0, nil, 3_000_000, autoRowsPerPartition},
		{"explicit, small table", 1000, 0, small, 3_000_000, 1000},
		{"explicit, big table", 250_000, 0, big, 8_000_000, 250_000},
		{"override", 1000, 4, small, 3_000_000, 750_000},
		{"override, auto", 0, 3, small, 10, 4},
		{"override without an estimate", 1000, 4, small, 0, 1000},
	} {
		o := Options{RowsPerPartition: c.rows, PartitionsOverride: c.override}
		if got := o.partitionRows(c.ts)(c.est); got != c.want {
			t.Errorf("%s: %d rows a partition, want %d", c.name, got, c.want)
		}
	}
}
