package projection

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/lienthong/lienthong/catalog"
)

// FuzzProjectNeverLeaks feeds Project arbitrary grants and backend bodies
// and checks invariant 1 with code that shares nothing with the package
// but the masks' output format: encoding/json decodes the input and the
// output, a token walker looks for duplicate keys, and a reference
// projection over map[string]any says what the output must be.
//
// grantSpec is a comma-separated list of entries: "path" grants a path,
// "path=hash" (partial, nullify) grants it masked, "~path=hash" only masks.
func FuzzProjectNeverLeaks(f *testing.F) {
	f.Add("fullName,permanentResidence.provinceCode,relatives.fullName", []byte(record30))
	f.Add("name", []byte(`{"name":1,"\u006eame":2}`))
	f.Add("a.b", []byte(`{"a.b":"secret","a":{"b":1}}`))
	masker := testMasker(f)
	f.Fuzz(func(t *testing.T, grantSpec string, body []byte) {
		fields, masks := parseGrantSpec(grantSpec)
		plan, err := NewPlan(fields, masks, masker)
		if err != nil {
			return // a malformed grant is refused; nothing flows
		}
		var out bytes.Buffer
		_, perr := plan.Project(&out, bytes.NewReader(body), Options{})

		g := newGrant(fields, masks)
		want, whyInvalid := reference(body, g, DefaultMaxDepth)
		if hasDuplicateKey(body) {
			if perr == nil {
				t.Fatalf("the body has a duplicate key, yet Project succeeded with %s", out.Bytes())
			}
			return
		}
		if whyInvalid != "" {
			if perr == nil {
				t.Fatalf("the body is refused by the reference (%s), yet Project succeeded with %s", whyInvalid, out.Bytes())
			}
			return
		}
		if perr != nil {
			t.Fatalf("Project refused a body the reference accepts: %v", perr)
		}
		got := checkNoLeak(t, out.Bytes(), g)
		if msg := compare(got, want, ""); msg != "" {
			t.Fatalf("output differs from the reference at %s\n got  %s\n grant %q", msg, out.Bytes(), grantSpec)
		}
	})
}

// parseGrantSpec reads the fuzzer's grant: see FuzzProjectNeverLeaks.
func parseGrantSpec(spec string) ([]string, map[string]catalog.Mask) {
	if spec == "" {
		return nil, nil
	}
	var fields []string
	masks := map[string]catalog.Mask{}
	for _, e := range strings.Split(spec, ",") {
		path, m, hasMask := cutLast(e, "=")
		mask := catalog.Mask(m)
		if !hasMask || (mask != catalog.MaskHash && mask != catalog.MaskPartial && mask != catalog.MaskNullify) {
			fields = append(fields, e)
			continue
		}
		if p, ok := strings.CutPrefix(path, "~"); ok {
			masks[p] = mask
			continue
		}
		fields = append(fields, path)
		masks[path] = mask
	}
	return fields, masks
}

func cutLast(s, sep string) (string, string, bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// grant answers path questions by comparing segment lists, without a tree.
type grant struct {
	fields [][]string
	masks  map[string]catalog.Mask
}

func newGrant(fields []string, masks map[string]catalog.Mask) grant {
	g := grant{masks: masks}
	for _, f := range fields {
		g.fields = append(g.fields, strings.Split(f, "."))
	}
	return g
}

func hasPrefix(s, prefix []string) bool {
	if len(prefix) > len(s) {
		return false
	}
	for i := range prefix {
		if s[i] != prefix[i] {
			return false
		}
	}
	return true
}

// whole: path is granted or lies below a granted path.
func (g grant) whole(path []string) bool {
	for _, f := range g.fields {
		if hasPrefix(path, f) {
			return true
		}
	}
	return false
}

// ancestor: path lies strictly above a granted path.
func (g grant) ancestor(path []string) bool {
	for _, f := range g.fields {
		if len(path) < len(f) && hasPrefix(f, path) {
			return true
		}
	}
	return false
}

func (g grant) mask(path []string) catalog.Mask { return g.masks[strings.Join(path, ".")] }

// masked is what the reference expects where a hash or partial mask holds:
// the output must have the mask's form for the projected value.
type masked struct {
	mask  catalog.Mask
	value any
}

// reference is what Project must write for body, decoded, or why body must
// be refused.
func reference(body []byte, g grant, maxDepth int) (any, string) {
	if !json.Valid(body) {
		return nil, "invalid JSON"
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, "invalid JSON: " + err.Error()
	}
	if depth(v) > maxDepth {
		return nil, "too deep"
	}
	switch v := v.(type) {
	case map[string]any:
		out, _ := refInner(v, nil, false, g)
		return out, ""
	case []any:
		out := []any{}
		for _, it := range v {
			m, ok := it.(map[string]any)
			if !ok {
				return nil, "an array item is not an object"
			}
			r, _ := refInner(m, nil, false, g)
			out = append(out, r)
		}
		return out, ""
	}
	return nil, "not an object or array"
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

func isScalar(v any) bool {
	switch v.(type) {
	case string, json.Number, bool:
		return true
	}
	return false
}

// refValue is what may leave of v at path, which is reachable (granted,
// below a granted path, or above one).
func refValue(v any, path []string, g grant) (any, bool) {
	whole := g.whole(path)
	if !whole && isScalar(v) {
		return nil, false
	}
	m := g.mask(path)
	if m == catalog.MaskNullify {
		return nil, true
	}
	inner, _ := refInner(v, path, whole, g)
	if m != "" {
		return masked{m, inner}, true
	}
	return inner, true
}

// refInner projects the contents of v without the mask at path.
func refInner(v any, path []string, whole bool, g grant) (any, bool) {
	switch v := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, x := range v {
			if k == "" || strings.Contains(k, ".") {
				continue
			}
			child := append(append([]string(nil), path...), k)
			if !g.whole(child) && !g.ancestor(child) {
				continue
			}
			if r, keep := refValue(x, child, g); keep {
				out[k] = r
			}
		}
		return out, true
	case []any:
		out := []any{}
		for _, x := range v {
			if !whole && isScalar(x) {
				continue
			}
			r, _ := refInner(x, path, whole, g)
			out = append(out, r)
		}
		return out, true
	}
	return v, true
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

// hasDuplicateKey walks body's tokens and reports whether any object
// repeats a key (as decoded). Invalid JSON counts as no duplicate: it is
// refused anyway.
func hasDuplicateKey(body []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber() // else 1e700 ends the walk with a range error
	type frame struct {
		keys     map[string]bool
		isObject bool
		wantKey  bool
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.isObject && top.wantKey {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				continue
			}
			k := tok.(string)
			if top.keys[k] {
				return true
			}
			top.keys[k] = true
			top.wantKey = false
			continue
		}
		if top != nil && top.isObject {
			top.wantKey = true // this token is a value
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{keys: map[string]bool{}, isObject: true, wantKey: true})
		case json.Delim('['):
			stack = append(stack, &frame{})
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
	}
}

func decodeJSON(t *testing.T, b []byte) any {
	t.Helper()
	if !utf8.Valid(b) || !json.Valid(b) {
		t.Fatalf("output is not valid JSON in UTF-8: %q", b)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		t.Fatalf("output has more than one value: %q", b)
	}
	return v
}

// checkNoLeak states invariant 1 on the output alone: no duplicate key,
// no key that is empty or dotted, and every key on a path that is granted,
// below a granted path, or above one — and then holding only containers
// (or null, or a masked value).
// It returns the decoded output.
func checkNoLeak(t *testing.T, out []byte, g grant) any {
	t.Helper()
	if hasDuplicateKey(out) {
		t.Fatalf("output has a duplicate key: %s", out)
	}
	var walk func(v any, path []string, top bool)
	walk = func(v any, path []string, top bool) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if k == "" || strings.Contains(k, ".") {
					t.Fatalf("output has key %q: %s", k, out)
				}
				child := append(append([]string(nil), path...), k)
				switch {
				case g.whole(child):
				case g.ancestor(child):
					if g.mask(child) == "" && !containersOnly(x) {
						t.Fatalf("output has a value at %q, which is only above the granted paths: %s", strings.Join(child, "."), out)
					}
				default:
					t.Fatalf("output has ungranted key path %q: %s", strings.Join(child, "."), out)
				}
				if g.mask(child) == "" {
					walk(x, child, false)
				}
			}
		case []any:
			for _, x := range v {
				if top {
					if _, ok := x.(map[string]any); !ok {
						t.Fatalf("output array holds a non-record: %s", out)
					}
				}
				walk(x, path, false)
			}
		}
	}
	v := decodeJSON(t, out)
	walk(v, nil, true)
	return v
}

// containersOnly reports whether v holds no string, number or boolean.
func containersOnly(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case map[string]any:
		return true // its members are checked by their own paths
	case []any:
		for _, x := range v {
			if !containersOnly(x) {
				return false
			}
		}
		return true
	}
	return false
}

// FuzzDecoderAgreesWithEncodingJSON checks the package's own JSON parser
// against encoding/json: the same inputs are valid, and a valid input
// without duplicate keys decodes to the same value — above all the same
// keys, since a key the filter reads differently from the consumer's parser
// is a key the grant did not decide on.
func FuzzDecoderAgreesWithEncodingJSON(f *testing.F) {
	for _, s := range []string{
		`{"a":"\ud83d\ude00","\u006eame":1}`, `"\ud83d"`, `"\ud83dx"`, `"\ud83d\u0041"`, `"\udc00\ud800"`,
		`"\ud83d\ud83d\ude00"`, `"\u00e9\u00E9\/\b\f\n\r\t\"\\"`, "\"a\xffb\xc3(\xed\xa0\x80\"", `"\u00"`, "\"\x01\"",
		`[-0.0e-0,1E+2,0,-1,1.5e300,1e999,01]`, `[1.]`, `[-]`, `[.5]`, `[1e]`, `[+1]`, `{"a":1,"a":2}`,
		`{"a" :{ "b" : [ true , false , null ] } }`, ` [ ] `, `{}`, `{"a":1,}`, `[1,]`, `[1 2]`, `{"a" 1}`,
		`nul`, `true false`, "\xef\xbb\xbf{}", `{"":{"":{"":[]}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var d decoder
		d.init(bytes.NewReader(body), 10000, -1)
		v, err := d.value(1)
		if err == nil {
			err = d.end()
		}
		switch {
		case !json.Valid(body):
			if err == nil {
				t.Fatalf("accepted invalid JSON %q", body)
			}
		case hasDuplicateKey(body):
			if !errors.Is(err, ErrDuplicateKey) {
				t.Fatalf("duplicate key in %q not reported: %v", body, err)
			}
		case err != nil:
			t.Fatalf("refused valid JSON %q: %v", body, err)
		default:
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.UseNumber()
			var want any
			if err := dec.Decode(&want); err != nil {
				t.Fatal(err)
			}
			if got := toAny(&v); !reflect.DeepEqual(got, want) {
				t.Fatalf("%q decodes to %#v; encoding/json says %#v", body, got, want)
			}
		}
	})
}
