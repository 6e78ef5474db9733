package projection

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/lienthong/lienthong/catalog"
)

// citizenFields declares the shape of record30 as catalog derives it: the
// record's 30 properties, with ethnicity and religion among them at the top
// level and nowhere else.
var citizenFields = func() []catalog.Field {
	var fs []catalog.Field
	add := func(typ string, paths ...string) {
		for _, p := range paths {
			fs = append(fs, catalog.Field{Path: p, Type: typ, Classification: catalog.Personal})
		}
	}
	add("string", "personalId", "oldIdNumber", "fullName", "dateOfBirth", "sex", "ethnicity", "religion", "nationality",
		"bloodType", "maritalStatus", "relationToHouseholdHead", "idCardIssueDate", "idCardExpiryDate", "idCardIssuePlace",
		"dateOfDeath", "updatedAt", "phoneNumber", "email", "educationLevel", "occupation")
	for _, place := range []string{"birthRegistrationPlace", "homeTown", "permanentResidence", "temporaryResidence", "currentResidence"} {
		add("object", place)
		add("string", place+".provinceCode", place+".districtCode", place+".wardCode")
		if strings.HasSuffix(place, "Residence") {
			add("string", place+".addressLine")
		} else {
			add("string", place+".name")
		}
	}
	for _, person := range []string{"father", "mother", "spouse", "householdHead"} {
		add("object", person)
		add("string", person+".personalId", person+".fullName")
	}
	add("array", "relatives")
	add("string", "relatives.relationship", "relatives.personalId", "relatives.fullName")
	return fs
}()

func citizenSchema(t testing.TB) *Schema {
	t.Helper()
	s, err := NewSchema(citizenFields)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// runSchema projects in with a plan compiled against s.
func runSchema(t testing.TB, s *Schema, fields []string, masks map[string]catalog.Mask, in string) (string, Stats, error) {
	t.Helper()
	p, err := s.Plan(fields, masks, testMasker(t))
	if err != nil {
		t.Fatalf("Plan(%q, %v): %v", fields, masks, err)
	}
	var out bytes.Buffer
	st, err := p.Project(&out, strings.NewReader(in), Options{})
	return out.String(), st, err
}

func TestSchemaAdmitsOnlyDeclaredProperties(t *testing.T) {
	s := citizenSchema(t)
	cases := []struct {
		name       string
		fields     []string
		masks      map[string]catalog.Mask
		in, want   string
		undeclared int
	}{
		{"undeclared keys inside an object granted whole", []string{"permanentResidence"}, nil,
			`{"permanentResidence":{"provinceCode":"79","religion":"x","Ethnicity":"y","wardCode":"1"}}`,
			`{"permanentResidence":{"provinceCode":"79","wardCode":"1"}}`, 2},
		{"undeclared keys inside array items granted whole", []string{"relatives"}, nil,
			`{"relatives":[{"fullName":"A","religion":"x"},{"ethnicity":"01","fullName":"B"},[{"health":1,"fullName":"C"}]]}`,
			`{"relatives":[{"fullName":"A"},{"fullName":"B"},[{"fullName":"C"}]]}`, 3},
		{"undeclared keys below a granted leaf's ancestor", []string{"relatives.fullName"}, nil,
			`{"relatives":[{"fullName":"A","religion":"x","personalId":"1"}]}`,
			`{"relatives":[{"fullName":"A"}]}`, 1},
		{"case variants are other keys", []string{"ethnicity", "father"}, nil,
			`{"Ethnicity":"a","ethnicity":"b","ETHNICITY":"c","father":{"FullName":"x","fullName":"y"}}`,
			`{"ethnicity":"b","father":{"fullName":"y"}}`, 3},
		{"escaped names mean their unescaped key", []string{"father"}, nil,
			`{"father":{"\u0066ullName":"y","\u0065thnicity":"01","full\u006eame":"z"}}`,
			`{"father":{"fullName":"y"}}`, 2},
		{"dotted and empty keys never match a declared path", []string{"permanentResidence"}, nil,
			`{"permanentResidence":{"":1,"a.b":2,"provinceCode":"1"},"permanentResidence.provinceCode":"x"}`,
			`{"permanentResidence":{"provinceCode":"1"}}`, 3},
		{"a granted path the schema does not declare admits nothing", []string{"religion.detail", "permanentResidence.religion", "fullName"}, nil,
			`{"religion":{"detail":"x"},"permanentResidence":{"religion":"x"},"fullName":"A"}`,
			`{"fullName":"A"}`, 0},
		{"hash covers only the declared parts", []string{"father"}, map[string]catalog.Mask{"father": catalog.MaskHash},
			`{"father":{"fullName":"y","religion":"x"}}`,
			`{"father":"` + wantHash(`{"fullName":"y"}`) + `"}`, 1},
		{"nulls fit every type", []string{"father", "relatives", "fullName"}, nil,
			`{"father":null,"relatives":[null,{"fullName":null}],"fullName":null}`,
			`{"father":null,"relatives":[null,{"fullName":null}],"fullName":null}`, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, st, err := runSchema(t, s, c.fields, c.masks, c.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Fatalf("\n got  %s\n want %s", got, c.want)
			}
			if st.Undeclared != c.undeclared || st.Dropped < st.Undeclared {
				t.Fatalf("Undeclared = %d, Dropped = %d; want %d undeclared", st.Undeclared, st.Dropped, c.undeclared)
			}
		})
	}
}

func TestSchemaRefusesWrongTypes(t *testing.T) {
	s := citizenSchema(t)
	ints, err := NewSchema([]catalog.Field{{Path: "n", Type: "integer"}, {Path: "f", Type: "boolean"}})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		s      *Schema
		fields []string
		in     string
	}{
		{"object where a string is declared", s, []string{"fullName"}, `{"fullName":{"religion":"x"}}`},
		{"string where an object is declared", s, []string{"father"}, `{"father":"x"}`},
		{"string where an object is declared, above the grant", s, []string{"father.fullName"}, `{"father":"x"}`},
		{"array where an object is declared", s, []string{"father"}, `{"father":[{"fullName":"x"}]}`},
		{"object where an array is declared", s, []string{"relatives"}, `{"relatives":{"fullName":"x"}}`},
		{"scalar item where objects are declared", s, []string{"relatives"}, `{"relatives":[{"fullName":"x"},"secret"]}`},
		{"scalar item above the grant", s, []string{"relatives.fullName"}, `{"relatives":["secret"]}`},
		{"wrong type deep inside a granted object", s, []string{"permanentResidence"}, `{"permanentResidence":{"wardCode":7}}`},
		{"wrong type in the second record", s, []string{"fullName"}, `[{"fullName":"a"},{"fullName":1}]`},
		{"fraction where an integer is declared", ints, []string{"n"}, `{"n":1.5}`},
		{"number where a boolean is declared", ints, []string{"f"}, `{"f":0}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, _, err := runSchema(t, c.s, c.fields, nil, c.in)
			if !errors.Is(err, ErrWrongType) || !errors.Is(err, ErrInvalidRecord) {
				t.Fatalf("err = %v; want ErrWrongType and ErrInvalidRecord", err)
			}
			if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "religion") {
				t.Fatalf("the error quotes the record: %v", err)
			}
			if strings.Contains(got, "secret") || (c.in[0] == '{' && got != "") {
				t.Fatalf("wrote %q before refusing", got)
			}
		})
	}
	// Integral values are integers however they are written.
	for _, lit := range []string{"1", "-0", "1.0", "1e3", "2.50e1", "1E+2", "120e-1"} {
		if got, _, err := runSchema(t, ints, []string{"n"}, nil, `{"n":`+lit+`}`); err != nil || got != `{"n":`+lit+`}` {
			t.Errorf("%s: %q, %v", lit, got, err)
		}
	}
	for _, lit := range []string{"1.5", "1e-1", "-0.5", "123e-2"} {
		if _, _, err := runSchema(t, ints, []string{"n"}, nil, `{"n":`+lit+`}`); !errors.Is(err, ErrWrongType) {
			t.Errorf("%s: %v", lit, err)
		}
	}
	// Values no grant reaches are the Validator's concern, not the plan's.
	if got, _, err := runSchema(t, s, []string{"fullName"}, nil, `{"fullName":"a","father":"x"}`); err != nil || got != `{"fullName":"a"}` {
		t.Fatalf("%q, %v", got, err)
	}
}

func TestNewSchemaRefusesBrokenFields(t *testing.T) {
	for _, fs := range [][]catalog.Field{
		{{Path: "a.b", Type: "string"}},
		{{Path: "a", Type: "string"}, {Path: "a.b", Type: "string"}},
		{{Path: "a", Type: "text"}},
		{{Path: "a..b", Type: "string"}},
		{{Path: "a", Type: "string"}, {Path: "a", Type: "string"}},
	} {
		if _, err := NewSchema(fs); err == nil {
			t.Errorf("NewSchema(%v) accepted", fs)
		}
	}
}

// TestSchemaPlansShareNothingTheyChange compiles plans whose masks lie
// inside subtrees granted whole (which a plan shares with its schema until
// it must mark them) and checks that no plan's masks reach another plan.
func TestSchemaPlansShareNothingTheyChange(t *testing.T) {
	s := citizenSchema(t)
	in := `{"father":{"fullName":"A","personalId":"1"},"relatives":[{"fullName":"B"}]}`
	first, _, err := runSchema(t, s, []string{"father", "relatives"},
		map[string]catalog.Mask{"father.fullName": catalog.MaskNullify, "relatives.fullName": catalog.MaskNullify}, in)
	if err != nil || first != `{"father":{"fullName":null,"personalId":"1"},"relatives":[{"fullName":null}]}` {
		t.Fatalf("%s, %v", first, err)
	}
	second, _, err := runSchema(t, s, []string{"father", "relatives"}, nil, in)
	if err != nil || second != `{"father":{"fullName":"A","personalId":"1"},"relatives":[{"fullName":"B"}]}` {
		t.Fatalf("a mask of one plan reached another: %s, %v", second, err)
	}
	if got, _, _ := runSchema(t, s, []string{"fullName"}, nil, `{"fullName":"x","father":{"fullName":"y"}}`); got != `{"fullName":"x"}` {
		t.Fatalf("a plan's grant reached another: %s", got)
	}
}

func TestCanVerify(t *testing.T) {
	s := citizenSchema(t)
	p, err := s.Plan([]string{"fullName", "personalId", "sex", "permanentResidence", "father", "relatives.fullName", "phoneNumber"},
		map[string]catalog.Mask{"personalId": catalog.MaskHash, "sex": catalog.MaskNullify, "phoneNumber": catalog.MaskPartial,
			"permanentResidence.wardCode": catalog.MaskPartial, "dateOfBirth": catalog.MaskHash}, testMasker(t))
	if err != nil {
		t.Fatal(err)
	}
	open, err := NewPlan([]string{"fullName", "personalId", "x"}, map[string]catalog.Mask{"personalId": catalog.MaskHash, "x.y": catalog.MaskNullify}, testMasker(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		p      *Plan
		path   string
		reason string // "" when the claim may be checked
		mask   catalog.Mask
	}{
		{p, "fullName", "", ""},
		{p, "permanentResidence.provinceCode", "", ""},
		{p, "father", "", ""},
		{p, "father.fullName", "", ""},
		{p, "relatives.fullName", "", ""},
		{p, "personalId", Masked, catalog.MaskHash},
		{p, "sex", Masked, catalog.MaskNullify},
		{p, "phoneNumber", Masked, catalog.MaskPartial},
		{p, "permanentResidence.wardCode", Masked, catalog.MaskPartial}, // masked below a grant
		{p, "permanentResidence", Masked, catalog.MaskPartial},          // holds a masked part
		{p, "dateOfBirth", NotGranted, ""},                              // masked, but not granted anyway
		{p, "ethnicity", NotGranted, ""},
		{p, "relatives", NotGranted, ""}, // only above a grant
		{p, "father.religion", NotGranted, ""},
		{p, "", Malformed, ""},
		{p, "a..b", Malformed, ""},
		{open, "fullName", "", ""},
		{open, "personalId", Masked, catalog.MaskHash},
		{open, "x", Masked, catalog.MaskNullify},
		{open, "x.z", "", ""},
		{open, "x.y", Masked, catalog.MaskNullify},
		{open, "x.y.z", Masked, catalog.MaskNullify}, // below a masked node
	} {
		err := c.p.CanVerify(c.path)
		if c.reason == "" {
			if err != nil {
				t.Errorf("CanVerify(%q) = %v; want allowed", c.path, err)
			}
			continue
		}
		var nv *NotVerifiableError
		if !errors.As(err, &nv) || !errors.Is(err, ErrNotVerifiable) {
			t.Errorf("CanVerify(%q) = %v; want a *NotVerifiableError (%s)", c.path, err, c.reason)
			continue
		}
		if nv.Field != c.path || nv.Reason != c.reason || nv.Mask != c.mask {
			t.Errorf("CanVerify(%q) = %+v; want reason %s, mask %q", c.path, *nv, c.reason, c.mask)
		}
	}
}

func TestCachedPlan(t *testing.T) {
	s := citizenSchema(t)
	m := testMasker(t)
	masks := map[string]catalog.Mask{"personalId": catalog.MaskHash}
	a, err := s.CachedPlan("r1", "g1", []string{"fullName", "personalId"}, masks, m)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := s.CachedPlan("r1", "g1", []string{"fullName", "personalId"}, map[string]catalog.Mask{"personalId": catalog.MaskHash}, m); b != a {
		t.Fatal("the same decision compiled twice")
	}
	for _, other := range []func() (*Plan, error){
		func() (*Plan, error) { return s.CachedPlan("r2", "g1", []string{"fullName", "personalId"}, masks, m) },
		func() (*Plan, error) { return s.CachedPlan("r1", "g2", []string{"fullName", "personalId"}, masks, m) },
		func() (*Plan, error) { return s.CachedPlan("r1", "g1", []string{"fullName"}, masks, m) },
		func() (*Plan, error) { return s.CachedPlan("r1", "g1", []string{"fullName", "personalId"}, nil, nil) },
		// Joined naively, these would read alike.
		func() (*Plan, error) { return s.CachedPlan("r1", "g1", []string{"fullName,personalId"}, masks, m) },
	} {
		if b, err := other(); err != nil || b == a {
			t.Fatalf("another decision got the same plan (%v)", err)
		}
	}
	// The unmasked plan really is unmasked.
	b, _ := s.CachedPlan("r1", "g1", []string{"fullName", "personalId"}, nil, nil)
	var out bytes.Buffer
	if _, err := b.Project(&out, strings.NewReader(`{"personalId":"1"}`), Options{}); err != nil || out.String() != `{"personalId":"1"}` {
		t.Fatalf("%s, %v", out.String(), err)
	}
	if _, err := s.CachedPlan("r1", "g1", []string{"a..b"}, nil, nil); err == nil {
		t.Fatal("a broken decision was compiled")
	}
	for i := range 3 * MaxCachedPlans {
		if _, err := s.CachedPlan(fmt.Sprint("r", i), "g", []string{"fullName"}, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.cachedPlans(); n > MaxCachedPlans {
		t.Fatalf("the cache holds %d plans", n)
	}
}

// TestProjectRecordsForManyDecisions decodes an answer once and projects it
// for several decisions at once, each as Project would have from the bytes.
func TestProjectRecordsForManyDecisions(t *testing.T) {
	s := citizenSchema(t)
	body := `[` + record30 + `,{"fullName":"B","permanentResidence":{"provinceCode":"01","religion":"x"},"ethnicity":"02"}]`
	recs, err := Decode(strings.NewReader(body), Options{})
	if err != nil || recs.Len() != 2 {
		t.Fatal(recs, err)
	}
	one, err := Decode(strings.NewReader(record30), Options{})
	if err != nil {
		t.Fatal(err)
	}
	decisions := []struct {
		fields []string
		masks  map[string]catalog.Mask
		keep   func(any) bool
	}{
		{bench8Fields, bench2Masks, nil},
		{[]string{"permanentResidence"}, nil, nil},
		{[]string{"relatives", "father"}, map[string]catalog.Mask{"father.personalId": catalog.MaskHash}, nil},
		{[]string{"fullName", "ethnicity"}, nil, RowScopeFilter(&catalog.RowScope{Field: "permanentResidence.provinceCode", Values: []string{"01"}})},
		{[]string{"fullName"}, nil, func(any) bool { return false }},
	}
	var wg sync.WaitGroup
	for _, d := range decisions {
		p, err := s.Plan(d.fields, d.masks, testMasker(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			recs *Records
			body string
		}{{recs, body}, {one, record30}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 20 {
					var want, got bytes.Buffer
					wst, werr := p.Project(&want, strings.NewReader(c.body), Options{Keep: d.keep})
					gst, gerr := p.ProjectRecords(&got, c.recs, d.keep)
					if werr != nil || gerr != nil || want.String() != got.String() || wst != gst {
						t.Errorf("%q:\n Project        %s %+v %v\n ProjectRecords %s %+v %v", d.fields, want.String(), wst, werr, got.String(), gst, gerr)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	// Decode refuses what Project refuses, and validates once.
	for _, bad := range []string{``, `1`, `[1]`, `{"a":1,"a":2}`, `{"a":1} x`, `[{}`} {
		if _, err := Decode(strings.NewReader(bad), Options{}); err == nil {
			t.Errorf("Decode(%q) accepted", bad)
		}
	}
	calls := 0
	_, err = Decode(strings.NewReader(`[{"a":1},{"a":2}]`), Options{Validate: func(any) error { calls++; return nil }})
	if err != nil || calls != 2 {
		t.Fatalf("Validate called %d times, %v", calls, err)
	}
	if _, err := Decode(strings.NewReader(`{"a":1}`), Options{Validate: func(any) error { return errors.New("no") }}); !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("a failed validation gave %v", err)
	}
}

func TestLookupAndRowScopeFilter(t *testing.T) {
	rec := map[string]any{"a": map[string]any{"b": "x", "n": jsonNumber("79")}, "arr": []any{map[string]any{"b": "x"}}, "s": "y"}
	for _, c := range []struct {
		path string
		want any
		ok   bool
	}{
		{"s", "y", true}, {"a.b", "x", true}, {"a", rec["a"], true}, {"a.c", nil, false}, {"arr.b", nil, false}, {"s.x", nil, false},
	} {
		got, ok := Lookup(rec, c.path)
		if ok != c.ok || fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("Lookup(%q) = %v, %v", c.path, got, ok)
		}
	}
	for _, c := range []struct {
		field string
		keep  bool
	}{
		{"a.b", true}, {"a.n", true}, {"s", false}, {"a", false}, {"missing", false}, {"arr.b", false},
	} {
		if got := RowScopeFilter(&catalog.RowScope{Field: c.field, Values: []string{"x", "79"}})(rec); got != c.keep {
			t.Errorf("row scope on %q keeps %v", c.field, got)
		}
	}
}

func jsonNumber(s string) any { return json.Number(s) }
