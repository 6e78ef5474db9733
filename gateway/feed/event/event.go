// Package event is the change event every feed carries: a CloudEvents 1.0
// event in structured JSON mode, parsed strictly because it comes from
// outside (a provider's system, its database outbox) and is passed on to
// other agencies.
package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// SpecVersion is the only CloudEvents version accepted.
const SpecVersion = "1.0"

// ContentType is the media type of a structured-mode event, and
// DataContentType the only content type of its data.
const (
	ContentType     = "application/cloudevents+json"
	DataContentType = "application/json"
)

// MaxSize bounds one event (256 KiB): a record of a dataset is a few
// kilobytes; the bound keeps a batch of 500 in memory.
const MaxSize = 256 << 10

// Event is one change of one record of a dataset.
type Event struct {
	// ID is unique per Source; consumers drop a second event with the
	// same (Source, ID).
	ID string `json:"id"`
	// Source is the provider system id.
	Source string `json:"source"`
	// SpecVersion is always "1.0".
	SpecVersion string `json:"specversion"`
	// Type is a declared event type of the dataset, e.g.
	// vn.gov.civilstatus.birth.registered.
	Type string `json:"type"`
	// Subject is the record id; it is also the Kafka key, so the events of
	// one record stay in order.
	Subject string `json:"subject"`
	// Time is when the change happened.
	Time time.Time `json:"time"`
	// DataContentType is always application/json.
	DataContentType string `json:"datacontenttype"`
	// Data is the record in the dataset's record schema (for a delivered
	// event: projected and masked for its consumer).
	Data json.RawMessage `json:"data"`
}

// Error says where an event is wrong: an RFC 6901 pointer into the event
// and what is expected there. It never quotes a value of the event, since
// the data holds personal fields.
type Error struct {
	Pointer string
	Reason  string
}

func (e *Error) Error() string { return fmt.Sprintf("%q: %s", e.Pointer, e.Reason) }

func invalid(pointer, format string, args ...any) error {
	return &Error{Pointer: pointer, Reason: fmt.Sprintf(format, args...)}
}

// attributes are the attributes an event may carry, in the order Parse
// reads them.
var attributes = [...]string{"specversion", "id", "source", "type", "subject", "time", "datacontenttype", "data"}

// Parse reads one structured-mode event. Beyond CloudEvents 1.0 it
// requires subject, time and data (a JSON object), refuses data_base64,
// extension attributes and duplicate keys at any depth (parsers disagree on
// which of two equal keys wins, so a record could mean one thing to the
// validator and another to a consumer), and bounds sizes. It runs for every
// event the router reads, so it makes few allocations: the event, one
// scanner and one string holding every attribute.
func Parse(raw []byte) (*Event, error) {
	if len(raw) > MaxSize {
		return nil, invalid("", "the event is %d bytes; at most %d are accepted", len(raw), MaxSize)
	}
	if !utf8.Valid(raw) {
		return nil, invalid("", "the event is not valid UTF-8")
	}
	sc, err := scan(raw, true)
	if err != nil {
		return nil, err
	}
	defer sc.release()
	if !sc.object {
		return nil, invalid("", "the event must be a JSON object")
	}
	// Each member is an attribute (a key appears once: scan refuses
	// duplicates), so values[i] is attribute i's, or nil.
	var values [len(attributes)][]byte
	for _, m := range sc.members {
		i := attributeIndex(m.key)
		if i < 0 {
			if string(m.key) == "data_base64" {
				return nil, invalid("/data_base64", "binary data is not accepted; data must be the record as a JSON object")
			}
			return nil, invalid("/"+escape(string(m.key)), "unknown attribute; extension attributes are not accepted")
		}
		values[i] = m.value
	}
	// The string attributes, checked, then copied into one string.
	limits := [...]struct {
		max      int
		required bool
	}{{8, true}, {256, true}, {256, true}, {128, true}, {128, true}, {64, true}, {64, false}}
	var texts [len(limits)][]byte
	total := 0
	for i, l := range limits {
		v := values[i]
		name := attributes[i]
		if v == nil {
			if l.required {
				return nil, invalid("/"+name, "is required")
			}
			continue
		}
		s, ok := jsonBytes(v)
		if !ok {
			return nil, invalid("/"+name, "must be a string")
		}
		if len(s) == 0 || len(s) > l.max {
			return nil, invalid("/"+name, "must be 1 to %d characters", l.max)
		}
		for _, c := range s {
			// Bytes of multi-byte UTF-8 sequences are all >= 0x80.
			if c < 0x20 || c == 0x7f {
				return nil, invalid("/"+name, "must not hold control characters")
			}
		}
		texts[i] = s
		total += len(s)
	}
	var all strings.Builder
	all.Grow(total)
	for _, t := range texts {
		all.Write(t)
	}
	joined, at := all.String(), 0
	var text [len(limits)]string
	for i, t := range texts {
		text[i] = joined[at : at+len(t)]
		at += len(t)
	}
	e := &Event{SpecVersion: text[0], ID: text[1], Source: text[2], Type: text[3], Subject: text[4], DataContentType: text[6]}
	if e.SpecVersion != SpecVersion {
		return nil, invalid("/specversion", "must be %q", SpecVersion)
	}
	if !validType(e.Type) {
		return nil, invalid("/type", "must be a dotted lower-case name such as vn.gov.civilstatus.birth.registered")
	}
	if e.Time, err = time.Parse(time.RFC3339Nano, text[5]); err != nil {
		return nil, invalid("/time", "must be an RFC 3339 time")
	}
	if y := e.Time.UTC().Year(); y < 1900 || y > 9999 {
		return nil, invalid("/time", "must be between the years 1900 and 9999")
	}
	switch e.DataContentType {
	case "":
		e.DataContentType = DataContentType
	case DataContentType:
	default:
		return nil, invalid("/datacontenttype", "must be %q", DataContentType)
	}
	data := values[7]
	if data == nil {
		return nil, invalid("/data", "is required")
	}
	if d := bytes.TrimLeft(data, " \t\r\n"); len(d) == 0 || d[0] != '{' {
		return nil, invalid("/data", "must be a JSON object (the record)")
	}
	e.Data = data
	return e, nil
}

// attributeIndex is the index of key in attributes, or -1.
func attributeIndex(key []byte) int {
	for i, a := range attributes {
		if a == string(key) {
			return i
		}
	}
	return -1
}

// validType reports whether t is 3 to 16 dot-separated segments, each a
// lower-case letter followed by lower-case letters, digits and hyphens
// (checked by hand: it runs for every event the router reads).
func validType(t string) bool {
	segs := 0
	for seg := range strings.SplitSeq(t, ".") {
		segs++
		if seg == "" || seg[0] < 'a' || seg[0] > 'z' {
			return false
		}
		for i := 1; i < len(seg); i++ {
			if c := seg[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
				return false
			}
		}
	}
	return segs >= 3 && segs <= 16
}

// Marshal writes the event in structured mode.
func (e *Event) Marshal() ([]byte, error) {
	out := *e
	out.SpecVersion, out.DataContentType = SpecVersion, DataContentType
	out.Time = out.Time.UTC()
	return json.Marshal(&out)
}

// AppendEnvelope appends the event as Marshal writes it, but only up to
// and including `"data":`: the envelope a router writes once per event and
// completes for each consumer with that consumer's data and a closing '}'.
// It writes what encoding/json would (FuzzParse holds it to that) without
// json.Marshal's reflection and allocations.
func (e *Event) AppendEnvelope(dst []byte) []byte {
	dst = append(dst, `{"id":`...)
	dst = appendString(dst, e.ID)
	dst = append(dst, `,"source":`...)
	dst = appendString(dst, e.Source)
	dst = append(dst, `,"specversion":"`+SpecVersion+`","type":`...)
	dst = appendString(dst, e.Type)
	dst = append(dst, `,"subject":`...)
	dst = appendString(dst, e.Subject)
	dst = append(dst, `,"time":"`...)
	dst = e.Time.UTC().AppendFormat(dst, time.RFC3339Nano)
	return append(dst, `","datacontenttype":"`+DataContentType+`","data":`...)
}

// appendString appends s as a JSON string exactly as encoding/json writes
// it: HTML characters, U+2028 and U+2029 escaped, invalid UTF-8 replaced.
func appendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(append(dst, s[start:i]...), `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(append(dst, s[start:i]...), '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	return append(append(dst, s[start:]...), '"')
}

// checkJSON refuses anything but exactly one JSON value, values nested
// deeper than maxDepth, and duplicate keys in any object of it. Keys are
// compared unescaped ("\u006eame" is name).
func checkJSON(raw []byte) error {
	sc, err := scan(raw, false)
	if err == nil {
		sc.release()
	}
	return err
}

// checkJSONMembers is checkJSON that also returns, when the value is an
// object, its members (keys unescaped, values as they are written, sharing
// raw's bytes), found in the same pass; nil for any other value.
func checkJSONMembers(raw []byte) (map[string]json.RawMessage, error) {
	sc, err := scan(raw, true)
	if err != nil {
		return nil, err
	}
	defer sc.release()
	if !sc.object {
		return nil, nil
	}
	members := make(map[string]json.RawMessage, len(sc.members))
	for _, m := range sc.members {
		members[string(m.key)] = m.value
	}
	return members, nil
}

// scan is checkJSON, keeping the top-level members when members is set.
// Once done with what it found, the caller releases the scanner.
func scan(raw []byte, members bool) (*scanner, error) {
	if !json.Valid(raw) {
		return nil, invalid("", "the event is not valid JSON (exactly one value)")
	}
	sc := scanners.Get().(*scanner)
	sc.b, sc.i, sc.wantMembers = raw, 0, members
	sc.path, sc.keys, sc.members = sc.pathArr[:0], sc.keysArr[:0], sc.membersArr[:0]
	if err := sc.value(0); err != nil {
		sc.release()
		return nil, err
	}
	sc.object = bytes.TrimLeft(raw, " \t\r\n")[0] == '{'
	return sc, nil
}

// scanners are scanners released for reuse: a router parses every event
// it reads.
var scanners = sync.Pool{New: func() any { return new(scanner) }}

// release returns the scanner to scanners, holding nothing of the JSON it
// walked (a pooled scanner must not keep an event's bytes alive).
func (s *scanner) release() {
	*s = scanner{}
	scanners.Put(s)
}

// jsonString returns the string a JSON value already known to be valid
// writes, and whether it is a string.
func jsonString(v []byte) (string, bool) {
	b, ok := jsonBytes(v)
	return string(b), ok
}

// jsonBytes is jsonString as bytes. Without escapes (the common case) they
// are v's own: valid JSON holds no raw control character in a string.
func jsonBytes(v []byte) ([]byte, bool) {
	if len(v) < 2 || v[0] != '"' {
		return nil, false
	}
	if bytes.IndexByte(v, '\\') < 0 {
		return v[1 : len(v)-1], true
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		return nil, false
	}
	return []byte(s), true
}

const maxDepth = 64

// linearKeys is how many keys of one object are compared one by one for
// duplicates; past it, the object's keys go into a map, so a large object
// costs no more than linear time.
const linearKeys = 16

// scanner walks JSON already known to be valid, so it checks no syntax.
// Its stacks start in arrays of its own, so a small event costs one
// allocation.
type scanner struct {
	b []byte
	i int
	// path holds the keys and indexes down to the current value, for the
	// pointer of an error.
	path []segment
	// keys holds the keys (unescaped) of the objects being walked,
	// outermost first.
	keys [][]byte
	// members, when wantMembers, receives the members of the top-level
	// value; object says whether it was an object.
	members     []member
	wantMembers bool
	object      bool

	pathArr    [8]segment
	keysArr    [24][]byte
	membersArr [len(attributes)]member
}

// segment is one step of a path: an object key, or an array index.
type segment struct {
	key   []byte
	index int
	isKey bool
}

// member is one member of the top-level object.
type member struct{ key, value []byte }

func (s *scanner) pointer() string {
	var b strings.Builder
	for _, p := range s.path {
		b.WriteByte('/')
		if p.isKey {
			b.WriteString(escape(string(p.key)))
		} else {
			b.WriteString(strconv.Itoa(p.index))
		}
	}
	return b.String()
}

func (s *scanner) ws() {
	for s.i < len(s.b) && (s.b[s.i] == ' ' || s.b[s.i] == '\t' || s.b[s.i] == '\n' || s.b[s.i] == '\r') {
		s.i++
	}
}

func (s *scanner) value(depth int) error {
	if depth > maxDepth {
		return invalid(s.pointer(), "nests deeper than %d levels", maxDepth)
	}
	s.ws()
	switch s.b[s.i] {
	case '{':
		s.i++
		base := len(s.keys)
		// seen holds the object's keys once there are more than
		// linearKeys of them.
		var seen map[string]struct{}
		for {
			s.ws()
			if s.b[s.i] == '}' {
				s.i++
				s.keys = s.keys[:base]
				return nil
			}
			if s.b[s.i] == ',' {
				s.i++
				s.ws()
			}
			key := s.str()
			s.path = append(s.path, segment{key: key, isKey: true})
			dup := false
			if seen != nil {
				_, dup = seen[string(key)]
				seen[string(key)] = struct{}{}
			} else {
				for _, k := range s.keys[base:] {
					if bytes.Equal(k, key) {
						dup = true
						break
					}
				}
				if s.keys = append(s.keys, key); len(s.keys)-base > linearKeys {
					seen = make(map[string]struct{}, 2*linearKeys)
					for _, k := range s.keys[base:] {
						seen[string(k)] = struct{}{}
					}
				}
			}
			if dup {
				return invalid(s.pointer(), "duplicate key")
			}
			s.ws()
			s.i++ // ':'
			s.ws()
			start := s.i
			if err := s.value(depth + 1); err != nil {
				return err
			}
			if depth == 0 && s.wantMembers {
				s.members = append(s.members, member{key: key, value: s.b[start:s.i]})
			}
			s.path = s.path[:len(s.path)-1]
		}
	case '[':
		s.i++
		for n := 0; ; n++ {
			s.ws()
			if s.b[s.i] == ']' {
				s.i++
				return nil
			}
			if s.b[s.i] == ',' {
				s.i++
			}
			s.path = append(s.path, segment{index: n})
			if err := s.value(depth + 1); err != nil {
				return err
			}
			s.path = s.path[:len(s.path)-1]
		}
	case '"':
		s.str()
	default:
		for s.i < len(s.b) && !isDelimiter(s.b[s.i]) {
			s.i++
		}
	}
	return nil
}

// isDelimiter reports whether c ends a number or literal.
func isDelimiter(c byte) bool {
	switch c {
	case ',', ']', '}', ' ', '\t', '\r', '\n':
		return true
	}
	return false
}

// str reads a string at s.i and returns it unescaped: raw's own bytes
// when it holds no escape.
func (s *scanner) str() []byte {
	start, escaped := s.i, false
	for s.i++; s.b[s.i] != '"'; s.i++ {
		if s.b[s.i] == '\\' {
			escaped = true
			s.i++
		}
	}
	s.i++
	raw := s.b[start:s.i]
	if !escaped {
		return raw[1 : len(raw)-1]
	}
	var out string
	_ = json.Unmarshal(raw, &out)
	return []byte(out)
}

var pointerEscaper = strings.NewReplacer("~", "~0", "/", "~1")

func escape(token string) string { return pointerEscaper.Replace(token) }
