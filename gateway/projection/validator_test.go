package projection

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// citizen is a valid record of examples/population.yaml's Citizen schema.
const citizen = `{
  "personalId": "079203001234",
  "oldIdNumber": null,
  "fullName": "Nguyễn Văn An",
  "dateOfBirth": "2003-04-05",
  "sex": "male",
  "birthRegistrationPlace": {"provinceCode": "79", "districtCode": null, "wardCode": "26734", "name": "Phường Sài Gòn, Thành phố Hồ Chí Minh"},
  "ethnicity": "01",
  "religion": null,
  "nationality": "VN",
  "bloodType": "O",
  "maritalStatus": "single",
  "permanentResidence": {"provinceCode": "79", "wardCode": "26734", "addressLine": "Số 12 Lê Lợi"},
  "temporaryResidence": null,
  "father": {"personalId": "079070001111", "fullName": "Nguyễn Văn Ba"},
  "spouse": null,
  "relatives": [{"relationship": "Anh ruột", "personalId": "079199001111", "fullName": "Nguyễn Văn Bình"}],
  "idCardIssueDate": "2021-06-01",
  "dateOfDeath": null,
  "updatedAt": "2025-07-01T08:00:00Z"
}`

func decodeAny(t testing.TB, s string) any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func populationValidator(t testing.TB) *Validator {
	t.Helper()
	doc, err := os.ReadFile("../../examples/population.yaml")
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewValidator(doc, "Citizen")
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestValidatorPopulation(t *testing.T) {
	v := populationValidator(t)
	if err := v.Validate(decodeAny(t, citizen)); err != nil {
		t.Fatalf("valid citizen refused: %v", err)
	}

	for _, c := range []struct {
		name  string
		edit  func(m map[string]any)
		where string // a pointer the error must name
	}{
		{"wrong type", func(m map[string]any) { m["personalId"] = json.Number("79203001234") }, `"/personalId": type`},
		{"pattern", func(m map[string]any) { m["personalId"] = "SECRET-7920" }, `"/personalId": pattern`},
		{"enum", func(m map[string]any) { m["sex"] = "SECRET-unknown" }, `"/sex": enum`},
		{"required", func(m map[string]any) { delete(m, "fullName") }, `required`},
		{"null where not allowed", func(m map[string]any) { m["fullName"] = nil }, `"/fullName"`},
		{"nested", func(m map[string]any) {
			m["permanentResidence"].(map[string]any)["provinceCode"] = json.Number("79")
		}, `"/permanentResidence/provinceCode": type`},
		{"in an array item", func(m map[string]any) {
			m["relatives"].([]any)[0].(map[string]any)["personalId"] = "SECRET"
		}, `"/relatives/0/personalId": pattern`},
		{"oneOf", func(m map[string]any) { m["spouse"] = "SECRET spouse" }, `"/spouse"`},
		{"format", func(m map[string]any) { m["dateOfBirth"] = "SECRET-05" }, `"/dateOfBirth"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := decodeAny(t, citizen).(map[string]any)
			c.edit(rec)
			err := v.Validate(rec)
			var re *RecordError
			if !errors.As(err, &re) {
				t.Fatalf("error = %v; want a *RecordError", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, c.where) || !strings.Contains(msg, "Citizen") {
				t.Errorf("error %q does not name %s", msg, c.where)
			}
			if strings.Contains(msg, "SECRET") || strings.Contains(msg, "Nguyễn") || strings.Contains(msg, "079") {
				t.Errorf("error quotes a value: %q", msg)
			}
		})
	}

	// Several problems are all named.
	rec := decodeAny(t, citizen).(map[string]any)
	rec["sex"], rec["ethnicity"] = "x", "y"
	if err := v.Validate(rec); err == nil || !strings.Contains(err.Error(), `"/sex"`) || !strings.Contains(err.Error(), `"/ethnicity"`) {
		t.Errorf("multiple problems: %v", err)
	}
	if err := v.Validate("not an object"); err == nil || strings.Contains(err.Error(), "not an object") {
		t.Errorf("non-object record: %v", err)
	}
}

// TestValidatorAgreesWithKinOpenAPI31 checks the shortcut of NewValidator:
// on a 3.1 schema without 2020-12-only keywords its verdicts are those of
// VisitJSON with EnableJSONSchema2020.
func TestValidatorAgreesWithKinOpenAPI31(t *testing.T) {
	v := populationValidator(t)
	doc, _ := os.ReadFile("../../examples/population.yaml")
	loader := openapi3.NewLoader()
	loader.IsExternalRefsAllowed = false
	d, err := loader.LoadFromData(doc)
	if err != nil {
		t.Fatal(err)
	}
	schema := d.Components.Schemas["Citizen"].Value
	edits := []func(m map[string]any){
		func(map[string]any) {},
		func(m map[string]any) { m["religion"] = "02" },
		func(m map[string]any) { m["religion"] = json.Number("2") },
		func(m map[string]any) { m["bloodType"] = nil },
		func(m map[string]any) { m["bloodType"] = "C" },
		func(m map[string]any) {
			m["temporaryResidence"] = map[string]any{"provinceCode": "01", "wardCode": "00001", "addressLine": "x"}
		},
		func(m map[string]any) { m["temporaryResidence"] = map[string]any{"provinceCode": "01"} },
		func(m map[string]any) { m["relatives"] = []any{"x"} },
		func(m map[string]any) { m["unknownField"] = 1 },
		func(m map[string]any) { m["updatedAt"] = nil },
		func(m map[string]any) { m["oldIdNumber"] = "123456789" },
		func(m map[string]any) { m["oldIdNumber"] = "1234" },
	}
	for i, edit := range edits {
		rec := decodeAny(t, citizen).(map[string]any)
		edit(rec)
		ours := v.Validate(rec) == nil
		kin := schema.VisitJSON(rec, openapi3.EnableJSONSchema2020(), openapi3.VisitAsResponse()) == nil
		if ours != kin {
			t.Errorf("edit %d: valid = %v here, %v with kin-openapi's JSON Schema 2020-12 mode", i, ours, kin)
		}
	}
}

func TestValidatorOpenAPI30AndErrors(t *testing.T) {
	doc30 := []byte(`{"openapi":"3.0.3","info":{"title":"t","version":"1"},"paths":{},
"components":{"schemas":{"R":{"type":"object","required":["a"],"properties":{
  "a":{"type":"string","nullable":true},"n":{"type":"integer","minimum":1,"x-classification":"public"},
  "o":{"$ref":"#/components/schemas/O"}}},
  "O":{"type":"object","properties":{"k":{"type":"boolean"}}}}}}`)
	v, err := NewValidator(doc30, "R")
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Validate(decodeAny(t, `{"a":null,"n":3,"o":{"k":true}}`)); err != nil {
		t.Fatalf("valid 3.0 record: %v", err)
	}
	err = v.Validate(decodeAny(t, `{"a":"x","n":0,"o":{"k":"SECRET"}}`))
	if err == nil || !strings.Contains(err.Error(), `"/n": minimum`) || !strings.Contains(err.Error(), `"/o/k": type`) || strings.Contains(err.Error(), "SECRET") {
		t.Fatalf("invalid 3.0 record: %v", err)
	}

	// A 3.1 schema using a 2020-12 keyword goes through the JSON Schema validator.
	doc31 := []byte(`openapi: 3.1.0
info: {title: t, version: "1"}
paths: {}
components:
  schemas:
    R:
      type: object
      properties:
        kind: {const: person}
        "a/b~c": {type: string}
`)
	v, err = NewValidator(doc31, "R")
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Validate(decodeAny(t, `{"kind":"person"}`)); err != nil {
		t.Fatalf("valid 3.1 record: %v", err)
	}
	err = v.Validate(decodeAny(t, `{"kind":"SECRET","a/b~c":1}`))
	if err == nil || !strings.Contains(err.Error(), `"/kind": const`) || !strings.Contains(err.Error(), `"/a~1b~0c": type`) || strings.Contains(err.Error(), "SECRET") {
		t.Fatalf("invalid 3.1 record: %v", err)
	}

	for _, c := range []struct {
		doc    []byte
		schema string
	}{
		{[]byte(`not: [valid`), "R"},
		{doc30, "Missing"},
		{[]byte(`{"openapi":"3.0.3","info":{"title":"t","version":"1"},"paths":{},"components":{"schemas":{"R":{"$ref":"other.yaml#/R"}}}}`), "R"},
	} {
		if _, err := NewValidator(c.doc, c.schema); err == nil {
			t.Errorf("NewValidator(%.40s, %s) accepted", c.doc, c.schema)
		}
	}
}

// TestValidatorInProject runs the validator where the gateway does: on the
// full record, before projection.
func TestValidatorInProject(t *testing.T) {
	v := populationValidator(t)
	p, err := NewPlan([]string{"fullName"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := p.Project(&out, strings.NewReader("["+citizen+","+citizen+"]"), Options{Validate: v.Validate}); err != nil {
		t.Fatal(err)
	}
	if out.String() != `[{"fullName":"Nguyễn Văn An"},{"fullName":"Nguyễn Văn An"}]` {
		t.Fatalf("output %s", out.String())
	}
	// An ungranted field of the wrong type still refuses the answer.
	bad := strings.Replace(citizen, `"ethnicity": "01"`, `"ethnicity": 1`, 1)
	out.Reset()
	_, err = p.Project(&out, strings.NewReader(bad), Options{Validate: v.Validate})
	var re *RecordError
	if !errors.Is(err, ErrInvalidRecord) || !errors.As(err, &re) || out.Len() != 0 {
		t.Fatalf("invalid record: %v, wrote %q", err, out.String())
	}
}
