package projection

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestDecoderReusedKeySets tries to make the per-depth key sets the decoder
// reuses leak keys from one object into the next (a false duplicate) or
// miss a real duplicate, with one decoder for every input as workPool does.
func TestDecoderReusedKeySets(t *testing.T) {
	obj := func(n int, extra string) string {
		var b strings.Builder
		b.WriteByte('{')
		for i := 0; i < n; i++ {
			fmt.Fprintf(&b, `"k%d":%d,`, i, i)
		}
		b.WriteString(extra)
		b.WriteString(`"end":{}}`)
		return b.String()
	}
	big := obj(20, "")
	cases := []struct {
		name string
		in   string
		dup  bool
	}{
		{"siblings with the same keys", "[" + big + "," + big + "," + big + "]", false},
		{"duplicate in the second sibling", "[" + big + "," + obj(20, `"k3":0,`) + "]", true},
		{"nested objects with their parent's keys", `{"a":` + big + `,` + obj(20, `"b":`+big+`,`)[1:], false},
		{"duplicate after a nested object", `{"a":` + big + `,` + big[1:len(big)-1] + `,"a":1}`, true},
		{"huge object then a small one", "[" + obj(2*maxReusedSet, "") + "," + big + "]", false},
		{"after a failed input", big, false},
	}
	var d decoder
	for round := 0; round < 2; round++ {
		for _, c := range cases {
			d.init(strings.NewReader(c.in), 100, -1)
			_, err := d.value(1)
			if err == nil {
				err = d.end()
			}
			if got := errors.Is(err, ErrDuplicateKey); got != c.dup {
				t.Errorf("round %d, %s: duplicate reported %v (err %v), want %v", round, c.name, got, err, c.dup)
			} else if !c.dup && err != nil {
				t.Errorf("round %d, %s: %v", round, c.name, err)
			}
		}
	}
}

// TestReleaseEmptiesKeySets checks that a projector returned to workPool
// keeps its key sets (the point of them) but none of the record's key
// names, undeclared ones included.
func TestReleaseEmptiesKeySets(t *testing.T) {
	pr := new(projector)
	in := `{"a":{"s1":1,"s2":2,"s3":3,"s4":4,"s5":5,"s6":6,"s7":7,"s8":8,"s9":9,"secretKeyName":0},` +
		`"b":1,"c":2,"d":3,"e":4,"f":5,"g":6,"h":7,"i":8,"j":9}`
	pr.dec.init(strings.NewReader(in), 100, -1)
	if _, err := pr.dec.value(1); err != nil {
		t.Fatal(err)
	}
	sets := pr.dec.sets
	if len(sets) < 3 || sets[1] == nil || sets[2] == nil {
		t.Fatalf("the decoder kept no key set per depth: %v", sets)
	}
	pr.release()
	for depth, m := range sets {
		if len(m) != 0 {
			t.Errorf("depth %d: a released projector's key set still holds %d names", depth, len(m))
		}
	}
	if len(pr.dec.sets) != len(sets) {
		t.Errorf("release dropped the key sets (%d of %d kept)", len(pr.dec.sets), len(sets))
	}
}
