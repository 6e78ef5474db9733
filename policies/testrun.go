package policies

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
)

// TestResult is the outcome of one Rego test rule.
type TestResult struct {
	Package string `json:"package"`
	Name    string `json:"name"`
	File    string `json:"file"`
	Line    int    `json:"line"`
	Pass    bool   `json:"pass"`
	Skip    bool   `json:"skip,omitempty"`
	// Error is set when the test could not be evaluated (not a plain failure).
	Error    string        `json:"error,omitempty"`
	Duration time.Duration `json:"duration"`
}

// RunTests runs the built-in Rego tests of the base policy together with
// extraModules (file name to source: typically an agency's module and its
// *_test.rego), compiled with the same restricted builtins as the engine.
// Results come sorted by package and name. An error means the tests could not
// run at all (a module does not parse or compile: a *ModuleError); failing
// tests are results with Pass false.
func RunTests(ctx context.Context, extraModules map[string][]byte) ([]TestResult, error) {
	mods := map[string]*ast.Module{}
	add := func(file string, src []byte) error {
		if _, dup := mods[file]; dup {
			return fmt.Errorf("policies: run tests: module %s given twice", file)
		}
		m, err := ast.ParseModuleWithOpts(file, string(src), ast.ParserOptions{RegoVersion: ast.RegoV1, Capabilities: capabilities})
		if err != nil {
			return moduleError(file, err)
		}
		if m == nil {
			return &ModuleError{File: file, Line: 1, Column: 1, Message: "module is empty: it needs a package declaration"}
		}
		mods[file] = m
		return nil
	}
	for _, set := range []map[string][]byte{baseModules, baseTests} {
		for _, name := range slices.Sorted(maps.Keys(set)) {
			if err := add(Root+"/"+name, set[name]); err != nil {
				return nil, err
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(extraModules)) {
		if strings.HasPrefix(name, Root+"/") {
			return nil, fmt.Errorf("policies: run tests: module name %s is reserved for the base policy", name)
		}
		if err := add(name, extraModules[name]); err != nil {
			return nil, err
		}
	}

	compiler := ast.NewCompiler().WithCapabilities(capabilities).WithDefaultRegoVersion(ast.RegoV1)
	ch, err := tester.NewRunner().
		SetCompiler(compiler).
		SetStore(inmem.New()).
		SetDefaultRegoVersion(ast.RegoV1).
		SetTimeout(time.Minute).
		Run(ctx, mods)
	if err != nil {
		var errs ast.Errors
		if errors.As(err, &errs) {
			return nil, moduleError("", err)
		}
		return nil, fmt.Errorf("policies: run tests: %w", err)
	}
	var out []TestResult
	for r := range ch {
		tr := TestResult{
			Package:  strings.TrimPrefix(r.Package, "data."),
			Name:     r.Name,
			Pass:     r.Pass(),
			Skip:     r.Skip,
			Duration: r.Duration,
		}
		if r.Location != nil {
			tr.File, tr.Line = r.Location.File, r.Location.Row
		}
		if r.Error != nil {
			tr.Error = r.Error.Error()
		}
		out = append(out, tr)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Package != out[j].Package {
			return out[i].Package < out[j].Package
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}
