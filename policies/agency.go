package policies

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// AgencyNamespace is the package prefix of every provider's own module.
const AgencyNamespace = "lienthong.agency"

// basePackage is the package of the base decision; agency modules may not
// touch it, since the base reads their output and a cycle would break both.
const basePackage = "lienthong.exchange"

// AgencyKey derives the last package segment of a provider's module from its
// system id: lower-cased, every character other than a letter or digit
// replaced by '_'. VN:GOV:000.00.00.G01:CSDLDC gives vn_gov_000_00_00_g01_csdldc.
// The result is a valid Rego identifier because system ids start with the
// instance letters. Two ids that differ only in '-' versus '_' give the same
// key; BuildData refuses such a pair rather than let one provider's module
// reach the other's datasets.
func AgencyKey(providerSystemID string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(providerSystemID) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// AgencyPackage is the package a provider's module must declare, e.g.
// lienthong.agency.vn_gov_000_00_00_g01_csdldc.
func AgencyPackage(providerSystemID string) string {
	return AgencyNamespace + "." + AgencyKey(providerSystemID)
}

// ModuleError is a Rego module refused at upload, with the position of the
// first problem so an agency can fix its source. Line and Column are 1-based;
// they are 0 when a problem has no position (e.g. a wrong package name is
// reported at the package line).
type ModuleError struct {
	File    string
	Line    int
	Column  int
	Message string
	// More counts further problems not described in Message.
	More int
}

// Error formats the problem as file:line:column: message.
func (e *ModuleError) Error() string {
	s := fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Message)
	if e.More > 0 {
		s += fmt.Sprintf(" (and %d more problems)", e.More)
	}
	return s
}

// deniedBuiltins are left out of the capabilities every module is compiled
// with: decisions must not reach the network or depend on anything but the
// input and the signed data (time comes in the input, so the decision cache
// can reason about it).
var deniedBuiltins = map[string]bool{
	"http.send":            true,
	"net.lookup_ip_addr":   true,
	"opa.runtime":          true,
	"rand.intn":            true,
	"time.now_ns":          true,
	"uuid.rfc4122":         true,
	"io.jwt.decode_verify": true,
	"trace":                true,
}

// capabilities is the restricted builtin set of all policy modules.
var capabilities = func() *ast.Capabilities {
	c := ast.CapabilitiesForThisVersion()
	c.Builtins = slices.DeleteFunc(c.Builtins, func(b *ast.Builtin) bool { return deniedBuiltins[b.Name] })
	c.AllowNet = []string{}
	return c
}()

// CompileAgencyModule checks a provider's own module before it is accepted.
// provider is the provider system id the module is for; the module must
// declare package AgencyPackage(provider), may read input, its own package and
// data.lienthong.systems / data.lienthong.datasets, and nothing else: no
// import or reference of the base package or of another agency's package. It
// must parse and compile as OPA v1 Rego with the restricted builtins (no
// http.send, no time.now_ns, ...). The module's rules deny, drop and masks
// are what the engine reads; see Engine for how they narrow a decision. Any
// refusal is a *ModuleError with a position.
func CompileAgencyModule(provider string, src []byte) error {
	_, err := parseAgencyModule(provider, src)
	return err
}

// parseAgencyModule does the checks of CompileAgencyModule and returns the
// parsed module.
func parseAgencyModule(provider string, src []byte) (*ast.Module, error) {
	file := AgencyKey(provider) + ".rego"
	mod, err := ast.ParseModuleWithOpts(file, string(src), ast.ParserOptions{RegoVersion: ast.RegoV1, Capabilities: capabilities})
	if err != nil {
		return nil, moduleError(file, err)
	}
	if mod == nil {
		return nil, &ModuleError{File: file, Line: 1, Column: 1, Message: "module is empty: it needs a package declaration"}
	}
	own := ast.MustParseRef("data." + AgencyPackage(provider))
	if !mod.Package.Path.Equal(own) {
		return nil, positioned(file, mod.Package.Location, fmt.Sprintf(
			"package %s is not allowed: a module for provider %s must declare package %s",
			strings.TrimPrefix(mod.Package.Path.String(), "data."), provider, AgencyPackage(provider)))
	}
	for _, imp := range mod.Imports {
		ref, ok := imp.Path.Value.(ast.Ref)
		if !ok {
			continue
		}
		if ref.HasPrefix(ast.DefaultRootRef) && !dataRefAllowed(ref, own) {
			return nil, positioned(file, imp.Location, fmt.Sprintf("import %s is not allowed: an agency module may import only its own package, data.lienthong.systems and data.lienthong.datasets", ref))
		}
	}
	var refErr error
	ast.WalkRefs(mod, func(r ast.Ref) bool {
		if refErr == nil && r.HasPrefix(ast.DefaultRootRef) && !dataRefAllowed(r, own) {
			msg := fmt.Sprintf("reference %s is not allowed: an agency module may read only input, its own package, data.lienthong.systems and data.lienthong.datasets", r)
			if len(r) == 1 {
				// x := data would read everything, the base package included.
				msg = "the whole data document may not be read: name a path under data.lienthong.systems or data.lienthong.datasets"
			}
			refErr = positioned(file, r[0].Location, msg)
		}
		return false
	})
	if refErr != nil {
		return nil, refErr
	}
	c := ast.NewCompiler().WithCapabilities(capabilities).WithDefaultRegoVersion(ast.RegoV1)
	c.Compile(map[string]*ast.Module{file: mod})
	if c.Failed() {
		return nil, moduleError(file, c.Errors)
	}
	return mod, nil
}

// dataRefAllowed reports whether an agency module may read ref.
func dataRefAllowed(ref, own ast.Ref) bool {
	for _, p := range []ast.Ref{own, systemsRef, datasetsRef} {
		if groundPrefix(ref, p) {
			return true
		}
	}
	return false
}

var (
	systemsRef  = ast.MustParseRef("data.lienthong.systems")
	datasetsRef = ast.MustParseRef("data.lienthong.datasets")
)

// groundPrefix reports whether ref starts with all of prefix, compared as
// ground terms (data["lienthong"].systems equals data.lienthong.systems).
func groundPrefix(ref, prefix ast.Ref) bool {
	if len(ref) < len(prefix) {
		return false
	}
	for i := range prefix {
		if !ref[i].Equal(prefix[i]) {
			return false
		}
	}
	return true
}

// moduleError turns OPA's parse or compile errors into a *ModuleError.
func moduleError(file string, err error) error {
	var errs ast.Errors
	if errors.As(err, &errs) && len(errs) > 0 {
		sorted := slices.Clone(errs)
		sorted.Sort()
		first := sorted[0]
		me := positioned(file, first.Location, first.Message)
		me.More = len(sorted) - 1
		return me
	}
	return &ModuleError{File: file, Message: err.Error()}
}

func positioned(file string, loc *ast.Location, msg string) *ModuleError {
	me := &ModuleError{File: file, Message: msg}
	if loc != nil {
		me.Line, me.Column = loc.Row, loc.Col
		if me.File == "" {
			me.File = loc.File
		}
	}
	return me
}

// timeDependent reports whether a module may read the exchange's time: any use
// of input other than input.<name> with a constant name other than "time".
// Decisions of datasets with such a module are not cached, since the engine
// cannot know when their answer changes.
func timeDependent(mod *ast.Module) bool {
	inputVars, safeRefs := 0, 0
	ast.WalkVars(mod, func(v ast.Var) bool {
		if v.Equal(ast.InputRootDocument.Value) {
			inputVars++
		}
		return false
	})
	ast.WalkRefs(mod, func(r ast.Ref) bool {
		if len(r) >= 2 && r[0].Equal(ast.InputRootDocument) {
			if s, ok := r[1].Value.(ast.String); ok && s != "time" {
				safeRefs++
			}
		}
		return false
	})
	return inputVars > safeRefs
}
