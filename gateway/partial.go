package gateway

import (
	"encoding/json"
	"fmt"

	"github.com/lienthong/lienthong/catalog"
)

// partialDocument returns the dataset document (YAML or JSON), read as the
// catalog reads it (catalog.DocumentJSON), as JSON with
// every schema's `required` list removed. Records an adapter fetched only in
// part (the granted columns) are validated against it: the same types,
// formats and patterns, without demanding members that were never selected.
func partialDocument(doc []byte) ([]byte, error) {
	asJSON, err := catalog.DocumentJSON(doc)
	if err != nil {
		return nil, err
	}
	var tree any
	if err := json.Unmarshal(asJSON, &tree); err != nil {
		return nil, fmt.Errorf("dataset document: %w", err)
	}
	stripRequired(tree)
	return json.Marshal(tree)
}

// stripRequired deletes `required` where it is a list (a schema's required
// members), leaving `required: true` of parameters and bodies alone.
func stripRequired(v any) {
	switch t := v.(type) {
	case map[string]any:
		if _, isList := t["required"].([]any); isList {
			delete(t, "required")
		}
		for _, child := range t {
			stripRequired(child)
		}
	case []any:
		for _, child := range t {
			stripRequired(child)
		}
	}
}
