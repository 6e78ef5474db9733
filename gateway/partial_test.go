package gateway

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lienthong/lienthong/gateway/projection"
)

func TestPartialDocumentDropsOnlyRequiredLists(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "examples", "population.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	partial, err := partialDocument(doc)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(partial), `"required":[`) {
		t.Error("a required list survived")
	}
	if !strings.Contains(string(partial), `"required":true`) {
		t.Error("a parameter's required: true was removed")
	}
	full, err := projection.NewValidator(doc, "Citizen")
	if err != nil {
		t.Fatal(err)
	}
	part, err := projection.NewValidator(partial, "Citizen")
	if err != nil {
		t.Fatal(err)
	}
	var onlyName, badType any
	_ = json.Unmarshal([]byte(`{"fullName":"Nguyễn Văn An"}`), &onlyName)
	_ = json.Unmarshal([]byte(`{"fullName":"Nguyễn Văn An","sex":"robot"}`), &badType)
	if full.Validate(onlyName) == nil {
		t.Error("the full schema accepts a record without its required members")
	}
	if err := part.Validate(onlyName); err != nil {
		t.Errorf("the partial schema refuses a partial record: %v", err)
	}
	if part.Validate(badType) == nil {
		t.Error("the partial schema accepts a value outside its enum")
	}
}
