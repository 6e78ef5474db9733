package policies

import (
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// A malformed row scope must fail the decision, never read as "no scope"
// (which would widen the grant to every row).
func TestDecodeDecisionRowScope(t *testing.T) {
	cases := []struct {
		name, decision string
		ok             bool
	}{
		{"null scope", `{"allow": true, "row_scope": null}`, true},
		{"absent scope", `{"allow": true}`, true},
		{"good scope", `{"allow": true, "row_scope": {"field": "permanentResidence.provinceCode", "values": ["01"]}}`, true},
		{"scope as a string", `{"allow": true, "row_scope": "01"}`, false},
		{"scope without field", `{"allow": true, "row_scope": {"values": ["01"]}}`, false},
		{"scope with empty field", `{"allow": true, "row_scope": {"field": "", "values": ["01"]}}`, false},
		{"scope without values", `{"allow": true, "row_scope": {"field": "x"}}`, false},
		{"scope with non-string values", `{"allow": true, "row_scope": {"field": "x", "values": [1]}}`, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, err := ast.ParseTerm(c.decision)
			if err != nil {
				t.Fatal(err)
			}
			d, err := decodeDecision(v.Value)
			if (err == nil) != c.ok {
				t.Fatalf("decodeDecision(%s) = %+v, %v", c.decision, d, err)
			}
			if c.ok && strings.Contains(c.decision, "provinceCode") && (d.RowScope == nil || d.RowScope.Values[0] != "01") {
				t.Fatalf("scope lost: %+v", d.RowScope)
			}
		})
	}
}
