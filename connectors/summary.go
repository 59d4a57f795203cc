package connectors

import "context"

// Row summaries: what VALIDATE MIRROR compares. Each side of a mirror
// counts a table's rows and, for a checksum, sums a hash of each row's
// canonical rendering per range of the first key column. The rendering
// (Rendering) is chosen per column by the destination, which knows what it
// can render exactly as the source does; the source renders the same way.
// The source says which renderings it can produce exactly (CanRender); a
// column either side cannot render is left out and reported. Both sides
// compute in their own database, so no rows travel.
//
// The canonical form of a row is, for each compared column in order,
// "n" for NULL or "v" + the rendering's length in characters + ":" + the
// rendering. Its hash is the first 15 hexadecimal digits of its MD5 read as
// a number (60 bits); a range's checksum is the sum of its rows' hashes
// modulo 2^64, as decimal text: order-independent, and a row counted twice
// is not cancelled out (as with XOR). A row's range is its key
// floor-divided by the width (written with integer division only, so that
// both sides agree on negative keys too).

// Rendering is how a column's values are rendered for a checksum, the same
// on every side.
type Rendering uint8

const (
	// RenderText is Postgres's text output of the value (value::text), as
	// the destination holds it: every type on a Postgres destination;
	// text-like types, jsonb and uuid on ClickHouse.
	RenderText Rendering = iota + 1
	// RenderBool is 1 or 0.
	RenderBool
	// RenderEpochMicros is a timestamp or timestamptz as microseconds since
	// 1970-01-01 00:00:00 (UTC for timestamptz), in decimal.
	RenderEpochMicros
	// RenderDate is a date as YYYY-MM-DD.
	RenderDate
	// RenderHex is bytea as lower-case hexadecimal.
	RenderHex
	// RenderTrimmedDecimal is a numeric without trailing zeros after the
	// point (1.50 is 1.5, 2.00 is 2).
	RenderTrimmedDecimal
)

// SummaryColumn is a column compared by checksum, and how it is rendered.
type SummaryColumn struct {
	Name   string
	Render Rendering
}

// SummarySpec is what a side summarizes of one table.
type SummarySpec struct {
	// Key, when not "", is the first primary-key column, an integer:
	// checksums are per range of Width keys of it, and MinKey and MaxKey
	// are returned.
	Key string
	// Width is the width of a key range; 0 with Key: only counts and the
	// key's bounds.
	Width int64
	// Checksum asks for checksums of Columns (per range, or of the whole
	// table as range 0 when Key is "").
	Checksum bool
	Columns  []SummaryColumn
}

// RowSummary is one side's summary of a table.
type RowSummary struct {
	// Rows is the number of (live) rows.
	Rows int64
	// MinKey and MaxKey bound SummarySpec.Key when Rows > 0.
	MinKey, MaxKey int64
	// Ranges holds, when SummarySpec.Checksum, each range that has rows by
	// its number (Key floor-divided by Width; 0 without a key).
	Ranges map[int64]RangeSummary
}

// AddRange adds to s one range's row of a summary query: its number, its
// rows n, its checksum sum (nil when not asked for) and its least and
// greatest keys (nil without a key). A range without rows is left out.
// For connectors, whose summary queries return such rows.
func (s *RowSummary) AddRange(spec SummarySpec, bucket, n int64, sum *string, lo, hi *int64) {
	if n == 0 {
		return
	}
	first := s.Rows == 0
	s.Rows += n
	if lo != nil && hi != nil {
		if first || *lo < s.MinKey {
			s.MinKey = *lo
		}
		if first || *hi > s.MaxKey {
			s.MaxKey = *hi
		}
	}
	if spec.Checksum && sum != nil {
		if s.Ranges == nil {
			s.Ranges = map[int64]RangeSummary{}
		}
		s.Ranges[bucket] = RangeSummary{Rows: n, Sum: *sum}
	}
}

// RangeSummary is a key range's rows and checksum.
type RangeSummary struct {
	Rows int64
	Sum  string
}

// SnapshotSummer is the ability of a source to summarize a table as a
// snapshot (TableSnapshotter) shows it (VALIDATE MIRROR).
type SnapshotSummer interface {
	// CanRender reports whether the source renders c's values as r
	// describes, exactly; a column the destination would compare as r and
	// the source cannot render so is not compared. No I/O.
	CanRender(c Column, r Rendering) bool
	// SummarizeSnapshot summarizes table under snapshot (Snapshot.Name),
	// on a connection of its own, rendering spec.Columns as asked.
	SummarizeSnapshot(ctx context.Context, snapshot string, table TableName, spec SummarySpec) (RowSummary, error)
}

// SummarySnapshotter is the ability of a SnapshotSummer to take a snapshot
// for summaries only, which VALIDATE MIRROR takes instead of a
// TableSnapshot when the source has it: a source that cannot hand a
// snapshot to another connection (MySQL) keeps the one that took it open
// for SummarizeSnapshot until the snapshot or the source is closed, which
// its TableSnapshot, used by loads, does not (it would hold back the
// server's purge for a whole copy).
type SummarySnapshotter interface {
	// SummarySnapshot returns a new snapshot and its exact position, or
	// an error saying why the source cannot have one. The caller closes
	// it.
	SummarySnapshot(ctx context.Context) (*Snapshot, error)
}

// RowSummer is the ability of a destination to summarize a mirrored table
// as it stands now: its live rows, without those marked deleted (soft
// deletes) or superseded by a newer version (VALIDATE MIRROR).
type RowSummer interface {
	// SummaryColumns returns the columns of d it can compare by checksum
	// with their rendering, in d's order, and, one line each, those it
	// cannot render exactly as the source does (skipped, which a
	// validation reports as not compared). No I/O.
	SummaryColumns(d DestTable) (cols []SummaryColumn, skipped []string)
	// SummarizeRows summarizes d.Dest.
	SummarizeRows(ctx context.Context, d DestTable, spec SummarySpec) (RowSummary, error)
}
