package projection

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/lienthong/lienthong/catalog"
)

// The leak property's oracle. It shares nothing with the projector but the
// masks' output format and the grammar of grant specs: it works over values
// as encoding/json decodes them, names paths by dotted strings instead of a
// tree, reads the schema as a flat map from path to type, and decides
// integers by its own arithmetic on the literal.

// leakFields is the schema of the property: the citizen record, plus
// fields of every type, nested objects, an array of scalars, a free-form
// object (nothing declared inside) and the short names of the older seeds.
var leakFields = append(slices.Clone(citizenFields), []catalog.Field{
	{Path: "age", Type: "integer"}, {Path: "score", Type: "number"}, {Path: "alive", Type: "boolean"},
	{Path: "permanentResidence.geo", Type: "object"},
	{Path: "permanentResidence.geo.lat", Type: "number"}, {Path: "permanentResidence.geo.lon", Type: "number"},
	{Path: "relatives.phones", Type: "array"}, {Path: "relatives.age", Type: "integer"},
	{Path: "tags", Type: "array"}, {Path: "notes", Type: "object"},
	{Path: "a", Type: "object"}, {Path: "a.b", Type: "object"}, {Path: "a.b.c", Type: "string"}, {Path: "a.d", Type: "integer"},
}...)

// oracle answers what a grant lets out of a record under a schema.
type oracle struct {
	*declaredShape
	granted []string // the grant's paths that the schema declares
	masks   map[string]catalog.Mask
}

// declaredShape is the oracle's reading of a schema: flat maps by path.
type declaredShape struct {
	types   map[string]string // declared path → type
	parents map[string]bool   // declared paths with declared children
}

func newDeclaredShape(fields []catalog.Field) *declaredShape {
	d := &declaredShape{types: map[string]string{}, parents: map[string]bool{}}
	for _, f := range fields {
		d.types[f.Path] = f.Type
		if i := strings.LastIndexByte(f.Path, '.'); i >= 0 {
			d.parents[f.Path[:i]] = true
		}
	}
	return d
}

func newOracle(d *declaredShape, granted []string, masks map[string]catalog.Mask) *oracle {
	o := &oracle{declaredShape: d, masks: masks}
	for _, g := range granted {
		if _, ok := o.types[g]; ok {
			o.granted = append(o.granted, g)
		}
	}
	return o
}

// under reports whether path is p or lies below it.
func under(path, p string) bool {
	return path == p || (len(path) > len(p) && path[len(p)] == '.' && path[:len(p)] == p)
}

// whole: path is granted or lies below a granted path.
func (o *oracle) whole(path string) bool {
	for _, g := range o.granted {
		if under(path, g) {
			return true
		}
	}
	return false
}

// ancestor: path lies strictly above a granted path.
func (o *oracle) ancestor(path string) bool {
	for _, g := range o.granted {
		if g != path && under(g, path) {
			return true
		}
	}
	return false
}

// maskedAtOrAbove reports a mask at path or at one of its ancestors.
func (o *oracle) maskedAtOrAbove(path string) bool {
	for p, m := range o.masks {
		if m != catalog.MaskNone && under(path, p) {
			return true
		}
	}
	return false
}

// verifiable is the verify rule as the oracle reads it: a declared path
// granted whole, and no mask that applies on it, above it, or below it.
func (o *oracle) verifiable(path string) bool {
	if _, ok := o.types[path]; !ok || !o.whole(path) {
		return false
	}
	for p, m := range o.masks {
		if m == catalog.MaskNone {
			continue
		}
		if _, declared := o.types[p]; !declared {
			continue // names nothing that can be sent
		}
		if under(path, p) || under(p, path) {
			return false
		}
	}
	return true
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// integral decides whether a JSON number literal has an integral value by
// moving its decimal point, without parsing it to a float.
func integral(lit string) bool {
	mant, expPart, hasExp := strings.Cut(strings.ToLower(lit), "e")
	mant = strings.TrimPrefix(mant, "-")
	intPart, frac, _ := strings.Cut(mant, ".")
	digits := intPart + frac
	if strings.Trim(digits, "0") == "" {
		return true // zero
	}
	exp := 0
	if hasExp {
		e, err := strconv.Atoi(expPart)
		if err != nil || e > 1e6 || e < -1e6 {
			return !strings.HasPrefix(expPart, "-")
		}
		exp = e
	}
	scale := len(frac) - exp // digits after the decimal point
	if scale <= 0 {
		return true
	}
	if scale > len(digits) {
		return false
	}
	return strings.Trim(digits[len(digits)-scale:], "0") == ""
}

// hasType reports whether a decoded value may stand where typ is declared.
func hasType(v any, typ string) bool {
	switch v := v.(type) {
	case nil:
		return true
	case string:
		return typ == "string"
	case json.Number:
		return typ == "number" || (typ == "integer" && integral(string(v)))
	case bool:
		return typ == "boolean"
	case map[string]any:
		return typ == "object"
	case []any:
		return typ == "array"
	}
	return false
}

func isScalar(v any) bool {
	switch v.(type) {
	case string, json.Number, bool:
		return true
	}
	return false
}

// masked is what the oracle expects where a hash or partial mask holds:
// the output must have the mask's form for the projected value.
type masked struct {
	mask  catalog.Mask
	value any
}

// expectation is the oracle's verdict on one record.
type expectation struct {
	want    any    // the output, when the record passes
	invalid string // why the answer must be refused as a whole, if it must
	wrong   string // a declared path the grant reaches where the value has the wrong type
}

// expect computes what Project must do with a decoded answer.
func (o *oracle) expect(v any, maxDepth int) expectation {
	var e expectation
	if depth(v) > maxDepth {
		e.invalid = "too deep"
		return e
	}
	switch v := v.(type) {
	case map[string]any:
		e.want = o.inner(v, "", false, &e)
	case []any:
		out := []any{}
		for _, it := range v {
			m, ok := it.(map[string]any)
			if !ok {
				e.invalid = "an array item is not an object"
				return e
			}
			out = append(out, o.inner(m, "", false, &e))
		}
		e.want = out
	default:
		e.invalid = "not an object or array"
	}
	return e
}

func depth(v any) int {
	d := 0
	switch v := v.(type) {
	case map[string]any:
		for _, x := range v {
			d = max(d, depth(x))
		}
		return d + 1
	case []any:
		for _, x := range v {
			d = max(d, depth(x))
		}
		return d + 1
	}
	return 0
}

// value is what may leave of v at the declared, reachable path.
func (o *oracle) value(v any, path string, whole bool, e *expectation) (any, bool) {
	if !hasType(v, o.types[path]) {
		e.wrong = path
		return nil, false
	}
	if !whole && isScalar(v) {
		return nil, false
	}
	m := o.masks[path]
	if m == catalog.MaskNullify {
		return nil, true
	}
	inner := o.inner(v, path, whole, e)
	if m != catalog.MaskNone {
		return masked{m, inner}, true
	}
	return inner, true
}

// inner projects the contents of v at path, without path's own mask.
func (o *oracle) inner(v any, path string, whole bool, e *expectation) any {
	switch v := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, x := range v {
			if k == "" || strings.Contains(k, ".") {
				continue // names no path
			}
			child := join(path, k)
			if _, declared := o.types[child]; !declared {
				continue
			}
			w := whole || o.whole(child)
			if !w && !o.ancestor(child) {
				continue
			}
			if r, keep := o.value(x, child, w, e); keep {
				out[k] = r
			}
		}
		return out
	case []any:
		out := []any{}
		for _, x := range v {
			if isScalar(x) {
				if o.parents[path] {
					e.wrong = path // the items are declared objects
					continue
				}
				if !whole {
					continue
				}
			}
			out = append(out, o.inner(x, path, whole, e))
		}
		return out
	}
	return v
}

// noLeak states invariant 1 on the output alone: no duplicate key; every
// key non-empty, without dots, declared, and granted, below a grant or
// above one (then holding only containers, null or a masked value); every
// unmasked value of its declared type. It returns the decoded output.
func (o *oracle) noLeak(out []byte) (any, string) {
	if hasDuplicateKey(out) {
		return nil, "output has a duplicate key"
	}
	v, err := decodeAll(out)
	if err != "" {
		return nil, err
	}
	var walk func(v any, path string) string
	walk = func(v any, path string) string {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if k == "" || strings.Contains(k, ".") {
					return fmt.Sprintf("output has key %q", k)
				}
				child := join(path, k)
				typ, declared := o.types[child]
				switch {
				case !declared:
					return fmt.Sprintf("output has undeclared path %q", child)
				case o.whole(child):
				case o.ancestor(child):
					if o.masks[child] == catalog.MaskNone && isScalar(x) {
						return fmt.Sprintf("output has a value at %q, which is only above the granted paths", child)
					}
				default:
					return fmt.Sprintf("output has ungranted path %q", child)
				}
				if o.maskedAtOrAbove(child) {
					continue // a mask's output, checked against the oracle's expectation
				}
				if !hasType(x, typ) {
					return fmt.Sprintf("output has a %T at %q, declared %s", x, child, typ)
				}
				if msg := walk(x, child); msg != "" {
					return msg
				}
			}
		case []any:
			for _, x := range v {
				if isScalar(x) && o.parents[path] {
					return fmt.Sprintf("output has a scalar item at %q, declared objects", path)
				}
				if msg := walk(x, path); msg != "" {
					return msg
				}
			}
		}
		return ""
	}
	if a, ok := v.([]any); ok {
		for _, x := range a {
			if _, ok := x.(map[string]any); !ok {
				return nil, "output array holds a non-record"
			}
		}
	}
	return v, walk(v, "")
}

// decodeAll decodes exactly one JSON value in UTF-8.
func decodeAll(b []byte) (any, string) {
	if !json.Valid(b) || !bytes.Equal(bytes.ToValidUTF8(b, nil), b) {
		return nil, "output is not valid JSON in UTF-8"
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, "output does not decode: " + err.Error()
	}
	if dec.More() {
		return nil, "output has more than one value"
	}
	return v, ""
}

var hashForm = regexp.MustCompile(`^hmac-sha256:[0-9a-f]{64}$`)

// compare reports where got departs from want ("" if nowhere).
func compare(got, want any, at string) string {
	switch w := want.(type) {
	case masked:
		if w.value == nil || (w.mask == catalog.MaskPartial && !isPartialable(w.value)) {
			if got != nil {
				return at + ": want null"
			}
			return ""
		}
		s, ok := got.(string)
		if !ok {
			return at + ": want a masked string"
		}
		if w.mask == catalog.MaskHash {
			if !hashForm.MatchString(s) {
				return at + ": not a hash"
			}
			return ""
		}
		var orig string
		switch x := w.value.(type) {
		case string:
			orig = x
		case json.Number:
			orig = string(x)
		}
		return comparePartial(s, orig, at)
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok || len(g) != len(w) {
			return at + ": want an object with the same keys"
		}
		for k, x := range w {
			y, ok := g[k]
			if !ok {
				return at + "/" + k + ": missing"
			}
			if msg := compare(y, x, at+"/"+k); msg != "" {
				return msg
			}
		}
		return ""
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return at + ": want an array of the same length"
		}
		for i := range w {
			if msg := compare(g[i], w[i], at+"/[]"); msg != "" {
				return msg
			}
		}
		return ""
	}
	if !reflect.DeepEqual(got, want) {
		return at + ": different value"
	}
	return ""
}

func isPartialable(v any) bool {
	switch v.(type) {
	case string, json.Number:
		return true
	}
	return false
}

// comparePartial checks a partial mask: as many characters as orig, at most
// half of them kept from its end, the others '*'.
func comparePartial(s, orig, at string) string {
	rs, ro := []rune(s), []rune(orig)
	if len(rs) != len(ro) {
		return at + ": partial mask changed the length"
	}
	keep := min(DefaultPartialKeep, len(ro)/2)
	for i := range rs {
		if i < len(rs)-keep && rs[i] != '*' {
			return at + ": partial mask shows too much"
		}
		if i >= len(rs)-keep && rs[i] != ro[i] {
			return at + ": partial mask changed the kept end"
		}
	}
	return ""
}

// leakCase is one (grant, record) pair of the property, with what is known
// of the record independently of the projector: its decoded value, and
// whether it repeats a key or is not JSON at all.
type leakCase struct {
	grantSpec   string
	body        []byte
	truth       any
	dup         bool
	invalid     string // non-empty: the body is not valid JSON
	claim       string // a path a verify request claims, "" for none, "*" for every declared path
	decodeFirst bool   // project through Decode and ProjectRecords
}

// leakGrant is a grant of the property compiled twice: into a plan by the
// package, and into an oracle by the test.
type leakGrant struct {
	spec   string
	plan   *Plan
	oracle *oracle
}

var leakShape = newDeclaredShape(leakFields)

// compileGrant compiles a grant spec; nil when the package refuses it (a
// malformed grant, through which nothing flows).
func compileGrant(s *Schema, m *Masker, spec string) *leakGrant {
	fields, masks := parseGrantSpec(spec)
	plan, err := s.Plan(fields, masks, m)
	if err != nil {
		return nil
	}
	return &leakGrant{spec: spec, plan: plan, oracle: newOracle(leakShape, fields, masks)}
}

// checkLeak runs the projector on one pair and returns what is wrong, or "".
func checkLeak(g *leakGrant, c *leakCase) string {
	plan, o := g.plan, g.oracle
	claims := []string{c.claim}
	if c.claim == "*" {
		claims = slices.Sorted(maps.Keys(o.types))
	}
	for _, claim := range claims {
		if claim == "" {
			continue
		}
		if got, want := plan.CanVerify(claim) == nil, o.verifiable(claim); got != want {
			return fmt.Sprintf("CanVerify(%q) allows %v; the oracle says %v", claim, got, want)
		}
	}
	var out bytes.Buffer
	var perr error
	if c.decodeFirst {
		var recs *Records
		if recs, perr = Decode(bytes.NewReader(c.body), Options{}); perr == nil {
			_, perr = plan.ProjectRecords(&out, recs, nil)
		}
	} else {
		_, perr = plan.Project(&out, bytes.NewReader(c.body), Options{})
	}
	switch {
	case c.dup:
		if perr == nil {
			return fmt.Sprintf("the body repeats a key, yet it was projected to %s", out.Bytes())
		}
		return ""
	case c.invalid != "":
		if perr == nil {
			return fmt.Sprintf("the body is invalid (%s), yet it was projected to %s", c.invalid, out.Bytes())
		}
		return ""
	}
	e := o.expect(c.truth, DefaultMaxDepth)
	switch {
	case e.invalid != "":
		if perr == nil {
			return fmt.Sprintf("the body must be refused (%s), yet it was projected to %s", e.invalid, out.Bytes())
		}
		return ""
	case e.wrong != "":
		if !errors.Is(perr, ErrWrongType) {
			return fmt.Sprintf("the value at %s has the wrong type, yet the projection gave %s, %v", e.wrong, out.Bytes(), perr)
		}
		return ""
	case perr != nil:
		return fmt.Sprintf("refused a record the oracle accepts: %v", perr)
	}
	got, msg := o.noLeak(out.Bytes())
	if msg != "" {
		return msg + ": " + out.String()
	}
	if msg := compare(got, e.want, ""); msg != "" {
		return "output differs from the oracle at " + msg + ": " + out.String()
	}
	return ""
}
