package jsonstrict

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The one rule for duplicate keys in JSON that comes from outside (request
// bodies, configuration files, dataset documents, backend answers): a key
// may appear once in an object, keys being compared after unescaping
// ("r\u006fle" is "role") and regardless of case as Unicode simple folding
// defines it ("Role", "ROLE" and "roſe" with a long s are all "role"). Parsers
// disagree about which of two equal keys wins, and encoding/json matches
// struct fields with exactly this folding, so {"status":"a","ſtatus":"b"}
// would otherwise pass a case-sensitive check and be read as "b".

// FoldKey returns the form of an unescaped key under which two keys are the
// same key: FoldKey(a) == FoldKey(b) exactly when strings.EqualFold(a, b).
// Callers that keep a set of keys store this form; a key of ASCII without
// capitals is returned as it is, without allocating.
func FoldKey(key string) string {
	plain := true
	for i := 0; i < len(key); i++ {
		if c := key[i]; c >= utf8.RuneSelf || ('A' <= c && c <= 'Z') {
			plain = false
			break
		}
	}
	if plain {
		return key
	}
	var b strings.Builder
	b.Grow(len(key))
	for _, r := range key { // an invalid byte reads as U+FFFD, as in EqualFold
		b.WriteRune(foldRune(r))
	}
	return b.String()
}

// foldRune picks one member of r's simple-folding orbit (the runes
// unicode.SimpleFold cycles through) to stand for all of them: the ASCII
// lower-case letter when the orbit has one (K, k and the Kelvin sign K are
// "k"), else its least rune.
func foldRune(r rune) rune {
	if r < utf8.RuneSelf {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}
	least := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		if 'a' <= f && f <= 'z' {
			return f
		}
		if 'A' <= f && f <= 'Z' {
			return f + 'a' - 'A'
		}
		least = min(least, f)
	}
	return least
}

// FindDuplicate finds the first member, in document order, whose key is the
// same key (see FoldKey) as an earlier member of the same object, at any
// depth of the first JSON value in data. It returns that member's JSON
// pointer (RFC 6901) and key as written after unescaping. Malformed JSON
// reports none: the decoder that runs next describes it, and bytes after the
// first value are that decoder's to refuse.
func FindDuplicate(data []byte) (pointer, key string, found bool) {
	type frame struct {
		object  bool
		path    string
		seen    map[string]bool
		wantKey bool
		key     string
		index   int
	}
	var stack []*frame
	// done finishes one value inside the innermost container.
	done := func() {
		if n := len(stack); n > 0 {
			if top := stack[n-1]; top.object {
				top.wantKey = true
			} else {
				top.index++
			}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", "", false
		}
		var top *frame
		if n := len(stack); n > 0 {
			top = stack[n-1]
		}
		if top != nil && top.object && top.wantKey {
			k, ok := tok.(string)
			if !ok { // the closing brace of the object
				stack = stack[:len(stack)-1]
				done()
				if len(stack) == 0 {
					return "", "", false
				}
				continue
			}
			folded := FoldKey(k)
			if top.seen[folded] {
				return top.path + "/" + EscapePointer(k), k, true
			}
			top.seen[folded] = true
			top.key, top.wantKey = k, false
			continue
		}
		path := ""
		if top != nil {
			if top.object {
				path = top.path + "/" + EscapePointer(top.key)
			} else {
				path = top.path + "/" + strconv.Itoa(top.index)
			}
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{object: true, path: path, seen: map[string]bool{}, wantKey: true})
			continue
		case json.Delim('['):
			stack = append(stack, &frame{path: path})
			continue
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		done()
		if len(stack) == 0 {
			return "", "", false // one top-level value read
		}
	}
}

// EscapePointer escapes a key as one reference token of a JSON pointer
// (RFC 6901: "~" is "~0", "/" is "~1"), so that a pointer naming a key with
// a slash still points at it.
func EscapePointer(key string) string {
	if !strings.ContainsAny(key, "~/") {
		return key
	}
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(key)
}
