package audit

import (
	"encoding/json"
	"math"
	"strconv"
	"time"
)

// Encode returns r's JSON as a sink stores it: json.Marshal's bytes, made
// the sink's faster way (for sinks outside this package, and the gateway
// bench's record-dropping baseline, which must cost what the file sink's
// encoding costs).
func Encode(r *Record) ([]byte, error) { return marshalRecord(r) }

// marshalRecord is json.Marshal(r), byte for byte, without reflection: the
// gateway encodes every record on its hot path, and reflection was a third
// of an append's CPU. Anything the fast path does not cover (a string that
// needs escaping, a float json writes in exponent form, a time that is not
// plain RFC 3339) is encoded by encoding/json itself, so the bytes, and any
// error, are always what json.Marshal gives (FuzzMarshalRecord checks it).
func marshalRecord(r *Record) ([]byte, error) {
	return appendRecord(make([]byte, 0, sizeHint(r)), r)
}

// appendRecord appends marshalRecord(r) to b (the file sink's pooled
// buffer); on an error, b is returned as it was.
func appendRecord(b []byte, r *Record) ([]byte, error) {
	start := len(b)
	b = append(b, `{"time":`...)
	var ok bool
	if b, ok = appendTime(b, r.Time); !ok {
		return viaJSON(b[:start], r)
	}
	b = appendField(b, `,"exchangeId":`, r.ExchangeID)
	b = appendField(b, `,"side":`, r.Side)
	b = appendField(b, `,"phase":`, string(r.Phase))
	b = appendField(b, `,"consumer":`, r.Consumer)
	b = appendField(b, `,"provider":`, r.Provider)
	b = appendField(b, `,"dataset":`, r.Dataset)
	b = appendField(b, `,"mode":`, r.Mode)
	b = appendField(b, `,"purpose":`, r.Purpose)
	if r.Case != "" {
		b = appendField(b, `,"case":`, r.Case)
	}
	if r.Subject != "" {
		b = appendField(b, `,"subject":`, r.Subject)
	}
	b = appendList(b, `,"subjects":`, r.Subjects)
	b = appendList(b, `,"fields":`, r.Fields)
	if r.GrantID != "" {
		b = appendField(b, `,"grantId":`, r.GrantID)
	}
	b = appendList(b, `,"reasons":`, r.Reasons)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(r.Status), 10)
	b = append(b, `,"latencyMs":`...)
	if b, ok = appendFloat(b, r.LatencyMS); !ok {
		return viaJSON(b[:start], r) // NaN or ±Inf: json's error
	}
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, r.Bytes, 10)
	if r.RequestHash != "" {
		b = appendField(b, `,"requestHash":`, r.RequestHash)
	}
	if r.PolicyRevision != "" {
		b = appendField(b, `,"policyRevision":`, r.PolicyRevision)
	}
	return append(b, '}'), nil
}

// viaJSON appends json.Marshal(r) to b.
func viaJSON(b []byte, r *Record) ([]byte, error) {
	q, err := json.Marshal(r)
	if err != nil {
		return b, err
	}
	return append(b, q...), nil
}

// sizeHint is about how long r's JSON is, so its buffer is made once: the
// keys and numbers take under 300 bytes, and strings their length and
// quotes (a string json escapes may take more, and grows the buffer).
func sizeHint(r *Record) int {
	n := 300 + len(r.ExchangeID) + len(r.Side) + len(r.Phase) + len(r.Consumer) + len(r.Provider) + len(r.Dataset) +
		len(r.Mode) + len(r.Purpose) + len(r.Case) + len(r.Subject) + len(r.GrantID) + len(r.RequestHash) + len(r.PolicyRevision)
	for _, l := range [][]string{r.Subjects, r.Fields, r.Reasons} {
		for _, v := range l {
			n += len(v) + 3
		}
	}
	return n
}

func appendField(b []byte, key, v string) []byte {
	return appendString(append(b, key...), v)
}

// appendList appends an omitempty string slice.
func appendList(b []byte, key string, vs []string) []byte {
	if len(vs) == 0 {
		return b
	}
	b = append(append(b, key...), '[')
	for i, v := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, v)
	}
	return append(b, ']')
}

// appendString quotes s as json.Marshal does: printable ASCII other than
// the characters json escapes (", \ and, for HTML safety, <, > and &) is
// copied; anything else is left to encoding/json.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if !plainJSON[s[i]] {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// plainJSON is true for the bytes json.Marshal copies into a string as
// they are: a table, since every byte of every string of every record asks.
var plainJSON = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// appendFloat appends f in json's form; false for NaN and ±Inf.
func appendFloat(b []byte, f float64) ([]byte, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return b, false
	}
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		q, _ := json.Marshal(f) // exponent form, as json writes it
		return append(b, q...), true
	}
	if out, ok := appendMillis(b, f); ok {
		return out, true
	}
	return strconv.AppendFloat(b, f, 'f', -1, 64), true
}

// appendMillis writes f the way strconv's shortest form does when f is a
// whole number of thousandths under 2^20 (a latency the exchange core
// measured in microseconds), from the integer's digits: strconv's search
// for the shortest digits was a twentieth of a record's encoding. There f
// is the double nearest n/1000, and doubles there are 2^-32 apart, so no
// other decimal with three or fewer places, none shorter, rounds to f:
// n/1000's digits are the shortest. False for any other f.
func appendMillis(b []byte, f float64) ([]byte, bool) {
	if !(f > 0 && f < 1<<20) {
		return b, false
	}
	n := math.Round(f * 1000)
	if n/1000 != f {
		return b, false
	}
	m := uint64(n)
	b = strconv.AppendUint(b, m/1000, 10)
	frac := m % 1000
	if frac == 0 {
		return b, true
	}
	digits := [3]byte{byte('0' + frac/100), byte('0' + frac/10%10), byte('0' + frac%10)}
	k := 3
	for digits[k-1] == '0' {
		k--
	}
	return append(append(b, '.'), digits[:k]...), true
}

// appendTime appends t as time.Time's MarshalJSON does, for the times that
// form covers plainly (years 0 to 9999, a whole-minute zone offset under a
// day); false for any other, which json.Marshal then encodes or refuses.
func appendTime(b []byte, t time.Time) ([]byte, bool) {
	if y := t.Year(); y < 0 || y > 9999 {
		return b, false
	}
	if _, off := t.Zone(); off%60 != 0 || off <= -24*3600 || off >= 24*3600 {
		return b, false
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), true
}
