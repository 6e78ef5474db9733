package policies

import (
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/lienthong/lienthong/catalog"
)

// TestFastIndexEntries checks which exchanges the engine's index answers:
// only a connected consumer with exactly one active grant naming the mode
// and purpose, within the grant's period and the assessment.
func TestFastIndexEntries(t *testing.T) {
	grants := append(fixtureGrants(),
		// A second grant of BHXH on the household for the same purpose:
		// the general rules choose, so no entry.
		grant("g-bhxh-hh2", bhxh, hhCode, []catalog.GrantedField{gf("householdId", "")}, nil),
		// A purpose holding a NUL could alias another key: never indexed.
		grant("g-nul", bhxh, popCode, []catalog.GrantedField{gf("fullName", "")}, purpose("9.9\x00x")),
		grant("g-low", lowSys, popCode, []catalog.GrantedField{gf("fullName", "")}, nil),
	)
	snap := fixtureSnapshot(t, "r1", grants, nil)
	doc := storeDocument(snap.Data)
	entries := doc.Get(ast.StringTerm(FastIndex)).Value.(ast.Object).Get(ast.StringTerm("entries")).Value.(ast.Object)
	key := func(consumer, ref, mode, purpose string) *ast.Term {
		return ast.StringTerm(consumer + "\x00" + ref + "\x00" + mode + "\x00" + purpose)
	}
	for _, c := range []struct {
		name                         string
		consumer, ref, mode, purpose string
		want                         bool
	}{
		{"one grant, query", bhxh, popRef, "query", purposeA, true},
		{"one grant, verify", bhxh, popRef, "verify", purposeA, true},
		{"mode not granted", bhxh, popRef, "feed", purposeA, false},
		{"two grants", bhxh, householdRef, "query", purposeA, false},
		{"NUL in purpose", bhxh, popRef, "query", "9.9\x00x", false},
		{"level too low", lowSys, popRef, "query", purposeA, false},
		{"revoked grant left out", cutSys, popRef, "query", purposeA, false},
		{"expired grant, own purpose", portal, popRef, "query", "2.000001", true},
	} {
		if got := entries.Get(key(c.consumer, c.ref, c.mode, c.purpose)) != nil; got != c.want {
			t.Errorf("%s: entry %v, want %v", c.name, got, c.want)
		}
	}
	// The window is the grant's period cut at the assessment's expiry.
	e := entries.Get(key(lapsing, popRef, "query", purposeA)).Value.(*ast.Array)
	if until, _ := e.Elem(1).Value.(ast.Number).Int64(); until != t0.Add(5*day).UnixNano() {
		t.Errorf("window ends at %d, want the assessment's expiry", until)
	}
	// Entries share the data's terms: the grant's view is the data's object.
	view := doc.Get(ast.StringTerm("grants")).Value.(ast.Object).Get(ast.StringTerm(bhxh)).Value.(ast.Object).
		Get(ast.StringTerm(popRef)).Value.(ast.Object).Get(ast.StringTerm("g-bhxh")).Value.(ast.Object).Get(ast.StringTerm("view"))
	if e := entries.Get(key(bhxh, popRef, "query", purposeA)).Value.(*ast.Array); e.Elem(2) != view {
		t.Error("entry does not share the grant's view")
	}
}

// TestInputSharesDataStrings checks that inputs reuse the data's string terms
// and build the same value as without them.
func TestInputSharesDataStrings(t *testing.T) {
	snap := fixtureSnapshot(t, "r1", fixtureGrants(), nil)
	_, pool := storeDocumentAndStrings(snap.Data)
	in := ask(nil)
	shared := pool.input(&in, in.Fields, t0.UnixNano())
	if shared.Compare(inputValue(&in, in.Fields, t0.UnixNano())) != 0 {
		t.Fatal("shared input differs")
	}
	if shared.(ast.Object).Get(ast.StringTerm("consumer")).Value.(ast.Object).Get(ast.StringTerm("id")) != pool[bhxh] {
		t.Error("consumer id not shared")
	}
}
