package replication

import (
	"context"
	"sync"
	"time"

	"github.com/sluicedb/sluice/connectors"
)

// A node keeps what a load's partition job opened (the mirror's source and
// destination, a reader under the load's snapshot, a loader) for the next
// partition of the same load it runs, as the in-process workers kept
// theirs from one partition to the next: a partition then costs no new
// connections. What stays idle for connIdle is closed (the reader's
// snapshot transaction with it), and so is a load's when its owner, this
// node, ends it.

// connIdle is how long a load's idle connections are kept.
const connIdle = 2 * time.Second

// partitionConns is what a partition's job opened; not safe for
// concurrent use: one job holds it at a time.
type partitionConns struct {
	f        *flow
	src      connectors.Source
	dst      connectors.Destination
	r        connectors.PartitionReader
	l        connectors.Loader
	idleFrom time.Time
}

// close closes all of c.
func (c *partitionConns) close() {
	ctx := context.Background()
	c.l.Close(ctx)
	c.r.Close(ctx)
	c.src.Close(ctx)
	c.dst.Close(ctx)
}

// connCache holds the idle partitionConns of a node by load id. Safe for
// concurrent use.
type connCache struct {
	mu   sync.Mutex
	idle map[string][]*partitionConns
}

// take returns an idle partitionConns of load, or nil.
func (cc *connCache) take(load string) *partitionConns {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	list := cc.idle[load]
	if len(list) == 0 {
		return nil
	}
	c := list[len(list)-1]
	cc.idle[load] = list[:len(list)-1]
	return c
}

// put keeps c, which served load and is healthy, for its next partition.
func (cc *connCache) put(load string, c *partitionConns) {
	c.idleFrom = time.Now()
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.idle == nil {
		cc.idle = map[string][]*partitionConns{}
	}
	cc.idle[load] = append(cc.idle[load], c)
}

// drop closes the idle partitionConns of load ("": of every load) and,
// with idleOnly, only those idle for connIdle or more.
func (cc *connCache) drop(load string, idleOnly bool) {
	var closing []*partitionConns
	cc.mu.Lock()
	for id, list := range cc.idle {
		if load != "" && id != load {
			continue
		}
		kept := list[:0]
		for _, c := range list {
			if idleOnly && time.Since(c.idleFrom) < connIdle {
				kept = append(kept, c)
				continue
			}
			closing = append(closing, c)
		}
		if len(kept) == 0 {
			delete(cc.idle, id)
		} else {
			cc.idle[id] = kept
		}
	}
	cc.mu.Unlock()
	for _, c := range closing {
		c.close()
	}
}
