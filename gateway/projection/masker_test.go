package projection

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/lienthong/lienthong/catalog"
)

// wantHash is the hash mask of canonical JSON, computed independently.
func wantHash(canonical string) string {
	h := hmac.New(sha256.New, testKey)
	h.Write([]byte(canonical))
	return "hmac-sha256:" + hex.EncodeToString(h.Sum(nil))
}

func TestNewMasker(t *testing.T) {
	if _, err := NewMasker(make([]byte, 31), 4); err == nil {
		t.Error("a 31-byte key was accepted")
	}
	if _, err := NewMasker(testKey, -1); err == nil {
		t.Error("a negative partial length was accepted")
	}
	m, err := NewMasker(testKey, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Partial("001099012345"); got != "********2345" {
		t.Errorf("default partial = %q", got)
	}
	// The key is copied: changing the caller's slice changes nothing.
	key := append([]byte(nil), testKey...)
	m2, _ := NewMasker(key, 0)
	key[0] ^= 0xff
	if m2.Hash([]byte(`"x"`)) != wantHash(`"x"`) {
		t.Error("the Masker shares the caller's key slice")
	}
}

func TestPartial(t *testing.T) {
	m := testMasker(t)
	m2, _ := NewMasker(testKey, 2)
	for _, c := range []struct {
		m        *Masker
		in, want string
	}{
		{m, "079203001234", "********1234"},
		{m, "Nguyễn Văn An", "*********n An"}, // runes, not bytes; spaces are masked too
		{m, "Trần Thị Bích Ngọc", "**************Ngọc"},
		{m, "😀😀😀😀😀😀😀😀", "****😀😀😀😀"},
		{m, "12345678", "****5678"},
		{m, "1234567", "****567"}, // never more than half
		{m, "AB", "*B"},
		{m, "A", "*"},
		{m, "", ""},
		{m2, "079203001234", "**********34"},
	} {
		if got := c.m.Partial(c.in); got != c.want {
			t.Errorf("Partial(%q) = %q; want %q", c.in, got, c.want)
		}
	}
}

func TestCanonicalNumber(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"0", "0"}, {"-0", "0"}, {"0.000", "0"}, {"0e5", "0"},
		{"1", "1"}, {"1.0", "1"}, {"10e-1", "1"}, {"0.1e1", "1"}, {"1E0", "1"}, {"100e-2", "1"},
		{"-12", "-12"}, {"1200", "1200"}, {"12e2", "1200"},
		{"1.5", "1.5e0"}, {"15e-1", "1.5e0"}, {"0.015", "1.5e-2"},
		{"123456789012345678901", "123456789012345678901"},
		{"1234567890123456789012", "1.234567890123456789012e21"},
		{"12345678901234567890123456789", "1.2345678901234567890123456789e28"},
		{"0.1000000000000000000001", "1.000000000000000000001e-1"},
		{"1e400", "1e400"}, {"-2.5E-10", "-2.5e-10"},
		{"1e99999999999999999999", "1e99999999999999999999"}, // beyond int64: as written
	} {
		if got := canonicalNumber(c.in); got != c.want {
			t.Errorf("canonicalNumber(%s) = %s; want %s", c.in, got, c.want)
		}
	}
}

func TestMasks(t *testing.T) {
	hashRe := regexp.MustCompile(`^"hmac-sha256:[0-9a-f]{64}"$`)
	nullify, hash, partial := catalog.MaskNullify, catalog.MaskHash, catalog.MaskPartial
	cases := []projCase{
		{name: "hash a string", fields: []string{"personalId"}, masks: map[string]catalog.Mask{"personalId": hash},
			in: `{"personalId":"079203001234"}`, want: `{"personalId":"` + wantHash(`"079203001234"`) + `"}`},
		{name: "hash uses the decoded string", fields: []string{"s"}, masks: map[string]catalog.Mask{"s": hash},
			in: `{"s":"\u0041\/"}`, want: `{"s":"` + wantHash(`"A/"`) + `"}`},
		{name: "hash a number canonically", fields: []string{"n"}, masks: map[string]catalog.Mask{"n": hash},
			in: `{"n":10e-1}`, want: `{"n":"` + wantHash(`1`) + `"}`},
		{name: "hash an object over sorted keys", fields: []string{"o"}, masks: map[string]catalog.Mask{"o": hash},
			in: `{"o":{"b":1.0,"a":[true,null,"x"]}}`, want: `{"o":"` + wantHash(`{"a":[true,null,"x"],"b":1}`) + `"}`},
		{name: "hash an array as a whole", fields: []string{"tags"}, masks: map[string]catalog.Mask{"tags": hash},
			in: `{"tags":["a","b"]}`, want: `{"tags":"` + wantHash(`["a","b"]`) + `"}`},
		{name: "hash covers only the allowed parts", fields: []string{"a.b"}, masks: map[string]catalog.Mask{"a": hash},
			in: `{"a":{"b":1,"secret":2}}`, want: `{"a":"` + wantHash(`{"b":1}`) + `"}`},
		{name: "hash after inner masks", fields: []string{"a"}, masks: map[string]catalog.Mask{"a": hash, "a.b": nullify},
			in: `{"a":{"b":"x","c":"y"}}`, want: `{"a":"` + wantHash(`{"b":null,"c":"y"}`) + `"}`},
		{name: "hash a boolean", fields: []string{"b"}, masks: map[string]catalog.Mask{"b": hash},
			in: `{"b":true}`, want: `{"b":"` + wantHash(`true`) + `"}`},
		{name: "hash keeps null", fields: []string{"n"}, masks: map[string]catalog.Mask{"n": hash},
			in: `{"n":null}`, want: `{"n":null}`},
		{name: "partial a string", fields: []string{"fullName"}, masks: map[string]catalog.Mask{"fullName": partial},
			in: `{"fullName":"Nguy\u1ec5n V\u0103n An"}`, want: `{"fullName":"*********n An"}`},
		{name: "partial a number as written", fields: []string{"n"}, masks: map[string]catalog.Mask{"n": partial},
			in: `{"n":79203001234}`, want: `{"n":"*******1234"}`},
		{name: "partial a boolean gives null", fields: []string{"b"}, masks: map[string]catalog.Mask{"b": partial},
			in: `{"b":false}`, want: `{"b":null}`},
		{name: "partial an object gives null", fields: []string{"o"}, masks: map[string]catalog.Mask{"o": partial},
			in: `{"o":{"a":"0123456789"}}`, want: `{"o":null}`},
		{name: "partial an array gives null", fields: []string{"phones"}, masks: map[string]catalog.Mask{"phones": partial},
			in: `{"phones":["0912345678"]}`, want: `{"phones":null}`},
		{name: "nullify anything", fields: []string{"s", "o", "a", "n"},
			masks: map[string]catalog.Mask{"s": nullify, "o": nullify, "a": nullify, "n": nullify},
			in:    `{"s":"x","o":{"k":1},"a":[1],"n":5}`, want: `{"s":null,"o":null,"a":null,"n":null}`},
		{name: "mask on each item of an array of objects", fields: []string{"relatives"},
			masks: map[string]catalog.Mask{"relatives.personalId": partial},
			in:    `[{"relatives":[{"fullName":"A","personalId":"001099012345"},{"fullName":"B"},{"personalId":null}]}]`,
			want:  `[{"relatives":[{"fullName":"A","personalId":"********2345"},{"fullName":"B"},{"personalId":null}]}]`},
		{name: "mask below a leaf grant inside arrays", fields: []string{"r.id"}, masks: map[string]catalog.Mask{"r.id": nullify},
			in: `{"r":[[{"id":1,"x":2}]]}`, want: `{"r":[[{"id":null}]]}`},
		{name: "a mask on a path that is not allowed is ignored", fields: []string{"a"},
			masks: map[string]catalog.Mask{"b": nullify, "c.d": hash},
			in:    `{"a":1,"b":2,"c":{"d":3}}`, want: `{"a":1}`},
		{name: "a mask does not touch siblings", fields: []string{"p"}, masks: map[string]catalog.Mask{"p.x": nullify},
			in: `{"p":{"x":1,"xy":2,"y":{"x":3}}}`, want: `{"p":{"x":null,"xy":2,"y":{"x":3}}}`},
		{name: "a mask on a dropped scalar does not resurrect it", fields: []string{"a.b"}, masks: map[string]catalog.Mask{"a": nullify},
			in: `{"a":"secret"}`, want: `{}`},
	}
	runCases(t, cases)

	// Equal values hash equally however they are written, across records.
	got, _, err := run(t, []string{"v"}, map[string]catalog.Mask{"v": hash},
		`[{"v":{"a":1,"b":"\u00e9"}},{"v":{"b":"é","a":1.0}},{"v" : { "b" : "é" , "a" : 10E-1 }}]`, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var recs []map[string]json.RawMessage
	if err := json.Unmarshal([]byte(got), &recs); err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 || !hashRe.Match(recs[0]["v"]) ||
		string(recs[0]["v"]) != string(recs[1]["v"]) || string(recs[1]["v"]) != string(recs[2]["v"]) {
		t.Fatalf("hashes differ: %s", got)
	}
	// And a different key hashes differently.
	other, _ := NewMasker([]byte(strings.Repeat("k", 32)), 0)
	if other.Hash([]byte(`"x"`)) == testMasker(t).Hash([]byte(`"x"`)) {
		t.Fatal("two keys give the same hash")
	}
}
