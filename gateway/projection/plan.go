package projection

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/lienthong/lienthong/catalog"
)

// Plan is a policy decision compiled for projection: a tree of allowed path
// segments with the masks at its nodes. Compiling once per decision keeps
// the per-record work to map lookups. A Plan is immutable and safe for
// concurrent use by any number of Project calls.
type Plan struct {
	root *node
	// masker applies hash and partial masks; nil when the plan has none.
	masker *Masker
}

// node is one path segment. A granted node allows its whole subtree; any
// other node is a container that allows only its children. Nodes below a
// granted node exist only to carry masks.
type node struct {
	children map[string]*node
	granted  bool
	mask     catalog.Mask
}

func (n *node) child(seg string, create bool) *node {
	c := n.children[seg]
	if c == nil && create {
		if n.children == nil {
			n.children = map[string]*node{}
		}
		c = &node{}
		n.children[seg] = c
	}
	return c
}

// NewPlan compiles the allowed dotted paths and the masks of a decision.
//
// Granting a path allows its whole subtree; where both a path and one of its
// ancestors are granted, the ancestor wins. A mask applies to the value at
// its path — for an object or array, to the value as a whole — after the
// value's own allowed parts have been projected and masked: nullify gives
// null; hash gives the HMAC of the canonical JSON of what is left; partial
// keeps the last characters of a string or of a number's literal, and gives
// null for anything else (booleans, objects, arrays), since there is no
// "last characters" of those that would hide the rest. Null stays null under
// every mask.
//
// A mask on a path that is neither allowed nor an ancestor of an allowed
// path is ignored: the value never leaves anyway (a decision narrowed by
// fields= keeps the grant's masks). An empty mask is no mask. A malformed
// path (empty, or with an empty segment), an unknown mask, or a hash or
// partial mask without a Masker is an error, so a broken decision fails
// closed.
func NewPlan(fields []string, masks map[string]catalog.Mask, m *Masker) (*Plan, error) {
	root := &node{}
	for _, f := range fields {
		segs, err := splitPath(f)
		if err != nil {
			return nil, fmt.Errorf("projection: allowed field %q: %w", f, err)
		}
		n := root
		for _, s := range segs {
			n = n.child(s, true)
		}
		n.granted = true
	}
	// Masks come second, so whether a mask path is reachable does not depend
	// on the order of the decision's fields. Sorted, for deterministic errors.
	for _, p := range slices.Sorted(maps.Keys(masks)) {
		mask := masks[p]
		segs, err := splitPath(p)
		if err != nil {
			return nil, fmt.Errorf("projection: mask on %q: %w", p, err)
		}
		switch mask {
		case catalog.MaskNone:
			continue
		case catalog.MaskNullify:
		case catalog.MaskHash, catalog.MaskPartial:
			if m == nil {
				return nil, fmt.Errorf("projection: mask %s on %q: %w", mask, p, errNoMasker)
			}
		default:
			return nil, fmt.Errorf("projection: mask on %q: unknown mask %q; expected hash, partial or nullify", p, mask)
		}
		// Below a granted node everything is allowed, so creating nodes there
		// cannot widen anything; elsewhere only existing nodes are followed.
		n, whole := root, false
		for _, s := range segs {
			n = n.child(s, whole)
			if n == nil {
				break
			}
			whole = whole || n.granted
		}
		if n != nil {
			n.mask = mask
		}
	}
	return &Plan{root: root, masker: m}, nil
}

// splitPath splits a dotted path into its segments, none of them empty.
func splitPath(p string) ([]string, error) {
	if p == "" {
		return nil, fmt.Errorf("empty path")
	}
	segs := strings.Split(p, ".")
	for _, s := range segs {
		if s == "" {
			return nil, fmt.Errorf("empty segment in a dotted path")
		}
	}
	return segs, nil
}
