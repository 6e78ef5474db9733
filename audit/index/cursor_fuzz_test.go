package index

import (
	"errors"
	"testing"
)

// FuzzParseCursor: a cursor comes from the client; whatever it holds,
// parsing never panics, and a cursor it accepts prints back to itself.
func FuzzParseCursor(f *testing.F) {
	f.Add(cursor{at: 1763625600000000, gateway: "VN:GOV:000.00.00.G01:GW", seq: 42}.String())
	f.Add("")
	f.Add("djEsMSwyLA")
	f.Add("!!")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseCursor(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if c == nil {
			if s != "" {
				t.Fatalf("%q parsed to no cursor", s)
			}
			return
		}
		again, err := parseCursor(c.String())
		if err != nil || *again != *c {
			t.Fatalf("%q: %+v does not round-trip (%+v, %v)", s, c, again, err)
		}
	})
}
