package policies

import (
	"embed"
	"fmt"
	"io/fs"
	"maps"
	"strings"
)

// regoFS holds the base policy and its Rego tests, compiled into the binary so
// a control plane and a gateway of the same build agree on the rules.
//
//go:embed rego/*.rego
var regoFS embed.FS

// BaseModules returns the base policy modules (tests excluded) by file name,
// as BuildData puts them into a Snapshot.
func BaseModules() map[string][]byte {
	return maps.Clone(baseModules)
}

// baseModules and baseTests are read once; the embedded files never change.
var baseModules, baseTests = readRego()

func readRego() (mods, tests map[string][]byte) {
	mods, tests = map[string][]byte{}, map[string][]byte{}
	entries, err := fs.ReadDir(regoFS, "rego")
	if err != nil {
		panic(fmt.Sprintf("policies: embedded rego directory unreadable: %v", err))
	}
	for _, e := range entries {
		src, err := regoFS.ReadFile("rego/" + e.Name())
		if err != nil {
			panic(fmt.Sprintf("policies: embedded %s unreadable: %v", e.Name(), err))
		}
		if strings.HasSuffix(e.Name(), "_test.rego") {
			tests[e.Name()] = src
		} else {
			mods[e.Name()] = src
		}
	}
	return mods, tests
}
