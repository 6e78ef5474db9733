package event

import (
	"strings"
	"testing"
)

// BenchmarkParse parses an event like the router's bench events (the
// envelope and a small record with one nested object), and writes its
// envelope back as the router does.
func BenchmarkParse(b *testing.B) {
	raw := []byte(strings.Replace(good, `{"fullName":"Nguyễn Văn An"}`,
		`{"registrationId":"KS-000001","seq":1,"province":"01","child":{"fullName":"Nguyễn Văn An","personalId":"001225004321","ethnicity":"01"}}`, 1))
	b.ReportAllocs()
	var buf [512]byte
	for b.Loop() {
		e, err := Parse(raw)
		if err != nil {
			b.Fatal(err)
		}
		_ = e.AppendEnvelope(buf[:0])
	}
}
