package projection

import (
	"encoding/json"
	"math"
	"reflect"
	"strconv"

	"github.com/getkin/kin-openapi/openapi3"
)

// Matching: a compiled nativeNode judges a record in either of its two
// forms, encoding/json's values (match) and the projection's decoded ones
// (matchValue). The two walks repeat the same rules on purpose: sharing them
// through a function value makes the decoded value escape to the heap, one
// allocation more per projected record, validated or not.

// match reports whether v, a value in encoding/json's UseNumber form,
// satisfies n.
func (n *nativeNode) match(v any) bool {
	if v == nil && n.acceptNull {
		return true
	}
	if n.always != 0 {
		return n.always > 0
	}
	if n.empty {
		return v != nil
	}
	if n.not != nil && n.not.match(v) {
		return false
	}
	if n.hasXOf {
		if len(n.oneOf) != 0 {
			matched := 0
			for _, sub := range n.oneOf {
				if sub.match(v) {
					matched++
				}
			}
			if matched != 1 {
				return false
			}
		}
		if len(n.anyOf) != 0 {
			found := false
			for _, sub := range n.anyOf {
				if sub.match(v) {
					found = true
					break
				}
			}
			if !found {
				return false
			}
		}
		for _, sub := range n.allOf {
			if !sub.match(v) {
				return false
			}
		}
		if v == nil {
			return true
		}
	}
	if n.enum != nil && !n.inEnum(v) {
		return false
	}
	switch v := v.(type) {
	case nil:
		return false
	case bool:
		return n.permBool
	case json.Number:
		f, err := v.Float64()
		if err != nil {
			return false
		}
		return n.matchNumber(f)
	case string:
		return n.matchString(v)
	case []any:
		return n.matchArray(v)
	case map[string]any:
		return n.matchObject(v)
	}
	return false
}

func (n *nativeNode) inEnum(v any) bool {
	if n.enumStrings != nil {
		s, ok := v.(string)
		if !ok {
			return false
		}
		_, ok = n.enumStrings[s]
		return ok
	}
	for _, e := range n.enum {
		if sameJSON(e, v) {
			return true
		}
	}
	return false
}

// sameJSON compares a schema value a with a record value b as kin-openapi's
// enum does: numbers by their float64 value, arrays and objects member by
// member, anything else by type and value.
func sameJSON(a, b any) bool {
	if x, ok := asFloat(a); ok {
		y, ok := asFloat(b)
		return ok && x == y
	}
	switch a := a.(type) {
	case []any:
		b, ok := b.([]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for i := range a {
			if !sameJSON(a[i], b[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for k, x := range a {
			y, ok := b[k]
			if !ok || !sameJSON(x, y) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

// asFloat reads the numeric types a schema's or a record's values come in.
func asFloat(v any) (float64, bool) {
	switch v := v.(type) {
	case json.Number:
		f, err := v.Float64()
		return f, err == nil
	case float64:
		return v, true
	case float32:
		return float64(v), true
	case int:
		return float64(v), true
	case int8:
		return float64(v), true
	case int16:
		return float64(v), true
	case int32:
		return float64(v), true
	case int64:
		return float64(v), true
	case uint:
		return float64(v), true
	case uint8:
		return float64(v), true
	case uint16:
		return float64(v), true
	case uint32:
		return float64(v), true
	case uint64:
		return float64(v), true
	}
	return 0, false
}

func (n *nativeNode) matchNumber(f float64) bool {
	requireInteger := n.permInteger && !n.permNumber
	if requireInteger {
		if f != math.Trunc(f) {
			return false
		}
		if n.intFormat != nil && !integerFormatOK(n.intFormat, f) {
			return false
		}
	} else {
		if !n.permInteger && !n.permNumber {
			return false
		}
		if n.numberFormat != nil && n.numberFormat.Validate(f) != nil {
			return false
		}
	}
	if n.exclMin != nil && !(f > *n.exclMin) {
		return false
	}
	if n.exclMax != nil && !(f < *n.exclMax) {
		return false
	}
	if n.min != nil && !(*n.min <= f) {
		return false
	}
	if n.max != nil && !(*n.max >= f) {
		return false
	}
	return true
}

// integerFormatOK hands f to an integer format as kin-openapi does: as an
// int64, refusing what lies outside int64's range.
func integerFormatOK(format openapi3.IntegerFormatValidator, f float64) bool {
	switch {
	case f == float64(math.MaxInt64):
		return format.Validate(math.MaxInt64) == nil
	case f >= float64(math.MinInt64) && f < float64(math.MaxInt64):
		return format.Validate(int64(f)) == nil
	}
	return false
}

func (n *nativeNode) matchString(s string) bool {
	if !n.permString {
		return false
	}
	if n.minLength != 0 || n.maxLength != nil {
		// kin-openapi counts code points (its surrogate test never fires on
		// decoded runes); an invalid byte counts as one.
		length := uint64(0)
		for range s {
			length++
		}
		if n.minLength != 0 && length < n.minLength {
			return false
		}
		if n.maxLength != nil && length > *n.maxLength {
			return false
		}
	}
	if n.pattern != nil && !n.pattern.MatchString(s) {
		return false
	}
	if n.stringFormat != nil && n.stringFormat.Validate(s) != nil {
		return false
	}
	return true
}

func (n *nativeNode) matchArray(a []any) bool {
	if !n.permArray {
		return false
	}
	if n.minItems != 0 && uint64(len(a)) < n.minItems {
		return false
	}
	if n.maxItems != nil && uint64(len(a)) > *n.maxItems {
		return false
	}
	if n.items != nil {
		for _, x := range a {
			if !n.items.match(x) {
				return false
			}
		}
	}
	return true
}

func (n *nativeNode) matchObject(m map[string]any) bool {
	if !n.permObject {
		return false
	}
	if n.minProps != 0 && uint64(len(m)) < n.minProps {
		return false
	}
	if n.maxProps != nil && uint64(len(m)) > *n.maxProps {
		return false
	}
	for k, x := range m {
		if sub, ok := n.properties[k]; ok {
			if x != nil && n.writeOnly != nil {
				if _, wo := n.writeOnly[k]; wo {
					return false
				}
			}
			if !sub.match(x) {
				return false
			}
			continue
		}
		if n.addlDenied {
			return false
		}
		if n.addl != nil && !n.addl.match(x) {
			return false
		}
	}
	for _, k := range n.required {
		if _, ok := m[k]; ok {
			continue
		}
		if _, wo := n.writeOnly[k]; wo {
			continue
		}
		return false
	}
	return true
}

// matchValue is match on the decoder's own representation, which spares
// building the record's map[string]any form; it must decide as match does
// on toAny(v) (TestNativeValueAgreesWithMap).
func (n *nativeNode) matchValue(v *value) bool {
	null := v.kind == kindNull
	if null && n.acceptNull {
		return true
	}
	if n.always != 0 {
		return n.always > 0
	}
	if n.empty {
		return !null
	}
	if n.not != nil && n.not.matchValue(v) {
		return false
	}
	if n.hasXOf {
		if len(n.oneOf) != 0 {
			matched := 0
			for _, sub := range n.oneOf {
				if sub.matchValue(v) {
					matched++
				}
			}
			if matched != 1 {
				return false
			}
		}
		if len(n.anyOf) != 0 {
			found := false
			for _, sub := range n.anyOf {
				if sub.matchValue(v) {
					found = true
					break
				}
			}
			if !found {
				return false
			}
		}
		for _, sub := range n.allOf {
			if !sub.matchValue(v) {
				return false
			}
		}
		if null {
			return true
		}
	}
	if n.enum != nil {
		if n.enumStrings != nil {
			if v.kind != kindString {
				return false
			}
			if _, ok := n.enumStrings[v.s]; !ok {
				return false
			}
		} else if !n.inEnum(toAny(v)) {
			return false
		}
	}
	switch v.kind {
	case kindBool:
		return n.permBool
	case kindNumber:
		// As json.Number.Float64 reads the literal.
		f, err := strconv.ParseFloat(v.s, 64)
		if err != nil {
			return false
		}
		return n.matchNumber(f)
	case kindString:
		return n.matchString(v.s)
	case kindArray:
		return n.matchArrayValue(v.items)
	case kindObject:
		return n.matchObjectValue(v.members)
	}
	return false
}

func (n *nativeNode) matchArrayValue(a []value) bool {
	if !n.permArray {
		return false
	}
	if n.minItems != 0 && uint64(len(a)) < n.minItems {
		return false
	}
	if n.maxItems != nil && uint64(len(a)) > *n.maxItems {
		return false
	}
	if n.items != nil {
		for i := range a {
			if !n.items.matchValue(&a[i]) {
				return false
			}
		}
	}
	return true
}

// matchObjectValue checks an object's members; keys are unique (the
// decoder refuses duplicates), so required keys are counted as met.
func (n *nativeNode) matchObjectValue(ms []member) bool {
	if !n.permObject {
		return false
	}
	if n.minProps != 0 && uint64(len(ms)) < n.minProps {
		return false
	}
	if n.maxProps != nil && uint64(len(ms)) > *n.maxProps {
		return false
	}
	met := 0
	for i := range ms {
		k, x := ms[i].key, &ms[i].val
		if n.requiredSet != nil {
			if _, ok := n.requiredSet[k]; ok {
				met++
			}
		}
		if sub, ok := n.properties[k]; ok {
			if x.kind != kindNull && n.writeOnly != nil {
				if _, wo := n.writeOnly[k]; wo {
					return false
				}
			}
			if !sub.matchValue(x) {
				return false
			}
			continue
		}
		if n.addlDenied {
			return false
		}
		if n.addl != nil && !n.addl.matchValue(x) {
			return false
		}
	}
	return met == len(n.requiredSet)
}
