package api

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestDuplicateMember(t *testing.T) {
	for _, tc := range []struct {
		name, body, pointer, key string
	}{
		{"none", `{"role":"auditor","name":"x"}`, "", ""},
		{"same key twice", `{"role":"auditor","role":"platform-admin"}`, "/role", "role"},
		{"escaped", `{"role":"auditor","r\u006fle":"platform-admin"}`, "/role", "role"},
		{"other case", `{"role":"auditor","Role":"platform-admin"}`, "/Role", "Role"},
		{"nested", `{"purpose":{"code":"1","text":"t","code":"2"}}`, "/purpose/code", "code"},
		{"in an array item", `{"fields":[{"path":"a"},{"path":"b","mask":"hash","path":"religion"}]}`, "/fields/1/path", "path"},
		{"after an array", `{"a":[1,[2,3],{}],"b":{},"a":0}`, "/a", "a"},
		{"same key in sibling objects is fine", `{"x":{"k":1},"y":{"k":2},"z":[{"k":1},{"k":2}]}`, "", ""},
		{"pointer escapes", `{"a/b~":1,"a/b~":2}`, "/a~1b~0", "a/b~"},
		{"empty key twice", `{"":1,"":2}`, "/", ""},
		{"top-level array", `[{"k":1,"k":2}]`, "/0/k", "k"},
		{"scalar", `"just a string"`, "", ""},
		{"malformed is left to the decoder", `{"role":`, "", ""},
		{"trailing value is not looked at", `{"a":1} {"a":1,"a":2}`, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, k, found := duplicateMember([]byte(tc.body))
			if p != tc.pointer || k != tc.key || found != (tc.pointer != "") {
				t.Errorf("duplicateMember(%s) = %q %q, want %q %q", tc.body, p, k, tc.pointer, tc.key)
			}
		})
	}
}

func FuzzDuplicateMember(f *testing.F) {
	for _, s := range []string{`{"a":1,"a":2}`, `[{"b":[{"c":1,"C":2}]}]`, `{"x":{"y":{}}}`, `[]`, `{`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, k, found := duplicateMember(data)
		if found != (p != "") {
			t.Fatalf("found %v with pointer %q", found, p)
		}
		if found && !strings.HasSuffix(p, "/"+escapePointer(k)) {
			t.Fatalf("pointer %q does not end in key %q", p, k)
		}
		// Found nothing in valid JSON: then no object of it repeats a key,
		// which a plain decode into maps must confirm (it keeps the last).
		var v any
		if !found && json.Unmarshal(data, &v) == nil {
			if want := countMembers(data); want != countKept(v) {
				t.Fatalf("no duplicate reported, but %d members decode to %d", want, countKept(v))
			}
		}
	})
}

// countMembers counts every object member of one JSON value by its tokens.
func countMembers(data []byte) int {
	dec := json.NewDecoder(bytes.NewReader(data))
	n, depth := 0, 0
	var objects []bool
	key := []bool{}
	for {
		tok, err := dec.Token()
		if err != nil {
			return n
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{':
				objects = append(objects, true)
				key = append(key, true)
				depth++
				continue
			case '[':
				objects = append(objects, false)
				key = append(key, false)
				depth++
				continue
			default:
				objects, key = objects[:len(objects)-1], key[:len(key)-1]
				depth--
			}
		} else if len(objects) > 0 && objects[len(objects)-1] && key[len(key)-1] {
			n++
			key[len(key)-1] = false
			continue
		}
		if len(objects) > 0 && objects[len(objects)-1] {
			key[len(key)-1] = true
		}
		if depth == 0 {
			return n
		}
	}
}

// countKept counts the members of a decoded value, case-folded as
// encoding/json would fold them into one struct field.
func countKept(v any) int {
	switch t := v.(type) {
	case map[string]any:
		folded := map[string]bool{}
		n := 0
		for k, x := range t {
			folded[strings.ToLower(k)] = true
			n += countKept(x)
		}
		return n + len(folded)
	case []any:
		n := 0
		for _, x := range t {
			n += countKept(x)
		}
		return n
	}
	return 0
}
