package api

import "testing"

func TestDuplicateMember(t *testing.T) {
	for _, tc := range []struct {
		name, body, pointer, key string
	}{
		{"none", `{"role":"auditor","name":"x"}`, "", ""},
		{"same key twice", `{"role":"auditor","role":"platform-admin"}`, "/role", "role"},
		{"escaped", `{"role":"auditor","r\u006fle":"platform-admin"}`, "/role", "role"},
		{"other case", `{"role":"auditor","Role":"platform-admin"}`, "/Role", "Role"},
		{"nested", `{"purpose":{"code":"1","text":"t","code":"2"}}`, "/purpose/code", "code"},
		{"in an array item", `{"fields":[{"path":"a"},{"path":"b","mask":"hash","path":"religion"}]}`, "/fields/1/path", "path"},
		{"after an array", `{"a":[1,[2,3],{}],"b":{},"a":0}`, "/a", "a"},
		{"same key in sibling objects is fine", `{"x":{"k":1},"y":{"k":2},"z":[{"k":1},{"k":2}]}`, "", ""},
		{"pointer escapes", `{"a/b~":1,"a/b~":2}`, "/a~1b~0", "a/b~"},
		{"top-level array", `[{"k":1,"k":2}]`, "/0/k", "k"},
		{"scalar", `"just a string"`, "", ""},
		{"malformed is left to the decoder", `{"role":`, "", ""},
		{"trailing value is not looked at", `{"a":1} {"a":1,"a":2}`, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, k := duplicateMember([]byte(tc.body))
			if p != tc.pointer || k != tc.key {
				t.Errorf("duplicateMember(%s) = %q %q, want %q %q", tc.body, p, k, tc.pointer, tc.key)
			}
		})
	}
}

func FuzzDuplicateMember(f *testing.F) {
	for _, s := range []string{`{"a":1,"a":2}`, `[{"b":[{"c":1,"C":2}]}]`, `{"x":{"y":{}}}`, `[]`, `{`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, k := duplicateMember(data)
		if (p == "") != (k == "") {
			t.Fatalf("pointer %q and key %q disagree", p, k)
		}
	})
}
