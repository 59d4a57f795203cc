package replication

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/connectors"
)

// flow runs one step of one mirror. It holds nothing between steps: each
// step reads the mirror from the catalog and its peers' state from them.
type flow struct {
	e     *Engine
	store *catalog.Store
	m     catalog.Mirror
	opt   Options
	log   interface {
		InfoContext(ctx context.Context, msg string, args ...any)
		ErrorContext(ctx context.Context, msg string, args ...any)
		DebugContext(ctx context.Context, msg string, args ...any)
	}
	// The mirror's peers, and their types for messages.
	src              connectors.SourcePeer
	dst              connectors.DestinationPeer
	srcType, dstType string
	// shadows maps, during a full resync's SETUP and SNAPSHOT, each live
	// destination table to the shadow table Sluice created and recorded
	// for it (see tables).
	shadows map[connectors.TableName]connectors.TableName

	// onProgress tells the supervisor the step made progress (nil: no one
	// listens); see progressed.
	onProgress   func()
	progressDone bool
	// wake receives when a request waits in the catalog (Engine.Wake);
	// nil: the flow only polls.
	wake <-chan struct{}
	// validations receives VALIDATE MIRROR requests, which only the CDC
	// phase's batcher takes (batcher_validate.go); nil: none come.
	validations <-chan *validation
	// acked is the highest position the runner's attempts acknowledged to
	// the source, shared by its flows (nil: none kept); see batcher.run.
	acked *connectors.Position
	// early is the runner's wait without early streams (early.go; nil:
	// none kept).
	early *earlyBackoff
}

// ackedBefore returns the highest position earlier attempts of the
// runner acknowledged ("" if none).
func (f *flow) ackedBefore() connectors.Position {
	if f.acked == nil {
		return ""
	}
	return *f.acked
}

// noteAcked records pos as acknowledged, for the runner's later attempts.
func (f *flow) noteAcked(pos connectors.Position) {
	if f.acked != nil && f.acked.Before(pos) {
		*f.acked = pos
	}
}

// step runs the mirror's current phase to its end.
func (f *flow) step(ctx context.Context) error {
	if err := f.peers(ctx); err != nil {
		return err
	}
	switch f.m.Phase {
	case catalog.PhaseSetup:
		return f.setup(ctx)
	case catalog.PhaseSnapshot:
		return f.snapshot(ctx, nil)
	case catalog.PhaseCDC:
		return f.cdc(ctx)
	case catalog.PhaseResync:
		return f.swapAll(ctx)
	case PhaseCompleted:
		return errFlowDone
	}
	return fmt.Errorf("mirror %q is in unknown phase %q", f.m.Name, f.m.Phase)
}

// spec names the mirror's change stream on its source.
func (f *flow) spec() connectors.StreamSpec {
	return connectors.StreamSpec{Mirror: f.m.Name, Slot: f.opt.Slot, Publication: f.opt.Publication,
		From: connectors.MaxPosition(f.m.ConsistentPosition, f.m.LastSyncedPosition)}
}

// peers loads the mirror's source and destination peers.
func (f *flow) peers(ctx context.Context) error {
	src, srcType, err := f.peer(ctx, f.m.SourcePeer)
	if err != nil {
		return err
	}
	sp, ok := src.(connectors.SourcePeer)
	if !ok {
		return fmt.Errorf("peer %q is %s: %s peers cannot be a mirror's source", f.m.SourcePeer, srcType, srcType)
	}
	dst, dstType, err := f.peer(ctx, f.m.DestinationPeer)
	if err != nil {
		return err
	}
	dp, ok := dst.(connectors.DestinationPeer)
	if !ok {
		return fmt.Errorf("peer %q is %s: %s peers cannot be a mirror's destination", f.m.DestinationPeer, dstType, dstType)
	}
	f.src, f.srcType, f.dst, f.dstType = sp, srcType, dp, dstType
	return nil
}

// peer loads and parses a peer from the catalog.
func (f *flow) peer(ctx context.Context, name string) (connectors.Peer, string, error) {
	p, err := f.store.GetPeer(ctx, name)
	if err != nil {
		return nil, "", fmt.Errorf("load peer %q: %w", name, err)
	}
	kind, ok := f.e.cfg.Kinds.Lookup(p.Type)
	if !ok {
		return nil, p.Type, fmt.Errorf("peer %q is of type %s, which this server does not know", name, p.Type)
	}
	peer, err := kind.Parse(p.Options)
	if err != nil {
		return nil, p.Type, fmt.Errorf("peer %q: %w", name, err)
	}
	return peer, p.Type, nil
}

// open connects to the source and the destination, both as appName, at
// the same time (a connection costs round trips and, on Postgres, the
// start of a server process: 20-30 ms on the 2-core machine); closeAll
// closes them.
func (f *flow) open(ctx context.Context, appName string) (src connectors.Source, dst connectors.Destination, closeAll func(), err error) {
	srcErr, dstErr := both(
		func() (err error) { src, err = f.src.OpenSource(ctx, appName); return err },
		func() (err error) { dst, err = f.dst.OpenDestination(ctx, appName, f.m.Name); return err })
	if srcErr != nil || dstErr != nil {
		if srcErr == nil {
			src.Close(context.Background())
		}
		if dstErr == nil {
			dst.Close(context.Background())
		}
		if srcErr != nil {
			return nil, nil, nil, srcErr // names the source's host already
		}
		return nil, nil, nil, fmt.Errorf("destination: %w", dstErr)
	}
	return src, dst, func() {
		src.Close(context.Background())
		dst.Close(context.Background())
	}, nil
}

// both runs a and b at the same time (b on a goroutine of its own, its
// panic an error: protect) and returns their errors once both returned.
func both(a, b func() error) (errA, errB error) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		errB = protect(b)
	}()
	errA = protect(a)
	<-done
	return errA, errB
}

// unsupported is the error for what the mirror's destination cannot do.
func (f *flow) unsupported(what string) error {
	return &UserError{Err: fmt.Errorf("%s is not supported for %s destinations", what, f.dstType)}
}

// mirrorTable is a table mapping of the flow's mirror.
type mirrorTable struct {
	// dest is where the flow writes: live, or its shadow table while a
	// full resync loads (f.shadows; the zero name when it has none).
	source, dest, live connectors.TableName
	exclude            []string
	catalog            catalog.MirrorTable
}

func (f *flow) tables() []mirrorTable {
	out := make([]mirrorTable, len(f.m.Tables))
	loading := f.m.Resync != "" && (f.m.Phase == catalog.PhaseSetup || f.m.Phase == catalog.PhaseSnapshot)
	for i, t := range f.m.Tables {
		src, _ := connectors.ParseTableName(t.Source)
		dst, _ := connectors.ParseTableName(t.Destination)
		out[i] = mirrorTable{source: src, dest: dst, live: dst, exclude: t.Exclude, catalog: t}
		if loading {
			out[i].dest = f.shadows[dst]
		}
	}
	return out
}

// destTable is the destination's view of t with source schema ts, writing
// to t.dest.
func (f *flow) destTable(t mirrorTable, ts *connectors.TableSchema) connectors.DestTable {
	return connectors.DestTable{Source: t.source, Dest: t.dest, Schema: ts, OrderBy: t.catalog.OrderBy,
		SoftDeleteColumn: f.opt.SoftDeleteColumn, SyncedAtColumn: f.opt.SyncedAtColumn}
}

// describe describes the source tables of tables.
func (f *flow) describe(ctx context.Context, src connectors.Source, tables []mirrorTable) ([]*connectors.TableSchema, error) {
	out := make([]*connectors.TableSchema, len(tables))
	for i, t := range tables {
		exclude := t.exclude
		for {
			ts, err := src.Describe(ctx, t.source, exclude)
			var missing *connectors.MissingExcludeError
			if errors.As(err, &missing) && slices.Contains(exclude, missing.Column) {
				// The source dropped a column the mirror excludes: there is
				// nothing of it to leave out any more.
				exclude = slices.DeleteFunc(slices.Clone(exclude), func(c string) bool { return c == missing.Column })
				continue
			}
			if err != nil {
				return nil, err
			}
			out[i] = ts
			break
		}
	}
	return out, nil
}

// reserved lists the mirror's live destination tables: a table Sluice
// makes never takes one of their names, even when the table is missing.
func (f *flow) reserved() []connectors.TableName {
	var out []connectors.TableName
	for _, t := range f.m.Tables {
		if dst, err := connectors.ParseTableName(t.Destination); err == nil {
			out = append(out, dst)
		}
	}
	return out
}

// progressed records that the step made progress: the supervisor's retry
// delay starts over, and an error recorded before is cleared with a
// "recovered" event. Only the first call of a step does anything.
func (f *flow) progressed(ctx context.Context) error {
	if f.progressDone {
		return nil
	}
	f.progressDone = true
	if f.onProgress != nil {
		f.onProgress()
	}
	return f.store.ClearError(ctx, f.m.Name)
}

// display renders a position of the mirror's source for messages, as the
// source's kind renders it; without a kind (a flow of a unit test), as
// the catalog shows positions.
func (f *flow) display(p connectors.Position) string {
	if f.e != nil && f.e.cfg.Kinds != nil {
		if k, ok := f.e.cfg.Kinds.Lookup(f.srcType); ok && k.FormatPosition != nil {
			return k.FormatPosition(p)
		}
	}
	return catalog.FormatPosition(p)
}
