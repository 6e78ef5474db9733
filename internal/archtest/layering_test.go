package archtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"
)

// allowed is ARCHITECTURE.md §5's layering as a table: for each top-level
// folder holding Go packages, the other top-level folders its packages may
// import (a folder may always import itself). Packages depend downward —
// cmd → controlplane/gateway → policies/certs/audit/adapters → catalog —
// with federation (the signed snapshot both planes share) below the two
// planes, and internal below everything. A new top-level folder fails the
// test until it is given a row here, with the reason in review.
var allowed = map[string][]string{
	"internal":     {},
	"catalog":      {"internal"},
	"federation":   {"catalog", "internal"},
	"policies":     {"catalog", "internal"},
	"certs":        {"catalog", "internal"},
	"audit":        {"catalog", "internal"},
	"adapters":     {"catalog", "internal"},
	"deploy":       {"internal"},
	"gateway":      {"adapters", "audit", "catalog", "certs", "federation", "internal", "policies"},
	"controlplane": {"adapters", "audit", "catalog", "certs", "federation", "internal", "policies"},
	"cmd":          {"adapters", "audit", "catalog", "certs", "controlplane", "deploy", "federation", "gateway", "internal", "policies"},
}

// withoutHTTP are the packages of the exchange core: every door (HTTP,
// Envoy's ext_authz and ext_proc, feeds) is a thin layer over them, so they
// must not themselves speak HTTP (module-relative paths).
var withoutHTTP = []string{"gateway/exchange", "gateway/projection"}

// forbiddenNames are package names that say nothing of what a package holds.
var forbiddenNames = []string{"util", "utils", "common", "helpers", "helper", "misc"}

// pkg is what `go list -json` says of one package, as far as the test reads it.
type pkg struct {
	ImportPath   string
	Name         string
	Imports      []string
	Deps         []string
	TestImports  []string
	XTestImports []string
}

var (
	listOnce sync.Once
	listMod  string
	listPkgs []pkg
	listErr  error
)

// listPackages runs `go list -json` over the whole module (once per test
// binary) and returns its path and packages.
func listPackages(t *testing.T) (string, []pkg) {
	t.Helper()
	listOnce.Do(func() {
		mod, err := exec.Command("go", "list", "-m").Output()
		if err != nil {
			listErr = fmt.Errorf("go list -m: %w", err)
			return
		}
		listMod = strings.TrimSpace(string(mod))
		out, err := exec.Command("go", "list", "-json", listMod+"/...").Output()
		if err != nil {
			listErr = fmt.Errorf("go list -json %s/...: %w", listMod, err)
			return
		}
		dec := json.NewDecoder(bytes.NewReader(out))
		for {
			var p pkg
			if err := dec.Decode(&p); err == io.EOF {
				break
			} else if err != nil {
				listErr = fmt.Errorf("go list output: %w", err)
				return
			}
			listPkgs = append(listPkgs, p)
		}
	})
	if listErr != nil {
		t.Fatal(listErr)
	}
	if len(listPkgs) < 10 {
		t.Fatalf("go list found %d packages: is the test running inside the module?", len(listPkgs))
	}
	return listMod, listPkgs
}

// folder is the top-level folder of an import path of the module ("" for
// the module's root package), and whether the path is the module's at all.
func folder(module, importPath string) (string, bool) {
	if importPath == module {
		return "", true
	}
	rest, ok := strings.CutPrefix(importPath, module+"/")
	if !ok {
		return "", false
	}
	top, _, _ := strings.Cut(rest, "/")
	return top, true
}

// violations checks packages against a layering table and returns what
// breaks it: a package in a folder without a row; an own (non-test) import
// of a folder not in its row (tests may reach higher: an end-to-end test of
// the gateway starts a control plane); any import of cmd, tests included;
// a gateway package depending, even through another package, on the
// control plane's service (the planes share federation, not the service
// that holds the catalog and its tokens); a package named util, common or
// helpers; net/http imported by the exchange core.
func violations(module string, pkgs []pkg, table map[string][]string) []string {
	var out []string
	service := module + "/controlplane/service"
	for _, p := range pkgs {
		from, _ := folder(module, p.ImportPath)
		row, known := table[from]
		if !known {
			out = append(out, fmt.Sprintf("%s: top-level folder %q has no row in the layering table (internal/archtest): add it, with the folders it may import, after checking ARCHITECTURE.md §5", p.ImportPath, from))
		}
		for _, imp := range p.Imports {
			to, ours := folder(module, imp)
			if known && ours && to != from && !slices.Contains(row, to) {
				out = append(out, fmt.Sprintf("%s imports %s: %s may import only %v (ARCHITECTURE.md §5, packages depend downward)", p.ImportPath, imp, from, row))
			}
		}
		for _, imp := range slices.Concat(p.TestImports, p.XTestImports) {
			if to, ours := folder(module, imp); ours && to == "cmd" && from != "cmd" {
				out = append(out, fmt.Sprintf("a test of %s imports %s: nothing imports cmd", p.ImportPath, imp))
			}
		}
		if from == "gateway" && slices.Contains(p.Deps, service) {
			out = append(out, fmt.Sprintf("%s depends on %s: the gateway shares federation with the control plane, not its service", p.ImportPath, service))
		}
		if slices.Contains(withoutHTTP, strings.TrimPrefix(p.ImportPath, module+"/")) && slices.Contains(p.Imports, "net/http") {
			out = append(out, fmt.Sprintf("%s imports net/http: the exchange core is free of it, doors speak HTTP", p.ImportPath))
		}
		for _, name := range []string{p.Name, path.Base(p.ImportPath)} {
			if slices.Contains(forbiddenNames, strings.ToLower(name)) {
				out = append(out, fmt.Sprintf("%s: package name %q says nothing of what it holds", p.ImportPath, name))
				break
			}
		}
	}
	return out
}

// TestLayering checks every package of the module against the table.
func TestLayering(t *testing.T) {
	module, pkgs := listPackages(t)
	for _, v := range violations(module, pkgs, allowed) {
		t.Error(v)
	}
	var gateways int
	for _, p := range pkgs {
		if from, _ := folder(module, p.ImportPath); from == "gateway" {
			gateways++
		}
	}
	if gateways == 0 {
		t.Fatal("no gateway package found: the service check would pass vacuously")
	}
}

// TestViolationsAreFound feeds the checker packages that break each rule,
// so a checker that stopped checking would fail here.
func TestViolationsAreFound(t *testing.T) {
	const m = "example.org/mod"
	for _, tc := range []struct {
		name string
		p    pkg
		want string
	}{
		{"upward import", pkg{ImportPath: m + "/catalog", Name: "catalog", Imports: []string{m + "/gateway/projection"}}, "catalog may import only"},
		{"sideways import", pkg{ImportPath: m + "/audit", Name: "audit", Imports: []string{m + "/policies"}}, "audit may import only"},
		{"new top-level folder", pkg{ImportPath: m + "/newthing/x", Name: "x"}, `folder "newthing" has no row`},
		{"gateway on the service, through another package", pkg{ImportPath: m + "/gateway/x", Name: "x",
			Imports: []string{m + "/federation"}, Deps: []string{m + "/federation", m + "/controlplane/service"}}, "depends on " + m + "/controlplane/service"},
		{"a test importing cmd", pkg{ImportPath: m + "/gateway", Name: "gateway", XTestImports: []string{m + "/cmd/lienthong"}}, "nothing imports cmd"},
		{"the core speaking HTTP", pkg{ImportPath: m + "/gateway/exchange", Name: "exchange", Imports: []string{"net/http"}}, "imports net/http"},
		{"util package", pkg{ImportPath: m + "/gateway/util", Name: "util"}, `package name "util"`},
		{"helpers by directory", pkg{ImportPath: m + "/certs/helpers", Name: "certhelp"}, `package name "helpers"`},
		{"common by name", pkg{ImportPath: m + "/audit/shared", Name: "common"}, `package name "common"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := violations(m, []pkg{tc.p}, allowed)
			if len(got) != 1 || !strings.Contains(got[0], tc.want) {
				t.Fatalf("violations = %q, want one saying %q", got, tc.want)
			}
		})
	}
	ok := pkg{ImportPath: m + "/gateway/x", Name: "x", Imports: []string{m + "/gateway/y", m + "/federation", "fmt"},
		TestImports: []string{m + "/controlplane/service"}}
	if got := violations(m, []pkg{ok}, allowed); len(got) != 0 {
		t.Fatalf("a package keeping the rules: %q", got)
	}
}

// TestTableIsDownward: the table itself has no cycle, so it describes
// layers and not a tangle; and no row names an unknown folder.
func TestTableIsDownward(t *testing.T) {
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(f string, trail []string)
	visit = func(f string, trail []string) {
		switch state[f] {
		case 1:
			t.Fatalf("the layering table has a cycle: %v", append(trail, f))
		case 2:
			return
		}
		state[f] = 1
		for _, to := range allowed[f] {
			if _, ok := allowed[to]; !ok {
				t.Fatalf("%s may import %s, which has no row", f, to)
			}
			visit(to, append(trail, f))
		}
		state[f] = 2
	}
	for f := range allowed {
		visit(f, nil)
	}
}
