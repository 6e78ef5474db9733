package api

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
)

// duplicateMember finds the first member whose key repeats an earlier key of
// the same object, at any depth, and returns its JSON pointer and key ("" if
// none). encoding/json would silently keep the last of them, so
// {"role":"auditor","role":"platform-admin"} would be read as whatever a
// proxy or a reviewer did not see. Keys are compared after unescaping
// ("r\u006fle" is "role") and without regard to case, since encoding/json
// matches struct fields that way ("Role" fills role too). Malformed JSON
// reports none: the decoder that runs next describes it.
func duplicateMember(data []byte) (pointer, key string, found bool) {
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
			folded := strings.ToLower(k)
			if top.seen[folded] {
				return top.path + "/" + escapePointer(k), k, true
			}
			top.seen[folded] = true
			top.key, top.wantKey = k, false
			continue
		}
		path := ""
		if top != nil {
			if top.object {
				path = top.path + "/" + escapePointer(top.key)
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
			return "", "", false // one top-level value read; trailing data is the decoder's to refuse
		}
	}
}

// escapePointer escapes a key for a JSON pointer (RFC 6901).
func escapePointer(key string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(key)
}
