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

var (
	attributes = map[string]bool{"id": true, "source": true, "specversion": true, "type": true, "subject": true,
		"time": true, "datacontenttype": true, "data": true}
)

// Parse reads one structured-mode event. Beyond CloudEvents 1.0 it
// requires subject, time and data (a JSON object), refuses data_base64,
// extension attributes and duplicate keys at any depth (parsers disagree on
// which of two equal keys wins, so a record could mean one thing to the
// validator and another to a consumer), and bounds sizes.
func Parse(raw []byte) (*Event, error) {
	if len(raw) > MaxSize {
		return nil, invalid("", "the event is %d bytes; at most %d are accepted", len(raw), MaxSize)
	}
	if !utf8.Valid(raw) {
		return nil, invalid("", "the event is not valid UTF-8")
	}
	fields, err := checkJSONMembers(raw)
	if err != nil {
		return nil, err
	}
	if fields == nil {
		return nil, invalid("", "the event must be a JSON object")
	}
	for k := range fields {
		if !attributes[k] {
			if k == "data_base64" {
				return nil, invalid("/data_base64", "binary data is not accepted; data must be the record as a JSON object")
			}
			return nil, invalid("/"+escape(k), "unknown attribute; extension attributes are not accepted")
		}
	}
	e := &Event{}
	str := func(name string, required bool, max int) string {
		if err != nil {
			return ""
		}
		v, ok := fields[name]
		if !ok {
			if required {
				err = invalid("/"+name, "is required")
			}
			return ""
		}
		s, ok := jsonString(v)
		if !ok {
			err = invalid("/"+name, "must be a string")
			return ""
		}
		if s == "" || len(s) > max {
			err = invalid("/"+name, "must be 1 to %d characters", max)
			return ""
		}
		if strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
			err = invalid("/"+name, "must not hold control characters")
			return ""
		}
		return s
	}
	e.SpecVersion = str("specversion", true, 8)
	e.ID = str("id", true, 256)
	e.Source = str("source", true, 256)
	e.Type = str("type", true, 128)
	e.Subject = str("subject", true, 128)
	timeText := str("time", true, 64)
	e.DataContentType = str("datacontenttype", false, 64)
	if err != nil {
		return nil, err
	}
	if e.SpecVersion != SpecVersion {
		return nil, invalid("/specversion", "must be %q", SpecVersion)
	}
	if !validType(e.Type) {
		return nil, invalid("/type", "must be a dotted lower-case name such as vn.gov.civilstatus.birth.registered")
	}
	if e.Time, err = time.Parse(time.RFC3339Nano, timeText); err != nil {
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
	data, ok := fields["data"]
	if !ok {
		return nil, invalid("/data", "is required")
	}
	if d := bytes.TrimLeft(data, " \t\r\n"); len(d) == 0 || d[0] != '{' {
		return nil, invalid("/data", "must be a JSON object (the record)")
	}
	e.Data = data
	return e, nil
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

// checkJSON refuses anything but exactly one JSON value, values nested
// deeper than maxDepth, and duplicate keys in any object of it. Keys are
// compared unescaped ("\u006eame" is name).
func checkJSON(raw []byte) error {
	_, err := checkJSONMembers(raw)
	return err
}

// checkJSONMembers is checkJSON that also returns, when the value is an
// object, its members (keys unescaped, values as they are written, sharing
// raw's bytes), found in the same pass; nil for any other value.
func checkJSONMembers(raw []byte) (map[string]json.RawMessage, error) {
	if !json.Valid(raw) {
		return nil, invalid("", "the event is not valid JSON (exactly one value)")
	}
	sc := scanner{b: raw, members: map[string]json.RawMessage{}}
	if err := sc.value(0); err != nil {
		return nil, err
	}
	if bytes.TrimLeft(raw, " \t\r\n")[0] != '{' {
		return nil, nil
	}
	return sc.members, nil
}

// jsonString returns the string a JSON value already known to be valid
// writes, and whether it is a string. Without escapes (the common case)
// its bytes are the string: valid JSON holds no raw control character in
// a string.
func jsonString(v []byte) (string, bool) {
	if len(v) < 2 || v[0] != '"' {
		return "", false
	}
	if bytes.IndexByte(v, '\\') < 0 {
		return string(v[1 : len(v)-1]), true
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		return "", false
	}
	return s, true
}

const maxDepth = 64

// scanner walks JSON already known to be valid, so it checks no syntax.
type scanner struct {
	b    []byte
	i    int
	path []string // keys and indexes down to the current value
	// members, when set, receives the members of the top-level object.
	members map[string]json.RawMessage
}

func (s *scanner) pointer() string {
	var b strings.Builder
	for _, p := range s.path {
		b.WriteByte('/')
		b.WriteString(escape(p))
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
		var seen map[string]struct{}
		for {
			s.ws()
			if s.b[s.i] == '}' {
				s.i++
				return nil
			}
			if s.b[s.i] == ',' {
				s.i++
				s.ws()
			}
			key := s.str()
			if seen == nil {
				seen = map[string]struct{}{}
			}
			s.path = append(s.path, key)
			if _, dup := seen[key]; dup {
				return invalid(s.pointer(), "duplicate key")
			}
			seen[key] = struct{}{}
			s.ws()
			s.i++ // ':'
			s.ws()
			start := s.i
			if err := s.value(depth + 1); err != nil {
				return err
			}
			if depth == 0 && s.members != nil {
				s.members[key] = s.b[start:s.i]
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
			s.path = append(s.path, strconv.Itoa(n))
			if err := s.value(depth + 1); err != nil {
				return err
			}
			s.path = s.path[:len(s.path)-1]
		}
	case '"':
		s.str()
	default:
		for s.i < len(s.b) && !strings.ContainsRune(",]} \t\r\n", rune(s.b[s.i])) {
			s.i++
		}
	}
	return nil
}

// str reads a string at s.i and returns it unescaped.
func (s *scanner) str() string {
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
		return string(raw[1 : len(raw)-1])
	}
	var out string
	_ = json.Unmarshal(raw, &out)
	return out
}

var pointerEscaper = strings.NewReplacer("~", "~0", "/", "~1")

func escape(token string) string { return pointerEscaper.Replace(token) }
