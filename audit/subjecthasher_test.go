package audit

import (
	"fmt"
	"sync"
	"testing"
)

// TestSubjectHasherIsSubject checks the pooled hasher against
// SubjectKey.Subject from many goroutines at once, so a state reused
// without its reset, or shared by two callers, shows as a wrong subject.
func TestSubjectHasherIsSubject(t *testing.T) {
	key := SubjectKey([]byte("0123456789abcdef0123456789abcdef"))
	other := SubjectKey([]byte("fedcba9876543210fedcba9876543210"))
	h := NewSubjectHasher(key)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				id := fmt.Sprintf("%012d", g*1000+i)
				if i%7 == 0 {
					id = "" // the empty id, and a long one
				} else if i%11 == 0 {
					id += id + id
				}
				got := h.Subject(id)
				if want := key.Subject(id); got != want {
					errs <- fmt.Errorf("Subject(%q) = %s, want %s", id, got, want)
					return
				}
				if got == other.Subject(id) {
					errs <- fmt.Errorf("Subject(%q) under another key is the same", id)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
