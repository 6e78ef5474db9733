package feed

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/lienthong/lienthong/gateway/feed/event"
)

func testDataset(t testing.TB) *Dataset {
	t.Helper()
	doc, err := os.ReadFile("testdata/vital-events.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ds, err := NewDataset(context.Background(), provider, doc)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func TestDatasetCheck(t *testing.T) {
	ds := testDataset(t)
	good := `{"registrationId":"r1","seq":1,"province":"01","child":{"fullName":"Trần Minh Khang","personalId":"001225004321"}}`
	cases := []struct{ name, source, typ, data, pointer string }{
		{"valid", provider, "vn.gov.civilstatus.birth.registered", good, ""},
		{"other source", "VN:GOV:000.00.00.G14:CSDLBH", "vn.gov.civilstatus.birth.registered", good, "/source"},
		{"undeclared type", provider, "vn.gov.civilstatus.marriage.registered", good, "/type"},
		{"bad pattern", provider, "vn.gov.civilstatus.birth.registered", strings.Replace(good, "001225004321", "12", 1), "/data/child/personalId"},
		{"missing required", provider, "vn.gov.civilstatus.birth.registered", `{"registrationId":"r1","seq":1,"province":"01"}`, "/data"},
		{"wrong type", provider, "vn.gov.civilstatus.birth.registered", strings.Replace(good, `"seq":1`, `"seq":"1"`, 1), "/data/seq"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := ds.Check(&event.Event{Source: c.source, Type: c.typ, Data: []byte(c.data)})
			if c.pointer == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var e *event.Error
			if !errors.As(err, &e) || !strings.HasPrefix(e.Pointer, c.pointer) {
				t.Fatalf("got %v, want a problem at %s", err, c.pointer)
			}
			if strings.Contains(err.Error(), "Khang") || strings.Contains(err.Error(), "001225004321") {
				t.Fatalf("the error quotes a value: %v", err)
			}
		})
	}
}
