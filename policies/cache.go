package policies

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// decisionCache is a bounded map of recent decisions of one revision. It is
// sharded so concurrent Decide calls rarely meet on a lock, and a full shard
// evicts an arbitrary entry (Go's map order): cheaper than LRU bookkeeping,
// and the working set of a gateway is small next to the bound.
type decisionCache struct {
	seed     maphash.Seed
	perShard int
	shards   [cacheShards]cacheShard
	// hits and misses count lookups, for metrics and tests.
	hits, misses atomic.Int64
}

const cacheShards = 16

type cacheShard struct {
	mu sync.Mutex
	m  map[string]cacheEntry
}

// cacheEntry holds a decision and the window [from, until) of exchange times
// it stays true for: from is the time it was computed at, until its Expires
// (0: until the revision changes).
type cacheEntry struct {
	d           Decision
	from, until int64
}

func newDecisionCache(size int) *decisionCache {
	c := &decisionCache{seed: maphash.MakeSeed(), perShard: max(size/cacheShards, 1)}
	for i := range c.shards {
		c.shards[i].m = make(map[string]cacheEntry)
	}
	return c
}

func (c *decisionCache) shard(key string) *cacheShard {
	return &c.shards[maphash.String(c.seed, key)%cacheShards]
}

// get returns the decision for key if it holds at time now.
func (c *decisionCache) get(key string, now int64) (Decision, bool) {
	s := c.shard(key)
	s.mu.Lock()
	e, ok := s.m[key]
	s.mu.Unlock()
	if !ok || now < e.from || (e.until != 0 && now >= e.until) {
		c.misses.Add(1)
		return Decision{}, false
	}
	c.hits.Add(1)
	return e.d, true
}

// put stores d, computed for time now; the caller gives up d.
func (c *decisionCache) put(key string, d Decision, now int64) {
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, exists := s.m[key]; !exists && len(s.m) >= c.perShard {
		for k := range s.m {
			delete(s.m, k)
			break
		}
	}
	s.m[key] = cacheEntry{d: d, from: now, until: d.Expires}
}
