package catalog

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// ParseOpenAPI is how gateways and adapters read a document again; it must
// read exactly what LoadDocument accepted and refuse what it refused, so no
// part of the system reads a field the catalog did not classify.
func TestParseOpenAPIReadsAsTheCatalog(t *testing.T) {
	ctx := context.Background()
	population := readFile(t, "../examples/population.yaml")
	doc, err := ParseOpenAPI(ctx, population)
	if err != nil {
		t.Fatalf("the population example: %v", err)
	}
	if doc.Components == nil || doc.Components.Schemas["Citizen"] == nil {
		t.Fatal("the record schema is missing from the parsed document")
	}

	// A key written twice: kin-openapi's own YAML reader keeps the last, so
	// an unclassified "religion" could hide behind a classified one.
	dup := strings.Replace(string(population), "openapi: 3.1.0", "openapi: 3.1.0\nopenapi: 3.0.3", 1)
	if dup == string(population) {
		t.Fatal("fixture: the example does not start with openapi: 3.1.0")
	}
	for name, data := range map[string][]byte{
		"duplicate key":  []byte(dup),
		"too large":      make([]byte, MaxDocumentSize+1),
		"not a document": []byte("- just\n- a list\n"),
		"external ref": []byte(`{"openapi":"3.1.0","info":{"title":"t","version":"1"},"paths":{},
			"components":{"schemas":{"R":{"$ref":"https://example.com/x.json#/R"}}}}`),
	} {
		_, err := ParseOpenAPI(ctx, data)
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
		if _, lerr := LoadDocument(ctx, data); lerr == nil {
			t.Errorf("%s: LoadDocument accepted what ParseOpenAPI refused", name)
		}
	}
	var v *ValidationError
	if _, err := DocumentJSON([]byte(dup)); !errors.As(err, &v) || v.Problems[0].Pointer != "/openapi" {
		t.Errorf("duplicate key: %v, want a problem at /openapi", err)
	}
	js, err := DocumentJSON(population)
	if err != nil || !strings.HasPrefix(string(js), "{") {
		t.Fatalf("DocumentJSON of the example: %.40s %v", js, err)
	}
}
