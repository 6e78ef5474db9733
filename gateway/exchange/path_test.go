package exchange

import "testing"

// CheckPath stands before every adapter: whatever the router decoded, no
// path may climb out of the dataset or smuggle URL syntax.
func TestCheckPath(t *testing.T) {
	for path, ok := range map[string]bool{
		"citizens/001090000001": true,
		"citizens":              true,
		"a/../../admin":         false,
		"../x":                  false,
		"./x":                   false,
		"a//b":                  false,
		"":                      false,
		"a\nb":                  false,
		"a?b":                   false,
		"a#b":                   false,
		"a%2e%2e":               false,
		`a\b`:                   false,
		"a\x7fb":                false,
	} {
		if err := CheckPath(path); (err == nil) != ok {
			t.Errorf("CheckPath(%q) = %v, want ok=%v", path, err, ok)
		}
	}
}
