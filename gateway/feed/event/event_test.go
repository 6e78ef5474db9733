package event

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
)

const good = `{"specversion":"1.0","id":"e-1","source":"VN:GOV:000.00.00.G05:HTTTHT","type":"vn.gov.civilstatus.birth.registered",` +
	`"subject":"KS-2026-000001","time":"2026-03-01T08:00:00+07:00","datacontenttype":"application/json","data":{"fullName":"Nguyễn Văn An"}}`

func TestParseAcceptsAStructuredEvent(t *testing.T) {
	e, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if e.ID != "e-1" || e.Subject != "KS-2026-000001" || e.Type != "vn.gov.civilstatus.birth.registered" || string(e.Data) != `{"fullName":"Nguyễn Văn An"}` {
		t.Fatalf("parsed %+v", e)
	}
	out, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse(out)
	if err != nil || again.ID != e.ID || !again.Time.Equal(e.Time) || string(again.Data) != string(e.Data) {
		t.Fatalf("round trip: %v %+v", err, again)
	}
}

func TestParseRefuses(t *testing.T) {
	edit := func(from, to string) string { return strings.Replace(good, from, to, 1) }
	cases := []struct{ name, in, pointer string }{
		{"not json", `{`, ""},
		{"array", `[1]`, ""},
		{"two values", good + ` {}`, ""},
		{"no id", edit(`"id":"e-1",`, ``), "/id"},
		{"empty id", edit(`"id":"e-1"`, `"id":""`), "/id"},
		{"numeric id", edit(`"id":"e-1"`, `"id":1`), "/id"},
		{"control char in subject", edit(`KS-2026-000001`, `KS\n1`), "/subject"},
		{"version 0.3", edit(`"1.0"`, `"0.3"`), "/specversion"},
		{"bad type", edit(`vn.gov.civilstatus.birth.registered`, `Birth Registered`), "/type"},
		{"no subject", edit(`"subject":"KS-2026-000001",`, ``), "/subject"},
		{"bad time", edit(`2026-03-01T08:00:00+07:00`, `yesterday`), "/time"},
		{"xml data", edit(`"application/json"`, `"application/xml"`), "/datacontenttype"},
		{"no data", edit(`,"data":{"fullName":"Nguyễn Văn An"}`, ``), "/data"},
		{"data not object", edit(`{"fullName":"Nguyễn Văn An"}`, `"x"`), "/data"},
		{"data_base64", edit(`"data":`, `"data_base64":"eA==","data":`), "/data_base64"},
		{"extension", edit(`"data":`, `"traceparent":"x","data":`), "/traceparent"},
		{"duplicate attribute", edit(`"id":"e-1"`, `"id":"e-1","id":"e-2"`), "/id"},
		{"duplicate in data", edit(`{"fullName":"Nguyễn Văn An"}`, `{"a":{"fullName":"x","fullName":"y"}}`), "/data/a/fullName"},
		// Past linearKeys keys an object's keys are kept in a map: a
		// duplicate of a key from before and of one from after.
		{"duplicate in a large object", edit(`{"fullName":"Nguyễn Văn An"}`, `{`+manyKeys(20)+`,"k3":1}`), "/data/k3"},
		{"late duplicate in a large object", edit(`{"fullName":"Nguyễn Văn An"}`, `{`+manyKeys(40)+`,"k30":1}`), "/data/k30"},
		{"escaped duplicate", edit(`{"fullName":"Nguyễn Văn An"}`, `{"name":1,"\u006eame":2}`), "/data/name"},
		{"invalid utf8", edit(`An"}`, "An\xff\"}"), ""},
		{"too deep", edit(`{"fullName":"Nguyễn Văn An"}`, strings.Repeat(`{"a":`, 70)+`1`+strings.Repeat(`}`, 70)), ""},
		{"too large", edit(`"Nguyễn Văn An"`, `"`+strings.Repeat("x", MaxSize)+`"`), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.in))
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("accepted or wrong error: %v", err)
			}
			if c.pointer != "" && e.Pointer != c.pointer {
				t.Fatalf("pointer %q, want %q (%v)", e.Pointer, c.pointer, err)
			}
			if strings.Contains(err.Error(), "Nguyễn") {
				t.Fatalf("the error quotes a value: %v", err)
			}
		})
	}
}

// manyKeys writes n members "k0":0 … of an object.
func manyKeys(n int) string {
	members := make([]string, n)
	for i := range members {
		members[i] = fmt.Sprintf(`"k%d":%d`, i, i)
	}
	return strings.Join(members, ",")
}

// validType is checked by hand for speed; the pattern it implements is the
// oracle, over names chosen to sit on each edge of it.
func TestValidTypeMatchesItsPattern(t *testing.T) {
	oracle := regexp.MustCompile(`^[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*){2,15}$`)
	cases := []string{"vn.gov.civilstatus.birth.registered", "a.b.c", "a.b", "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p", "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q",
		"a..c", ".a.b.c", "a.b.c.", "A.b.c", "a.b.C", "a.1b.c", "a.b1-.c", "a.b-c.d-", "a.b.c\n", "a.b.ç", "", "a b.c.d", "vn.gov.x_y.z"}
	for _, c := range cases {
		if got, want := validType(c), oracle.MatchString(c); got != want {
			t.Errorf("validType(%q) = %v, the pattern says %v", c, got, want)
		}
	}
}

// An object of many distinct keys, checked through the map, is accepted.
func TestParseAcceptsALargeObject(t *testing.T) {
	in := strings.Replace(good, `{"fullName":"Nguyễn Văn An"}`, `{`+manyKeys(100)+`}`, 1)
	if _, err := Parse([]byte(in)); err != nil {
		t.Fatal(err)
	}
}
