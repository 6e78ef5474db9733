package projection

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/lienthong/lienthong/catalog"
)

// record30 is a citizen record with 30 top-level fields, nested places,
// addresses, people and an array of relatives: what the population backend
// answers for one personal identification number.
const record30 = `{"personalId":"079203001234","oldIdNumber":"025123456","fullName":"Nguyễn Văn An","dateOfBirth":"2003-04-05","sex":"male",
"birthRegistrationPlace":{"provinceCode":"79","districtCode":null,"wardCode":"26734","name":"Phường Sài Gòn, Thành phố Hồ Chí Minh"},
"homeTown":{"provinceCode":"36","districtCode":"354","wardCode":"13408","name":"Xã Hải Hậu, Tỉnh Ninh Bình"},
"ethnicity":"01","religion":null,"nationality":"VN","bloodType":"O","maritalStatus":"single",
"permanentResidence":{"provinceCode":"79","districtCode":null,"wardCode":"26734","addressLine":"Số 12 đường Lê Lợi"},
"temporaryResidence":null,
"currentResidence":{"provinceCode":"79","districtCode":null,"wardCode":"26734","addressLine":"Số 12 đường Lê Lợi"},
"father":{"personalId":"036070001111","fullName":"Nguyễn Văn Ba"},"mother":{"personalId":"036172002222","fullName":"Trần Thị Bích"},
"spouse":null,"householdHead":{"personalId":"036070001111","fullName":"Nguyễn Văn Ba"},"relationToHouseholdHead":"Con",
"relatives":[{"relationship":"Anh ruột","personalId":"079199001111","fullName":"Nguyễn Văn Bình"},{"relationship":"Em ruột","personalId":"079205003333","fullName":"Nguyễn Thị Cúc"}],
"idCardIssueDate":"2021-06-01","idCardExpiryDate":"2028-04-05","idCardIssuePlace":"Cục Cảnh sát quản lý hành chính về trật tự xã hội",
"dateOfDeath":null,"updatedAt":"2025-07-01T08:00:00Z","phoneNumber":"0912345678","email":"an.nguyen@example.vn",
"educationLevel":"12/12","occupation":"Sinh viên"}`

// The grant of the benchmark: 8 fields, 2 of them masked.
var (
	bench8Fields = []string{"personalId", "fullName", "dateOfBirth", "sex", "permanentResidence.provinceCode",
		"permanentResidence.wardCode", "relatives.fullName", "phoneNumber"}
	bench2Masks = map[string]catalog.Mask{"personalId": catalog.MaskHash, "phoneNumber": catalog.MaskPartial}
)

func TestRecord30HasThirtyFields(t *testing.T) {
	var m map[string]any
	if err := json.Unmarshal([]byte(record30), &m); err != nil || len(m) != 30 {
		t.Fatalf("%d fields, %v", len(m), err)
	}
	got, _, err := run(t, bench8Fields, bench2Masks, record30, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"personalId":"` + wantHash(`"079203001234"`) + `","fullName":"Nguyễn Văn An","dateOfBirth":"2003-04-05","sex":"male",` +
		`"permanentResidence":{"provinceCode":"79","wardCode":"26734"},"relatives":[{"fullName":"Nguyễn Văn Bình"},{"fullName":"Nguyễn Thị Cúc"}],` +
		`"phoneNumber":"******5678"}`
	if got != want {
		t.Fatalf("\n got  %s\n want %s", got, want)
	}
}

// BenchmarkProject30Fields8Granted projects one 30-field record of which 8
// fields are granted and 2 masked. As the design guide asks, it also reports
// its ratio to a baseline measured in the same run: encoding/json decoding
// the record into map[string]any and encoding the map again, the least a
// filter that understood JSON at all would cost.
func BenchmarkProject30Fields8Granted(b *testing.B) {
	p, err := NewPlan(bench8Fields, bench2Masks, testMasker(b))
	if err != nil {
		b.Fatal(err)
	}
	in := []byte(record30)
	var out bytes.Buffer
	var src bytes.Reader
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	start := time.Now()
	for b.Loop() {
		out.Reset()
		src.Reset(in)
		if _, err := p.Project(&out, &src, Options{}); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	b.ReportMetric(float64(elapsed)/float64(jsonBaseline(b, in, b.N)), "x-baseline")
}

// jsonBaseline is the time encoding/json takes to decode in into
// map[string]any and encode the map again, n times: the least a filter that
// understood JSON at all would cost.
func jsonBaseline(b *testing.B, in []byte, n int) time.Duration {
	var out bytes.Buffer
	base := time.Now()
	for range n {
		var m map[string]any
		dec := json.NewDecoder(bytes.NewReader(in))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			b.Fatal(err)
		}
		out.Reset()
		if err := json.NewEncoder(&out).Encode(m); err != nil {
			b.Fatal(err)
		}
	}
	if !strings.Contains(out.String(), "ethnicity") {
		b.Fatal("baseline did not run")
	}
	return time.Since(base)
}

// BenchmarkProject30Fields8GrantedSchema is BenchmarkProject30Fields8Granted
// with the plan compiled against the record's schema, as the gateway does:
// the price of admitting only declared properties and checking types.
func BenchmarkProject30Fields8GrantedSchema(b *testing.B) {
	s, err := NewSchema(citizenFields)
	if err != nil {
		b.Fatal(err)
	}
	p, err := s.Plan(bench8Fields, bench2Masks, testMasker(b))
	if err != nil {
		b.Fatal(err)
	}
	in := []byte(record30)
	var out bytes.Buffer
	var src bytes.Reader
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	start := time.Now()
	for b.Loop() {
		out.Reset()
		src.Reset(in)
		if _, err := p.Project(&out, &src, Options{}); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	b.ReportMetric(float64(elapsed)/float64(jsonBaseline(b, in, b.N)), "x-baseline")
}

// BenchmarkProjectRecordsFiveSubscribers decodes record30 once and
// projects it for five decisions, as a feed router delivering one event to
// five subscribers; compare with five Project calls of the same plans.
func BenchmarkProjectRecordsFiveSubscribers(b *testing.B) {
	s, err := NewSchema(citizenFields)
	if err != nil {
		b.Fatal(err)
	}
	var plans []*Plan
	for _, fields := range [][]string{bench8Fields, {"fullName"}, {"permanentResidence", "relatives"}, {"father", "mother"}, {"personalId", "dateOfBirth"}} {
		p, err := s.CachedPlan("rev", "grant", fields, bench2Masks, testMasker(b))
		if err != nil {
			b.Fatal(err)
		}
		plans = append(plans, p)
	}
	in := []byte(record30)
	var out bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		recs, err := Decode(bytes.NewReader(in), Options{})
		if err != nil {
			b.Fatal(err)
		}
		for _, p := range plans {
			out.Reset()
			if _, err := p.ProjectRecords(&out, recs, nil); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkValidateRecord30 validates the 30-field citizen record against
// the demo's Citizen schema: with the native check (what Validate does for
// a valid record), with kin-openapi alone (what it did before), and inside
// a projection: with Options.Validator (the decoder's representation),
// with Options.Validate (which also pays for the map[string]any form), and
// without validation.
func BenchmarkValidateRecord30(b *testing.B) {
	v := populationValidator(b)
	rec := decodeAny(b, record30)
	if v.native == nil || v.Validate(rec) != nil || !kinAccepts(v, rec) {
		b.Fatal("record30 is not a valid Citizen natively compiled")
	}
	b.Run("native", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := v.Validate(rec); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("kin-openapi", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := v.schema.VisitJSON(rec, v.opts...); err != nil {
				b.Fatal(err)
			}
		}
	})
	s, err := NewSchema(citizenFields)
	if err != nil {
		b.Fatal(err)
	}
	p, err := s.Plan(bench8Fields, bench2Masks, testMasker(b))
	if err != nil {
		b.Fatal(err)
	}
	in := []byte(record30)
	for _, c := range []struct {
		name string
		opts Options
	}{
		{"project", Options{}},
		{"project+Validator", Options{Validator: v}},
		{"project+Validate(native)", Options{Validate: v.Validate}},
		{"project+Validate(kin-openapi)", Options{Validate: func(r any) error { return v.schema.VisitJSON(r, v.opts...) }}},
	} {
		b.Run(c.name, func(b *testing.B) {
			var out bytes.Buffer
			var src bytes.Reader
			b.ReportAllocs()
			for b.Loop() {
				out.Reset()
				src.Reset(in)
				if _, err := p.Project(&out, &src, c.opts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
