package projection

import (
	"slices"
	"strconv"
	"sync"

	"github.com/lienthong/lienthong/catalog"
)

// MaxCachedPlans bounds the plans one Schema keeps (see Schema.CachedPlan).
// A gateway sees a few decisions per grant (fields= narrows them), so the
// bound is far above the working set; past it an arbitrary plan is evicted.
const MaxCachedPlans = 1024

// planKey identifies a compiled plan: the policy revision and grant that
// decided, and the decision's content itself (allowed paths and masks) and
// masker, since one grant yields different decisions for different fields=.
// The content is kept whole, not hashed: two decisions must never share a
// plan by a collision.
type planKey struct {
	revision, grant, decision string
	masker                    *Masker
}

// planCache is a bounded map of compiled plans.
type planCache struct {
	mu    sync.Mutex
	plans map[planKey]*Plan
}

// CachedPlan is Plan, compiled once per (policy revision, grant, decision)
// and kept in a bounded cache, so that projecting one record for several
// subscribers, or the same grant for request after request, costs a lookup
// instead of a compilation. revision and grant are the decision's
// (policies.Decision Revision and GrantID); fields and masks its content.
func (s *Schema) CachedPlan(revision, grant string, fields []string, masks map[string]catalog.Mask, m *Masker) (*Plan, error) {
	key := planKey{revision: revision, grant: grant, decision: decisionKey(fields, masks), masker: m}
	s.plans.mu.Lock()
	p := s.plans.plans[key]
	s.plans.mu.Unlock()
	if p != nil {
		return p, nil
	}
	p, err := s.Plan(fields, masks, m)
	if err != nil {
		return nil, err
	}
	s.plans.mu.Lock()
	defer s.plans.mu.Unlock()
	if s.plans.plans == nil {
		s.plans.plans = map[planKey]*Plan{}
	}
	if len(s.plans.plans) >= MaxCachedPlans {
		for k := range s.plans.plans {
			delete(s.plans.plans, k)
			break
		}
	}
	s.plans.plans[key] = p
	return p, nil
}

// cachedPlans is the number of plans in the cache, for tests.
func (s *Schema) cachedPlans() int {
	s.plans.mu.Lock()
	defer s.plans.mu.Unlock()
	return len(s.plans.plans)
}

// decisionKey writes fields and masks unambiguously: each string is
// prefixed with its length.
func decisionKey(fields []string, masks map[string]catalog.Mask) string {
	b := make([]byte, 0, 256)
	put := func(s string) {
		b = strconv.AppendInt(b, int64(len(s)), 10)
		b = append(b, ':')
		b = append(b, s...)
	}
	for _, f := range fields {
		put(f)
	}
	b = append(b, '|')
	var stack [16]string
	paths := stack[:0]
	for p := range masks {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		put(p)
		put(string(masks[p]))
	}
	return string(b)
}
