// Package jsonstrict decodes configuration files strictly: a key the Go type
// does not declare (a typo such as "maxStalness"), a key given twice, or a
// value of the wrong type is refused, and each refusal names its JSON path
// (rateLimit.perSecond, backends["VN:GOV:…/population"].rest.timeout), so an
// operator finds the line to fix. encoding/json alone would ignore the typo,
// keep the last duplicate and report a type error without saying where.
//
// Keys match the `json` tag exactly (encoding/json matches case-insensitively,
// which would let "MaxStaleness" and "maxStaleness" both pass).
package jsonstrict

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// Decode decodes the JSON document raw into v (a pointer), refusing what the
// package comment lists. All refusals are returned, joined.
func Decode(raw []byte, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return errors.New("jsonstrict: Decode needs a non-nil pointer")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	var doc json.RawMessage
	if err := dec.Decode(&doc); err != nil {
		return fmt.Errorf("not a JSON document: %w", err)
	}
	if len(bytes.Trim(raw[dec.InputOffset():], " \t\r\n")) > 0 {
		return errors.New("more than one JSON value in the document, or bytes after it")
	}
	if pointer, key, found := FindDuplicate(doc); found {
		return fmt.Errorf("%s: key given twice in one object (as %q; keys are compared unescaped and regardless of case)", pointer, key)
	}
	var errs []error
	decode(doc, rv.Elem(), "", &errs)
	return errors.Join(errs...)
}

var unmarshaler = reflect.TypeFor[json.Unmarshaler]()

func decode(raw json.RawMessage, v reflect.Value, path string, errs *[]error) {
	if reflect.PointerTo(v.Type()).Implements(unmarshaler) {
		leaf(raw, v, path, errs)
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if string(bytes.TrimSpace(raw)) == "null" {
			v.SetZero()
			return
		}
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		decode(raw, v.Elem(), path, errs)
	case reflect.Struct:
		fields := jsonFields(v.Type())
		members(raw, path, errs, func(key string, value json.RawMessage) {
			i, ok := fields[key]
			if !ok {
				*errs = append(*errs, fmt.Errorf("%s: unknown key", join(path, key)))
				return
			}
			decode(value, v.Field(i), join(path, key), errs)
		})
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String {
			leaf(raw, v, path, errs)
			return
		}
		if string(bytes.TrimSpace(raw)) == "null" {
			v.SetZero()
			return
		}
		if v.IsNil() {
			v.Set(reflect.MakeMap(v.Type()))
		}
		members(raw, path, errs, func(key string, value json.RawMessage) {
			elem := reflect.New(v.Type().Elem()).Elem()
			decode(value, elem, path+"["+strconv.Quote(key)+"]", errs)
			v.SetMapIndex(reflect.ValueOf(key).Convert(v.Type().Key()), elem)
		})
	case reflect.Slice:
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			*errs = append(*errs, fmt.Errorf("%s: want a list", orRoot(path)))
			return
		}
		if items == nil {
			v.SetZero()
			return
		}
		s := reflect.MakeSlice(v.Type(), len(items), len(items))
		for i, item := range items {
			decode(item, s.Index(i), path+"["+strconv.Itoa(i)+"]", errs)
		}
		v.Set(s)
	default:
		leaf(raw, v, path, errs)
	}
}

// members calls fn for each member of the object raw, refusing anything
// that is not an object. Duplicates were refused by Decode, by the one rule
// of FindDuplicate.
func members(raw json.RawMessage, path string, errs *[]error, fn func(key string, value json.RawMessage)) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		*errs = append(*errs, fmt.Errorf("%s: want an object", orRoot(path)))
		return
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			*errs = append(*errs, fmt.Errorf("%s: %w", orRoot(path), err))
			return
		}
		key := t.(string)
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			*errs = append(*errs, fmt.Errorf("%s: %w", join(path, key), err))
			return
		}
		fn(key, value)
	}
}

// leaf decodes a value encoding/json handles whole (numbers, strings, types
// with their own UnmarshalJSON), naming the path on error.
func leaf(raw json.RawMessage, v reflect.Value, path string, errs *[]error) {
	if err := json.Unmarshal(raw, v.Addr().Interface()); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			err = fmt.Errorf("want %s, not a JSON %s", describe(te.Type), te.Value)
		}
		*errs = append(*errs, fmt.Errorf("%s: %w", orRoot(path), err))
	}
}

func describe(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return "a " + t.String()
}

// jsonFields maps each JSON key of a struct type to its field index.
func jsonFields(t reflect.Type) map[string]int {
	out := map[string]int{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = i
	}
	return out
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func orRoot(path string) string {
	if path == "" {
		return "(document)"
	}
	return path
}
