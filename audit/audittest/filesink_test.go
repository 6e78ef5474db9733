package audittest_test

import (
	"bytes"
	"crypto/ed25519"
	"path/filepath"
	"testing"

	"github.com/lienthong/lienthong/audit"
	"github.com/lienthong/lienthong/audit/audittest"
)

// The file sink passes the suite, with rotation small enough to happen in
// it, and its log verifies after each subtest.
func TestFileSinkConforms(t *testing.T) {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, ed25519.SeedSize))
	audittest.Run(t, audittest.Harness{
		Open: func(t *testing.T, dir string) audit.Sink {
			s, err := audit.OpenFile(filepath.Join(dir, "audit.jsonl"), audit.Options{
				Gateway: "VN:GOV:000.00.00.G01:GW", Key: key, CheckpointEvery: 32, SegmentBytes: 32 << 10})
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		Close: func(s audit.Sink) error { return s.(*audit.FileSink).Close() },
		Read: func(t *testing.T, dir string) []audit.Record {
			path := filepath.Join(dir, "audit.jsonl")
			files, err := audit.LogFiles(path)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := audit.Verify(files, nil); err != nil {
				t.Fatal(err)
			}
			recs, err := audit.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			return recs
		},
		Chained: true,
	})
}
