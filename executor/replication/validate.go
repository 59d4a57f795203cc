package replication

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/sluicedb/sluice/connectors"
)

// VALIDATE MIRROR: compare each table on both sides at one consistent
// point, while the mirror streams (docs/validate.md).
//
//  1. The statement enqueues a validate job for the node that runs the
//     mirror's flow (Engine.Validate, validate_jobs.go), whose worker
//     hands a request to that flow (validateHere). Its batcher commits what it holds (a source may
//     wait for every transaction on its server to end, the batcher's own
//     on a destination there included: see ask), then takes a snapshot of
//     the source of its own (connectors.TableSnapshotter, or
//     connectors.SummarySnapshotter when the source has it: one kept open
//     for the source's summaries), at position S: the snapshot holds
//     exactly the transactions whose commit starts before S, the split
//     RESYNC TABLE's catch-up uses.
//  2. The batcher goes on applying until the stream reaches S: the first
//     transaction that begins at or after S, or a progress event at or
//     after S outside a transaction (a heartbeat sent after the snapshot
//     brings one on an idle source). It then commits what it has, so the
//     destination holds every transaction before S and none after, and
//     holds the stream there while it summarizes the destination's tables
//     (connectors.RowSummer). Then it goes on.
//  3. The job summarizes the source's tables under the snapshot
//     (connectors.SnapshotSummer) while the mirror streams, compares,
//     and records the result; the statement returns it.
//
// Nothing is written to the destination or acknowledged differently, and
// the hold lives in memory only: a kill during a validation loses nothing
// (the source's snapshot ends with its connection). A validation that
// cannot reach S within holdReach, or whose destination side exceeds
// holdMax, fails; the mirror goes on.

// Validation timeouts.
const (
	// takeTimeout bounds the wait for the running flow to take a request.
	takeTimeout = 10 * time.Second
	// holdReach bounds the wait for the stream to reach the snapshot.
	holdReach = 30 * time.Second
	// holdMax bounds the destination's side, during which the stream waits.
	holdMax = 60 * time.Second
	// targetRanges is about how many key ranges a table is checksummed in.
	targetRanges = 64
)

// ErrNotStreaming is Engine.Validate's error for a mirror whose flow is
// not streaming changes.
var ErrNotStreaming = errors.New("mirror is not streaming")

// ValidateRequest is what VALIDATE MIRROR asks for.
type ValidateRequest struct {
	// Tables are the source tables to compare; none: all of the mirror's.
	Tables []connectors.TableName
	// Checksum compares checksums per key range; otherwise row counts.
	Checksum bool
}

// TableValidation is the result for one table.
type TableValidation struct {
	Table                       connectors.TableName
	SourceRows, DestinationRows int64
	// Mismatched lists the key ranges whose checksums differ, e.g.
	// "[1000, 2000)" ("(whole table)" without an integer key); nil in count
	// mode.
	Mismatched []string
	// Equal: what was compared is equal.
	Equal bool
	// Skipped lists the columns not compared (a checksum on a destination
	// that cannot render them as the source does), one "name (type)" each.
	Skipped []string
}

// Status is the result's status: "equal" or "different", followed by the
// columns not compared, if any.
func (t TableValidation) Status() string {
	s := "different"
	if t.Equal {
		s = "equal"
	}
	if len(t.Skipped) > 0 {
		s += "; not compared: " + strings.Join(t.Skipped, ", ")
	}
	return s
}

// ValidateResult is a validation's outcome.
type ValidateResult struct {
	// Position is the consistent point, as the source's kind renders it.
	Position string
	Tables   []TableValidation
}

// validation is a request on its way to the flow.
type validation struct {
	req   ValidateRequest
	reply chan validationReply // buffered: the flow never blocks on it
}

// validationReply is the flow's answer: the destination's side, and the
// source and its snapshot, which the requester now owns and closes.
type validationReply struct {
	src    connectors.Source
	snap   *connectors.Snapshot
	shown  string
	tables []validatedTable
	err    error
}

// validatedTable is one table's destination side.
type validatedTable struct {
	dest    connectors.DestTable
	spec    connectors.SummarySpec
	skipped []string
	summary connectors.RowSummary
}

// validateHere compares the mirror's tables on both sides at one
// consistent point (see above), through the mirror's flow on this node.
// It fails with an error wrapping ErrNotStreaming when the mirror has no
// flow here streaming changes to take the request. Its caller records
// the result: a validate job on the node holding the mirror's lease
// (validate_jobs.go). Safe for concurrent use.
func (e *Engine) validateHere(ctx context.Context, name string, req ValidateRequest) (ValidateResult, error) {
	e.mu.Lock()
	r := e.runners[name]
	e.mu.Unlock()
	if r == nil {
		return ValidateResult{}, fmt.Errorf("%w: its flow is not running", ErrNotStreaming)
	}
	r.validating.Add(1) // no hand-over for balance meanwhile (balance.go)
	defer r.validating.Add(-1)
	v := &validation{req: req, reply: make(chan validationReply, 1)}
	t := time.NewTimer(takeTimeout)
	defer t.Stop()
	select {
	case r.validate <- v:
	case <-t.C:
		return ValidateResult{}, fmt.Errorf("%w: its flow did not take the request within %s (it may be retrying after an error)",
			ErrNotStreaming, takeTimeout)
	case <-ctx.Done():
		return ValidateResult{}, ctx.Err()
	case <-r.done:
		return ValidateResult{}, fmt.Errorf("%w: its flow stopped", ErrNotStreaming)
	}
	var rep validationReply
	select {
	case rep = <-v.reply:
	case <-ctx.Done():
		// The flow ends the hold by its timeouts; what it replies is
		// dropped with the buffered channel, and closed here.
		go func() {
			select {
			case rep := <-v.reply:
				rep.close()
			case <-time.After(holdReach + holdMax + time.Minute):
			}
		}()
		return ValidateResult{}, ctx.Err()
	}
	defer rep.close()
	if rep.err != nil {
		return ValidateResult{}, rep.err
	}
	summer := rep.src.(connectors.SnapshotSummer) // checked by the flow
	out := ValidateResult{Position: rep.shown}
	for _, t := range rep.tables {
		src, err := summer.SummarizeSnapshot(ctx, rep.snap.Name, t.dest.Source, t.spec)
		if err != nil {
			return ValidateResult{}, fmt.Errorf("source side of %s: %w", t.dest.Source, err)
		}
		out.Tables = append(out.Tables, compare(t, src))
	}
	return out, nil
}

// close closes what the reply hands over.
func (r validationReply) close() {
	r.snap.Close()
	if r.src != nil {
		r.src.Close(context.Background())
	}
}

// compare compares the two sides of one table.
func compare(t validatedTable, src connectors.RowSummary) TableValidation {
	out := TableValidation{Table: t.dest.Source, SourceRows: src.Rows, DestinationRows: t.summary.Rows, Skipped: t.skipped}
	out.Equal = src.Rows == t.summary.Rows
	if !t.spec.Checksum {
		return out
	}
	out.Mismatched = []string{}
	var bad []int64
	for b, s := range src.Ranges {
		if t.summary.Ranges[b] != s {
			bad = append(bad, b)
		}
	}
	for b := range t.summary.Ranges {
		if _, ok := src.Ranges[b]; !ok {
			bad = append(bad, b)
		}
	}
	sort.Slice(bad, func(i, j int) bool { return bad[i] < bad[j] })
	for _, b := range bad {
		if t.spec.Key == "" || t.spec.Width == 0 {
			out.Mismatched = append(out.Mismatched, "(whole table)")
			continue
		}
		out.Mismatched = append(out.Mismatched, fmt.Sprintf("[%d, %d)", b*t.spec.Width, (b+1)*t.spec.Width))
	}
	out.Equal = out.Equal && len(bad) == 0
	return out
}

// rangeKey returns the column whose ranges a table is checksummed by: its
// first key column when it is an integer; "" otherwise (one range).
func rangeKey(ts *connectors.TableSchema) string {
	if len(ts.PrimaryKey) == 0 {
		return ""
	}
	for _, c := range ts.Columns {
		if c.Name == ts.PrimaryKey[0] {
			switch c.TypeOID {
			case pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID:
				return c.Name
			}
		}
	}
	return ""
}

// rangeWidth returns a round width (1, 2 or 5 times a power of ten) that
// cuts [lo, hi] into at most about targetRanges ranges.
func rangeWidth(lo, hi int64, rows int64) int64 {
	if rows == 0 || hi < lo {
		return 1000
	}
	span := uint64(hi) - uint64(lo) // hi - lo without overflow
	want := max(span/targetRanges+1, 1)
	for w := uint64(1); ; w *= 10 {
		for _, m := range []uint64{1, 2, 5} {
			if w*m >= want || w*m >= 1<<61 {
				return int64(w * m)
			}
		}
	}
}
