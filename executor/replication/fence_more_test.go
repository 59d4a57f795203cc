package replication

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/connectors"
)

// A table resync's copy refused by a later lease epoch's claim stops the
// flow (its error wraps ErrFenced) without marking the resync failed: the
// node that claimed the mirror carries it on. Any other error of the copy
// marks it failed.
func TestFencedCopyLeavesResync(t *testing.T) {
	b := newBed(t, abilities{}, nil)
	idleStream(b.w)
	b.stepUntil(catalog.PhaseCDC, 1)
	ctx := context.Background()
	if err := b.store.StartTableResync(ctx, "m", "public.users", StrategyTruncate, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.store.SetTableResync(ctx, "m", "public.users", catalog.ResyncInProgress, ""); err != nil {
		t.Fatal(err)
	}
	m := b.mirror()
	f := &flow{e: b.e, store: b.store, m: m, opt: ParseOptions(m.Options), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	bt := &batcher{f: f, rs: newResyncs()}
	bt.rs.copying = 1
	users := connectors.TableName{Schema: "public", Name: "users"}

	fenced := fmt.Errorf("empty %s: %w", users, &connectors.FencedError{Mirror: "m", Epoch: 3, Recorded: 4})
	if err := bt.copyDone(ctx, copyResult{table: users, err: fenced}); !errors.Is(err, connectors.ErrFenced) {
		t.Fatalf("copyDone of a fenced copy = %v, want ErrFenced", err)
	}
	if got := b.mirror().Tables[0].ResyncStatus; got != catalog.ResyncInProgress {
		t.Fatalf("resync of users is %q after a fenced copy, want it left in progress", got)
	}
	if err := bt.copyDone(ctx, copyResult{table: users, err: errors.New("boom")}); err == nil {
		t.Fatal("copyDone of a failed copy: no error")
	}
	if got := b.mirror().Tables[0].ResyncStatus; got != catalog.ResyncFailed {
		t.Fatalf("resync of users is %q after a failed copy, want failed", got)
	}
}
