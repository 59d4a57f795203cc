package catalog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Where work runs among the nodes (docs/cluster.md): the reads a node
// needs to take a fair share of the free streams, to give one up when it
// holds more than its share, and to tell whether it is the cluster's
// leader, the one node that does the catalog-wide housekeeping and
// watches the mirrors no node streams.

// FreeMirror is a mirror that should run and whose lease a node may take
// (see FreeMirrors).
type FreeMirror struct {
	Name string
	// FreeFor is how long the lease has been free: since it was released
	// or expired; when that is not known (a lease never taken, or a
	// reservation cleared by RegisterNode), since the mirror was created.
	FreeFor time.Duration
}

// FreeMirrors lists the mirrors that should run (desired RUNNING, not
// COMPLETED) and whose lease is free, unreserved, or expired, the longest
// free first: those a node may take.
func (s *Store) FreeMirrors(ctx context.Context) ([]FreeMirror, error) {
	rows, err := s.pool.Query(ctx, `
SELECT name, extract(epoch FROM now() - coalesce(lease_expires_at, created_at))::double precision FROM sluice.mirrors
WHERE desired = $1 AND phase <> 'COMPLETED' AND (lease_expires_at IS NULL OR lease_expires_at < now())
ORDER BY lease_expires_at NULLS FIRST, name`, DesiredRunning)
	if err != nil {
		return nil, fmt.Errorf("list mirrors to run: %w", err)
	}
	var out []FreeMirror
	var name string
	var secs float64
	_, err = pgx.ForEachRow(rows, []any{&name, &secs}, func() error {
		out = append(out, FreeMirror{Name: name, FreeFor: time.Duration(secs * float64(time.Second))})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list mirrors to run: %w", err)
	}
	return out, nil
}

// ClusterLoad is how the streams are spread over the alive nodes.
type ClusterLoad struct {
	// Mirrors is how many mirrors should run (desired RUNNING, not
	// COMPLETED).
	Mirrors int
	// Streams maps each alive node (not stopped, heartbeat within its
	// node timeout) to the number of live leases it holds.
	Streams map[string]int
	// Leader is the alive node with the smallest id ("" when none is
	// alive): the one that does the cluster's housekeeping.
	Leader string
}

// Share is the most streams a node should run: the mirrors that should
// run divided by the alive nodes, rounded up; at least 1.
func (l ClusterLoad) Share() int {
	n := max(len(l.Streams), 1)
	return max((l.Mirrors+n-1)/n, 1)
}

// GetClusterLoad reads the cluster's load in one statement.
func (s *Store) GetClusterLoad(ctx context.Context) (ClusterLoad, error) {
	l := ClusterLoad{Streams: map[string]int{}}
	rows, err := s.pool.Query(ctx, `
SELECT (SELECT count(*) FROM sluice.mirrors WHERE desired = $1 AND phase <> 'COMPLETED'), n.id,
       (SELECT count(*) FROM sluice.mirrors m WHERE m.node = n.id AND m.lease_expires_at > now())
FROM (SELECT 1) one
LEFT JOIN sluice.nodes n ON n.stopped_at IS NULL AND n.heartbeat_at > now() - n.node_timeout
ORDER BY n.id`, DesiredRunning)
	if err != nil {
		return l, fmt.Errorf("read the cluster's load: %w", err)
	}
	var mirrors, streams int64
	var id *string
	_, err = pgx.ForEachRow(rows, []any{&mirrors, &id, &streams}, func() error {
		l.Mirrors = int(mirrors)
		if id != nil {
			l.Streams[*id] = int(streams)
			if l.Leader == "" {
				l.Leader = *id
			}
		}
		return nil
	})
	if err != nil {
		return l, fmt.Errorf("read the cluster's load: %w", err)
	}
	return l, nil
}

// MarkNodeStopping records that node id is stopping (as StopNode does,
// without freeing its leases): the other nodes no longer count it among
// the alive when they share out the streams it is about to free.
// Idempotent.
func (s *Store) MarkNodeStopping(ctx context.Context, id string) error {
	_, err := s.pool.Exec(ctx, `UPDATE sluice.nodes SET stopped_at = now() WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("mark node %s stopping: %w", id, err)
	}
	return nil
}

// HandOverCandidate returns a mirror whose live lease node holds and whose
// flow can move to another node cheaply: streaming (phase CDC), without
// an error, a resync of the whole mirror, or a table resync under way. ""
// when there is none.
func (s *Store) HandOverCandidate(ctx context.Context, node string) (string, error) {
	var name string
	err := s.pool.QueryRow(ctx, `
SELECT m.name FROM sluice.mirrors m
WHERE m.node = $1 AND m.lease_expires_at > now() AND m.phase = $2 AND m.error IS NULL AND m.resync IS NULL
  AND m.desired = $3
  AND NOT EXISTS (SELECT FROM sluice.mirror_tables t
                  WHERE t.mirror = m.name AND t.resync_status IS NOT NULL AND t.resync_status NOT IN ($4, $5))
ORDER BY m.name DESC LIMIT 1`, node, PhaseCDC, DesiredRunning, ResyncDone, ResyncFailed).Scan(&name)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("find a stream of node %s to hand over: %w", node, err)
	}
	return name, nil
}

// MirrorOwners maps each mirror whose stream lease is live to the node
// holding it; a mirror missing from it is run by no node now.
func (s *Store) MirrorOwners(ctx context.Context) (map[string]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT name, node FROM sluice.mirrors WHERE node IS NOT NULL AND lease_expires_at > now()`)
	if err != nil {
		return nil, fmt.Errorf("read the mirrors' owners: %w", err)
	}
	out := map[string]string{}
	var name, node string
	_, err = pgx.ForEachRow(rows, []any{&name, &node}, func() error {
		out[name] = node
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the mirrors' owners: %w", err)
	}
	return out, nil
}
