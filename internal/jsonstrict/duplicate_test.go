package jsonstrict

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
)

func TestFindDuplicate(t *testing.T) {
	for _, tc := range []struct {
		name, body, pointer, key string
	}{
		{"none", `{"role":"auditor","name":"x"}`, "", ""},
		{"same key twice", `{"role":"auditor","role":"platform-admin"}`, "/role", "role"},
		{"escaped", `{"role":"auditor","r\u006fle":"platform-admin"}`, "/role", "role"},
		{"other case", `{"role":"auditor","Role":"platform-admin"}`, "/Role", "Role"},
		// encoding/json fills a "status" field from "ſtatus" (long s) and a
		// "kind" field from the Kelvin sign: a lower-casing check misses both.
		{"long s folds to s", `{"status":"a","\u017ftatus":"b"}`, "/\u017ftatus", "\u017ftatus"},
		{"Kelvin sign folds to k", `{"kind":"a","\u212aind":"b"}`, "/\u212aind", "\u212aind"},
		{"non-ASCII case", `{"quốcTịch":"VN","QUỐCTỊCH":"US"}`, "/QUỐCTỊCH", "QUỐCTỊCH"},
		{"invalid UTF-8 keys are both U+FFFD", "{\"a\xff\":1,\"a\xfe\":2}", "/a\ufffd", "a\ufffd"},
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
			p, k, found := FindDuplicate([]byte(tc.body))
			if p != tc.pointer || k != tc.key || found != (tc.pointer != "") {
				t.Errorf("FindDuplicate(%s) = %q %q %v, want %q %q", tc.body, p, k, found, tc.pointer, tc.key)
			}
		})
	}
}

func TestFoldKeyIsEqualFold(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{"role", "role", true},
		{"role", "ROLE", true},
		{"status", "\u017ftatus", true},
		{"kind", "\u212aIND", true},
		{"σ", "ς", true},
		{"Σ", "ς", true},
		{"ǅ", "ǆ", true},
		{"i", "İ", false}, // no simple folding between them
		{"role", "rolex", false},
		{"a.b", "a_b", false},
		{"\xff", "\ufffd", true},
	} {
		if got := FoldKey(tc.a) == FoldKey(tc.b); got != tc.same || strings.EqualFold(tc.a, tc.b) != tc.same {
			t.Errorf("%q and %q: FoldKey says same=%v, EqualFold %v, want %v", tc.a, tc.b, got, strings.EqualFold(tc.a, tc.b), tc.same)
		}
	}
	if testing.AllocsPerRun(100, func() { _ = FoldKey("personal_id.number") }) != 0 {
		t.Error("FoldKey allocates for a key that is already folded")
	}
}

// FuzzFindDuplicate checks FindDuplicate against an oracle written
// differently (a recursive walk comparing every pair of keys of an object
// with strings.EqualFold), and FoldKey against strings.EqualFold on two
// halves of the input.
func FuzzFindDuplicate(f *testing.F) {
	for _, s := range []string{`{"a":1,"a":2}`, `[{"b":[{"c":1,"C":2}]}]`, `{"x":{"y":{}}}`, `[]`, `{`,
		`{"status":1,"\u017ftatus":2}`, `{"a":{"b":1},"A":{"b":2}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, k, found := FindDuplicate(data)
		if found != (p != "") {
			t.Fatalf("found %v with pointer %q", found, p)
		}
		if found && !strings.HasSuffix(p, "/"+EscapePointer(k)) {
			t.Fatalf("pointer %q does not end in key %q", p, k)
		}
		wp, wk, wfound := oracleDuplicate(data)
		if wfound != found || wp != p || wk != k {
			t.Fatalf("FindDuplicate = %q %q %v, the oracle says %q %q %v", p, k, found, wp, wk, wfound)
		}
		a, b := string(data[:len(data)/2]), string(data[len(data)/2:])
		if (FoldKey(a) == FoldKey(b)) != strings.EqualFold(a, b) {
			t.Fatalf("FoldKey(%q)=%q, FoldKey(%q)=%q, EqualFold %v", a, FoldKey(a), b, FoldKey(b), strings.EqualFold(a, b))
		}
	})
}

// errFound stops the oracle at the first duplicate.
var errFound = errors.New("found")

// oracleDuplicate walks the first JSON value of data recursively and reports
// the first member whose key EqualFolds an earlier key of its object.
// Malformed JSON reports none, as FindDuplicate does.
func oracleDuplicate(data []byte) (string, string, bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var ptr, key string
	var walk func(path string) error
	walk = func(path string) error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'):
			var keys []string
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return err
				}
				k := kt.(string)
				for _, earlier := range keys {
					if strings.EqualFold(earlier, k) {
						ptr, key = path+"/"+strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1"), k
						return errFound
					}
				}
				keys = append(keys, k)
				if err := walk(path + "/" + strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1")); err != nil {
					return err
				}
			}
			_, err = dec.Token()
			return err
		case json.Delim('['):
			for i := 0; dec.More(); i++ {
				if err := walk(path + "/" + strconv.Itoa(i)); err != nil {
					return err
				}
			}
			_, err = dec.Token()
			return err
		}
		return nil
	}
	switch err := walk(""); {
	case err == errFound:
		return ptr, key, true
	case err == nil, errors.Is(err, io.EOF):
		return "", "", false
	}
	return "", "", false
}
