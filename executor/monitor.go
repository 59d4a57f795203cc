package executor

import (
	"context"
	"fmt"
	"time"

	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/executor/replication"
)

// The slot monitor measures every mirror's lag on its source, whatever the
// mirror's status and whether or not its flow is healthy: one round every
// monitorEvery, as a slot_monitor River job that one node of the cluster
// runs (replication/periodic_jobs.go, docs/cluster.md#where-periodic-work-runs),
// on short-lived connections of its own, one query per source peer. It
// records lag_bytes (pg_current_wal_lsn() - confirmed_flush_lsn), the
// slot's wal_status and safe_wal_size, whether a reader streams from it
// (slot_active, the metric sluice_slot_active) and the time of the
// measurement. A source it cannot reach gets NULLs, with the time of the
// last measurement kept. A source's warning that the mirror may soon
// lose its stream is a lag event, once until it clears (kept in the
// catalog: the next round may run on another node). A slot the source
// invalidated fails its mirror with replication.LostStreamError, which
// waits for the user.
//
// The slot measured is the mirror's slot. During a RESYNC MIRROR that is
// the old slot through SETUP (it is replaced only when the new one is made)
// and the new one from SNAPSHOT on.

// monitorEvery is how often the monitor measures.
const monitorEvery = 5 * time.Second

// monitorTimeout bounds one source's measurement.
const monitorTimeout = 4 * time.Second

// monitored is a mirror as the monitor sees it.
type monitored struct {
	m    catalog.Mirror
	slot string
}

// measure measures every mirror once: one slot_monitor job. Its error is
// the catalog's (the mirrors could not be listed); a source's is recorded
// as unknown lag.
func (e *Executor) measure(ctx context.Context) error {
	store := e.cfg.Store
	names, err := store.MirrorNames(ctx)
	if err != nil {
		return fmt.Errorf("slot monitor: list mirrors: %w", err)
	}
	bySource := make(map[string][]monitored)
	var order []string
	for _, name := range names {
		m, err := store.GetMirror(ctx, name)
		if err != nil {
			continue // dropped meanwhile, or the catalog is away
		}
		if _, ok := bySource[m.SourcePeer]; !ok {
			order = append(order, m.SourcePeer)
		}
		bySource[m.SourcePeer] = append(bySource[m.SourcePeer], monitored{m: m, slot: replication.ParseOptions(m.Options).Slot})
	}
	for _, peer := range order {
		e.measureSource(ctx, peer, bySource[peer])
	}
	return nil
}

// measureSource measures the slots of the mirrors of one source peer.
func (e *Executor) measureSource(ctx context.Context, peer string, mirrors []monitored) {
	store := e.cfg.Store
	log := e.cfg.Logger.With("peer", peer)
	slots, err := e.readSlots(ctx, peer, mirrors)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		log.DebugContext(ctx, "slot monitor: source unreachable", "err", err)
		for _, mm := range mirrors {
			if err := store.SetLagUnknown(ctx, mm.m.Name); err != nil {
				log.DebugContext(ctx, "slot monitor: record", "mirror", mm.m.Name, "err", err)
			}
		}
		return
	}
	for _, mm := range mirrors {
		s, ok := slots[mm.m.Name]
		l := catalog.SlotLag{}
		if ok {
			l = catalog.SlotLag{Bytes: s.Bytes, WALStatus: s.Status, SafeWALSize: s.SafeBytes, Active: s.Active, Warning: s.Warning}
		}
		warn, err := store.SetSlotLag(ctx, mm.m.Name, l)
		if err != nil {
			log.DebugContext(ctx, "slot monitor: record", "mirror", mm.m.Name, "err", err)
			continue
		}
		if warn {
			if err := store.AddEvent(ctx, mm.m.Name, "lag", s.Warning); err != nil {
				log.DebugContext(ctx, "slot monitor: record", "mirror", mm.m.Name, "err", err)
				continue
			}
			log.WarnContext(ctx, "mirror at risk of losing its stream", "mirror", mm.m.Name, "warning", s.Warning)
		}
		if ok && s.Lost && slotInUse(mm.m) {
			msg := replication.LostStreamError(mm.m.Name, mm.slot, peer).Error()
			err := store.SetActionError(ctx, mm.m.Name, msg)
			if err != nil {
				log.DebugContext(ctx, "slot monitor: record", "mirror", mm.m.Name, "err", err)
			} else {
				if mm.m.Error != msg { // counted once, not at every measurement
					e.cfg.Observer.Error(mm.m.Name, replication.ErrorNeedsUser)
				}
				log.WarnContext(ctx, "replication slot invalidated", "mirror", mm.m.Name, "slot", mm.slot)
			}
		}
	}
}

// slotInUse reports whether the mirror streams, or will, from the slot it
// has now: not in SETUP (a resync replaces it there), not when paused (a
// resume checks it again).
func slotInUse(m catalog.Mirror) bool {
	return m.Desired == catalog.DesiredRunning && m.Phase != catalog.PhaseSetup && m.Phase != replication.PhaseCompleted
}

// readSlots measures the mirrors' streams on their source peer, on a
// connection of its own. A source that cannot measure them is an error:
// their lag is unknown.
func (e *Executor) readSlots(ctx context.Context, peer string, mirrors []monitored) (map[string]connectors.StreamLag, error) {
	p, err := e.peerAs(ctx, peer)
	if err != nil {
		return nil, err
	}
	sp, ok := p.(connectors.SourcePeer)
	if !ok {
		return nil, fmt.Errorf("peer %q cannot be a mirror's source", peer)
	}
	cctx, cancel := context.WithTimeout(ctx, monitorTimeout)
	defer cancel()
	src, err := sp.OpenSource(cctx, "sluice-monitor")
	if err != nil {
		return nil, err
	}
	defer src.Close(context.Background())
	lr, ok := src.(connectors.LagReporter)
	if !ok {
		return nil, fmt.Errorf("peer %q cannot measure its streams", peer)
	}
	specs := make([]connectors.StreamSpec, len(mirrors))
	for i, mm := range mirrors {
		specs[i] = connectors.StreamSpec{Mirror: mm.m.Name, Slot: mm.slot,
			From: connectors.MaxPosition(mm.m.ConsistentPosition, mm.m.LastSyncedPosition)}
	}
	return lr.StreamLags(cctx, specs)
}
