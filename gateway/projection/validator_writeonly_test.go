package projection

import (
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// TestValidatorWriteOnlyStillRefused checks that leaving VisitAsResponse
// off for schemas without writeOnly properties changes no verdict: a
// writeOnly property in a backend record is refused however deep it is
// declared (nested object, allOf, array items), a required writeOnly
// property may be absent, and for a schema without one every record gets
// the verdict kin-openapi gives with the option on.
func TestValidatorWriteOnlyStillRefused(t *testing.T) {
	docs := map[string]string{
		"top level": `"R":{"type":"object","required":["a","pin"],"properties":{"a":{"type":"string"},"pin":{"type":"string","writeOnly":true}}}`,
		"nested": `"R":{"type":"object","properties":{"a":{"type":"string"},"o":{"$ref":"#/components/schemas/O"}}},
  "O":{"type":"object","properties":{"pin":{"type":"string","writeOnly":true}}}`,
		"allOf": `"R":{"allOf":[{"type":"object","properties":{"a":{"type":"string"}}},{"type":"object","properties":{"pin":{"type":"string","writeOnly":true}}}]}`,
		"items": `"R":{"type":"object","properties":{"a":{"type":"string"},"l":{"type":"array","items":{"type":"object","properties":{"pin":{"type":"string","writeOnly":true}}}}}}`,
	}
	refused := map[string]string{
		"top level": `{"a":"x","pin":"1234"}`,
		"nested":    `{"a":"x","o":{"pin":"1234"}}`,
		"allOf":     `{"a":"x","pin":"1234"}`,
		"items":     `{"a":"x","l":[{"pin":"1234"}]}`,
	}
	for name, schemas := range docs {
		for _, version := range []string{"3.0.3", "3.1.0"} {
			doc := `{"openapi":"` + version + `","info":{"title":"t","version":"1"},"paths":{},"components":{"schemas":{` + schemas + `}}}`
			v, err := NewValidator([]byte(doc), "R")
			if err != nil {
				t.Fatalf("%s %s: %v", name, version, err)
			}
			if err := v.Validate(decodeAny(t, refused[name])); err == nil || !strings.Contains(err.Error(), "writeOnly") {
				t.Errorf("%s %s: a writeOnly property in the record: %v", name, version, err)
			}
			if err := v.Validate(decodeAny(t, `{"a":"x"}`)); err != nil {
				t.Errorf("%s %s: a record without the writeOnly property: %v", name, version, err)
			}
		}
	}

	// Without writeOnly: the same verdict as kin-openapi with the option on.
	doc := `{"openapi":"3.0.3","info":{"title":"t","version":"1"},"paths":{},"components":{"schemas":{
  "R":{"type":"object","required":["a","r"],"additionalProperties":false,"properties":{"a":{"type":"string","pattern":"^[a-z]+$"},
  "r":{"type":"string","readOnly":true,"enum":["x","y"]},"n":{"type":"integer","nullable":true},
  "o":{"oneOf":[{"type":"string","default":"d"},{"type":"integer"}]}}}}}}`
	v, err := NewValidator([]byte(doc), "R")
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range []string{`{"a":"x","r":"x"}`, `{"a":"X","r":"x"}`, `{"a":"x"}`, `{"a":"x","r":"z"}`, `{"a":"x","r":"y","n":null}`,
		`{"a":"x","r":"y","n":1.5}`, `{"a":"x","r":"y","o":"s"}`, `{"a":"x","r":"y","o":true}`, `{"a":"x","r":"y","extra":1}`, `{}`} {
		want := v.schema.VisitJSON(decodeAny(t, rec), openapi3.MultiErrors(), openapi3.VisitAsResponse()) == nil
		if got := v.Validate(decodeAny(t, rec)) == nil; got != want {
			t.Errorf("%s: valid %v, kin-openapi as a response says %v", rec, got, want)
		}
	}
}
