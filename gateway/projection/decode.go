package projection

import (
	"errors"
	"fmt"
	"io"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// The decoder is a strict JSON (RFC 8259) parser of its own rather than
// encoding/json's Decoder.Token, which costs a reflective Decode and several
// allocations per scalar: with Token, projecting the benchmark's 30-field
// record took about 100 µs and 800 allocations; with this parser it takes
// about 10-15 µs and 50. It accepts exactly the grammar encoding/json
// accepts and decodes strings exactly as encoding/json does (invalid UTF-8
// and unpaired surrogates become U+FFFD), which
// FuzzDecoderAgreesWithEncodingJSON checks against encoding/json itself: a
// key must mean the same here as in the consumer's parser.

// smallObject is the member count up to which duplicate keys are found by
// scanning the members; above it a set is kept, so that an object with a
// million keys costs a million lookups, not half a trillion comparisons.
const smallObject = 8

// minRead is the least free space the decoder offers the source per read.
const minRead = 8 << 10

// errLimit is what limitedReader returns past Options.MaxBytes.
var errLimit = errors.New("input limit reached")

// limitedReader counts what the decoder reads and stops it past limit
// (limit < 0: no limit). It hands out no byte past the limit.
type limitedReader struct {
	r     io.Reader
	n     int64
	limit int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.limit < 0 {
		n, err := l.r.Read(p)
		l.n += int64(n)
		return n, err
	}
	if l.n > l.limit {
		return 0, errLimit
	}
	// Read at most one byte past the limit: enough to know it is passed.
	if room := l.limit - l.n + 1; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := l.r.Read(p)
	l.n += int64(n)
	if l.n > l.limit {
		return n - int(l.n-l.limit), errLimit
	}
	return n, err
}

// decoder parses one value at a time from a stream into values, refusing
// duplicate keys and nesting beyond maxDepth as it goes. Its buffer holds
// the unread input and never more than the longest token plus minRead, so
// memory is bounded by the value being built, not by the input.
type decoder struct {
	src      limitedReader
	buf      []byte // buf[pos:] is input not yet parsed
	pos      int
	off      int64 // input offset of buf[0]
	eof      bool
	rerr     error // the source's error other than io.EOF, sticky
	maxDepth int
	maxBytes int64
	scratch  []byte // strings with escapes are decoded here
	arena    arena  // the containers of the record being parsed
	// keys interns short object keys: records repeat the same few dozen
	// keys, and the decoder outlives a call in workPool, so most keys cost
	// a map lookup instead of an allocation.
	keys map[string]string
	// sets holds, per depth, the key set of the large object being parsed
	// there, reused from object to object (see keySet).
	sets []map[string]struct{}
}

// Bounds of decoder.keys, so that hostile keys cannot grow it for ever.
const (
	maxInterned    = 1024
	maxInternedLen = 64
)

// intern returns b as a string, from d.keys when it is there.
func (d *decoder) intern(b []byte) string {
	if len(b) > maxInternedLen {
		return string(b)
	}
	if s, ok := d.keys[string(b)]; ok {
		return s
	}
	s := string(b)
	if d.keys == nil {
		d.keys = make(map[string]string, 64)
	}
	if len(d.keys) < maxInterned {
		d.keys[s] = s
	}
	return s
}

// init prepares a (possibly pooled) decoder for a new input.
func (d *decoder) init(src io.Reader, maxDepth int, maxBytes int64) {
	d.src = limitedReader{r: src, limit: maxBytes}
	if d.buf == nil {
		d.buf = make([]byte, 0, minRead)
	}
	d.buf, d.pos, d.off, d.eof, d.rerr = d.buf[:0], 0, 0, false, nil
	d.maxDepth, d.maxBytes = maxDepth, maxBytes
}

// arena holds the members and items of the containers of one record. A
// container's members (items) are pushed on a stack while it is parsed or
// projected, its children's above them, and moved to one shared slice when
// it closes; the slices are reused from record to record and, through
// workPool, from call to call, so a record costs few allocations.
type arena struct {
	mstack  []member
	istack  []value
	members []member
	items   []value
}

// reset lets the next record reuse the arena. Values built from it before
// must no longer be used.
func (a *arena) reset() {
	clear(a.members) // drop references to the old record's strings
	clear(a.items)
	a.members, a.items = a.members[:0], a.items[:0]
}

// release drops every reference the arena holds, for pooling.
func (a *arena) release() {
	a.reset()
	clear(a.mstack[:cap(a.mstack)])
	clear(a.istack[:cap(a.istack)])
	a.mstack, a.istack = a.mstack[:0], a.istack[:0]
}

// size is the arena's capacity in elements, to keep huge ones out of the pool.
func (a *arena) size() int {
	return cap(a.mstack) + cap(a.istack) + cap(a.members) + cap(a.items)
}

// closeObject moves the members pushed since base off the stack into the
// arena and returns them.
func (a *arena) closeObject(base int) []member {
	start := len(a.members)
	a.members = append(a.members, a.mstack[base:]...)
	a.mstack = a.mstack[:base]
	return a.members[start:len(a.members):len(a.members)]
}

// closeArray is closeObject for items.
func (a *arena) closeArray(base int) []value {
	start := len(a.items)
	a.items = append(a.items, a.istack[base:]...)
	a.istack = a.istack[:base]
	return a.items[start:len(a.items):len(a.items)]
}

// offset is the input offset of buf[pos+k].
func (d *decoder) offset(k int) int64 { return d.off + int64(d.pos+k) }

// fill reads more input after buf[pos:], keeping that. It reports false
// when nothing more can be read: the end of the input, or an error kept in
// d.rerr. Indices relative to d.pos stay valid across calls.
func (d *decoder) fill() bool {
	if d.eof || d.rerr != nil {
		return false
	}
	if d.pos > 0 {
		n := copy(d.buf, d.buf[d.pos:])
		d.off += int64(d.pos)
		d.buf = d.buf[:n]
		d.pos = 0
	}
	if cap(d.buf)-len(d.buf) < minRead {
		b := make([]byte, len(d.buf), 2*cap(d.buf)+minRead)
		copy(b, d.buf)
		d.buf = b
	}
	for range 100 {
		n, err := d.src.Read(d.buf[len(d.buf):cap(d.buf)])
		d.buf = d.buf[:len(d.buf)+n]
		switch {
		case err == io.EOF:
			d.eof = true
		case err != nil:
			d.rerr = err
		}
		if n > 0 {
			return true
		}
		if err != nil {
			return false
		}
	}
	d.rerr = io.ErrNoProgress
	return false
}

// truncated is the error for input that ends, or cannot be read further,
// inside a value.
func (d *decoder) truncated() error {
	switch {
	case errors.Is(d.rerr, errLimit):
		return fmt.Errorf("%w: the backend response exceeds %d bytes", ErrTooLarge, d.maxBytes)
	case d.rerr != nil:
		return fmt.Errorf("projection: reading the backend response: %w", d.rerr)
	}
	return fmt.Errorf("%w: the input ends inside a value (offset %d)", ErrInvalidJSON, d.offset(len(d.buf)-d.pos))
}

// syntax is the error for invalid JSON at buf[pos+k]. what describes the
// problem; the offending input itself is never quoted.
func (d *decoder) syntax(k int, what string) error {
	return fmt.Errorf("%w: %s at input offset %d", ErrInvalidJSON, what, d.offset(k))
}

// skip skips white space and returns the next byte without consuming it;
// false at the end of the input or on a read error.
func (d *decoder) skip() (byte, bool) {
	for {
		for d.pos < len(d.buf) {
			switch c := d.buf[d.pos]; c {
			case ' ', '\t', '\n', '\r':
				d.pos++
			default:
				return c, true
			}
		}
		if !d.fill() {
			return 0, false
		}
	}
}

// byteAt returns buf[pos+k], reading more input if needed.
func (d *decoder) byteAt(k int) (byte, bool) {
	for d.pos+k >= len(d.buf) {
		if !d.fill() {
			return 0, false
		}
	}
	return d.buf[d.pos+k], true
}

// value parses the value at the input, at depth (the top-level value is at
// depth 1).
func (d *decoder) value(depth int) (value, error) {
	c, ok := d.skip()
	if !ok {
		return value{}, d.truncated()
	}
	switch {
	case c == '{' || c == '[':
		if depth > d.maxDepth {
			return value{}, fmt.Errorf("%w: values nest deeper than %d levels (offset %d)", ErrTooDeep, d.maxDepth, d.offset(0))
		}
		d.pos++
		if c == '{' {
			return d.object(depth)
		}
		return d.array(depth)
	case c == '"':
		s, err := d.str(false)
		return value{kind: kindString, s: s}, err
	case c == '-' || ('0' <= c && c <= '9'):
		lit, err := d.number()
		return value{kind: kindNumber, s: lit}, err
	case c == 't':
		return value{kind: kindBool, b: true}, d.literal("true")
	case c == 'f':
		return value{kind: kindBool}, d.literal("false")
	case c == 'n':
		return value{kind: kindNull}, d.literal("null")
	}
	return value{}, d.syntax(0, "unexpected character where a value should start")
}

// startsValue reports whether c can start a JSON value.
func startsValue(c byte) bool {
	switch c {
	case '{', '[', '"', '-', 't', 'f', 'n':
		return true
	}
	return '0' <= c && c <= '9'
}

func (d *decoder) literal(word string) error {
	for k := 0; k < len(word); k++ {
		c, ok := d.byteAt(k)
		if !ok {
			return d.truncated()
		}
		if c != word[k] {
			return d.syntax(k, "invalid literal")
		}
	}
	d.pos += len(word)
	return nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// number scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? and returns it
// as written.
func (d *decoder) number() (string, error) {
	k := 0
	c, _ := d.byteAt(0)
	if c == '-' {
		k++
	}
	// digits consumes a non-empty run of digits.
	digits := func() error {
		c, ok := d.byteAt(k)
		if !ok {
			return d.truncated()
		}
		if !isDigit(c) {
			return d.syntax(k, "invalid number")
		}
		for ok && isDigit(c) {
			k++
			c, ok = d.byteAt(k)
		}
		return nil
	}
	if c, ok := d.byteAt(k); ok && c == '0' {
		k++
	} else if err := digits(); err != nil {
		return "", err
	}
	if c, ok := d.byteAt(k); ok && c == '.' {
		k++
		if err := digits(); err != nil {
			return "", err
		}
	}
	if c, ok := d.byteAt(k); ok && (c == 'e' || c == 'E') {
		k++
		if c, ok := d.byteAt(k); ok && (c == '+' || c == '-') {
			k++
		}
		if err := digits(); err != nil {
			return "", err
		}
	}
	if d.rerr != nil && d.pos+k >= len(d.buf) {
		return "", d.truncated() // the number may go on in input that could not be read
	}
	lit := string(d.buf[d.pos : d.pos+k])
	d.pos += k
	return lit, nil
}

// str scans the string at the input (buf[pos] is its quote) and returns
// it decoded, interned if it is a key.
func (d *decoder) str(key bool) (string, error) {
	k := 1
	plain := true // no escape and no invalid UTF-8: the bytes are the string
	for {
		if d.pos+k >= len(d.buf) {
			if !d.fill() {
				return "", d.truncated()
			}
			continue
		}
		c := d.buf[d.pos+k]
		switch {
		case c == '"':
			raw := d.buf[d.pos+1 : d.pos+k]
			d.pos += k + 1
			if !plain {
				var err error
				if raw, err = d.unescape(raw); err != nil {
					return "", err
				}
			}
			if key {
				return d.intern(raw), nil
			}
			return string(raw), nil
		case c == '\\':
			plain = false
			k += 2 // the escaped byte is checked by unescape
		case c < 0x20:
			return "", d.syntax(k, "control character in a string")
		case c < utf8.RuneSelf:
			k++
		default:
			if !utf8.FullRune(d.buf[d.pos+k:]) && d.fill() {
				continue
			}
			r, size := utf8.DecodeRune(d.buf[d.pos+k:])
			if r == utf8.RuneError && size == 1 {
				plain = false
			}
			k += size
		}
	}
}

// unescape decodes the contents of a string (between its quotes) that has
// escapes or invalid UTF-8, as encoding/json does, into d.scratch. raw ends just before the
// closing quote, already consumed.
func (d *decoder) unescape(raw []byte) ([]byte, error) {
	at := func(i int) int { return i - len(raw) - 1 } // raw[i] relative to pos
	b := d.scratch[:0]
	for i := 0; i < len(raw); {
		c := raw[i]
		switch {
		case c == '\\':
			if i+1 >= len(raw) {
				return nil, d.syntax(at(i), "invalid escape in a string")
			}
			switch e := raw[i+1]; e {
			case '"', '\\', '/':
				b = append(b, e)
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				r, ok := hex4(raw[i+2:])
				if !ok {
					return nil, d.syntax(at(i), "invalid \\u escape in a string")
				}
				i += 6
				if utf16.IsSurrogate(r) {
					if r2, ok := hex4u(raw[i:]); ok {
						if dec := utf16.DecodeRune(r, r2); dec != unicode.ReplacementChar {
							b = utf8.AppendRune(b, dec)
							i += 6
							continue
						}
					}
					r = unicode.ReplacementChar
				}
				b = utf8.AppendRune(b, r)
				continue
			default:
				return nil, d.syntax(at(i), "invalid escape in a string")
			}
			i += 2
		case c < utf8.RuneSelf:
			b = append(b, c)
			i++
		default:
			r, size := utf8.DecodeRune(raw[i:])
			if r == utf8.RuneError && size == 1 {
				b = append(b, "\uFFFD"...)
			} else {
				b = append(b, raw[i:i+size]...)
			}
			i += size
		}
	}
	d.scratch = b
	return b, nil
}

// hex4 decodes four hex digits at the start of s.
func hex4(s []byte) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range s[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// hex4u decodes a \uXXXX escape at the start of s.
func hex4u(s []byte) (rune, bool) {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return 0, false
	}
	return hex4(s[2:])
}

// object parses the members of an object whose '{' has been consumed.
func (d *decoder) object(depth int) (value, error) {
	v := value{kind: kindObject}
	a := &d.arena
	base := len(a.mstack)
	defer func() { a.mstack = a.mstack[:base] }() // also on error
	var seen map[string]struct{}
	c, ok := d.skip()
	if !ok {
		return value{}, d.truncated()
	}
	if c == '}' {
		d.pos++
		return v, nil
	}
	for {
		if c != '"' {
			return value{}, d.syntax(0, "expected a string key")
		}
		key, err := d.str(true)
		if err != nil {
			return value{}, err
		}
		if d.duplicate(a.mstack[base:], &seen, key, depth) {
			return value{}, fmt.Errorf("%w: an object at depth %d repeats a key (input offset %d)", ErrDuplicateKey, depth, d.offset(0))
		}
		if c, ok = d.skip(); !ok {
			return value{}, d.truncated()
		}
		if c != ':' {
			return value{}, d.syntax(0, "expected a colon after an object key")
		}
		d.pos++
		child, err := d.value(depth + 1)
		if err != nil {
			return value{}, err
		}
		v.odd = v.odd || child.odd || key == "" || containsDot(key)
		a.mstack = append(a.mstack, member{key: key, val: child})
		if c, ok = d.skip(); !ok {
			return value{}, d.truncated()
		}
		d.pos++
		if c == '}' {
			break
		}
		if c != ',' {
			return value{}, d.syntax(-1, "expected a comma or the end of the object")
		}
		if c, ok = d.skip(); !ok {
			return value{}, d.truncated()
		}
	}
	if len(seen) > maxReusedSet {
		d.sets[depth] = nil // not kept for the next object at this depth
	}
	v.members = a.closeObject(base)
	return v, nil
}

// maxReusedSet bounds the key sets the decoder keeps for reuse, so that one
// hostile object with a million keys is not cleared and rehashed by every
// later object at its depth.
const maxReusedSet = 256

// keySet returns an empty set for the keys of an object at depth, the one
// the previous object at that depth used when there was one: a record's
// large objects then cost no map allocation. Only one object per depth is
// being parsed at any time, so one set per depth suffices.
func (d *decoder) keySet(depth int) map[string]struct{} {
	for len(d.sets) <= depth {
		d.sets = append(d.sets, nil)
	}
	m := d.sets[depth]
	if m == nil {
		m = make(map[string]struct{}, 4*smallObject)
		d.sets[depth] = m
		return m
	}
	clear(m)
	return m
}

func containsDot(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			return true
		}
	}
	return false
}

// duplicate reports whether key is among the keys of members, keeping the
// set of keys of large objects in *seen. Keys are compared exactly here, not
// by the case-folding rule of jsonstrict.FindDuplicate that request bodies,
// configuration and dataset documents follow: projection matches declared
// names exactly and writes only declared keys, and the catalog refuses a
// schema declaring two names that fold together, so a case variant in a
// backend answer ("Ethnicity") is an undeclared key, dropped and counted,
// and the output never holds two keys a case-insensitive consumer would
// merge. Refusing the answer instead would turn that drop into a 502.
func (d *decoder) duplicate(members []member, seen *map[string]struct{}, key string, depth int) bool {
	if *seen == nil && len(members) < smallObject {
		for i := range members {
			if members[i].key == key {
				return true
			}
		}
		return false
	}
	if *seen == nil {
		*seen = d.keySet(depth)
		for i := range members {
			(*seen)[members[i].key] = struct{}{}
		}
	}
	if _, dup := (*seen)[key]; dup {
		return true
	}
	(*seen)[key] = struct{}{}
	return false
}

// array parses the items of an array whose '[' has been consumed.
func (d *decoder) array(depth int) (value, error) {
	v := value{kind: kindArray}
	a := &d.arena
	base := len(a.istack)
	defer func() { a.istack = a.istack[:base] }() // also on error
	c, ok := d.skip()
	if !ok {
		return value{}, d.truncated()
	}
	if c == ']' {
		d.pos++
		return v, nil
	}
	for {
		item, err := d.value(depth + 1)
		if err != nil {
			return value{}, err
		}
		v.odd = v.odd || item.odd
		a.istack = append(a.istack, item)
		if c, ok = d.skip(); !ok {
			return value{}, d.truncated()
		}
		d.pos++
		if c == ']' {
			break
		}
		if c != ',' {
			return value{}, d.syntax(-1, "expected a comma or the end of the array")
		}
	}
	v.items = a.closeArray(base)
	return v, nil
}

// end checks that nothing but white space follows the top-level value.
func (d *decoder) end() error {
	if _, ok := d.skip(); ok {
		return d.syntax(0, "data after the top-level value")
	}
	if d.rerr != nil {
		return d.truncated()
	}
	return nil
}
