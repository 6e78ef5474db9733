package policies

import (
	"maps"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/lienthong/lienthong/catalog"
)

var (
	kDeny = ast.StringTerm("deny")
	kDrop = ast.StringTerm("drop")
)

// applyAgency narrows an allowing decision with the provider module's output.
// It reads only deny, drop and masks, so nothing the module says can add a
// field, remove a mask or turn a denial into an allow. Output of the wrong
// shape denies (agency_policy_invalid): a provider's intent to narrow is
// never silently lost.
func applyAgency(d *Decision, out ast.Object, children map[string][]string) {
	invalid := func(what string) {
		*d = denied(d.Expires, Reason{Code: "agency_policy_invalid", Message: "the provider's policy module gave an unusable answer: " + what})
	}

	if t := out.Get(kDeny); t != nil {
		reasons, ok := agencyDenials(t.Value)
		if !ok {
			invalid("deny must be a set of strings or of {code, message} objects")
			return
		}
		if len(reasons) > 0 {
			*d = denied(d.Expires, reasons...)
			return
		}
	}

	var drops []string
	if t := out.Get(kDrop); t != nil {
		var err error
		if drops, err = stringList(t.Value); err != nil {
			invalid("drop must be a set of dotted paths")
			return
		}
	}
	masks := map[string]catalog.Mask{}
	if t := out.Get(kMasks); t != nil {
		mo, ok := t.Value.(ast.Object)
		if !ok {
			invalid("masks must be an object of path to mask")
			return
		}
		bad := false
		mo.Foreach(func(k, v *ast.Term) {
			ks, ok1 := k.Value.(ast.String)
			vs, ok2 := v.Value.(ast.String)
			if !ok1 || !ok2 || !catalog.Mask(vs).Valid() {
				bad = true
				return
			}
			if vs != "" { // an empty mask would remove nothing; ignore it
				masks[string(ks)] = catalog.Mask(vs)
			}
		})
		if bad {
			invalid("masks must map paths to hash, partial or nullify")
			return
		}
	}

	for _, x := range drops {
		next := dropPath(d.Fields, x, children)
		if !slices.Equal(next, d.Fields) {
			d.Reasons = append(d.Reasons, Reason{Code: "agency_dropped", Field: x, Message: "the provider's policy withholds field " + x})
		}
		d.Fields = next
	}
	if len(d.Fields) == 0 {
		*d = denied(d.Expires, append(d.Reasons, Reason{Code: "no_fields_allowed", Message: "the provider's policy withholds every allowed field"})...)
		return
	}
	// Masks only make sense inside what is still allowed.
	for p := range d.Masks {
		if !slices.ContainsFunc(d.Fields, func(f string) bool { return within(p, f) }) {
			delete(d.Masks, p)
		}
	}
	for _, x := range slices.Sorted(maps.Keys(masks)) {
		m := masks[x]
		changed := false
		set := func(p string) {
			if s := strongerMask(d.Masks[p], m); s != d.Masks[p] {
				d.Masks[p] = s
				changed = true
			}
		}
		for _, f := range d.Fields {
			switch {
			case within(f, x):
				set(f)
			case within(x, f):
				set(x)
			}
		}
		if changed {
			d.Reasons = append(d.Reasons, Reason{Code: "agency_masked", Field: x, Message: "the provider's policy masks field " + x + " (" + string(m) + ")"})
		}
	}
}

// denied turns a decision into a denial with the given reasons.
func denied(expires int64, reasons ...Reason) Decision {
	return Decision{Fields: []string{}, Masks: map[string]catalog.Mask{}, Reasons: reasons, Expires: expires}
}

// agencyDenials reads deny: a set or array of strings or {code, message}.
func agencyDenials(v ast.Value) ([]Reason, bool) {
	var out []Reason
	ok := true
	each := func(t *ast.Term) {
		switch x := t.Value.(type) {
		case ast.String:
			out = append(out, Reason{Code: "agency_denied", Message: string(x)})
		case ast.Object:
			code, msg := str(x, kCode), str(x, kMessage)
			if code == "" && msg == "" {
				ok = false
				return
			}
			if code != "" && msg != "" {
				msg = "[" + code + "] " + msg
			} else if msg == "" {
				msg = code
			}
			out = append(out, Reason{Code: "agency_denied", Message: msg})
		default:
			ok = false
		}
	}
	switch x := v.(type) {
	case ast.Set:
		x.Foreach(each)
	case *ast.Array:
		x.Foreach(each)
	default:
		return nil, false
	}
	return out, ok
}

// within reports whether path is p or lies below it.
func within(path, p string) bool {
	return path == p || (len(path) > len(p) && path[len(p)] == '.' && strings.HasPrefix(path, p))
}

// dropPath removes x and everything below it from the allowed fields. An
// allowed object that contains x is replaced by its other parts (from the
// dataset's schema), so dropping a.b from an allowed a leaves a's siblings
// of a.b; an object whose parts are unknown is dropped whole.
func dropPath(fields []string, x string, children map[string][]string) []string {
	out := make([]string, 0, len(fields))
	for _, p := range fields {
		switch {
		case within(p, x):
			// p is x or below it: gone
		case within(x, p):
			out = append(out, carve(p, x, children)...)
		default:
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func carve(p, x string, children map[string][]string) []string {
	var out []string
	for _, c := range children[p] {
		switch {
		case c == x:
		case within(x, c):
			out = append(out, carve(c, x, children)...)
		default:
			out = append(out, c)
		}
	}
	return out
}
