package catalog

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestExampleDocumentsDeclareTheirEvents loads every example dataset: each
// must be a valid document, and its x-events list must read.
func TestExampleDocumentsDeclareTheirEvents(t *testing.T) {
	want := map[string]int{"birth-registration.yaml": 1, "death-registration.yaml": 1, "population.yaml": 2, "social-insurance.yaml": 0}
	for name, n := range want {
		doc, err := os.ReadFile(filepath.Join("..", "examples", name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := LoadDocument(context.Background(), doc); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		types, err := EventTypes(doc)
		if err != nil || len(types) != n {
			t.Errorf("%s: %v %v; want %d types", name, types, err, n)
		}
	}
}
