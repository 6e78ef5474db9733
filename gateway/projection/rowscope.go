package projection

import (
	"encoding/json"
	"strings"

	"github.com/lienthong/lienthong/catalog"
)

// Lookup walks a dotted path through a record in encoding/json's form
// (map[string]any, as Options.Validate and Options.Keep receive it) and
// returns the value there. It goes through objects only: a path that meets
// an array, or a missing key, finds nothing.
func Lookup(v any, path string) (any, bool) {
	for seg := range strings.SplitSeq(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[seg]; !ok {
			return nil, false
		}
	}
	return v, true
}

// RowScopeFilter returns the row filter of a grant's row scope, for
// Options.Keep or ProjectRecords: it keeps a record whose scope field (found
// with Lookup) is a string or number literal among the scope's values, and
// leaves out every other record, including one without the field, so a
// backend that omits it cannot widen the scope.
func RowScopeFilter(rs *catalog.RowScope) func(record any) bool {
	allowed := make(map[string]bool, len(rs.Values))
	for _, v := range rs.Values {
		allowed[v] = true
	}
	field := rs.Field
	return func(rec any) bool {
		v, ok := Lookup(rec, field)
		if !ok {
			return false
		}
		switch t := v.(type) {
		case string:
			return allowed[t]
		case json.Number:
			return allowed[t.String()]
		}
		return false
	}
}
