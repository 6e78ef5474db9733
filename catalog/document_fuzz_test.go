package catalog

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoadDocument checks that no input makes LoadDocument panic, that every
// failure is a *ValidationError with well-formed pointers, and that every
// document it accepts yields well-formed, classified fields. The seed corpus
// is in testdata/fuzz/FuzzLoadDocument; the examples and fixtures are added
// here too so the seeds follow them when they change.
func FuzzLoadDocument(f *testing.F) {
	for _, pattern := range []string{"../examples/*.yaml", "testdata/documents/*"} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := LoadDocument(context.Background(), data)
		if err != nil {
			var verr *ValidationError
			if !errors.As(err, &verr) || len(verr.Problems) == 0 {
				t.Fatalf("error %T %v; want a *ValidationError with problems", err, err)
			}
			for _, p := range verr.Problems {
				if p.Pointer != "" && !strings.HasPrefix(p.Pointer, "/") {
					t.Errorf("pointer %q is not an RFC 6901 JSON pointer", p.Pointer)
				}
				if p.Message == "" {
					t.Errorf("problem at %q has no message", p.Pointer)
				}
			}
			return
		}
		checkFields(t, doc)
	})
}

// checkFields asserts what every accepted document guarantees its users.
func checkFields(t *testing.T, doc *Document) {
	t.Helper()
	if len(doc.Fields) == 0 {
		t.Fatal("accepted a document without fields")
	}
	if level := doc.MinConsumerLevel(); level < 1 || level > 5 {
		t.Errorf("MinConsumerLevel = %d", level)
	}
	byPath := make(map[string]Field, len(doc.Fields))
	for i, f := range doc.Fields {
		if !f.Classification.Valid() {
			t.Errorf("field %q has classification %q", f.Path, f.Classification)
		}
		if f.Path == "" {
			t.Errorf("field with an empty path: %+v", f)
		}
		for _, segment := range strings.Split(f.Path, ".") {
			if segment == "" {
				t.Errorf("field path %q has an empty segment", f.Path)
			}
		}
		if f.Type == "" || f.Type == "null" {
			t.Errorf("field %q has type %q", f.Path, f.Type)
		}
		if f.Type == "array" && !f.Array {
			t.Errorf("array field %q is not marked Array", f.Path)
		}
		if i > 0 && doc.Fields[i-1].Path >= f.Path {
			t.Errorf("fields not sorted and unique: %q before %q", doc.Fields[i-1].Path, f.Path)
		}
		byPath[f.Path] = f
	}
	// Every field's parent is listed as an object or array field, and the
	// children of an array are marked Array.
	for _, f := range doc.Fields {
		i := strings.LastIndexByte(f.Path, '.')
		if i < 0 {
			continue
		}
		parent, ok := byPath[f.Path[:i]]
		switch {
		case !ok:
			t.Errorf("field %q has no parent field", f.Path)
		case parent.Type != "object" && parent.Type != "array":
			t.Errorf("field %q is below %q of type %q", f.Path, parent.Path, parent.Type)
		case parent.Array && !f.Array:
			t.Errorf("field %q is below array %q but not marked Array", f.Path, parent.Path)
		}
	}
}
