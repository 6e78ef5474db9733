package audit

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestFileSinkAppendsWholeLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	s, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			r := &Record{Time: time.Now(), ExchangeID: "x" + string(rune('a'+i%26)), Side: "provider", Fields: []string{"fullName"}, Status: 200}
			if err := s.Write(context.Background(), r); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopening appends rather than truncating.
	s, err = OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write(context.Background(), &Record{ExchangeID: "last"}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	f, _ := os.Open(path)
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %d is not a whole record: %v", n+1, err)
		}
		n++
	}
	if n != 51 {
		t.Fatalf("%d records, want 51", n)
	}
	if info, _ := os.Stat(path); info.Mode().Perm() != 0o600 {
		t.Errorf("audit file mode %v, want 0600", info.Mode().Perm())
	}
	if err := s.Write(context.Background(), &Record{}); err == nil {
		t.Error("write after close succeeded")
	}
}
