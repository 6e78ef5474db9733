package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"unicode/utf8"
)

// FuzzParse holds Parse to its contract on any input: it never panics, an
// accepted event marshals and parses back to the same event, and its data
// is a JSON object.
func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Fuzz(func(t *testing.T, raw []byte) {
		e, err := Parse(raw)
		if err != nil {
			return
		}
		var obj map[string]any
		if json.Unmarshal(e.Data, &obj) != nil {
			t.Fatalf("accepted data that is not an object")
		}
		out, err := e.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("a marshalled event does not parse: %v", err)
		}
		if again.ID != e.ID || again.Subject != e.Subject || again.Type != e.Type || !again.Time.Equal(e.Time) {
			t.Fatalf("round trip changed the event")
		}
		// The envelope written by hand is encoding/json's.
		bare := *e
		bare.Data = json.RawMessage(`{}`)
		want, err := bare.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if got := string(e.AppendEnvelope(nil)) + `{}}`; got != string(want) {
			t.Fatalf("AppendEnvelope wrote %s, encoding/json %s", got, want)
		}
	})
}

// FuzzCheckJSONAgreesWithDecoder holds the hand-written duplicate-key
// scanner to a reference built on encoding/json's tokenizer: on valid JSON
// they accept and refuse the same inputs, at the same pointer.
func FuzzCheckJSONAgreesWithDecoder(f *testing.F) {
	for _, s := range []string{good, `{"a":1,"a":2}`, `{"a":{"b":[{"c":1,"\u0063":2}]}}`, `[{"x":1},{"x":1}]`, `{"a~/b":1,"a~/b":2}`, `"\\"`, `{"":1,"":2}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		// Parse checks UTF-8 first; encoding/json replaces invalid bytes.
		if !json.Valid(raw) || !utf8.Valid(raw) {
			return
		}
		got := checkJSON(raw)
		dec := json.NewDecoder(bytes.NewReader(raw))
		want := referenceWalk(dec, "", 0)
		if (got == nil) != (want == nil) {
			t.Fatalf("scanner %v, reference %v", got, want)
		}
		if got != nil && got.(*Error).Pointer != want.(*Error).Pointer {
			t.Fatalf("scanner at %q, reference at %q", got.(*Error).Pointer, want.(*Error).Pointer)
		}
		if got != nil {
			return
		}
		// The members found in the same pass are encoding/json's.
		members, _ := checkJSONMembers(raw)
		var ref map[string]json.RawMessage
		if json.Unmarshal(raw, &ref) != nil {
			if members != nil {
				t.Fatalf("members of a value that is not an object")
			}
			return
		}
		if len(members) != len(ref) {
			t.Fatalf("members %d, encoding/json %d", len(members), len(ref))
		}
		for k, v := range ref {
			if !bytes.Equal(members[k], v) {
				t.Fatalf("member %q: %s, encoding/json %s", k, members[k], v)
			}
			if s, ok := jsonString(v); ok {
				var want string
				if json.Unmarshal(v, &want) != nil || s != want {
					t.Fatalf("string %s read as %q, encoding/json %q", v, s, want)
				}
			}
		}
	})
}

// FuzzAppendStringMatchesEncodingJSON holds the hand-written JSON string
// writer to encoding/json on any string, valid UTF-8 or not.
func FuzzAppendStringMatchesEncodingJSON(f *testing.F) {
	for _, s := range []string{"", "KS-1", "a\"b\\c", "<&>", "\u2028\u2029", "\x00\x1f\x7f\b\f\n\r\t", "\xff", "Nguyễn", "\xe2\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendString([]byte("x"), s); string(got) != "x"+string(want) {
			t.Fatalf("%q written %s, encoding/json %s", s, got[1:], want)
		}
	})
}

func referenceWalk(dec *json.Decoder, at string, depth int) error {
	if depth > maxDepth {
		return invalid(at, "too deep")
	}
	tok, _ := dec.Token()
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			kt, _ := dec.Token()
			k, _ := kt.(string)
			p := at + "/" + escape(k)
			if seen[k] {
				return invalid(p, "duplicate key")
			}
			seen[k] = true
			if err := referenceWalk(dec, p, depth+1); err != nil {
				return err
			}
		}
		_, _ = dec.Token()
	case json.Delim('['):
		for i := 0; dec.More(); i++ {
			if err := referenceWalk(dec, fmt.Sprintf("%s/%d", at, i), depth+1); err != nil {
				return err
			}
		}
		_, _ = dec.Token()
	}
	return nil
}
