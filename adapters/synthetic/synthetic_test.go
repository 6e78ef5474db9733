package synthetic_test

import (
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/lienthong/lienthong/adapters/synthetic"
)

func TestParsePersonalID(t *testing.T) {
	tests := []struct {
		id       string
		province string
		sex      string
		year     int
		wantErr  string
	}{
		{id: "001085001234", province: "Thành phố Hà Nội", sex: "male", year: 1985},
		{id: "001188004321", province: "Thành phố Hà Nội", sex: "female", year: 1988},
		{id: "031095123456", province: "Thành phố Hải Phòng", sex: "male", year: 1995},
		{id: "048301000777", province: "Thành phố Đà Nẵng", sex: "female", year: 2001},
		{id: "079203001234", province: "Thành phố Hồ Chí Minh", sex: "male", year: 2003},
		{id: "096000000000", province: "Tỉnh Cà Mau", sex: "male", year: 1900},
		{id: "01085001234", wantErr: "12 digits"},
		{id: "0010850012345", wantErr: "12 digits"},
		{id: "", wantErr: "12 digits"},
		{id: "00108500123a", wantErr: "digits"},
		{id: "٠٠١٠٨٥٠٠١٢٣٤", wantErr: "12 digits"}, // Arabic-Indic digits
		{id: "000085001234", wantErr: "province"},
		{id: "003085001234", wantErr: "province"}, // no province 03
		{id: "097085001234", wantErr: "province"},
		{id: "101085001234", wantErr: "province"},
		{id: "079299001234", wantErr: "future"}, // born 2099
		{id: "079403001234", wantErr: "future"}, // 2100s
		{id: "079903001234", wantErr: "future"},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			got, err := synthetic.ParsePersonalID(tt.id)
			if synthetic.ValidPersonalID(tt.id) != (err == nil) {
				t.Error("ValidPersonalID disagrees with ParsePersonalID")
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %+v, %v; want an error mentioning %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Province.Name != tt.province || got.Sex != tt.sex || got.BirthYear != tt.year || got.Serial != tt.id[6:] {
				t.Errorf("got %+v", got)
			}
			if got.String() != tt.id {
				t.Errorf("String() = %s", got.String())
			}
		})
	}
}

func TestCitizensDeterministic(t *testing.T) {
	a := synthetic.Citizens(300, 42)
	b := synthetic.Citizens(300, 42)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("the same seed gave different citizens")
	}
	if prefix := synthetic.Citizens(100, 42); !reflect.DeepEqual(prefix, a[:100]) {
		t.Error("a shorter run is not a prefix of a longer one")
	}
	g := synthetic.NewGenerator(42)
	for i := range 10 {
		if c := g.Next(); !reflect.DeepEqual(c, a[i]) {
			t.Fatalf("Generator.Next %d differs from Citizens", i)
		}
	}
	other := synthetic.Citizens(300, 43)
	same := 0
	for i := range other {
		if other[i].PersonalID == a[i].PersonalID {
			same++
		}
	}
	if same > 3 {
		t.Errorf("seeds 42 and 43 share %d of 300 ids", same)
	}
	if got := synthetic.Citizens(0, 1); len(got) != 0 {
		t.Errorf("n=0 gave %d", len(got))
	}
	if got := synthetic.Citizens(-5, 1); len(got) != 0 {
		t.Errorf("n=-5 gave %d", len(got))
	}
}

// TestCitizensAreConsistent checks what the schema cannot: that ids agree
// with the rest of the record and the data looks like a population.
func TestCitizensAreConsistent(t *testing.T) {
	const n = 5000
	citizens := synthetic.Citizens(n, 1)
	ids := map[string]bool{}
	provinces := map[string]int{}
	kinh, noReligion, withDiacritics, married, dead, minors := 0, 0, 0, 0, 0, 0
	checkID := func(t *testing.T, what, id, sex string) {
		t.Helper()
		p, err := synthetic.ParsePersonalID(id)
		if err != nil {
			t.Fatalf("%s: %s: %v", what, id, err)
		}
		if sex != "" && p.Sex != sex {
			t.Errorf("%s: id %s says %s, record says %s", what, id, p.Sex, sex)
		}
	}
	date := func(t *testing.T, s string) time.Time {
		t.Helper()
		d, err := time.Parse(time.DateOnly, s)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	for i, c := range citizens {
		if ids[c.PersonalID] {
			t.Fatalf("record %d: duplicate id %s", i, c.PersonalID)
		}
		ids[c.PersonalID] = true
		id, err := synthetic.ParsePersonalID(c.PersonalID)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		birth := date(t, c.DateOfBirth)
		if id.Sex != c.Sex || id.BirthYear != birth.Year() || id.Province.Code != c.BirthRegistrationPlace.ProvinceCode {
			t.Errorf("record %d: id %s does not match sex %s, birth %s, registration province %s",
				i, c.PersonalID, c.Sex, c.DateOfBirth, c.BirthRegistrationPlace.ProvinceCode)
		}
		if !strings.HasSuffix(c.BirthRegistrationPlace.Name, id.Province.Name) {
			t.Errorf("record %d: birth place %q is not in %s", i, c.BirthRegistrationPlace.Name, id.Province.Name)
		}
		if c.Father.PersonalID != nil {
			checkID(t, "father", *c.Father.PersonalID, "male")
		}
		if c.Mother.PersonalID != nil {
			checkID(t, "mother", *c.Mother.PersonalID, "female")
		}
		if c.Spouse != nil {
			married++
			other := map[string]string{"male": "female", "female": "male"}[c.Sex]
			checkID(t, "spouse", *c.Spouse.PersonalID, other)
			if c.MaritalStatus != "married" {
				t.Errorf("record %d: spouse but %s", i, c.MaritalStatus)
			}
		} else if c.MaritalStatus == "married" {
			t.Errorf("record %d: married without spouse", i)
		}
		for _, r := range c.Relatives {
			checkID(t, r.Relationship, r.PersonalID, "")
		}
		if c.HouseholdHead.FullName == "" || c.RelationToHouseholdHead == "" {
			t.Errorf("record %d: no household head", i)
		}
		if c.RelationToHouseholdHead == "Chủ hộ" && (c.HouseholdHead.PersonalID == nil || *c.HouseholdHead.PersonalID != c.PersonalID) {
			t.Errorf("record %d: head of household but another head", i)
		}
		age := asOfAge(birth)
		if age < 14 {
			minors++
			if c.IDCardIssueDate != nil {
				t.Errorf("record %d: a card at %d", i, age)
			}
		}
		if c.IDCardIssueDate != nil {
			issued := date(t, *c.IDCardIssueDate)
			if issued.Before(birth.AddDate(14, 0, 0)) {
				t.Errorf("record %d: card issued before 14", i)
			}
			if c.IDCardExpiryDate != nil && !date(t, *c.IDCardExpiryDate).After(issued) {
				t.Errorf("record %d: card expires before it is issued", i)
			}
		}
		if c.DateOfDeath != nil {
			dead++
			if !date(t, *c.DateOfDeath).After(birth) {
				t.Errorf("record %d: died before birth", i)
			}
		}
		if c.CurrentResidence != c.PermanentResidence && (c.TemporaryResidence == nil || c.CurrentResidence != *c.TemporaryResidence) {
			t.Errorf("record %d: current residence is neither permanent nor temporary", i)
		}
		if synthetic.Ethnicities[c.Ethnicity] == "" {
			t.Errorf("record %d: ethnicity %q", i, c.Ethnicity)
		}
		if c.Ethnicity == "01" {
			kinh++
		}
		if c.Religion == nil {
			noReligion++
		}
		if len(c.FullName) > utf8.RuneCountInString(c.FullName) {
			withDiacritics++
		}
		provinces[c.PermanentResidence.ProvinceCode]++
	}
	share := func(k int) float64 { return float64(k) / n }
	switch {
	case share(kinh) < 0.75 || share(kinh) > 0.95:
		t.Errorf("Kinh share %.2f", share(kinh))
	case share(noReligion) < 0.8 || share(noReligion) > 0.92:
		t.Errorf("no-religion share %.2f", share(noReligion))
	case share(withDiacritics) < 0.9:
		t.Errorf("only %.2f of names have diacritics", share(withDiacritics))
	case len(provinces) < 55:
		t.Errorf("citizens live in only %d provinces", len(provinces))
	case provinces["79"] < provinces["06"]*5:
		t.Errorf("Hồ Chí Minh City (%d) should be far larger than Bắc Kạn (%d)", provinces["79"], provinces["06"])
	case share(married) < 0.3 || share(married) > 0.7:
		t.Errorf("married share %.2f", share(married))
	case dead == 0 || minors == 0:
		t.Errorf("%d dead, %d minors", dead, minors)
	}
}

func asOfAge(birth time.Time) int {
	asOf := time.Date(2026, 6, 30, 0, 0, 0, 0, time.UTC)
	y := asOf.Year() - birth.Year()
	if asOf.YearDay() < birth.YearDay() {
		y--
	}
	return y
}

// citizenSchema loads the Citizen schema of the published population
// dataset.
func citizenSchema(t *testing.T) *openapi3.Schema {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile("../../examples/population.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ref := doc.Components.Schemas["Citizen"]
	if ref == nil || ref.Value == nil {
		t.Fatal("no Citizen schema")
	}
	return ref.Value
}

// validate checks one decoded record against the schema, and that it has
// exactly the schema's properties at every level (the schema allows extra
// properties, which would hide a misspelt field). kin-openapi's JSON Schema
// 2020-12 validator is the reference for an OpenAPI 3.1 document but
// compiles the schema on every call (milliseconds), so strict runs it in
// addition to the fast built-in validator only when asked.
func validate(t *testing.T, schema *openapi3.Schema, v any, strict bool) error {
	t.Helper()
	if err := schema.VisitJSON(v, openapi3.EnableFormatValidation()); err != nil {
		return err
	}
	if strict {
		if err := schema.VisitJSON(v, openapi3.EnableJSONSchema2020(), openapi3.EnableFormatValidation()); err != nil {
			return err
		}
	}
	return sameKeys("", schema, v)
}

func sameKeys(path string, schema *openapi3.Schema, v any) error {
	switch v := v.(type) {
	case map[string]any:
		props := schema.Properties
		if len(props) == 0 {
			for _, alt := range schema.OneOf { // nullable objects: oneOf [ref, null]
				if alt.Value != nil && len(alt.Value.Properties) > 0 {
					props = alt.Value.Properties
				}
			}
		}
		var want, got []string
		for k := range props {
			want = append(want, k)
		}
		for k := range v {
			got = append(got, k)
		}
		sort.Strings(want)
		sort.Strings(got)
		if !reflect.DeepEqual(want, got) {
			return &keyError{path, want, got}
		}
		for k, child := range v {
			if err := sameKeys(path+"."+k, props[k].Value, child); err != nil {
				return err
			}
		}
	case []any:
		for _, item := range v {
			if err := sameKeys(path+"[]", schema.Items.Value, item); err != nil {
				return err
			}
		}
	}
	return nil
}

type keyError struct {
	path      string
	want, got []string
}

func (e *keyError) Error() string {
	return "properties of " + e.path + ": got " + strings.Join(e.got, ",") + ", want " + strings.Join(e.want, ",")
}

func decode(t *testing.T, c any) any {
	t.Helper()
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestCitizensMatchSchema(t *testing.T) {
	schema := citizenSchema(t)
	for i, c := range synthetic.Citizens(3000, 7) {
		if err := validate(t, schema, decode(t, c), i < 100); err != nil {
			t.Fatalf("record %d (%s) does not match the Citizen schema: %v", i, c.PersonalID, err)
		}
	}

	// The validator must be able to fail: broken copies of a record.
	base := synthetic.Citizens(1, 7)[0]
	broken := []struct {
		name string
		// bySchema is true when the schema itself refuses the change; the
		// others only the exact-properties check catches.
		bySchema bool
		change   func(m map[string]any)
	}{
		{"ethnicity by name", true, func(m map[string]any) { m["ethnicity"] = "Kinh" }},
		{"short id", true, func(m map[string]any) { m["personalId"] = "07920300123" }},
		{"sex in Vietnamese", true, func(m map[string]any) { m["sex"] = "nam" }},
		{"missing full name", true, func(m map[string]any) { delete(m, "fullName") }},
		{"relatives null", true, func(m map[string]any) { m["relatives"] = nil }},
		{"bad date", true, func(m map[string]any) { m["dateOfBirth"] = "30/06/2001" }},
		{"religion as a number", true, func(m map[string]any) { m["religion"] = 0 }},
		{"temporary residence of nulls", true, func(m map[string]any) {
			m["temporaryResidence"] = map[string]any{"provinceCode": nil, "districtCode": nil, "wardCode": nil, "addressLine": nil}
		}},
		{"three-digit province", true, func(m map[string]any) {
			m["permanentResidence"].(map[string]any)["provinceCode"] = "079"
		}},
		{"extra field", false, func(m map[string]any) { m["passportNumber"] = "B1234567" }},
		{"missing nested field", false, func(m map[string]any) { delete(m["father"].(map[string]any), "personalId") }},
	}
	for _, tt := range broken {
		t.Run(tt.name, func(t *testing.T) {
			m := decode(t, base).(map[string]any)
			tt.change(m)
			if err := validate(t, schema, m, true); err == nil {
				t.Error("the broken record validates")
			}
			if !tt.bySchema {
				return
			}
			for _, opts := range [][]openapi3.SchemaValidationOption{
				{openapi3.EnableFormatValidation()},
				{openapi3.EnableJSONSchema2020(), openapi3.EnableFormatValidation()},
			} {
				if err := schema.VisitJSON(m, opts...); err == nil {
					t.Errorf("the schema (with %d options) accepts the broken record", len(opts))
				}
			}
		})
	}
}
