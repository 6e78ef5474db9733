package policies

import (
	"bytes"
	"context"
	"maps"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/format"
)

// TestRegoUnitTests runs the base policy's Rego tests through RunTests, the
// same path `lienthong policy test` takes.
func TestRegoUnitTests(t *testing.T) {
	results, err := RunTests(context.Background(), nil)
	if err != nil {
		t.Fatalf("RunTests: %v", err)
	}
	if len(results) < 40 {
		t.Errorf("only %d Rego tests ran; the embedded tests were not all found", len(results))
	}
	for _, r := range results {
		if !r.Pass {
			t.Errorf("%s.%s (%s:%d) failed %s", r.Package, r.Name, r.File, r.Line, r.Error)
		}
	}
}

// TestRegoIsFormatted keeps the embedded modules in `opa fmt` form, so the
// sources agencies read and copy from are the canonical style.
func TestRegoIsFormatted(t *testing.T) {
	for name, src := range maps.All(baseSources()) {
		out, err := format.SourceWithOpts(name, src, format.Opts{RegoVersion: ast.RegoV1})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(out, src) {
			t.Errorf("%s is not in opa fmt form", name)
		}
	}
}

func baseSources() map[string][]byte {
	all := maps.Clone(baseModules)
	maps.Copy(all, baseTests)
	return all
}
