package catalog

import (
	"context"
	"fmt"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// The one parser of dataset documents. The catalog reads a document with
// parseDocument (JSON or YAML into a tree, refusing duplicate keys, deep
// nesting and alias bombs) and hands kin-openapi the JSON of that tree, never
// the publisher's bytes. The gateway's record validator and the REST adapter
// read documents through ParseOpenAPI and DocumentJSON, the same two steps,
// so no part of the system can read a field the catalog did not classify.

// DocumentJSON returns a dataset document (JSON or YAML) as the catalog
// reads it, as JSON. Every failure is a *ValidationError.
func DocumentJSON(data []byte) ([]byte, error) {
	v := newReport()
	if len(data) > MaxDocumentSize {
		v.Add("", "the document is %d bytes; expected at most %d bytes (4 MiB)", len(data), MaxDocumentSize)
		return nil, v.err()
	}
	if _, jsonData := parseDocument(data, v); jsonData != nil && v.err() == nil {
		return jsonData, nil
	}
	return nil, v.err()
}

// ParseOpenAPI reads a dataset document (JSON or YAML) into kin-openapi's
// model: through DocumentJSON, then kin-openapi without external references
// (a gateway must not fetch URLs a publisher names), then its validation,
// which kin-openapi's schema validation relies on. Documents reach gateways
// only after LoadDocument accepted them; this is how they read them again.
func ParseOpenAPI(ctx context.Context, data []byte) (*openapi3.T, error) {
	jsonData, err := DocumentJSON(data)
	if err != nil {
		return nil, err
	}
	doc, err := loadOpenAPI(ctx, jsonData)
	if err != nil {
		return nil, fmt.Errorf("%s: not a valid OpenAPI document: %s", documentWhat, firstLine(err.Error()))
	}
	var verr error
	if err := safely(func() error {
		verr = doc.Validate(ctx)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("%s: the document could not be validated: %w", documentWhat, err)
	}
	if verr != nil {
		return nil, fmt.Errorf("%s: invalid OpenAPI: %w", documentWhat, verr)
	}
	return doc, nil
}

// loadOpenAPI loads JSON made by parseDocument with kin-openapi, never
// following external references and turning the library's panics into
// errors.
func loadOpenAPI(ctx context.Context, jsonData []byte) (*openapi3.T, error) {
	var doc *openapi3.T
	err := safely(func() error {
		loader := &openapi3.Loader{Context: ctx, IsExternalRefsAllowed: false}
		var err error
		doc, err = loader.LoadFromData(jsonData)
		return err
	})
	return doc, err
}

// openAPIProblems loads the document with kin-openapi and adds its
// validation errors to v. A load failure is expected after the walker found
// a bad $ref and is then not repeated.
func openAPIProblems(ctx context.Context, data []byte, v *report, refProblems bool) {
	doc, err := loadOpenAPI(ctx, data)
	if err != nil {
		if !refProblems {
			v.Add("", "not a valid OpenAPI document: %s", firstLine(err.Error()))
		}
		return
	}
	var verr error
	if err := safely(func() error {
		verr = doc.Validate(ctx, openapi3.EnableMultiError())
		return nil
	}); err != nil {
		v.Add("", "the document could not be validated: %v", err)
		return
	}
	if verr == nil {
		return
	}
	errs, ok := verr.(openapi3.MultiError)
	if !ok {
		errs = openapi3.MultiError{verr}
	}
	for _, e := range errs {
		ptr, msg := locate(e)
		v.Add(ptr, "invalid OpenAPI: %s", msg)
	}
}

// componentKeys maps kin-openapi's component section labels to the keys
// of the components object.
var componentKeys = map[string]string{
	"schema": "schemas", "parameter": "parameters", "header": "headers", "request body": "requestBodies",
	"response": "responses", "security scheme": "securitySchemes", "example": "examples",
	"link": "links", "callback": "callbacks", "path item": "pathItems",
}

// locate turns kin-openapi's chain of context errors into a JSON pointer
// and the innermost message.
func locate(err error) (string, string) {
	ptr := ""
	for {
		switch e := err.(type) {
		case *openapi3.SectionValidationError:
			section := e.Section
			if section == "external docs" {
				section = "externalDocs"
			}
			ptr, err = pointer(ptr, section), e.Cause
		case *openapi3.ComponentValidationError:
			key, ok := componentKeys[e.Section]
			if !ok {
				key = e.Section
			}
			ptr, err = pointer(pointer(ptr, key), e.Name), e.Cause
		case *openapi3.PathValidationError:
			ptr, err = pointer(ptr, e.Path), e.Cause
		case *openapi3.OperationValidationError:
			ptr, err = pointer(ptr, strings.ToLower(e.Method)), e.Cause
		case *openapi3.WebhookValidationError:
			ptr, err = pointer(ptr, e.Name), e.Cause
		case *openapi3.PathParametersError:
			return pointer(pointer(ptr, e.Path), strings.ToLower(e.Method)), e.Error()
		case *openapi3.DuplicateOperationIDError:
			if method, path, ok := strings.Cut(e.Endpoint2, " "); ok {
				ptr = pointer(pointer(pointer("/paths", path), strings.ToLower(method)), "operationId")
			}
			return ptr, e.Error()
		case *openapi3.SecurityRequirementSchemeUndefinedError:
			return e.JSONPointer, e.Error()
		default:
			return ptr, firstLine(err.Error())
		}
		if err == nil {
			return ptr, "invalid"
		}
	}
}

// firstLine keeps the first line of a multi-line library message.
func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(line)
}
