package catalog

import (
	"fmt"
	"regexp"

	"go.yaml.in/yaml/v3"
)

// EventTypes reads the change event types a dataset publishes from its
// document: info.x-events, a list of CloudEvents types, e.g.
//
//	info:
//	  x-events:
//	    - vn.gov.civilstatus.birth.registered
//
// A feed refuses an event whose type is not listed. It is kept apart from
// LoadDocument so the document's field derivation is untouched; a document
// without x-events publishes no events. Duplicates and malformed names are
// errors naming their JSON pointer.
func EventTypes(doc []byte) ([]string, error) {
	if len(doc) > MaxDocumentSize {
		return nil, Invalid(documentWhat, "", "the document is too large")
	}
	var d struct {
		Info struct {
			Events yaml.Node `yaml:"x-events"`
		} `yaml:"info"`
	}
	if err := yaml.Unmarshal(doc, &d); err != nil {
		return nil, Invalid(documentWhat, "", "the document could not be read")
	}
	n := &d.Info.Events
	if n.Kind == 0 {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, Invalid(documentWhat, "/info/x-events", "expected a list of event types")
	}
	seen := map[string]bool{}
	types := make([]string, 0, len(n.Content))
	for i, item := range n.Content {
		at := fmt.Sprintf("/info/x-events/%d", i)
		if item.Kind != yaml.ScalarNode || item.Tag != "!!str" || !eventTypePattern.MatchString(item.Value) {
			return nil, Invalid(documentWhat, at, "expected a dotted lower-case event type such as vn.gov.civilstatus.birth.registered")
		}
		if seen[item.Value] {
			return nil, Invalid(documentWhat, at, "the event type is listed twice")
		}
		seen[item.Value] = true
		types = append(types, item.Value)
	}
	return types, nil
}

var eventTypePattern = regexp.MustCompile(`^[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*){2,15}$`)
