package projection

import (
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/lienthong/lienthong/catalog"
)

// leakGen generates (grant, record) pairs for the leak property cheaply:
// records are written as JSON bytes directly, together with the value
// encoding/json would decode them to, so checking a pair never has to
// parse its input. Records follow leakFields loosely: declared properties
// (sometimes null or of the wrong type) mixed with what a malicious
// backend adds — undeclared keys inside granted objects and array items,
// case variants of declared names (Ethnicity for ethnicity), names written
// with JSON escapes (some meaning a declared name, some not), dotted and
// empty keys — and now and then a key repeated under another spelling.
type leakGen struct {
	r     *rand.Rand
	root  *genNode
	paths []string // every declared path, for grants and claims
	buf   []byte
	dup   bool
}

// genNode is a declared object (or array of objects) and its properties.
type genNode struct {
	typ   string
	names []string
	kids  map[string]*genNode
}

// undeclaredNames are keys no object of leakFields declares. Case variants
// of declared names and escaped spellings are made on the fly.
var undeclaredNames = []string{"religion", "Religion", "Ethnicity", "ETHNICITY", "health", "criminalRecord",
	"FullName", "fullname", "PersonalId", "x", "a.b", "permanentResidence.wardCode", "", " ", "fullName ",
	"ethnicity\u0000", "ét", "宗教", "\u2028", "__proto__"}

func newLeakGen(seed uint64) *leakGen {
	g := &leakGen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), root: &genNode{typ: "object", kids: map[string]*genNode{}}}
	fields := slices.Clone(leakFields)
	slices.SortFunc(fields, func(a, b catalog.Field) int {
		return strings.Count(a.Path, ".") - strings.Count(b.Path, ".")
	})
	nodes := map[string]*genNode{"": g.root}
	for _, f := range fields {
		parent, name := "", f.Path
		if i := strings.LastIndexByte(f.Path, '.'); i >= 0 {
			parent, name = f.Path[:i], f.Path[i+1:]
		}
		p := nodes[parent]
		n := &genNode{typ: f.Type, kids: map[string]*genNode{}}
		p.names = append(p.names, name)
		p.kids[name] = n
		nodes[f.Path] = n
		g.paths = append(g.paths, f.Path)
	}
	slices.Sort(g.paths)
	return g
}

func (g *leakGen) chance(p float64) bool { return g.r.Float64() < p }

func (g *leakGen) pick(list []string) string { return list[g.r.IntN(len(list))] }

// grant writes a grant spec: a few declared paths, sometimes an undeclared
// one, and masks on paths at, above, below or beside them.
func (g *leakGen) grant() string {
	var entries []string
	for range 1 + g.r.IntN(5) {
		p := g.pick(g.paths)
		if g.chance(0.1) {
			p += "." + g.pick([]string{"religion", "x", "Ethnicity"})
		}
		entries = append(entries, p)
	}
	for range g.r.IntN(3) {
		p := g.pick(g.paths)
		if g.chance(0.5) {
			p = g.pick(entries) // on a granted path, or below it
			if g.chance(0.3) {
				if sub := g.below(p); sub != "" {
					p = sub
				}
			}
		}
		m := g.pick([]string{"hash", "partial", "nullify"})
		if g.chance(0.5) {
			entries = append(entries, "~"+p+"="+m)
		} else {
			entries = append(entries, p+"="+m)
		}
	}
	return strings.Join(entries, ",")
}

// below returns a declared path strictly below p, or "".
func (g *leakGen) below(p string) string {
	var subs []string
	for _, q := range g.paths {
		if strings.HasPrefix(q, p+".") {
			subs = append(subs, q)
		}
	}
	if len(subs) == 0 {
		return ""
	}
	return g.pick(subs)
}

// record writes one body (a record, or now and then an array of them) and
// returns it with its decoded value and whether it repeats a key.
func (g *leakGen) record() ([]byte, any, bool) {
	g.buf, g.dup = g.buf[:0], false
	var v any
	if g.chance(0.1) {
		n := g.r.IntN(3)
		items := make([]any, n)
		g.buf = append(g.buf, '[')
		for i := range n {
			if i > 0 {
				g.buf = append(g.buf, ',')
			}
			items[i] = g.object(g.root, 0)
		}
		g.buf = append(g.buf, ']')
		v = items
	} else {
		v = g.object(g.root, 0)
	}
	return slices.Clone(g.buf), v, g.dup
}

// genMember is one key of an object being generated: the name as decoded,
// and the declared node of its value (nil: noise).
type genMember struct {
	name string
	kid  *genNode
}

// object writes an object for the declared node n.
func (g *leakGen) object(n *genNode, depth int) any {
	ms := make([]genMember, 0, 8)
	for _, name := range n.names {
		if g.chance(0.35) {
			ms = append(ms, genMember{name, n.kids[name]})
		}
	}
	for range g.r.IntN(4) {
		name := g.pick(undeclaredNames)
		if len(n.names) > 0 && g.chance(0.4) {
			name = caseVariant(g.pick(n.names), g.r)
		}
		ms = append(ms, genMember{name: name})
	}
	g.r.Shuffle(len(ms), func(i, j int) { ms[i], ms[j] = ms[j], ms[i] })
	if len(ms) > 0 && g.chance(0.03) {
		// The same key again, spelled alike or escaped otherwise.
		ms = append(ms, genMember{name: ms[g.r.IntN(len(ms))].name})
	}
	out := make(map[string]any, len(ms))
	g.buf = append(g.buf, '{')
	for i, m := range ms {
		if i > 0 {
			g.buf = append(g.buf, ',')
		}
		if _, seen := out[m.name]; seen {
			g.dup = true
		}
		g.buf = g.appendString(g.buf, m.name)
		g.buf = append(g.buf, ':')
		if m.kid != nil {
			out[m.name] = g.declared(m.kid, depth+1)
		} else {
			out[m.name] = g.noise(depth + 1)
		}
	}
	g.buf = append(g.buf, '}')
	return out
}

// caseVariant changes the case of one letter of name, if it has one that
// changes: a different key to JSON.
func caseVariant(name string, r *rand.Rand) string {
	rs := []rune(name)
	for range 4 {
		i := r.IntN(len(rs))
		if c := rs[i]; unicode.IsUpper(c) {
			rs[i] = unicode.ToLower(c)
			return string(rs)
		} else if unicode.IsLower(c) {
			rs[i] = unicode.ToUpper(c)
			return string(rs)
		}
	}
	return name + "X"
}

// declared writes a value for the declared node n: mostly of its type,
// sometimes null, now and then of another type.
func (g *leakGen) declared(n *genNode, depth int) any {
	switch {
	case g.chance(0.02):
		return g.wrongType(n, depth)
	case g.chance(0.06):
		g.buf = append(g.buf, "null"...)
		return nil
	}
	switch n.typ {
	case "object":
		return g.object(n, depth)
	case "array":
		return g.array(n, depth, 0)
	}
	return g.scalar(n.typ)
}

// array writes an array for the declared node n; arrays nest transparently.
func (g *leakGen) array(n *genNode, depth, nesting int) any {
	k := g.r.IntN(4)
	items := make([]any, k)
	g.buf = append(g.buf, '[')
	for i := range k {
		if i > 0 {
			g.buf = append(g.buf, ',')
		}
		switch {
		case nesting < 2 && g.chance(0.1):
			items[i] = g.array(n, depth+1, nesting+1)
		case g.chance(0.05):
			g.buf = append(g.buf, "null"...)
		case len(n.names) > 0:
			if g.chance(0.02) {
				items[i] = g.scalar("string") // not an object: wrong type
			} else {
				items[i] = g.object(n, depth+1)
			}
		case g.chance(0.1):
			items[i] = g.object(n, depth+1) // an object where nothing is declared
		default:
			items[i] = g.scalar(g.pick([]string{"string", "number", "integer"}))
		}
	}
	g.buf = append(g.buf, ']')
	return items
}

// wrongType writes a value that is not of n's type.
func (g *leakGen) wrongType(n *genNode, depth int) any {
	for {
		t := g.pick([]string{"string", "number", "boolean", "object", "array"})
		if t == n.typ || (t == "number" && n.typ == "integer") {
			continue
		}
		switch t {
		case "object":
			return g.object(&genNode{}, depth)
		case "array":
			return g.array(&genNode{}, depth, 0)
		}
		if t == "number" && n.typ == "integer" {
			continue
		}
		if n.typ == "integer" && g.chance(0.5) {
			return g.literal(g.pick([]string{"1.5", "-0.25", "1e-3", "12345e-2"}))
		}
		return g.scalar(t)
	}
}

// noise writes what a backend might add: any value, objects and arrays
// full of keys that must never leave.
func (g *leakGen) noise(depth int) any {
	if depth > 4 {
		return g.scalar("string")
	}
	switch g.r.IntN(6) {
	case 0:
		return g.object(&genNode{}, depth)
	case 1:
		return g.array(&genNode{}, depth, 0)
	case 2:
		g.buf = append(g.buf, "null"...)
		return nil
	}
	return g.scalar(g.pick([]string{"string", "number", "integer", "boolean"}))
}

var (
	genStrings  = []string{"79", "Nguyễn Văn An", "secret", "", "a\"b\\c", "line\nbreak", "\u2028", "😀", "x/y", "\x01"}
	genNumbers  = []string{"0", "-1", "3.25", "1e3", "-2.5E-3", "12345678901234567890123", "0.0", "1.0"}
	genIntegers = []string{"0", "7", "-42", "1.0", "2e1", "120e-1", "99999999999999999999"}
)

// scalar writes a value of type typ.
func (g *leakGen) scalar(typ string) any {
	switch typ {
	case "number":
		return g.literal(g.pick(genNumbers))
	case "integer":
		return g.literal(g.pick(genIntegers))
	case "boolean":
		b := g.chance(0.5)
		g.buf = strconv.AppendBool(g.buf, b)
		return b
	}
	s := g.pick(genStrings)
	g.buf = g.appendString(g.buf, s)
	return s
}

func (g *leakGen) literal(lit string) any {
	g.buf = append(g.buf, lit...)
	return json.Number(lit)
}

// appendString writes s as a JSON string, escaping what JSON requires and,
// at random, other characters as \uXXXX (surrogate pairs beyond the BMP),
// so that equal keys come in different spellings.
func (g *leakGen) appendString(b []byte, s string) []byte {
	escapeAll := g.chance(0.05)
	escapeSome := escapeAll || g.chance(0.15)
	b = append(b, '"')
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', byte(c))
		case c < 0x20 || escapeAll || (escapeSome && g.chance(0.3)):
			if c > 0xffff {
				hi, lo := utf16Pair(c)
				b = appendU(appendU(b, hi), lo)
			} else {
				b = appendU(b, c)
			}
		default:
			b = utf8.AppendRune(b, c)
		}
	}
	return append(b, '"')
}

func appendU(b []byte, c rune) []byte {
	const hex = "0123456789ABCDEF"
	return append(b, '\\', 'u', hex[c>>12&0xf], hex[c>>8&0xf], hex[c>>4&0xf], hex[c&0xf])
}

func utf16Pair(c rune) (rune, rune) {
	c -= 0x10000
	return 0xd800 + (c>>10)&0x3ff, 0xdc00 + c&0x3ff
}

// next generates one pair for the property, with a verify claim on a
// declared path (or one below it that is not declared).
func (g *leakGen) next(grantSpec string) leakCase {
	body, truth, dup := g.record()
	claim := g.pick(g.paths)
	if g.chance(0.05) {
		claim += ".religion"
	}
	return leakCase{grantSpec: grantSpec, body: body, truth: truth, dup: dup, claim: claim, decodeFirst: g.chance(0.1)}
}
