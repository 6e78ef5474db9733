package catalog

import (
	"strings"
	"testing"
)

// splitParse is ParseSystemID and ParseSPIFFE as they were written before
// they stopped allocating (strings.Split and a re-joined id), kept as the
// reference the allocation-free parse must agree with.
func splitParse(s string) (SystemID, bool) {
	parts := strings.Split(s, ":")
	if len(parts) != 4 {
		return SystemID{}, false
	}
	id := SystemID{Instance: parts[0], Class: parts[1], Member: parts[2], Code: parts[3]}
	ok := validUpperName(id.Instance) && validUpperName(id.Class) && ValidMemberCode(id.Member) && validSystemCode(id.Code)
	return id, ok
}

func splitParseSPIFFE(uri, trustDomain, instance string) (SystemID, bool) {
	prefix := "spiffe://" + trustDomain + "/"
	if !strings.HasPrefix(uri, prefix) {
		return SystemID{}, false
	}
	parts := strings.Split(strings.TrimPrefix(uri, prefix), "/")
	if len(parts) != 3 {
		return SystemID{}, false
	}
	return splitParse(instance + ":" + parts[0] + ":" + parts[1] + ":" + parts[2])
}

// TestParseSystemIDAgreesWithSplit tries the parse on hand-picked ids and on
// every string built from id-shaped pieces and separators, and checks its
// verdict and parts equal the Split-based parse's: a stray, missing or
// doubled separator anywhere must be refused as before.
func TestParseSystemIDAgreesWithSplit(t *testing.T) {
	pieces := []string{"", "VN", "GOV", "000.00.00.G01", "CSDLDC", "vn", "A", ":", "/", "::", "G:X", "spiffe://", "lienthong.gov.vn"}
	var inputs []string
	var gen func(prefix string, left int)
	gen = func(prefix string, left int) {
		inputs = append(inputs, prefix)
		if left == 0 {
			return
		}
		for _, p := range pieces {
			for _, sep := range []string{"", ":", "/"} {
				gen(prefix+sep+p, left-1)
			}
		}
	}
	gen("", 3)
	inputs = append(inputs, "VN:GOV:000.00.00.G01:CSDLDC", "VN:GOV:000.00.00.G01:CSDLDC:", ":VN:GOV:000.00.00.G01:CSDLDC",
		"VN:GOV:000.00.00.G01", "VN::000.00.00.G01:CSDLDC", "spiffe://lienthong.gov.vn/GOV/000.00.00.G01/CSDLDC",
		"spiffe://lienthong.gov.vn/GOV/000.00.00.G01/CSDLDC/", "spiffe://lienthong.gov.vnGOV/000.00.00.G01/CSDLDC",
		"spiffe://lienthong.gov.vn//GOV/000.00.00.G01/CSDLDC", "spiffe://other.vn/GOV/000.00.00.G01/CSDLDC")
	for _, s := range inputs {
		want, wantOK := splitParse(s)
		got, err := ParseSystemID(s)
		if (err == nil) != wantOK || (wantOK && got != want) {
			t.Fatalf("ParseSystemID(%q) = %+v, %v; Split-based parse says %+v, ok=%v", s, got, err, want, wantOK)
		}
		for _, instance := range []string{"VN", "vn"} {
			want, wantOK := splitParseSPIFFE(s, "lienthong.gov.vn", instance)
			got, err := ParseSPIFFE(s, "lienthong.gov.vn", instance)
			if (err == nil) != wantOK || (wantOK && got != want) {
				t.Fatalf("ParseSPIFFE(%q, %q) = %+v, %v; Split-based parse says %+v, ok=%v", s, instance, got, err, want, wantOK)
			}
		}
	}
}

// TestParseSystemIDErrorsNameTheForm checks each refusal names the string it
// was given and which part is wrong.
func TestParseSystemIDErrorsNameTheForm(t *testing.T) {
	for _, c := range []struct {
		name, in, want string
		parse          func(string) error
	}{
		{"parts", "VN:GOV:CSDLDC", `system id "VN:GOV:CSDLDC" must have four parts`, func(s string) error { _, err := ParseSystemID(s); return err }},
		{"member", "VN:GOV:G01:CSDLDC", `system id "VN:GOV:G01:CSDLDC": member "G01"`, func(s string) error { _, err := ParseSystemID(s); return err }},
		{"trust domain", "spiffe://other.vn/GOV/000.00.00.G01/CSDLDC", `is not in trust domain "lienthong.gov.vn"`,
			func(s string) error { _, err := ParseSPIFFE(s, "lienthong.gov.vn", "VN"); return err }},
		{"spiffe path", "spiffe://lienthong.gov.vn/GOV/CSDLDC", "must have the path /<class>/<member>/<system>",
			func(s string) error { _, err := ParseSPIFFE(s, "lienthong.gov.vn", "VN"); return err }},
		{"spiffe code", "spiffe://lienthong.gov.vn/GOV/000.00.00.G01/bad", `spiffe id "spiffe://lienthong.gov.vn/GOV/000.00.00.G01/bad": system code "bad"`,
			func(s string) error { _, err := ParseSPIFFE(s, "lienthong.gov.vn", "VN"); return err }},
	} {
		err := c.parse(c.in)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %q: got %v, want an error containing %q", c.name, c.in, err, c.want)
		}
	}
}

// TestParseSystemIDDoesNotAllocate: gateways parse ids on every exchange.
func TestParseSystemIDDoesNotAllocate(t *testing.T) {
	const id, uri = "VN:GOV:000.00.00.G01:CSDLDC", "spiffe://lienthong.gov.vn/GOV/000.00.00.G01/CSDLDC"
	if n := testing.AllocsPerRun(100, func() { _, _ = ParseSystemID(id) }); n != 0 {
		t.Errorf("ParseSystemID allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = ParseSPIFFE(uri, "lienthong.gov.vn", "VN") }); n != 0 {
		t.Errorf("ParseSPIFFE allocates %v times", n)
	}
}
