package catalog

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors that stores and services wrap, so callers (the management
// API above all) can map them to HTTP statuses with errors.Is.
var (
	// ErrNotFound means the addressed object does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict means the object already exists or its state forbids the change.
	ErrConflict = errors.New("conflict")
	// ErrForbidden means the caller is authenticated but may not do this.
	ErrForbidden = errors.New("forbidden")
)

// Problem is one precise complaint about input: where (a JSON pointer into
// the submitted document, or a field name) and what was expected there.
type Problem struct {
	// Pointer is an RFC 6901 JSON pointer, e.g. "/components/schemas/Citizen/properties/fullName".
	Pointer string `json:"pointer"`
	// Message says what is wrong and what is expected.
	Message string `json:"message"`
}

// ValidationError collects every Problem found in one input, so a publisher
// fixes all of them in one round rather than one per attempt.
type ValidationError struct {
	// What names the input, e.g. "dataset document" or "system".
	What     string
	Problems []Problem
}

// Error lists the problems; the first few suffice for a log line.
func (e *ValidationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "invalid %s", e.What)
	for i, p := range e.Problems {
		if i == 5 {
			fmt.Fprintf(&b, "; and %d more", len(e.Problems)-5)
			break
		}
		sep := ": "
		if i > 0 {
			sep = "; "
		}
		if p.Pointer != "" {
			fmt.Fprintf(&b, "%s%s: %s", sep, p.Pointer, p.Message)
		} else {
			fmt.Fprintf(&b, "%s%s", sep, p.Message)
		}
	}
	return b.String()
}

// Add records one problem.
func (e *ValidationError) Add(pointer, format string, args ...any) {
	e.Problems = append(e.Problems, Problem{Pointer: pointer, Message: fmt.Sprintf(format, args...)})
}

// Err returns e if it holds any problem and nil otherwise, so validators can
// end with `return v.Err()`.
func (e *ValidationError) Err() error {
	if e == nil || len(e.Problems) == 0 {
		return nil
	}
	return e
}

// Invalid builds a ValidationError with a single problem.
func Invalid(what, pointer, format string, args ...any) error {
	v := &ValidationError{What: what}
	v.Add(pointer, format, args...)
	return v
}
