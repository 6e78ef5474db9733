package projection

import (
	"errors"
	"fmt"
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
	// declared is true for a plan compiled against a Schema (Schema.Plan):
	// keys its nodes do not name are dropped even below a granted node,
	// and values are checked against their declared types.
	declared bool
}

// node is one path segment. A granted node allows its whole subtree; any
// other node is a container that allows only its children. Nodes below a
// granted node exist only to carry masks.
type node struct {
	children map[string]*node
	granted  bool
	mask     catalog.Mask
	// maskBelow is set on a masked node and on its ancestors, so that
	// CanVerify need not search a subtree for masks.
	maskBelow bool
	// typ and path are the declared type and dotted path (Schema.Plan);
	// typeAny and "" in a plan without a schema.
	typ  fieldType
	path string
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
	if err := checkDecision(fields, masks, m); err != nil {
		return nil, err
	}
	root := &node{}
	for _, f := range fields {
		segs, _ := splitPath(f)
		n := root
		for _, s := range segs {
			n = n.child(s, true)
		}
		n.granted = true
	}
	// Masks come second, so whether a mask path is reachable does not depend
	// on the order of the decision's fields.
	for p, mask := range masks {
		if mask == catalog.MaskNone {
			continue
		}
		segs, _ := splitPath(p)
		// Below a granted node everything is allowed, so creating nodes there
		// cannot widen anything; elsewhere only existing nodes are followed.
		n, whole := root, false
		path := []*node{root}
		for _, s := range segs {
			n = n.child(s, whole)
			if n == nil {
				break
			}
			whole = whole || n.granted
			path = append(path, n)
		}
		if n != nil {
			n.mask = mask
			for _, a := range path {
				a.maskBelow = true
			}
		}
	}
	return &Plan{root: root, masker: m}, nil
}

// ErrNotVerifiable is what every refusal of CanVerify is (errors.Is), for
// callers that only need to know a claim cannot be checked.
var ErrNotVerifiable = errors.New("projection: the field cannot be verified")

// Why CanVerify refuses a claim (NotVerifiableError.Reason).
const (
	// NotGranted: no allowed path covers the claimed field whole.
	NotGranted = "not-granted"
	// Masked: a mask applies at the field, above it or below it.
	Masked = "masked"
	// Malformed: the claimed path is empty or has an empty segment.
	Malformed = "malformed"
)

// NotVerifiableError is CanVerify's refusal of one claim, typed so that the
// exchange maps it to its answer (403 masked-field naming Field and Mask,
// or access denied) without a mask check of its own: the verify rule lives
// here only. It names the path and the mask, never a value.
type NotVerifiableError struct {
	// Field is the claimed path as the caller wrote it.
	Field string
	// Reason is NotGranted, Masked or Malformed.
	Reason string
	// Mask is the mask that applies when Reason is Masked (the first found
	// below the field when it is masked only there).
	Mask catalog.Mask
}

func (e *NotVerifiableError) Error() string {
	switch e.Reason {
	case Masked:
		return fmt.Sprintf("projection: %s cannot be verified: the grant masks it (%s)", e.Field, e.Mask)
	case NotGranted:
		return fmt.Sprintf("projection: %s cannot be verified: no grant covers it", e.Field)
	}
	return fmt.Sprintf("projection: %q cannot be verified: not a field path", e.Field)
}

// Is makes every NotVerifiableError an ErrNotVerifiable.
func (e *NotVerifiableError) Is(target error) bool { return target == ErrNotVerifiable }

// CanVerify decides whether a verify claim on path may be checked under
// this plan, compiled from the verify decision with its masks. Comparing a
// claim with the stored value reveals the value one guess at a time, so a
// claim is allowed only on a path the plan allows whole, where no mask
// applies: none at the path, at an ancestor, or anywhere below it (a
// nullified field would be revealed by one call, a partial one confirmed
// in full, a hashed one brute-forced). A field masked in the verify
// decision can therefore be verified only by a grant naming it unmasked.
// A refusal is a *NotVerifiableError.
func (p *Plan) CanVerify(path string) error {
	segs, err := splitPath(path)
	if err != nil {
		return &NotVerifiableError{Field: path, Reason: Malformed}
	}
	n, whole := p.root, false
	for _, s := range segs {
		if n.mask != catalog.MaskNone {
			return &NotVerifiableError{Field: path, Reason: Masked, Mask: n.mask}
		}
		child := n.children[s]
		if child == nil && whole && !p.declared {
			return nil // below a granted node of a plan without schema: no mask down here
		}
		if child == nil || child == denied {
			return &NotVerifiableError{Field: path, Reason: NotGranted}
		}
		n, whole = child, whole || child.granted
	}
	switch {
	case !whole:
		return &NotVerifiableError{Field: path, Reason: NotGranted}
	case n.mask != catalog.MaskNone || n.maskBelow:
		return &NotVerifiableError{Field: path, Reason: Masked, Mask: maskIn(n)}
	}
	return nil
}

// maskIn is the mask at n or, failing that, the first found below it.
func maskIn(n *node) catalog.Mask {
	if n.mask != catalog.MaskNone {
		return n.mask
	}
	for _, c := range n.children {
		if c != denied && c.maskBelow {
			if m := maskIn(c); m != catalog.MaskNone {
				return m
			}
		}
	}
	return catalog.MaskNone
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
