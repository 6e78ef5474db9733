package event

import (
	"encoding/json"
	"testing"
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
	})
}
