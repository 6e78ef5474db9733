package projection

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"sort"
	"strings"
	"testing"
)

// kinAccepts is the reference verdict: kin-openapi's VisitJSON with the
// options NewValidator chose.
func kinAccepts(v *Validator, record any) bool {
	return v.schema.VisitJSON(record, v.opts...) == nil
}

// datasetDoc wraps components.schemas (a JSON object) into a dataset
// document of the given OpenAPI version.
func datasetDoc(version, schemas string) []byte {
	return []byte(`{"openapi":"` + version + `","info":{"title":"t","version":"1"},"paths":{},"components":{"schemas":` + schemas + `}}`)
}

// decodeRecord decodes s as the projection hands records to Validate, or
// reports false.
func decodeRecord(s string) (any, bool) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil || dec.More() {
		return nil, false
	}
	return v, true
}

// checkAgreement fails t when the native check and kin-openapi disagree on
// record, and when Validate's verdict is not kin-openapi's.
func checkAgreement(t *testing.T, v *Validator, record any, label string) {
	t.Helper()
	want := kinAccepts(v, record)
	if got := v.native.match(record); got != want {
		t.Fatalf("%s: native accepts=%v, kin-openapi accepts=%v", label, got, want)
	}
	if err := v.Validate(record); (err == nil) != want {
		t.Fatalf("%s: Validate = %v, kin-openapi accepts=%v", label, err, want)
	}
	// The same record as the projection decodes it.
	body, err := json.Marshal(record)
	if err != nil {
		t.Fatalf("%s: %v", label, err)
	}
	var d decoder
	d.init(bytes.NewReader(body), 10000, -1)
	rec, err := d.value(1)
	if err == nil {
		err = d.end()
	}
	if err != nil {
		t.Fatalf("%s: the projection's decoder refused %s: %v", label, body, err)
	}
	if got := v.native.matchValue(&rec); got != want {
		t.Fatalf("%s: native on the decoded value accepts=%v, kin-openapi accepts=%v", label, got, want)
	}
	if err := v.validateValue(&rec); (err == nil) != want {
		t.Fatalf("%s: validateValue = %v, kin-openapi accepts=%v", label, err, want)
	}
}

// The catalog's dataset schemas (the demo federation's, the feed's, the
// catalog fixtures') are all within what the native check implements, so
// valid records never reach kin-openapi.
func TestNativeCompilesCatalogSchemas(t *testing.T) {
	for _, c := range []struct{ file, schema string }{
		{"../../examples/population.yaml", "Citizen"},
		{"../../examples/birth-registration.yaml", "BirthRegistration"},
		{"../../examples/death-registration.yaml", "DeathRegistration"},
		{"../../examples/social-insurance.yaml", "InsuredPerson"},
		{"../../examples/social-insurance.yaml", "Benefit"},
		{"../feed/testdata/vital-events.yaml", "VitalEvent"},
		{"../../catalog/testdata/documents/openapi30.yaml", "Business"},
	} {
		doc, err := os.ReadFile(c.file)
		if err != nil {
			t.Fatal(err)
		}
		v, err := NewValidator(doc, c.schema)
		if err != nil {
			t.Fatalf("%s %s: %v", c.file, c.schema, err)
		}
		if v.native == nil {
			t.Errorf("%s %s: left to kin-openapi", c.file, c.schema)
		}
	}
}

// Schemas the native check must leave to kin-openapi whole.
func TestNativeFallsBack(t *testing.T) {
	for _, c := range []struct{ version, schemas string }{
		{"3.0.3", `{"R":{"type":"object","properties":{"n":{"type":"number","multipleOf":2}}}}`},
		{"3.0.3", `{"R":{"type":"array","uniqueItems":true,"items":{"type":"string"}}}`},
		{"3.0.3", `{"R":{"type":"object","properties":{"next":{"$ref":"#/components/schemas/R"}}}}`},
		{"3.0.3", `{"R":{"oneOf":[{"$ref":"#/components/schemas/A"}],"discriminator":{"propertyName":"k"}},"A":{"type":"object"}}`},
		{"3.1.0", `{"R":{"type":"object","properties":{"k":{"const":"x"}}}}`},
		{"3.1.0", `{"R":{"type":"object","patternProperties":{"^x":{"type":"string"}}}}`},
		{"3.0.3", `{"R":{"allOf":[{"type":"object","properties":{"p":{"type":"string","writeOnly":true}}}]}}`},
	} {
		v, err := NewValidator(datasetDoc(c.version, c.schemas), "R")
		if err != nil {
			t.Fatalf("%s: %v", c.schemas, err)
		}
		if v.native != nil {
			t.Errorf("%s: compiled natively", c.schemas)
		}
	}
}

// nativeCases are schema and record pairs across the keywords the native
// check implements, for both OpenAPI versions; every record is judged by
// both validators. They also seed FuzzNativeAgreesWithKinOpenAPI.
var nativeCases = []struct {
	versions []string
	schemas  string
	records  []string
}{
	{[]string{"3.0.3"}, `{"R":{"type":"object","required":["a"],"properties":{"a":{"type":"string","minLength":2,"maxLength":4,"pattern":"^[a-z]+$"},"b":{"type":"integer","minimum":1,"maximum":10},"c":{"type":"number","exclusiveMaximum":true,"maximum":5}}}}`,
		[]string{`{"a":"ab"}`, `{"a":"a"}`, `{"a":"abcde"}`, `{"a":"AB"}`, `{}`, `{"a":"ab","b":0}`, `{"a":"ab","b":1.5}`, `{"a":"ab","b":10}`, `{"a":"ab","b":1e400}`,
			`{"a":"ab","c":5}`, `{"a":"ab","c":4.99}`, `{"a":"éé"}`, `{"a":null}`, `{"a":"ab","x":[1]}`, `[]`, `"ab"`, `null`}},
	{[]string{"3.1.0"}, `{"R":{"type":"object","properties":{"n":{"type":"number","exclusiveMinimum":0,"exclusiveMaximum":10},"s":{"type":["string","null"]},"i":{"type":["integer","string"]}}}}`,
		[]string{`{"n":0}`, `{"n":0.1}`, `{"n":10}`, `{"s":null}`, `{"s":1}`, `{"i":"x"}`, `{"i":2}`, `{"i":2.5}`, `{"i":null}`, `{"n":null}`}},
	{[]string{"3.0.3"}, `{"R":{"type":"object","properties":{"s":{"type":"string","nullable":true,"enum":["a","b",null]},"t":{"type":"string","enum":["a",null]},"u":{"type":"integer","nullable":true}}}}`,
		[]string{`{"s":null}`, `{"s":"a"}`, `{"s":"c"}`, `{"t":null}`, `{"t":"a"}`, `{"u":null}`, `{"u":3}`, `{"u":"3"}`}},
	{[]string{"3.1.0"}, `{"R":{"type":"object","properties":{"s":{"type":["string","null"],"enum":["a",null]},"t":{"type":"string","nullable":true}}}}`,
		[]string{`{"s":null}`, `{"s":"b"}`, `{"t":null}`, `{"t":"x"}`}},
	{[]string{"3.0.3", "3.1.0"}, `{"R":{"type":"object","additionalProperties":false,"properties":{"a":{"type":"array","minItems":1,"maxItems":2,"items":{"type":"boolean"}}}}}`,
		[]string{`{}`, `{"a":[]}`, `{"a":[true]}`, `{"a":[true,false,true]}`, `{"a":[1]}`, `{"b":1}`, `{"a":null}`}},
	{[]string{"3.0.3", "3.1.0"}, `{"R":{"type":"object","minProperties":1,"maxProperties":2,"additionalProperties":{"type":"integer","format":"int32"}}}`,
		[]string{`{}`, `{"a":1}`, `{"a":1,"b":2,"c":3}`, `{"a":2147483648}`, `{"a":-2147483648}`, `{"a":"1"}`, `{"a":1.0}`}},
	{[]string{"3.0.3", "3.1.0"}, `{"R":{"type":"object","properties":{"d":{"type":"string","format":"date"},"t":{"type":"string","format":"date-time"},"u":{"type":"string","format":"uuid"},"b":{"type":"string","format":"byte"}}}}`,
		[]string{`{"d":"2024-02-30"}`, `{"d":"2024-13-01"}`, `{"d":"24-01-01"}`, `{"t":"2024-01-01T00:00:00Z"}`, `{"t":"2024-01-01 00:00"}`, `{"u":"not-a-uuid"}`, `{"b":"!!"}`, `{"b":"QUJD"}`}},
	{[]string{"3.0.3", "3.1.0"}, `{"R":{"type":"object","properties":{"p":{"oneOf":[{"$ref":"#/components/schemas/A"},{"type":"string"}]},"q":{"anyOf":[{"type":"integer"},{"type":"string","maxLength":1}]},"r":{"allOf":[{"$ref":"#/components/schemas/A"},{"required":["z"]}]},"n":{"not":{"type":"string"}}}},"A":{"type":"object","required":["k"],"properties":{"k":{"type":"string"}}}}`,
		[]string{`{"p":{"k":"x"}}`, `{"p":"s"}`, `{"p":{}}`, `{"p":1}`, `{"p":null}`, `{"q":1}`, `{"q":"ab"}`, `{"q":"a"}`, `{"q":null}`, `{"r":{"k":"x"}}`, `{"r":{"k":"x","z":1}}`, `{"r":null}`, `{"n":"s"}`, `{"n":1}`, `{"n":null}`}},
	{[]string{"3.0.3", "3.1.0"}, `{"R":{"type":"object","properties":{"o":{"oneOf":[{"type":"number"},{"type":"integer"}]},"e":{"enum":[1,"1",[1],{"a":1},true]},"any":{},"x":{"description":"only words"}}}}`,
		[]string{`{"o":1}`, `{"o":1.5}`, `{"e":1.0}`, `{"e":"1"}`, `{"e":[1]}`, `{"e":{"a":1}}`, `{"e":{"a":2}}`, `{"e":true}`, `{"e":false}`, `{"any":null}`, `{"any":{}}`, `{"x":null}`, `{"x":[null]}`}},
	{[]string{"3.0.3", "3.1.0"}, `{"R":{"type":"object","required":["id","secret"],"properties":{"id":{"type":"string"},"secret":{"type":"string","writeOnly":true}}}}`,
		[]string{`{"id":"a"}`, `{"id":"a","secret":"s"}`, `{"id":"a","secret":null}`, `{"secret":"s"}`}},
	{[]string{"3.0.3", "3.1.0"}, `{"R":{"type":"object","properties":{"u":{"type":"string","pattern":"^\\u00E9+$"},"l":{"type":"string","maxLength":1}}}}`,
		[]string{`{"u":"éé"}`, `{"u":"e"}`, `{"l":"😀"}`, `{"l":"😀😀"}`, "{\"l\":\"\xff\"}"}},
}

func TestNativeAgreesWithKinOpenAPI(t *testing.T) {
	for i, c := range nativeCases {
		for _, version := range c.versions {
			v, err := NewValidator(datasetDoc(version, c.schemas), "R")
			if err != nil {
				t.Fatalf("case %d (%s): %v", i, version, err)
			}
			if v.native == nil {
				t.Fatalf("case %d (%s): left to kin-openapi", i, version)
			}
			for _, r := range c.records {
				rec, ok := decodeRecord(r)
				if !ok {
					t.Fatalf("case %d: bad record %s", i, r)
				}
				checkAgreement(t, v, rec, fmt.Sprintf("case %d (%s) %s", i, version, r))
			}
		}
	}
}

// mutationValues replace a value somewhere in a valid record.
var mutationValues = []any{nil, true, "", "x", "079203001234", "2024-02-29", "male", json.Number("1"), json.Number("1.5"),
	json.Number("-0"), json.Number("1e999"), map[string]any{}, []any{}, []any{"x"}, map[string]any{"personalId": "079203001234"}}

// Realistic records: valid citizen records of the demo's population
// dataset, each changed at one place (a value replaced, a member removed
// or added), judged by both validators.
func TestNativeAgreesOnMutatedCitizens(t *testing.T) {
	v := populationValidator(t)
	if v.native == nil {
		t.Fatal("Citizen left to kin-openapi")
	}
	rng := rand.New(rand.NewSource(14))
	verdicts := map[bool]int{}
	for _, base := range []string{citizen, record30} {
		for range 400 {
			rec := decodeAny(t, base)
			label := mutate(rng, &rec)
			checkAgreement(t, v, rec, label)
			verdicts[v.native.match(rec)]++
		}
	}
	if verdicts[true] < 50 || verdicts[false] < 50 {
		t.Fatalf("mutations too one-sided to compare: %v", verdicts)
	}
}

// mutate changes rec at one randomly chosen place and says where.
func mutate(rng *rand.Rand, rec *any) string {
	cur := rec
	path := ""
	for {
		switch x := (*cur).(type) {
		case map[string]any:
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			if len(keys) == 0 || rng.Intn(4) == 0 {
				switch rng.Intn(3) {
				case 0:
					if len(keys) > 0 {
						k := keys[rng.Intn(len(keys))]
						delete(x, k)
						return path + " delete " + k
					}
				case 1:
					x["unexpected"] = mutationValues[rng.Intn(len(mutationValues))]
					return path + " add"
				}
				*cur = mutationValues[rng.Intn(len(mutationValues))]
				return path + " replace"
			}
			k := keys[rng.Intn(len(keys))]
			val := x[k]
			path += "/" + k
			if rng.Intn(3) == 0 {
				x[k] = mutationValues[rng.Intn(len(mutationValues))]
				return fmt.Sprintf("%s = %v", path, x[k])
			}
			x[k] = val
			holder := &val
			defer func() { x[k] = *holder }()
			cur = holder
		case []any:
			if len(x) == 0 || rng.Intn(3) == 0 {
				*cur = append(x, mutationValues[rng.Intn(len(mutationValues))])
				return path + " append"
			}
			i := rng.Intn(len(x))
			path += fmt.Sprintf("/%d", i)
			x[i] = mutationValues[rng.Intn(len(mutationValues))]
			return fmt.Sprintf("%s = %v", path, x[i])
		default:
			*cur = mutationValues[rng.Intn(len(mutationValues))]
			return path + " leaf"
		}
	}
}

// FuzzNativeAgreesWithKinOpenAPI feeds the same schema and record to the
// native check and to kin-openapi and requires the same verdict, for
// OpenAPI 3.0 and 3.1 documents. schemas is a components.schemas object;
// the record schema is "R". Schemas the catalog's parser refuses, or that
// the native check leaves to kin-openapi, are skipped.
func FuzzNativeAgreesWithKinOpenAPI(f *testing.F) {
	for _, c := range nativeCases {
		for _, r := range c.records {
			f.Add(false, c.schemas, r)
			f.Add(true, c.schemas, r)
		}
	}
	f.Fuzz(func(t *testing.T, v31 bool, schemas, record string) {
		if len(schemas) > 4096 || len(record) > 4096 {
			return
		}
		version := "3.0.3"
		if v31 {
			version = "3.1.0"
		}
		if !json.Valid([]byte(schemas)) || !bytes.HasPrefix(bytes.TrimSpace([]byte(schemas)), []byte("{")) {
			return
		}
		v, err := NewValidator(datasetDoc(version, schemas), "R")
		if err != nil || v.native == nil {
			return
		}
		rec, ok := decodeRecord(record)
		if !ok {
			return
		}
		checkAgreement(t, v, rec, fmt.Sprintf("%s %s %s", version, schemas, record))
	})
}

// Options.Validator refuses what Options.Validate refuses, with the same
// error, and passes the same projection.
func TestOptionsValidatorLikeValidate(t *testing.T) {
	v := populationValidator(t)
	s, err := NewSchema(citizenFields)
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.Plan(bench8Fields, bench2Masks, testMasker(t))
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(record30, `"sex":"male"`, `"sex":"SECRET"`, 1)
	noName := strings.Replace(record30, `"fullName":"Nguyễn Văn An",`, ``, 1)
	for _, body := range []string{record30, "[" + record30 + "," + record30 + "]", bad, "[" + record30 + "," + noName + "]"} {
		var viaFunc, viaValidator bytes.Buffer
		_, errFunc := p.Project(&viaFunc, strings.NewReader(body), Options{Validate: v.Validate})
		_, errValidator := p.Project(&viaValidator, strings.NewReader(body), Options{Validator: v})
		if fmt.Sprint(errFunc) != fmt.Sprint(errValidator) {
			t.Fatalf("Validate: %v\nValidator: %v", errFunc, errValidator)
		}
		if errFunc == nil && viaFunc.String() != viaValidator.String() {
			t.Fatalf("outputs differ:\n%s\n%s", viaFunc.String(), viaValidator.String())
		}
		recsFunc, errFunc := Decode(strings.NewReader(body), Options{Validate: v.Validate})
		recsValidator, errValidator := Decode(strings.NewReader(body), Options{Validator: v})
		if fmt.Sprint(errFunc) != fmt.Sprint(errValidator) {
			t.Fatalf("Decode: Validate: %v\nValidator: %v", errFunc, errValidator)
		}
		if errFunc == nil && recsFunc.Len() != recsValidator.Len() {
			t.Fatal("Decode: record counts differ")
		}
	}
	var out bytes.Buffer
	if _, err := p.Project(&out, strings.NewReader(bad), Options{Validator: v}); err == nil || !strings.Contains(err.Error(), `"/sex": enum`) || strings.Contains(err.Error(), "SECRET") {
		t.Fatalf("refusal: %v", err)
	}
}
