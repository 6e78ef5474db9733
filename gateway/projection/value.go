package projection

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// kind is the JSON type of a value.
type kind uint8

const (
	kindNull kind = iota
	kindBool
	kindNumber
	kindString
	kindObject
	kindArray
)

// value is one decoded JSON value that remembers its key order and its
// number literals, which map[string]any would lose.
type value struct {
	kind kind
	// odd marks an object or array with an empty or dotted key somewhere
	// inside, so that a subtree granted as a whole is copied as is only when
	// there is nothing to drop from it.
	odd     bool
	b       bool
	s       string   // a string's contents, or a number's literal as written
	members []member // an object's members in source order
	items   []value  // an array's items
}

// member is one key and its value; the key is already unescaped.
type member struct {
	key string
	val value
}

// toAny converts v to the plain form encoding/json would decode it to with
// UseNumber (map[string]any, []any, json.Number, string, bool, nil), the
// form validators and row filters expect. Duplicate keys were refused while
// decoding, so the conversion loses nothing but the key order.
func toAny(v *value) any {
	switch v.kind {
	case kindBool:
		return v.b
	case kindNumber:
		return json.Number(v.s)
	case kindString:
		return v.s
	case kindObject:
		m := make(map[string]any, len(v.members))
		for i := range v.members {
			m[v.members[i].key] = toAny(&v.members[i].val)
		}
		return m
	case kindArray:
		a := make([]any, len(v.items))
		for i := range v.items {
			a[i] = toAny(&v.items[i])
		}
		return a
	}
	return nil
}

// appendJSON writes v as JSON: keys in source order, numbers exactly as the
// backend wrote them, strings and keys re-encoded by appendString.
func appendJSON(b []byte, v *value) []byte {
	switch v.kind {
	case kindNull:
		return append(b, "null"...)
	case kindBool:
		return strconv.AppendBool(b, v.b)
	case kindNumber:
		return append(b, v.s...)
	case kindString:
		return appendString(b, v.s)
	case kindObject:
		b = append(b, '{')
		for i := range v.members {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, v.members[i].key)
			b = append(b, ':')
			b = appendJSON(b, &v.members[i].val)
		}
		return append(b, '}')
	case kindArray:
		b = append(b, '[')
		for i := range v.items {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSON(b, &v.items[i])
		}
		return append(b, ']')
	}
	return b
}

// appendCanonical writes the canonical JSON of v, the input of the hash
// mask: no white space, object keys sorted by their UTF-8 bytes, strings as
// appendString writes them, numbers as canonicalNumber writes them. Equal
// values therefore hash equally however the backend spaced, ordered,
// escaped or formatted them.
func appendCanonical(b []byte, v *value) []byte {
	switch v.kind {
	case kindNumber:
		return append(b, canonicalNumber(v.s)...)
	case kindObject:
		order := make([]int, len(v.members))
		for i := range order {
			order[i] = i
		}
		slices.SortFunc(order, func(i, j int) int { return strings.Compare(v.members[i].key, v.members[j].key) })
		b = append(b, '{')
		for n, i := range order {
			if n > 0 {
				b = append(b, ',')
			}
			b = appendString(b, v.members[i].key)
			b = append(b, ':')
			b = appendCanonical(b, &v.members[i].val)
		}
		return append(b, '}')
	case kindArray:
		b = append(b, '[')
		for i := range v.items {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendCanonical(b, &v.items[i])
		}
		return append(b, ']')
	}
	return appendJSON(b, v)
}

// canonicalNumber rewrites a valid JSON number literal so that equal numbers
// read the same: "1", "1.0", "10e-1" and "0.1e1" all give "1". Integers of up
// to 21 digits are written out; every other number as d[.ddd]e<exp> with no
// leading or trailing zeros, exactly (never through float64, which would
// make distinct large numbers collide). An exponent too large for int64 is
// left as written.
func canonicalNumber(lit string) string {
	s := lit
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	mant, exp := s, int64(0)
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		e, err := strconv.ParseInt(s[i+1:], 10, 64)
		if err != nil || e > 1<<60 || e < -(1<<60) {
			return lit
		}
		mant, exp = s[:i], e
	}
	intPart, frac, _ := strings.Cut(mant, ".")
	digits := strings.TrimLeft(intPart+frac, "0")
	exp -= int64(len(frac))
	trimmed := strings.TrimRight(digits, "0")
	exp += int64(len(digits) - len(trimmed))
	digits = trimmed
	if digits == "" {
		return "0"
	}
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	if exp >= 0 && int64(len(digits))+exp <= 21 {
		b.WriteString(digits)
		b.WriteString(strings.Repeat("0", int(exp)))
		return b.String()
	}
	b.WriteByte(digits[0])
	if len(digits) > 1 {
		b.WriteByte('.')
		b.WriteString(digits[1:])
	}
	b.WriteByte('e')
	b.WriteString(strconv.FormatInt(exp+int64(len(digits)-1), 10))
	return b.String()
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string. It escapes only what JSON needs
// (quote, backslash, control characters) plus U+2028 and U+2029, which some
// JavaScript parsers reject raw; it does not HTML-escape. Invalid UTF-8,
// which encoding/json already replaces while decoding, becomes U+FFFD, so
// the output is always valid JSON.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			switch r {
			case '\u2028':
				b = append(b, `\u2028`...)
			case '\u2029':
				b = append(b, `\u2029`...)
			default:
				b = append(b, `\ufffd`...)
			}
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
