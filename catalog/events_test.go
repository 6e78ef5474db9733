package catalog

import (
	"errors"
	"slices"
	"testing"
)

func TestEventTypes(t *testing.T) {
	cases := []struct {
		name, doc string
		want      []string
		pointer   string
	}{
		{"none", "openapi: 3.1.0\ninfo: {title: t, version: '1'}\n", nil, ""},
		{"yaml list", "info:\n  x-events:\n    - vn.gov.civilstatus.birth.registered\n    - vn.gov.civilstatus.death.registered\n",
			[]string{"vn.gov.civilstatus.birth.registered", "vn.gov.civilstatus.death.registered"}, ""},
		{"json", `{"info":{"x-events":["vn.gov.population.personal-id.issued"]}}`, []string{"vn.gov.population.personal-id.issued"}, ""},
		{"not a list", "info:\n  x-events: vn.gov.a.b\n", nil, "/info/x-events"},
		{"bad name", "info:\n  x-events: [vn.gov.a.b, Birth Registered]\n", nil, "/info/x-events/1"},
		{"number", "info:\n  x-events: [12]\n", nil, "/info/x-events/0"},
		{"twice", "info:\n  x-events: [vn.gov.a.b, vn.gov.a.b]\n", nil, "/info/x-events/1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := EventTypes([]byte(c.doc))
			if c.pointer != "" {
				var ve *ValidationError
				if !errors.As(err, &ve) || ve.Problems[0].Pointer != c.pointer {
					t.Fatalf("got %v, %v; want a problem at %s", got, err, c.pointer)
				}
				return
			}
			if err != nil || !slices.Equal(got, c.want) {
				t.Fatalf("got %v, %v; want %v", got, err, c.want)
			}
		})
	}
}
