package replication

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/connectors"
)

// Full-mirror resync (RESYNC MIRROR). The mirror runs SETUP and SNAPSHOT
// again, with a new change stream, into shadow tables (each under a free
// name, recorded as Sluice's own) made from the source's current
// definitions, while the live tables stay as they are; then the RESYNC
// phase (swapAll) swaps every shadow table in (ShadowSwapper.SwapIn: in
// one transaction where the destination has them), and CDC streams from
// the new stream's consistent point. Each phase is resumable like those of
// a new mirror; after a crash either every table or none was swapped, or
// the destination's records say a swap is under way and SwapIn finishes
// it.

// swapAll is the RESYNC phase.
func (f *flow) swapAll(ctx context.Context) error {
	src, dst, closeAll, err := f.open(ctx, "sluice-resync")
	if err != nil {
		return err
	}
	defer closeAll()
	sw, ok := dst.(connectors.ShadowSwapper)
	if !ok {
		return f.unsupported("RESYNC MIRROR")
	}
	if err := f.fence(ctx, dst); err != nil { // stale appliers apply nothing from here on
		return err
	}
	tables := f.tables()
	if err := f.setStep(ctx, catalog.StepSwapping, tables...); err != nil {
		return err
	}
	schemas, err := f.describe(ctx, src, tables)
	if err != nil {
		return err
	}
	if _, err := dst.Applied(ctx); err != nil {
		return err
	}
	// Only the shadow tables recorded as Sluice's own are swapped in: a
	// table of the same name that Sluice did not create is never touched.
	shadows, err := sw.Shadows(ctx)
	if err != nil {
		return err
	}
	var missing []connectors.TableName
	swaps := make([]connectors.Swap, len(tables))
	for i, t := range tables {
		if _, has := shadows[t.live]; !has {
			missing = append(missing, t.live)
		}
		d := f.destTable(t, schemas[i])
		d.Dest = t.live
		swaps[i] = connectors.Swap{Table: d}
	}
	began := time.Now()
	rep, err := sw.SwapIn(ctx, swaps)
	if errors.Is(err, connectors.ErrShadowLost) && len(missing) > 0 {
		// The swap is all or none: shadows gone while others are still
		// there were dropped by someone else.
		return f.restartResync(ctx, connectors.JoinNames(missing))
	}
	if err != nil {
		return fmt.Errorf("swap resynced tables in: %w", err)
	}
	msg := fmt.Sprintf("swapped %d resynced table(s) in, in %s", len(tables), time.Since(began).Round(time.Millisecond))
	if len(rep.Notes) > 0 {
		msg += "; " + strings.Join(rep.Notes, "; ")
	}
	if err := f.store.AddEvent(ctx, f.m.Name, "resync", msg); err != nil {
		return err
	}
	f.log.InfoContext(ctx, "full resync: tables swapped in", "tables", len(tables))
	if len(rep.Validate) > 0 {
		if err := f.setStep(ctx, catalog.StepValidatingForeignKeys, tables...); err != nil {
			return err
		}
		if err := f.validate(ctx, dst, rep.Validate); err != nil {
			return err
		}
	}
	err = f.loaded(ctx, src, dst, tables, schemas)
	if err == nil || errors.Is(err, errFlowDone) {
		// The mirror is resynced and streams; statistics follow.
		if aerr := f.analyze(ctx, dst, rep.Analyze); aerr != nil {
			return aerr
		}
		if derr := f.dropRetired(ctx, dst); derr != nil {
			return derr
		}
	}
	return err
}

// dropRetired drops the tables the swaps replaced and set aside
// (connectors.RetiredDropper), once the resync is done: their files take
// a while to remove, which the resync does not wait for. A failure is
// recorded as an event, not fatal: the stream's next start drops them.
func (f *flow) dropRetired(ctx context.Context, dst connectors.Destination) error {
	rd, ok := dst.(connectors.RetiredDropper)
	if !ok {
		return nil
	}
	began := time.Now()
	if err := rd.DropRetired(ctx); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return f.store.AddEvent(ctx, f.m.Name, "resync",
			fmt.Sprintf("dropping the tables the swap replaced: %v (tried again when the stream starts)", err))
	}
	f.log.DebugContext(ctx, "tables the swap replaced dropped", "took", time.Since(began))
	return nil
}

// analyze collects the planner statistics of the tables a swap put in
// (SwapReport.Analyze), after it: the swap did not wait for them. A
// failure is recorded as an event, not fatal: statistics only guide the
// destination's planner, and its autovacuum collects them too where it
// runs. A destination without Analyzer reports no tables.
func (f *flow) analyze(ctx context.Context, dst connectors.Destination, tables []connectors.TableName) error {
	if len(tables) == 0 {
		return nil
	}
	a, ok := dst.(connectors.Analyzer)
	if !ok {
		return nil
	}
	began := time.Now()
	err := a.Analyze(ctx, tables, func(t connectors.TableName, err error) error {
		return f.store.AddEvent(ctx, f.m.Name, "resync", fmt.Sprintf("statistics of %s after the swap: %v", t, err))
	})
	f.log.DebugContext(ctx, "statistics collected after the swap", "tables", len(tables), "took", time.Since(began))
	return err
}

// validate runs the checks a swap deferred (foreign keys re-added NOT
// VALID; they were valid before), outside the swap's transaction: they
// take no lock that stops readers or writers. A failure is recorded, not
// fatal.
func (f *flow) validate(ctx context.Context, dst connectors.Destination, checks []string) error {
	cv, ok := dst.(connectors.ConstraintValidator)
	if !ok {
		return fmt.Errorf("the %s destination deferred %d check(s) it cannot run", f.dstType, len(checks))
	}
	return cv.ValidateConstraints(ctx, checks, func(check string, err error) error {
		return f.store.AddEvent(ctx, f.m.Name, "resync", fmt.Sprintf("%s failed: %v", check, err))
	})
}

// reportNullKeys records, as a warning in mirror_events (and the log), the
// NULLs the source sent for key columns the destination cannot store NULL
// in, which it stored as the type's default (NullKeyReporter). counts is
// by column; nil records nothing.
func (f *flow) reportNullKeys(ctx context.Context, table connectors.TableName, counts map[string]int64) error {
	if len(counts) == 0 {
		return nil
	}
	cols := make([]string, 0, len(counts))
	for c := range counts {
		cols = append(cols, c)
	}
	sort.Strings(cols)
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = fmt.Sprintf("%d in %q", counts[c], c)
	}
	msg := fmt.Sprintf("%s: NULL stored as the type's default in sorting-key column(s), which %s cannot make Nullable: %s",
		table, f.dstName(), strings.Join(parts, ", "))
	f.log.InfoContext(ctx, "NULL in a sorting-key column stored as the default", "table", table.String(), "counts", counts)
	return f.store.AddEvent(ctx, f.m.Name, "warning", msg)
}

// dstName is how messages name the destination's kind ("ClickHouse").
func (f *flow) dstName() string {
	if k, ok := f.e.cfg.Kinds.Lookup(f.dstType); ok && k.Name != "" {
		return k.Name
	}
	return f.dstType
}
