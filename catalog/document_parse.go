package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/lienthong/lienthong/internal/jsonstrict"
	"go.yaml.in/yaml/v3"
)

// Parsing: JSON or YAML into a plain tree (map[string]any, []any, string,
// json.Number, bool, nil), reporting duplicate keys with their pointers.

// parseDocument returns the document as a tree and as JSON for kin-openapi,
// or a nil tree when it cannot be read (the reasons are in v).
func parseDocument(data []byte, v *report) (any, []byte) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 {
		v.Add("", "the document is empty; expected an OpenAPI 3.0 or 3.1 document in JSON or YAML")
		return nil, nil
	}
	var root any
	var ok bool
	if trimmed[0] == '{' || trimmed[0] == '[' {
		root, ok = parseJSON(data, v)
	} else {
		root, ok = parseYAML(data, v)
	}
	if !ok {
		return nil, nil
	}
	if _, isObject := root.(map[string]any); !isObject {
		v.Add("", "expected an OpenAPI document (an object with openapi, info, paths, components), found %s", describe(root))
		return nil, nil
	}
	if trimmed[0] == '{' {
		return root, data
	}
	out, err := json.Marshal(root)
	if err != nil { // unreachable: the tree holds only JSON values
		v.Add("", "the document cannot be converted to JSON: %v", err)
		return nil, nil
	}
	return root, out
}

// errTooDeep stops parsing a document nested beyond maxNesting.
var errTooDeep = fmt.Errorf("values nest deeper than %d levels", maxNesting)

// jsonParser reads JSON token by token into the tree. Duplicate keys, which
// encoding/json would silently let win, are found before it runs by
// jsonstrict.FindDuplicate, the one rule for them.
type jsonParser struct {
	dec *json.Decoder
	v   *report
}

func parseJSON(data []byte, v *report) (any, bool) {
	if ptr, key, found := jsonstrict.FindDuplicate(data); found {
		v.Add(ptr, "the key %q appears more than once in this object (keys are compared unescaped and regardless of case); each key must appear once, so that no second definition can hide a field from classification", key)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	p := &jsonParser{dec: dec, v: v}
	root, err := p.value("", 0)
	if err == nil {
		if _, extra := dec.Token(); extra != io.EOF {
			err = errors.New("unexpected data after the top-level value")
		}
	}
	if err != nil {
		v.Add("", "the document is not valid JSON%s: %v", jsonPosition(data, dec, err), err)
		return nil, false
	}
	return root, true
}

// jsonPosition tells where in data a JSON error happened, as " (line L,
// column C)".
func jsonPosition(data []byte, dec *json.Decoder, err error) string {
	offset := dec.InputOffset()
	var syntax *json.SyntaxError
	if errors.As(err, &syntax) {
		offset = syntax.Offset
	}
	if offset < 0 || offset > int64(len(data)) {
		return ""
	}
	before := data[:offset]
	line := bytes.Count(before, []byte("\n")) + 1
	column := int(offset) - bytes.LastIndexByte(before, '\n')
	return fmt.Sprintf(" (line %d, column %d)", line, column)
}

func (p *jsonParser) value(ptr string, depth int) (any, error) {
	tok, err := p.dec.Token()
	if err == io.EOF {
		return nil, io.ErrUnexpectedEOF
	}
	if err != nil {
		return nil, err
	}
	delim, isDelim := tok.(json.Delim)
	if !isDelim {
		return tok, nil // string, json.Number, bool or nil
	}
	if depth >= maxNesting {
		return nil, errTooDeep
	}
	switch delim {
	case '{':
		obj := map[string]any{}
		for p.dec.More() {
			keyTok, err := p.dec.Token()
			if err != nil {
				return nil, err
			}
			key, ok := keyTok.(string)
			if !ok {
				return nil, fmt.Errorf("expected an object key, found %v", keyTok)
			}
			child := pointer(ptr, key)
			val, err := p.value(child, depth+1)
			if err != nil {
				return nil, err
			}
			obj[key] = val
		}
		if _, err := p.dec.Token(); err != nil { // the closing brace
			return nil, err
		}
		return obj, nil
	case '[':
		arr := []any{}
		for p.dec.More() {
			val, err := p.value(pointer(ptr, strconv.Itoa(len(arr))), depth+1)
			if err != nil {
				return nil, err
			}
			arr = append(arr, val)
		}
		if _, err := p.dec.Token(); err != nil { // the closing bracket
			return nil, err
		}
		return arr, nil
	}
	return nil, fmt.Errorf("unexpected %v", delim)
}

// yamlConverter turns a yaml.Node tree into the plain tree. yaml.v3 itself
// rejects duplicate keys only when decoding into Go values, and without a
// pointer, so the converter checks them itself.
type yamlConverter struct {
	v         *report
	nodes     int
	expanding map[*yaml.Node]bool // aliases being expanded, to stop cycles
}

func parseYAML(data []byte, v *report) (root any, ok bool) {
	var doc yaml.Node
	err := safely(func() error {
		dec := yaml.NewDecoder(bytes.NewReader(data))
		if err := dec.Decode(&doc); err != nil {
			return err
		}
		var next yaml.Node
		switch err := dec.Decode(&next); {
		case err == io.EOF:
			return nil
		case err != nil:
			return err
		default:
			return errors.New("found more than one YAML document; expected exactly one")
		}
	})
	if err == io.EOF {
		v.Add("", "the document is empty; expected an OpenAPI 3.0 or 3.1 document in JSON or YAML")
		return nil, false
	}
	if err != nil {
		v.Add("", "the document is neither valid JSON nor valid YAML: %v", err)
		return nil, false
	}
	c := &yamlConverter{v: v, expanding: map[*yaml.Node]bool{}}
	if err := safely(func() error {
		var err error
		root, err = c.value(&doc, "", 0)
		return err
	}); err != nil {
		v.Add("", "the YAML document cannot be read: %v", err)
		return nil, false
	}
	return root, true
}

func (c *yamlConverter) value(n *yaml.Node, ptr string, depth int) (any, error) {
	if depth >= maxNesting {
		return nil, errTooDeep
	}
	if c.nodes++; c.nodes > maxYAMLNodes {
		return nil, fmt.Errorf("the document expands to more than %d values (too many aliases)", maxYAMLNodes)
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return c.value(n.Content[0], ptr, depth)
	case yaml.AliasNode:
		if n.Alias == nil || c.expanding[n.Alias] {
			return nil, fmt.Errorf("line %d: alias %q refers to a value that contains it", n.Line, n.Value)
		}
		c.expanding[n.Alias] = true
		defer delete(c.expanding, n.Alias)
		return c.value(n.Alias, ptr, depth+1)
	case yaml.MappingNode:
		obj := make(map[string]any, len(n.Content)/2)
		lines := make(map[string]int, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				c.v.Add(ptr, "line %d: expected a plain key (a string), found a YAML %s", k.Line, yamlKind(k))
				continue
			}
			if k.ShortTag() == "!!merge" {
				c.v.Add(ptr, "line %d: YAML merge keys (<<) are not supported; write the keys out so that each is seen and classified", k.Line)
				continue
			}
			child := pointer(ptr, k.Value)
			if first, dup := lines[jsonstrict.FoldKey(k.Value)]; dup {
				c.v.Add(child, "the key %q appears more than once in this object (lines %d and %d; keys are compared regardless of case); each key must appear once, so that no second definition can hide a field from classification", k.Value, first, k.Line)
			} else {
				lines[jsonstrict.FoldKey(k.Value)] = k.Line
			}
			x, err := c.value(val, child, depth+1)
			if err != nil {
				return nil, err
			}
			obj[k.Value] = x
		}
		return obj, nil
	case yaml.SequenceNode:
		arr := make([]any, 0, len(n.Content))
		for i, item := range n.Content {
			x, err := c.value(item, pointer(ptr, strconv.Itoa(i)), depth+1)
			if err != nil {
				return nil, err
			}
			arr = append(arr, x)
		}
		return arr, nil
	case yaml.ScalarNode:
		return c.scalar(n, ptr), nil
	}
	return nil, fmt.Errorf("line %d: unexpected YAML node", n.Line)
}

// scalar converts one YAML scalar the way kin-openapi reads YAML: timestamps
// stay strings, numbers become json.Number.
func (c *yamlConverter) scalar(n *yaml.Node, ptr string) any {
	switch n.ShortTag() {
	case "!!str", "!!timestamp", "!!binary":
		return n.Value
	case "!!null":
		return nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			c.v.Add(ptr, "line %d: %v", n.Line, err)
		}
		return b
	case "!!int", "!!float":
		var x any
		if err := n.Decode(&x); err != nil {
			c.v.Add(ptr, "line %d: %v", n.Line, err)
			return nil
		}
		switch x := x.(type) {
		case int:
			return json.Number(strconv.Itoa(x))
		case int64:
			return json.Number(strconv.FormatInt(x, 10))
		case uint64:
			return json.Number(strconv.FormatUint(x, 10))
		case float64:
			if math.IsNaN(x) || math.IsInf(x, 0) {
				c.v.Add(ptr, "line %d: %s cannot be written in JSON; expected a finite number", n.Line, n.Value)
				return nil
			}
			return json.Number(strconv.FormatFloat(x, 'g', -1, 64))
		}
		return n.Value
	}
	c.v.Add(ptr, "line %d: unsupported YAML tag %s; expected a plain string, number, boolean or null", n.Line, n.Tag)
	return nil
}

func yamlKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "sequence"
	case yaml.AliasNode:
		return "alias"
	}
	return "node"
}

// safely runs fn and turns a panic in a third-party parser or validator into
// an error, so that no input can crash the caller.
func safely(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error while reading the document: %v", r)
		}
	}()
	return fn()
}

// pointer appends one reference token to an RFC 6901 JSON pointer.
func pointer(ptr, token string) string {
	token = strings.ReplaceAll(token, "~", "~0")
	token = strings.ReplaceAll(token, "/", "~1")
	return ptr + "/" + token
}

// describe names a tree value's kind (and short value) for messages.
func describe(x any) string {
	switch x := x.(type) {
	case nil:
		return "null"
	case string:
		if r := []rune(x); len(r) > 40 {
			x = string(r[:40]) + "…"
		}
		return strconv.Quote(x)
	case bool:
		return strconv.FormatBool(x)
	case json.Number:
		return "the number " + x.String()
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	}
	return fmt.Sprintf("%T", x)
}
