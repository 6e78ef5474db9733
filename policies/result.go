package policies

import (
	"errors"
	"fmt"
	"slices"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/lienthong/lienthong/catalog"
)

var (
	kAllow    = ast.StringTerm("allow")
	kMasks    = ast.StringTerm("masks")
	kRowScope = ast.StringTerm("row_scope")
	kGrantID  = ast.StringTerm("grant_id")
	kReasons  = ast.StringTerm("reasons")
	kCode     = ast.StringTerm("code")
	kMessage  = ast.StringTerm("message")
	kField    = ast.StringTerm("field")
	kValues   = ast.StringTerm("values")
)

// generateDecision replaces OPA's generic AST-to-Go conversion for the
// decision query: decoding straight into a Decision saves a map per field and
// reason.
func generateDecision(t *ast.Term, _ *rego.EvalContext) (any, error) {
	d, err := decodeDecision(t.Value)
	if err != nil {
		return nil, fmt.Errorf("decision: %w", err)
	}
	return &d, nil
}

// rawTerm keeps a result as AST, for applyAgency to check its shape.
func rawTerm(t *ast.Term, _ *rego.EvalContext) (any, error) { return t, nil }

func decodeDecision(v ast.Value) (Decision, error) {
	obj, ok := v.(ast.Object)
	if !ok {
		return Decision{}, fmt.Errorf("is %s, not an object", ast.ValueName(v))
	}
	d := Decision{Fields: []string{}, Masks: map[string]catalog.Mask{}}
	if t := obj.Get(kAllow); t != nil {
		b, ok := t.Value.(ast.Boolean)
		if !ok {
			return Decision{}, fmt.Errorf("allow is %s, not a boolean", ast.ValueName(t.Value))
		}
		d.Allow = bool(b)
	}
	if t := obj.Get(kFields); t != nil {
		fs, err := stringList(t.Value)
		if err != nil {
			return Decision{}, fmt.Errorf("fields: %w", err)
		}
		d.Fields = fs
	}
	if t := obj.Get(kMasks); t != nil {
		mo, ok := t.Value.(ast.Object)
		if !ok {
			return Decision{}, fmt.Errorf("masks is %s, not an object", ast.ValueName(t.Value))
		}
		var err error
		mo.Foreach(func(k, m *ast.Term) {
			ks, ok1 := k.Value.(ast.String)
			ms, ok2 := m.Value.(ast.String)
			if !ok1 || !ok2 {
				err = fmt.Errorf("masks must map paths to mask names")
				return
			}
			d.Masks[string(ks)] = catalog.Mask(ms)
		})
		if err != nil {
			return Decision{}, err
		}
	}
	// A row scope that is present but malformed is an error, never "no
	// scope": dropping it would widen the grant to every row.
	if t := obj.Get(kRowScope); t != nil {
		if _, isNull := t.Value.(ast.Null); !isNull {
			rs, ok := t.Value.(ast.Object)
			if !ok {
				return Decision{}, fmt.Errorf("row_scope is %T, not an object", t.Value)
			}
			scope := &catalog.RowScope{Values: []string{}}
			ft := rs.Get(kField)
			if ft == nil {
				return Decision{}, errors.New("row_scope has no field")
			}
			f, ok := ft.Value.(ast.String)
			if !ok || f == "" {
				return Decision{}, errors.New("row_scope has no field")
			}
			scope.Field = string(f)
			vs := rs.Get(kValues)
			if vs == nil {
				return Decision{}, errors.New("row_scope has no values")
			}
			vals, err := stringList(vs.Value)
			if err != nil {
				return Decision{}, fmt.Errorf("row_scope values: %w", err)
			}
			scope.Values = vals
			d.RowScope = scope
		}
	}
	if t := obj.Get(kGrantID); t != nil {
		if s, ok := t.Value.(ast.String); ok {
			d.GrantID = string(s)
		}
	}
	if t := obj.Get(kReasons); t != nil {
		var bad bool
		add := func(r *ast.Term) {
			ro, ok := r.Value.(ast.Object)
			if !ok {
				bad = true
				return
			}
			d.Reasons = append(d.Reasons, Reason{Code: str(ro, kCode), Message: str(ro, kMessage), Field: str(ro, kField)})
		}
		switch rs := t.Value.(type) {
		case *ast.Array:
			d.Reasons = make([]Reason, 0, rs.Len())
			rs.Foreach(add)
		case ast.Set:
			d.Reasons = make([]Reason, 0, rs.Len())
			rs.Foreach(add)
		default:
			bad = true
		}
		if bad {
			return Decision{}, fmt.Errorf("reasons must be a list of {code, message} objects")
		}
	}
	slices.Sort(d.Fields)
	return d, nil
}

func str(o ast.Object, k *ast.Term) string {
	if t := o.Get(k); t != nil {
		if s, ok := t.Value.(ast.String); ok {
			return string(s)
		}
	}
	return ""
}

// stringList reads an array or set of strings.
func stringList(v ast.Value) ([]string, error) {
	var out []string
	var bad bool
	add := func(t *ast.Term) {
		if s, ok := t.Value.(ast.String); ok {
			out = append(out, string(s))
		} else {
			bad = true
		}
	}
	switch x := v.(type) {
	case *ast.Array:
		out = make([]string, 0, x.Len())
		x.Foreach(add)
	case ast.Set:
		out = make([]string, 0, x.Len())
		x.Foreach(add)
	default:
		return nil, fmt.Errorf("is %s, not a list", ast.ValueName(v))
	}
	if bad {
		return nil, fmt.Errorf("holds something other than strings")
	}
	return out, nil
}
