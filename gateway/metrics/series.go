package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// seriesCache keeps the child metric of a vector for each label-value tuple
// already seen, so an exchange's observation is a map lookup rather than
// the client library's hashing and UTF-8 validation of every label value
// (measurable on the gateway's hot path). Its size is bounded by the
// series the vectors hold anyway: every label value passed the labelGuard.
// Children are never deleted from these vectors, so a cached child is
// always the one the registry exports.
type seriesCache[K comparable, V any] struct {
	mu sync.RWMutex
	m  map[K]V
}

// get returns the child for k, creating it with make on first use.
func (c *seriesCache[K, V]) get(k K, make func() V) V {
	c.mu.RLock()
	v, ok := c.m[k]
	c.mu.RUnlock()
	if ok {
		return v
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.m[k]; ok {
		return v
	}
	if c.m == nil {
		c.m = map[K]V{}
	}
	v = make()
	c.m[k] = v
	return v
}

// hotSeries caches the children Finished touches on every exchange.
type hotSeries struct {
	exchanges seriesCache[[7]string, prometheus.Counter]
	duration  seriesCache[[3]string, prometheus.Observer]
	stage     seriesCache[[2]string, prometheus.Observer]
	bytes     seriesCache[[5]string, prometheus.Counter]
}
