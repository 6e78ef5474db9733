package catalog

import (
	"regexp"
	"strings"
	"testing"
)

// TestIDShapesMatchTheirPatterns checks each hand-written matcher against
// the regular expression it replaced, on hand-picked edge cases and on
// every string over a small alphabet up to a length past each bound.
func TestIDShapesMatchTheirPatterns(t *testing.T) {
	cases := []struct {
		name    string
		pattern *regexp.Regexp
		match   func(string) bool
		alpha   string
		maxLen  int
		extra   []string
	}{
		{"upper name", regexp.MustCompile(`^[A-Z]{2,8}$`), validUpperName, "AZa0@[", 4,
			[]string{"", "A", "VN", "ABCDEFGH", "ABCDEFGHI", "GOV\n", "gov", "GÔV", "VN:"}},
		{"system code", regexp.MustCompile(`^[A-Z0-9][A-Z0-9_-]{0,63}$`), validSystemCode, "A9_-a.", 4,
			[]string{"", "_A", "-A", "CSDLDC", strings.Repeat("A", 64), strings.Repeat("A", 65), "A/B", "A\n", "Ä"}},
		{"member code", regexp.MustCompile(`^[0-9]{3}\.[0-9]{2}\.[0-9]{2}\.[A-Z][0-9]{2}$`), validMemberCode, "0.G", 0,
			[]string{"", "000.00.00.G01", "000.00.00.g01", "000.00.00.G0", "000.00.00.G012", "000,00.00.G01",
				"00a.00.00.G01", "000.00.00.001", "000.00.00.GG1", "000.00.00.G01\n", "999.99.99.Z99", "000.00.00..01"}},
	}
	for _, c := range cases {
		check := func(s string) {
			if got, want := c.match(s), c.pattern.MatchString(s); got != want {
				t.Errorf("%s: %q: matcher says %v, pattern %v", c.name, s, got, want)
			}
		}
		for _, s := range c.extra {
			check(s)
		}
		var gen func(prefix string, left int)
		gen = func(prefix string, left int) {
			check(prefix)
			if left == 0 {
				return
			}
			for i := 0; i < len(c.alpha); i++ {
				gen(prefix+c.alpha[i:i+1], left-1)
			}
		}
		gen("", c.maxLen)
	}
	// Member codes: every single-byte change of a valid code.
	valid := "012.34.56.G78"
	member := regexp.MustCompile(`^[0-9]{3}\.[0-9]{2}\.[0-9]{2}\.[A-Z][0-9]{2}$`)
	for i := range valid {
		for b := 0; b < 256; b++ {
			s := valid[:i] + string([]byte{byte(b)}) + valid[i+1:]
			if got, want := validMemberCode(s), member.MatchString(s); got != want {
				t.Errorf("member code %q: matcher says %v, pattern %v", s, got, want)
			}
		}
	}
}
