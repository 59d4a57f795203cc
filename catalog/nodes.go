package catalog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Nodes and stream leases (migration 0014, docs/cluster.md). Several
// Sluice processes, nodes, may share one catalog. Each registers itself in
// sluice.nodes and heartbeats. A mirror's flow runs only on the node that
// holds the mirror's stream lease (mirrors.node), which expires unless its
// holder renews it. Every acquisition raises the lease's epoch, the fencing
// token: a flow's writes that move the mirror on (RecordSync, SetPhase,
// SetConsistentPosition, errors and events recorded through update) carry
// the lease they run under (WithLease) and are refused with ErrLeaseLost
// once another node took the mirror over. Times are the catalog's clock, so
// the nodes' clocks need not agree.

// ClusterChannel is the LISTEN/NOTIFY channel on which nodes ask each other
// to act on a mirror now (Notify); each node also polls what matters, so
// a notification lost costs a heartbeat's delay, never correctness.
const ClusterChannel = "sluice_cluster"

// ErrLeaseLost is wrapped by a write made under a lease (WithLease) that
// the node no longer holds: another node took the mirror over, or a Stop
// released it. The flow that gets it must stop.
var ErrLeaseLost = errors.New("this node no longer holds the mirror's stream lease")

// Lease is a node's hold on a mirror's stream: its node's id and the epoch
// its acquisition gave it.
type Lease struct {
	Node  string
	Epoch int64
}

// leaseKey is the context key of the lease a flow runs under.
type leaseKey struct{}

// WithLease returns ctx carrying l: the mirror writes of the Store made
// with it (see the package's note on nodes) check, in their transaction,
// that the mirror's lease is still l, and fail wrapping ErrLeaseLost when
// it is not. A flow's context carries its lease; statements' do not.
func WithLease(ctx context.Context, l Lease) context.Context {
	return context.WithValue(ctx, leaseKey{}, l)
}

// LeaseFrom returns the lease ctx carries (see WithLease), if any: a
// flow's, whose epoch it also claims the mirror's destination with.
func LeaseFrom(ctx context.Context) (Lease, bool) {
	l, ok := ctx.Value(leaseKey{}).(Lease)
	return l, ok
}

// checkLease locks the mirror's row in tx and checks the lease ctx
// carries, if any (see WithLease). A missing mirror passes: the write that
// follows reports it.
func checkLease(ctx context.Context, tx pgx.Tx, name string) error {
	l, ok := ctx.Value(leaseKey{}).(Lease)
	if !ok {
		return nil
	}
	var node *string
	var epoch int64
	err := tx.QueryRow(ctx, `SELECT node, lease_epoch FROM sluice.mirrors WHERE name = $1 FOR UPDATE`, name).Scan(&node, &epoch)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check the stream lease of mirror %q: %w", name, err)
	}
	if node == nil || *node != l.Node || epoch != l.Epoch {
		holder := "nobody"
		if node != nil {
			holder = "node " + *node
		}
		return fmt.Errorf("mirror %q: %w (epoch %d; it is held by %s at epoch %d)", name, ErrLeaseLost, l.Epoch, holder, epoch)
	}
	return nil
}

// RegisterNode records that node id (listening on address, considered gone
// after timeout of silence) starts now, and gives up every lease an
// earlier run of the same node held: only one process runs a node at a
// time (its data directory's lock), so that run is over and its flows
// stopped. Its mirrors are free at once for this run (or another node) to
// take. When no other node is alive, the reservations of free leases (see
// ReserveLease) are dropped too. Idempotent.
func (s *Store) RegisterNode(ctx context.Context, id, address string, timeout time.Duration) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `
INSERT INTO sluice.nodes (id, address, started_at, heartbeat_at, stopped_at, node_timeout)
VALUES ($1, $2, now(), now(), NULL, $3)
ON CONFLICT (id) DO UPDATE SET address = excluded.address, started_at = now(), heartbeat_at = now(),
    stopped_at = NULL, node_timeout = excluded.node_timeout`, id, address, timeout)
		if err != nil {
			return fmt.Errorf("register node %s: %w", id, err)
		}
		_, err = tx.Exec(ctx, `
WITH u AS (
    UPDATE sluice.mirrors SET node = NULL, lease_expires_at = now(), lease_release = false WHERE node = $1
    RETURNING name, lease_epoch)
INSERT INTO sluice.mirror_events (mirror, kind, message)
SELECT name, 'node', format('stream stopped on node %s (epoch %s): the node restarted', $1::text, lease_epoch) FROM u`, id)
		if err != nil {
			return fmt.Errorf("register node %s: release the leases of its last run: %w", id, err)
		}
		// Alone, no statement of another node can be under way: the
		// reservations left (by a node that died during a statement) are
		// void.
		_, err = tx.Exec(ctx, `
UPDATE sluice.mirrors SET lease_expires_at = NULL
WHERE node IS NULL AND lease_expires_at IS NOT NULL
  AND NOT EXISTS (SELECT FROM sluice.nodes
                  WHERE id <> $1 AND stopped_at IS NULL AND heartbeat_at > now() - node_timeout)`, id)
		if err != nil {
			return fmt.Errorf("register node %s: clear reservations: %w", id, err)
		}
		return nil
	})
}

// HeartbeatNode records that node id is alive now.
func (s *Store) HeartbeatNode(ctx context.Context, id string) error {
	_, err := s.pool.Exec(ctx, `UPDATE sluice.nodes SET heartbeat_at = now(), stopped_at = NULL WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("heartbeat of node %s: %w", id, err)
	}
	return nil
}

// StopNode records that node id stopped cleanly, and frees the leases it
// still holds (each with an event, as ReleaseLease).
func (s *Store) StopNode(ctx context.Context, id string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE sluice.nodes SET stopped_at = now() WHERE id = $1`, id); err != nil {
			return fmt.Errorf("stop node %s: %w", id, err)
		}
		_, err := tx.Exec(ctx, `
WITH u AS (
    UPDATE sluice.mirrors SET node = NULL, lease_expires_at = now(), lease_release = false WHERE node = $1
    RETURNING name, lease_epoch)
INSERT INTO sluice.mirror_events (mirror, kind, message)
SELECT name, 'node', format('stream stopped on node %s (epoch %s): the node stopped', $1::text, lease_epoch) FROM u`, id)
		if err != nil {
			return fmt.Errorf("stop node %s: release its leases: %w", id, err)
		}
		return nil
	})
}

// AcquireLease makes node the holder of the mirror's stream lease until
// ttl from now, under a new epoch, which it returns, with an event (kind
// "node": the stream started on node); ok is false (and nothing changes)
// when another node holds a lease that has not expired.
// A lease node holds already is taken again under a new epoch: each run of
// a flow has an epoch of its own. Free leases reserved by a Stop (see
// ReserveLease) are taken only when statement is true: a statement that
// stopped the mirror runs it again, while the nodes' periodic look for
// free mirrors leaves it alone until the reservation lapses.
func (s *Store) AcquireLease(ctx context.Context, mirror, node string, ttl time.Duration, statement bool) (epoch int64, ok bool, err error) {
	err = s.pool.QueryRow(ctx, `
WITH u AS (
    UPDATE sluice.mirrors
    SET node = $2, lease_epoch = lease_epoch + 1, lease_expires_at = now() + $3::interval, lease_release = false
    WHERE name = $1
      AND (node = $2 OR lease_expires_at IS NULL OR lease_expires_at < now() OR (node IS NULL AND $4))
    RETURNING name, lease_epoch),
e AS (
    INSERT INTO sluice.mirror_events (mirror, kind, message)
    SELECT name, 'node', format('stream started on node %s (epoch %s)', $2::text, lease_epoch) FROM u)
SELECT lease_epoch FROM u`, mirror, node, ttl, statement).Scan(&epoch)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("acquire the stream lease of mirror %q: %w", mirror, err)
	}
	return epoch, true, nil
}

// RenewLeases extends until ttl from now the leases node holds of held
// (mirror to epoch). It returns those still held, each true when a Stop
// asked the holder to release it (lease_release); a lease missing from
// the result is lost, its flow must stop.
func (s *Store) RenewLeases(ctx context.Context, node string, ttl time.Duration, held map[string]int64) (map[string]bool, error) {
	names := make([]string, 0, len(held))
	epochs := make([]int64, 0, len(held))
	for n, e := range held {
		names = append(names, n)
		epochs = append(epochs, e)
	}
	rows, err := s.pool.Query(ctx, `
UPDATE sluice.mirrors m SET lease_expires_at = now() + $2::interval
FROM unnest($3::text[], $4::bigint[]) AS l(name, epoch)
WHERE m.name = l.name AND m.node = $1 AND m.lease_epoch = l.epoch
RETURNING m.name, m.lease_release`, node, ttl, names, epochs)
	if err != nil {
		return nil, fmt.Errorf("renew the stream leases of node %s: %w", node, err)
	}
	out := map[string]bool{}
	var name string
	var release bool
	_, err = pgx.ForEachRow(rows, []any{&name, &release}, func() error {
		out[name] = release
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("renew the stream leases of node %s: %w", node, err)
	}
	return out, nil
}

// ReleaseLease gives up lease l of the mirror, when it is still held,
// with an event (kind "node") saying the stream stopped on l's node and
// why. With reserve > 0 the free lease stays reserved that long (see
// ReserveLease); else lease_expires_at keeps the time it was freed (see
// FreeMirrors). Idempotent.
func (s *Store) ReleaseLease(ctx context.Context, mirror string, l Lease, reserve time.Duration, why string) error {
	_, err := s.pool.Exec(ctx, `
WITH u AS (
    UPDATE sluice.mirrors
    SET node = NULL, lease_release = false,
        lease_expires_at = CASE WHEN $4::interval > '0'::interval THEN now() + $4::interval ELSE now() END
    WHERE name = $1 AND node = $2 AND lease_epoch = $3
    RETURNING name)
INSERT INTO sluice.mirror_events (mirror, kind, message)
SELECT name, 'node', format('stream stopped on node %s (epoch %s): %s', $2::text, $3::bigint, $5::text) FROM u`,
		mirror, l.Node, l.Epoch, reserve, why)
	if err != nil {
		return fmt.Errorf("release the stream lease of mirror %q: %w", mirror, err)
	}
	return nil
}

// ReserveLease marks the mirror's free or expired lease reserved for ttl:
// nobody holds it, and only a statement may take it before then (see
// AcquireLease), so that a statement that stopped a mirror changes it
// before any node runs it again. ok is false when a node holds a lease
// that has not expired.
func (s *Store) ReserveLease(ctx context.Context, mirror string, ttl time.Duration) (ok bool, err error) {
	tag, err := s.pool.Exec(ctx, `
UPDATE sluice.mirrors SET node = NULL, lease_release = false, lease_expires_at = now() + $2::interval
WHERE name = $1 AND (node IS NULL OR lease_expires_at IS NULL OR lease_expires_at < now())`, mirror, ttl)
	if err != nil {
		return false, fmt.Errorf("reserve the stream lease of mirror %q: %w", mirror, err)
	}
	return tag.RowsAffected() == 1, nil
}

// Unreserve lifts the reservation of the mirror's free lease (see
// ReserveLease), if any: any node may take it now. Idempotent.
func (s *Store) Unreserve(ctx context.Context, mirror string) error {
	_, err := s.pool.Exec(ctx, `
UPDATE sluice.mirrors SET lease_expires_at = NULL WHERE name = $1 AND node IS NULL AND lease_expires_at > now()`, mirror)
	if err != nil {
		return fmt.Errorf("lift the reservation of the stream lease of mirror %q: %w", mirror, err)
	}
	return nil
}

// LeaseHolder is who holds a mirror's stream lease.
type LeaseHolder struct {
	// Node holds a lease that has not expired; "" when nobody does.
	Node string
	// Address is the node's SQL listen address.
	Address string
	// Epoch is the lease's epoch.
	Epoch int64
}

// GetLeaseHolder returns who holds the mirror's stream lease. It fails
// wrapping ErrMirrorNotFound when the mirror is gone.
func (s *Store) GetLeaseHolder(ctx context.Context, mirror string) (LeaseHolder, error) {
	var h LeaseHolder
	err := s.pool.QueryRow(ctx, `
SELECT CASE WHEN m.lease_expires_at > now() THEN coalesce(m.node, '') ELSE '' END, coalesce(n.address, ''), m.lease_epoch
FROM sluice.mirrors m LEFT JOIN sluice.nodes n ON n.id = m.node WHERE m.name = $1`, mirror).Scan(&h.Node, &h.Address, &h.Epoch)
	if errors.Is(err, pgx.ErrNoRows) {
		return h, fmt.Errorf("lease of mirror %q: %w", mirror, ErrMirrorNotFound)
	}
	if err != nil {
		return h, fmt.Errorf("lease of mirror %q: %w", mirror, err)
	}
	return h, nil
}

// RequestRelease asks the node holding the mirror's lease, whichever it
// is, to stop its flow and give the lease up (lease_release, seen at its
// next heartbeat), and tells it now (Notify). A free lease needs nothing.
func (s *Store) RequestRelease(ctx context.Context, mirror string) error {
	var node string
	err := s.pool.QueryRow(ctx, `
UPDATE sluice.mirrors SET lease_release = true WHERE name = $1 AND node IS NOT NULL RETURNING node`, mirror).Scan(&node)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("ask the holder of mirror %q to release it: %w", mirror, err)
	}
	return s.Notify(ctx, node, "release", mirror)
}

// Notify tells node, through ClusterChannel, to do op ("release", "wake")
// for mirror now.
func (s *Store) Notify(ctx context.Context, node, op, mirror string) error {
	_, err := s.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, ClusterChannel, node+"\t"+op+"\t"+mirror)
	if err != nil {
		return fmt.Errorf("notify node %s: %w", node, err)
	}
	return nil
}

// ParseNotification splits a ClusterChannel payload made by Notify; ok is
// false for a payload it did not make.
func ParseNotification(payload string) (node, op, mirror string, ok bool) {
	parts := strings.SplitN(payload, "\t", 3)
	if len(parts) != 3 {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[2], true
}

// Listen runs until ctx ends, calling fn with each payload of
// ClusterChannel, on a connection of its own to the catalog. It returns
// the error that broke that connection (the caller listens again), or
// ctx's.
func (s *Store) Listen(ctx context.Context, fn func(payload string)) error {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return fmt.Errorf("listen for nodes: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), unlockTimeout)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+ClusterChannel); err != nil {
		return fmt.Errorf("listen for nodes: %w", err)
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return fmt.Errorf("listen for nodes: %w", err)
		}
		fn(n.Payload)
	}
}
