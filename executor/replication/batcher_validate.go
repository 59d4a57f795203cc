package replication

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sluicedb/sluice/connectors"
)

// The batcher's side of VALIDATE MIRROR (validate.go): take the source's
// snapshot, stop at its position, summarize the destination there.

// hold is a validation waiting for the stream to reach its snapshot.
type hold struct {
	v     *validation
	src   connectors.Source
	snap  *connectors.Snapshot
	since time.Time
}

// fail answers the validation with err and releases what it holds.
func (h *hold) fail(err error) {
	h.snap.Close()
	if h.src != nil {
		h.src.Close(context.Background())
	}
	h.v.reply <- validationReply{err: err}
}

// asked is a validation the batcher took, waiting to begin.
type asked struct {
	v     *validation
	since time.Time
}

// ask takes v: it begins (startAsked) once no destination transaction is
// open. A source may wait, to take its snapshot, for every transaction
// running on its server to end (a Postgres slot does): one of the mirror's
// own destination transactions, on the same server and open while the
// batcher waits, would never end.
func (b *batcher) ask(v *validation) {
	switch {
	case b.hold != nil || b.asked != nil:
		v.reply <- validationReply{err: fmt.Errorf("another validation of mirror %q is under way", b.f.m.Name)}
	case b.rs.active() || b.rs != nil && b.rs.copying > 0 || b.vr != nil && b.vr.copying > 0:
		v.reply <- validationReply{err: fmt.Errorf("a table resync of mirror %q is under way: validate once it is done", b.f.m.Name)}
	default:
		b.asked = &asked{v: v, since: time.Now()}
	}
}

// startAsked begins the validation asked for, if any, once the
// destination transaction is committed: it commits the complete
// transactions it holds, and otherwise (rows of a transaction still being
// received were added) waits for the end of that transaction. The error
// returned is the mirror's.
func (b *batcher) startAsked(ctx context.Context, stream connectors.Stream) error {
	if b.asked == nil {
		return nil
	}
	if b.applier.InTx() {
		if err := b.flush(ctx); err != nil {
			return err
		}
	}
	a := b.asked
	if b.applier.InTx() {
		if time.Since(a.since) > b.reachWithin() {
			b.asked = nil
			a.v.reply <- validationReply{err: fmt.Errorf("validate: the mirror's destination transaction did not end within %s", b.reachWithin())}
		}
		return nil
	}
	b.asked = nil
	return b.startValidation(ctx, a.v, stream)
}

// startValidation takes v's source snapshot and holds the stream at it; no
// destination transaction is open. Errors of the validation go to v; the
// error returned is the mirror's (a heartbeat that failed).
func (b *batcher) startValidation(ctx context.Context, v *validation, stream connectors.Stream) error {
	refuse := func(format string, args ...any) error {
		v.reply <- validationReply{err: fmt.Errorf(format, args...)}
		return nil
	}
	if _, ok := b.dst.(connectors.RowSummer); !ok {
		return refuse("VALIDATE MIRROR is not supported for %s destinations", b.f.dstType)
	}
	tctx, cancel := context.WithTimeout(ctx, b.reachWithin())
	defer cancel()
	src, err := b.f.src.OpenSource(tctx, "sluice-validate")
	if err != nil {
		return refuse("validate: connect to the source: %w", err)
	}
	snapper, ok1 := src.(connectors.TableSnapshotter)
	_, ok2 := src.(connectors.SnapshotSummer)
	if !ok1 || !ok2 {
		src.Close(context.Background())
		return refuse("VALIDATE MIRROR is not supported for %s sources", b.f.srcType)
	}
	take := snapper.TableSnapshot
	if ss, ok := src.(connectors.SummarySnapshotter); ok {
		take = ss.SummarySnapshot
	}
	snap, err := take(tctx)
	if err != nil {
		src.Close(context.Background())
		return refuse("validate: snapshot of the source: %w", err)
	}
	h := &hold{v: v, src: src, snap: snap, since: time.Now()}
	if b.inTx && !b.beginPos.Before(snap.Position) {
		// Cannot happen: a transaction is sent once committed, before the
		// snapshot began. Refused rather than assumed.
		h.fail(errors.New("validate: the stream is already past the snapshot; try again"))
		return nil
	}
	b.hold = h
	b.f.log.InfoContext(ctx, "validation: holding the stream at the snapshot", "position", b.f.display(snap.Position))
	// On an idle source, the heartbeat's progress event reaches S.
	return stream.Heartbeat(ctx)
}

// reached reports whether the stream reached the held snapshot with ev: a
// transaction beginning at or after it, or a progress event at or after
// it outside a transaction.
func (b *batcher) reached(ev *connectors.Event) bool {
	if b.hold == nil {
		return false
	}
	switch ev.Kind {
	case connectors.EventBegin:
		return !ev.Pos.Before(b.hold.snap.Position)
	case connectors.EventProgress:
		return !b.inTx && !ev.Pos.Before(b.hold.snap.Position)
	}
	return false
}

// release commits every transaction before the snapshot, summarizes the
// destination's tables there while the stream waits, and hands the
// validation over. Errors of the validation go to it; the error returned
// is the mirror's (a batch that failed).
func (b *batcher) release(ctx context.Context) error {
	h := b.hold
	b.hold = nil
	if err := b.flush(ctx); err != nil {
		h.fail(fmt.Errorf("validate: the mirror failed: %w", err))
		return err
	}
	if b.applier.InTx() {
		h.fail(errors.New("validate: the destination transaction is still open at the snapshot; try again"))
		return nil
	}
	hctx, cancel := context.WithTimeout(ctx, holdMax)
	defer cancel()
	began := time.Now()
	tables, err := b.summarizeDestination(hctx, h.v.req, h.src.(connectors.SnapshotSummer))
	if err != nil {
		if hctx.Err() != nil && ctx.Err() == nil {
			err = fmt.Errorf("validate: the destination's side took longer than %s, which the stream waits at most: %w", holdMax, err)
		}
		h.fail(err)
		return nil
	}
	b.f.log.InfoContext(ctx, "validation: destination summarized", "position", b.f.display(h.snap.Position),
		"held", time.Since(began).Round(time.Millisecond))
	h.v.reply <- validationReply{src: h.src, snap: h.snap, shown: b.f.display(h.snap.Position), tables: tables}
	return nil
}

// reachWithin is how long a validation may wait for the stream to reach
// its snapshot: holdReach, or the batcher's own (tests).
func (b *batcher) reachWithin() time.Duration {
	if b.holdReach > 0 {
		return b.holdReach
	}
	return holdReach
}

// expireHold fails a validation that has waited longer than reachWithin
// for the stream to reach its snapshot; the mirror goes on.
func (b *batcher) expireHold() {
	if b.hold != nil && time.Since(b.hold.since) > b.reachWithin() {
		h := b.hold
		b.hold = nil
		h.fail(fmt.Errorf("validate: the stream did not reach the source's snapshot within %s", b.reachWithin()))
	}
}

// summarizeDestination summarizes the destination's tables req names.
// Columns are compared as the destination renders them, those the source
// cannot render so left out (and reported) with those the destination
// cannot.
func (b *batcher) summarizeDestination(ctx context.Context, req ValidateRequest, src connectors.SnapshotSummer) ([]validatedTable, error) {
	rs := b.dst.(connectors.RowSummer)
	var out []validatedTable
	for _, d := range b.dests {
		if len(req.Tables) > 0 && !containsTable(req.Tables, d.Source) {
			continue
		}
		t := validatedTable{dest: d, spec: connectors.SummarySpec{Key: rangeKey(d.Schema)}}
		s, err := rs.SummarizeRows(ctx, d, t.spec)
		if err != nil {
			return nil, fmt.Errorf("destination side of %s: %w", d.Source, err)
		}
		if req.Checksum {
			t.spec.Checksum = true
			cols, skipped := rs.SummaryColumns(d)
			t.skipped = skipped
			for _, c := range cols {
				if col, ok := columnNamed(d.Schema, c.Name); ok && !src.CanRender(col, c.Render) {
					t.skipped = append(t.skipped, fmt.Sprintf("%s (%s)", col.Name, col.Type))
					continue
				}
				t.spec.Columns = append(t.spec.Columns, c)
			}
			if t.spec.Key != "" {
				t.spec.Width = rangeWidth(s.MinKey, s.MaxKey, s.Rows)
			}
			if s, err = rs.SummarizeRows(ctx, d, t.spec); err != nil {
				return nil, fmt.Errorf("destination side of %s: %w", d.Source, err)
			}
		}
		t.summary = s
		out = append(out, t)
	}
	return out, nil
}

// columnNamed returns ts's column name.
func columnNamed(ts *connectors.TableSchema, name string) (connectors.Column, bool) {
	for _, c := range ts.Columns {
		if c.Name == name {
			return c, true
		}
	}
	return connectors.Column{}, false
}

func containsTable(list []connectors.TableName, t connectors.TableName) bool {
	for _, x := range list {
		if x == t {
			return true
		}
	}
	return false
}
