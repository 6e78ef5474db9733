package catalog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func mustLoad(t *testing.T, data []byte) *Document {
	t.Helper()
	doc, err := LoadDocument(context.Background(), data)
	if err != nil {
		t.Fatalf("LoadDocument: %v", err)
	}
	return doc
}

func field(t *testing.T, doc *Document, path string) Field {
	t.Helper()
	for _, f := range doc.Fields {
		if f.Path == path {
			return f
		}
	}
	t.Fatalf("no field %q", path)
	return Field{}
}

func TestLoadDocumentExamples(t *testing.T) {
	tests := []struct {
		file, code, record string
		fields             int
		want               []Field // spot checks (Description is not compared)
	}{
		{
			file: "population.yaml", code: "population", record: "Citizen", fields: 57,
			want: []Field{
				{Path: "personalId", Type: "string", Classification: Personal},
				{Path: "ethnicity", Type: "string", Classification: Sensitive},
				{Path: "religion", Type: "string", Classification: Sensitive},
				{Path: "dateOfBirth", Type: "string", Format: "date", Classification: Personal},
				{Path: "dateOfDeath", Type: "string", Format: "date", Classification: Personal},
				{Path: "permanentResidence", Type: "object", Classification: Personal},
				{Path: "permanentResidence.provinceCode", Type: "string", Classification: Internal},
				{Path: "permanentResidence.addressLine", Type: "string", Classification: Personal},
				{Path: "temporaryResidence.wardCode", Type: "string", Classification: Internal},
				{Path: "spouse.fullName", Type: "string", Classification: Personal},
				{Path: "relatives", Type: "array", Classification: Personal, Array: true},
				{Path: "relatives.fullName", Type: "string", Classification: Personal, Array: true},
				{Path: "updatedAt", Type: "string", Format: "date-time", Classification: Internal},
			},
		},
		{
			file: "birth-registration.yaml", code: "birth-registration", record: "BirthRegistration", fields: 40,
			want: []Field{
				{Path: "registrationOffice", Type: "object", Classification: Public, DefaultShared: true},
				{Path: "registrationOffice.code", Type: "string", Classification: Public, DefaultShared: true},
				{Path: "child.ethnicity", Type: "string", Classification: Sensitive},
				{Path: "child.placeOfBirth.provinceCode", Type: "string", Classification: Internal},
				{Path: "father.personalId", Type: "string", Classification: Personal},
				{Path: "registrationId", Type: "string", Format: "uuid", Classification: Internal},
			},
		},
		{
			file: "social-insurance.yaml", code: "social-insurance", record: "InsuredPerson", fields: 28,
			want: []Field{
				{Path: "insuranceNumber", Type: "string", Classification: Personal},
				{Path: "healthInsuranceCard.registeredHospital.code", Type: "string", Classification: Internal},
				{Path: "employer.unitCode", Type: "string", Classification: Internal},
				{Path: "benefits", Type: "array", Classification: Sensitive, Array: true},
				{Path: "benefits.diagnosisCode", Type: "string", Classification: Sensitive, Array: true},
				{Path: "benefits.amount", Type: "integer", Classification: Personal, Array: true},
				{Path: "contributionSalary", Type: "integer", Classification: Personal},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			doc := mustLoad(t, readFile(t, filepath.Join("..", "examples", tt.file)))
			if doc.Code != tt.code || doc.RecordSchema != tt.record {
				t.Errorf("code, record = %q, %q; want %q, %q", doc.Code, doc.RecordSchema, tt.code, tt.record)
			}
			if doc.Title == "" || doc.Description == "" || doc.APIVersion != "1.0.0" {
				t.Errorf("info not read: %q %q %q", doc.Title, doc.Description, doc.APIVersion)
			}
			if len(doc.Fields) != tt.fields {
				t.Errorf("%d fields, want %d", len(doc.Fields), tt.fields)
			}
			if got := doc.MinConsumerLevel(); got != DefaultPersonalDataLevel || doc.DeclaredMinLevel != 0 {
				t.Errorf("MinConsumerLevel = %d (declared %d), want %d", got, doc.DeclaredMinLevel, DefaultPersonalDataLevel)
			}
			for _, want := range tt.want {
				got := field(t, doc, want.Path)
				got.Description = ""
				if got != want {
					t.Errorf("field %s = %+v, want %+v", want.Path, got, want)
				}
			}
			checkFields(t, doc)
		})
	}
	t.Run("descriptions", func(t *testing.T) {
		doc := mustLoad(t, readFile(t, "../examples/population.yaml"))
		// The description next to a $ref wins over the referenced schema's.
		if got := field(t, doc, "permanentResidence").Description; got != "Nơi thường trú" {
			t.Errorf("permanentResidence description = %q", got)
		}
		if got := field(t, doc, "permanentResidence.addressLine").Description; got == "" {
			t.Error("nested description not copied")
		}
	})
}

func TestLoadDocumentVersions(t *testing.T) {
	t.Run("3.1 type arrays, $ref siblings, $defs", func(t *testing.T) {
		doc := mustLoad(t, readFile(t, "testdata/documents/openapi31.json"))
		want := []Field{
			{Path: "firstRegistered", Type: "string", Format: "date", Classification: Internal},
			{Path: "inspections", Type: "array", Classification: Internal, Array: true},
			{Path: "inspections.date", Type: "string", Format: "date", Classification: Internal, Array: true},
			{Path: "inspections.station", Type: "string", Classification: Public, Array: true},
			{Path: "model", Type: "string", Classification: Public, DefaultShared: true},
			{Path: "owner", Type: "object", Classification: Personal, Description: "Chủ xe"},
			{Path: "owner.fullName", Type: "string", Classification: Personal},
			{Path: "owner.personalId", Type: "string", Classification: Personal},
			{Path: "plate", Type: "string", Classification: Internal, Description: "Biển số"},
		}
		if fmt.Sprint(doc.Fields) != fmt.Sprint(want) {
			t.Errorf("fields:\n got %+v\nwant %+v", doc.Fields, want)
		}
		if doc.RecordSchema != "Vehicle" || doc.Code != "vehicle-registration" {
			t.Errorf("record %q code %q", doc.RecordSchema, doc.Code)
		}
		if doc.DeclaredMinLevel != 2 || doc.MinConsumerLevel() != 2 {
			t.Errorf("declared level %d, MinConsumerLevel %d; want 2, 2", doc.DeclaredMinLevel, doc.MinConsumerLevel())
		}
	})
	t.Run("3.0 YAML with allOf and integer status keys", func(t *testing.T) {
		doc := mustLoad(t, readFile(t, "testdata/documents/openapi30.yaml"))
		want := []Field{
			{Path: "closedOn", Type: "string", Format: "date", Classification: Public},
			{Path: "headOffice", Type: "object", Classification: Internal},
			{Path: "headOffice.provinceCode", Type: "string", Classification: Public},
			{Path: "name", Type: "string", Classification: Public, Description: "Tên doanh nghiệp"},
			{Path: "taxCode", Type: "string", Classification: Public, DefaultShared: true},
		}
		if fmt.Sprint(doc.Fields) != fmt.Sprint(want) {
			t.Errorf("fields:\n got %+v\nwant %+v", doc.Fields, want)
		}
		if doc.MinConsumerLevel() != 1 {
			t.Errorf("MinConsumerLevel = %d for public data, want 1", doc.MinConsumerLevel())
		}
	})
	t.Run("JSON with a byte order mark", func(t *testing.T) {
		data := append([]byte("\xef\xbb\xbf"), readFile(t, "testdata/documents/openapi31.json")...)
		mustLoad(t, data)
	})
}

// doc builds a small OpenAPI document; schemas is the JSON of
// components.schemas and extra is added to info.
func doc(version, extra, paths, schemas string) []byte {
	return []byte(fmt.Sprintf(`{"openapi": %q, "info": {"title": "T", "version": "1"%s}, "paths": %s, "components": {"schemas": %s}}`,
		version, extra, paths, schemas))
}

// citizen is a record schema with the given properties (JSON).
func citizen(props string) string {
	return `{"Citizen": {"type": "object", "properties": {` + props + `}}}`
}

const (
	fullName = `"fullName": {"type": "string", "x-classification": "personal"}`
	allowed  = "public, internal, personal, sensitive"
)

func TestLoadDocumentProblems(t *testing.T) {
	const path = `/paths/~1citizens~1{id}/get/responses/200/content/application~1json/schema`
	inlinePaths := `{"/citizens/{id}": {"get": {"parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
		"responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {"type": "object", "properties": {
			"items": {"type": "array", "x-classification": "personal", "items": {"$ref": "#/components/schemas/Citizen"}},
			"total": {"type": "integer"}}}}}}}}}}`

	tests := []struct {
		name    string
		data    []byte
		pointer string
		message []string // each must appear in the problem's message
	}{
		{
			name: "missing x-classification in a nested object",
			data: doc("3.1.0", "", "{}", citizen(fullName+`, "address": {"type": "object", "x-classification": "personal", "properties": {
				"provinceCode": {"type": "string"}}}`)),
			pointer: "/components/schemas/Citizen/properties/address/properties/provinceCode",
			message: []string{"missing x-classification", allowed},
		},
		{
			name: "missing x-classification in array items",
			data: doc("3.1.0", "", "{}", citizen(fullName+`, "relatives": {"type": "array", "x-classification": "personal",
				"items": {"type": "object", "properties": {"fullName": {"type": "string"}}}}`)),
			pointer: "/components/schemas/Citizen/properties/relatives/items/properties/fullName",
			message: []string{"missing x-classification", allowed},
		},
		{
			name:    "missing x-classification in an inline response schema",
			data:    doc("3.1.0", "", inlinePaths, citizen(fullName)),
			pointer: path + "/properties/total",
			message: []string{"missing x-classification", allowed},
		},
		{
			name: "missing x-classification in an allOf member",
			data: doc("3.1.0", "", "{}", `{"Citizen": {"allOf": [{"type": "object", "properties": {`+fullName+`}},
				{"type": "object", "properties": {"sex": {"type": "string"}}}]}}`),
			pointer: "/components/schemas/Citizen/allOf/1/properties/sex",
			message: []string{"missing x-classification", allowed},
		},
		{
			name: "missing x-classification in a schema that is not the record",
			data: doc("3.1.0", `, "x-record-schema": "Citizen"`, "{}", `{"Citizen": {"type": "object", "properties": {`+fullName+`}},
				"Problem": {"type": "object", "properties": {"detail": {"type": "string"}}}}`),
			pointer: "/components/schemas/Problem/properties/detail",
			message: []string{"missing x-classification", allowed},
		},
		{
			name:    "a boolean schema cannot carry a classification",
			data:    doc("3.1.0", "", "{}", citizen(fullName+`, "anything": true`)),
			pointer: "/components/schemas/Citizen/properties/anything",
			message: []string{"expected a schema object with x-classification", allowed, "found true"},
		},
		{
			name:    "wrong x-classification value",
			data:    doc("3.1.0", "", "{}", citizen(`"fullName": {"type": "string", "x-classification": "secret"}`)),
			pointer: "/components/schemas/Citizen/properties/fullName/x-classification",
			message: []string{"expected one of " + allowed, `found "secret"`},
		},
		{
			name:    "x-classification is case-sensitive",
			data:    doc("3.1.0", "", "{}", citizen(`"fullName": {"type": "string", "x-classification": "Personal"}`)),
			pointer: "/components/schemas/Citizen/properties/fullName/x-classification",
			message: []string{"expected one of " + allowed, `found "Personal"`},
		},
		{
			name:    "non-boolean x-default-shared",
			data:    doc("3.1.0", "", "{}", citizen(`"fullName": {"type": "string", "x-classification": "public", "x-default-shared": "yes"}`)),
			pointer: "/components/schemas/Citizen/properties/fullName/x-default-shared",
			message: []string{"expected a boolean", `found "yes"`},
		},
		{
			name:    "sensitive fields are never shared by default",
			data:    doc("3.1.0", "", "{}", citizen(`"religion": {"type": "string", "x-classification": "sensitive", "x-default-shared": true}`)),
			pointer: "/components/schemas/Citizen/properties/religion/x-default-shared",
			message: []string{"sensitive field cannot be shared by default"},
		},
		{
			name:    "several schemas and no x-record-schema",
			data:    doc("3.1.0", "", "{}", `{"Citizen": {"type": "object", "properties": {`+fullName+`}}, "Address": {"type": "object"}}`),
			pointer: "/info",
			message: []string{"set x-record-schema", "Address, Citizen"},
		},
		{
			name:    "no schemas at all",
			data:    doc("3.1.0", "", "{}", `{}`),
			pointer: "/info",
			message: []string{"no record schema", "x-record-schema"},
		},
		{
			name:    "x-record-schema names an unknown schema",
			data:    doc("3.1.0", `, "x-record-schema": "Person"`, "{}", citizen(fullName)),
			pointer: "/info/x-record-schema",
			message: []string{`no schema "Person"`, "expected one of: Citizen"},
		},
		{
			name:    "x-record-schema is not a string",
			data:    doc("3.1.0", `, "x-record-schema": 7`, "{}", citizen(fullName)),
			pointer: "/info/x-record-schema",
			message: []string{"expected the name of the record schema", "the number 7"},
		},
		{
			name:    "record schema is not an object",
			data:    doc("3.1.0", "", "{}", `{"Citizen": {"type": "string"}}`),
			pointer: "/components/schemas/Citizen",
			message: []string{"must be an object", `"string"`},
		},
		{
			name:    "record schema without properties",
			data:    doc("3.1.0", "", "{}", `{"Citizen": {"type": "object"}}`),
			pointer: "/components/schemas/Citizen",
			message: []string{"has no properties", "at least one classified property"},
		},
		{
			name:    "dotted property name",
			data:    doc("3.1.0", "", "{}", citizen(fullName+`, "home.address": {"type": "string", "x-classification": "personal"}`)),
			pointer: "/components/schemas/Citizen/properties/home.address",
			message: []string{`"home.address"`, `without "."`},
		},
		{
			name:    "empty property name",
			data:    doc("3.1.0", "", "{}", citizen(fullName+`, "": {"type": "string", "x-classification": "personal"}`)),
			pointer: "/components/schemas/Citizen/properties/",
			message: []string{"non-empty name"},
		},
		{
			name:    "duplicate keys in JSON",
			data:    readFile(t, "testdata/documents/duplicate-keys.json"),
			pointer: "/components/schemas/Citizen/properties/fullName",
			message: []string{`"fullName" appears more than once`, "each key must appear once"},
		},
		{
			name:    "duplicate keys in YAML",
			data:    readFile(t, "testdata/documents/duplicate-keys.yaml"),
			pointer: "/components/schemas/Citizen/properties/fullName",
			message: []string{`"fullName" appears more than once`, "lines 11 and 14"},
		},
		{
			name:    "duplicate keys written with escapes",
			data:    doc("3.1.0", "", "{}", citizen(fullName+`, "full\u004eame": {"type": "string"}`)),
			pointer: "/components/schemas/Citizen/properties/fullName",
			message: []string{"appears more than once"},
		},
		{
			// A consumer reading with encoding/json fills one field from both.
			name:    "duplicate keys in another case",
			data:    doc("3.1.0", "", "{}", citizen(fullName+`, "FullName": {"type": "string"}`)),
			pointer: "/components/schemas/Citizen/properties/FullName",
			message: []string{`"FullName" appears more than once`, "regardless of case"},
		},
		{
			name:    "external $ref",
			data:    doc("3.1.0", "", "{}", citizen(fullName+`, "address": {"$ref": "common.yaml#/Address", "x-classification": "personal"}`)),
			pointer: "/components/schemas/Citizen/properties/address/$ref",
			message: []string{"external reference", "common.yaml#/Address", "inside this document"},
		},
		{
			name:    "external $ref by URL",
			data:    doc("3.1.0", "", "{}", citizen(fullName+`, "address": {"$ref": "http://169.254.169.254/latest", "x-classification": "personal"}`)),
			pointer: "/components/schemas/Citizen/properties/address/$ref",
			message: []string{"external reference"},
		},
		{
			name:    "local $ref to a missing schema",
			data:    doc("3.1.0", "", "{}", citizen(fullName+`, "address": {"$ref": "#/components/schemas/Address", "x-classification": "personal"}`)),
			pointer: "/components/schemas/Citizen/properties/address/$ref",
			message: []string{"points to nothing", "/components/schemas/Address"},
		},
		{
			name:    "$ref to an anchor",
			data:    doc("3.1.0", "", "{}", citizen(fullName+`, "address": {"$ref": "#address", "x-classification": "personal"}`)),
			pointer: "/components/schemas/Citizen/properties/address/$ref",
			message: []string{"expected a JSON pointer fragment"},
		},
		{
			name:    "recursive schema",
			data:    readFile(t, "testdata/documents/recursive.json"),
			pointer: "/components/schemas/Person/properties/father/$ref",
			message: []string{"recursive reference to /components/schemas/Person", "must be finite"},
		},
		{
			name: "recursion through allOf",
			data: doc("3.1.0", "", "{}", `{"Citizen": {"type": "object", "properties": {`+fullName+`,
				"next": {"x-classification": "personal", "allOf": [{"$ref": "#/components/schemas/Citizen"}]}}}}`),
			pointer: "/components/schemas/Citizen/properties/next/allOf/0/$ref",
			message: []string{"recursive reference"},
		},
		{
			name:    "a $ref cycle",
			data:    doc("3.1.0", `, "x-record-schema": "A"`, "{}", `{"A": {"$ref": "#/components/schemas/B"}, "B": {"$ref": "#/components/schemas/A"}}`),
			pointer: "/components/schemas/B/$ref",
			message: []string{"recursive reference to /components/schemas/A"},
		},
		{
			name:    "missing openapi version",
			data:    []byte(`{"info": {"title": "T", "version": "1"}, "paths": {}}`),
			pointer: "/openapi",
			message: []string{"missing", "3.0.0 to 3.0.4 or 3.1.0 to 3.1.2"},
		},
		{
			name:    "Swagger 2.0",
			data:    []byte(`{"swagger": "2.0", "openapi": "2.0", "info": {"title": "T", "version": "1"}}`),
			pointer: "/openapi",
			message: []string{`unsupported OpenAPI version "2.0"`, "3.1.0"},
		},
		{
			name:    "OpenAPI 3.2",
			data:    doc("3.2.0", "", "{}", citizen(fullName)),
			pointer: "/openapi",
			message: []string{`unsupported OpenAPI version "3.2.0"`},
		},
		{
			name:    "version as a number",
			data:    []byte("openapi: 3.1\ninfo: {title: T, version: '1'}\n"),
			pointer: "/openapi",
			message: []string{"unsupported OpenAPI version the number 3.1"},
		},
		{
			name:    "oversize",
			data:    append(doc("3.1.0", "", "{}", citizen(fullName)), bytes.Repeat([]byte(" "), MaxDocumentSize)...),
			pointer: "",
			message: []string{"expected at most 4194304 bytes"},
		},
		{
			name:    "truncated JSON",
			data:    []byte(`{"openapi": "3.1.0", "info": {`),
			pointer: "",
			message: []string{"not valid JSON", "line 1"},
		},
		{
			name:    "data after the JSON document",
			data:    append(doc("3.1.0", "", "{}", citizen(fullName)), []byte(` {}`)...),
			pointer: "",
			message: []string{"not valid JSON", "unexpected data after the top-level value"},
		},
		{
			name:    "a $ref that is not a string",
			data:    doc("3.1.0", "", "{}", citizen(fullName+`, "home": {"$ref": 7, "x-classification": "personal"}`)),
			pointer: "/components/schemas/Citizen/properties/home/$ref",
			message: []string{"expected a reference string", "the number 7"},
		},
		{
			name:    "a YAML key that is not a string",
			data:    []byte("openapi: 3.1.0\ninfo: {title: T, version: '1'}\nx-odd:\n  ? [a, b]\n  : c\n"),
			pointer: "/x-odd",
			message: []string{"line 4", "expected a plain key"},
		},
		{
			name:    "neither JSON nor YAML",
			data:    []byte("openapi: [3.1.0\ninfo: }\n"),
			pointer: "",
			message: []string{"neither valid JSON nor valid YAML"},
		},
		{
			name:    "plain text",
			data:    []byte("hello, world"),
			pointer: "",
			message: []string{"expected an OpenAPI document", `found "hello, world"`},
		},
		{
			name:    "empty",
			data:    []byte("  \n"),
			pointer: "",
			message: []string{"empty"},
		},
		{
			name:    "two YAML documents",
			data:    []byte("openapi: 3.1.0\n---\nopenapi: 3.0.0\n"),
			pointer: "",
			message: []string{"more than one YAML document"},
		},
		{
			name:    "YAML merge keys",
			data:    []byte("openapi: 3.1.0\ninfo: &i {title: T, version: '1'}\nx-info:\n  <<: *i\n"),
			pointer: "/x-info",
			message: []string{"merge keys"},
		},
		{
			name:    "invalid x-dataset-code",
			data:    doc("3.1.0", `, "x-dataset-code": "Population DB"`, "{}", citizen(fullName)),
			pointer: "/info/x-dataset-code",
			message: []string{"lower-case letters, digits and dashes", `found "Population DB"`},
		},
		{
			name:    "x-min-security-level out of range",
			data:    doc("3.1.0", `, "x-min-security-level": 7`, "{}", citizen(fullName)),
			pointer: "/info/x-min-security-level",
			message: []string{"an integer from 1 to 5", "the number 7"},
		},
		{
			name:    "x-min-security-level not an integer",
			data:    doc("3.1.0", `, "x-min-security-level": 2.5`, "{}", citizen(fullName)),
			pointer: "/info/x-min-security-level",
			message: []string{"an integer from 1 to 5"},
		},
		{
			name:    "keyword in the wrong case",
			data:    doc("3.0.3", "", "{}", `{"Citizen": {"type": "object", "properties": {`+fullName+`}, "Properties": {"x": {"type": "string"}}}}`),
			pointer: "/components/schemas/Citizen/Properties",
			message: []string{`expected "properties"`, "case-sensitive"},
		},
		{
			name: "OpenAPI 3.0 ignores properties next to $ref",
			data: doc("3.0.3", `, "x-record-schema": "Citizen"`, "{}", `{"Citizen": {"type": "object", "properties": {`+fullName+`,
				"home": {"$ref": "#/components/schemas/Place", "x-classification": "personal", "properties": {"x": {"type": "string", "x-classification": "personal"}}}}},
				"Place": {"type": "object", "properties": {"name": {"type": "string", "x-classification": "personal"}}}}`),
			pointer: "/components/schemas/Citizen/properties/home/properties",
			message: []string{"OpenAPI 3.0 ignores properties next to $ref", "allOf"},
		},
		{
			name:    "patternProperties in the record",
			data:    doc("3.1.0", "", "{}", `{"Citizen": {"type": "object", "properties": {`+fullName+`}, "patternProperties": {"^x": {"type": "string"}}}}`),
			pointer: "/components/schemas/Citizen/patternProperties",
			message: []string{"not supported in the record schema", "named property"},
		},
		{
			name:    "additionalProperties with a schema in the record",
			data:    doc("3.1.0", "", "{}", citizen(fullName+`, "tags": {"type": "object", "x-classification": "internal", "additionalProperties": {"type": "string"}}`)),
			pointer: "/components/schemas/Citizen/properties/tags/additionalProperties",
			message: []string{"additionalProperties is not supported in the record schema"},
		},
		{
			name:    "$id",
			data:    doc("3.1.0", "", "{}", `{"Citizen": {"$id": "https://example.org/citizen", "type": "object", "properties": {`+fullName+`}}}`),
			pointer: "/components/schemas/Citizen/$id",
			message: []string{"$id is not supported", "local $ref"},
		},
		{
			name:    "two types",
			data:    doc("3.1.0", "", "{}", citizen(fullName+`, "code": {"type": ["string", "integer"], "x-classification": "public"}`)),
			pointer: "/components/schemas/Citizen/properties/code",
			message: []string{"one type besides null", "string, integer"},
		},
		{
			name:    "no type",
			data:    doc("3.1.0", "", "{}", citizen(fullName+`, "code": {"x-classification": "public"}`)),
			pointer: "/components/schemas/Citizen/properties/code",
			message: []string{"missing type", "string, number, integer, boolean, object or array"},
		},
		{
			name:    "only null",
			data:    doc("3.1.0", "", "{}", citizen(fullName+`, "nothing": {"type": "null", "x-classification": "public"}`)),
			pointer: "/components/schemas/Citizen/properties/nothing",
			message: []string{"can only be null", "a type besides null"},
		},
		{
			name: "definitions that disagree",
			data: doc("3.1.0", "", "{}", `{"Citizen": {"allOf": [{"type": "object", "properties": {`+fullName+`}},
				{"type": "object", "properties": {"fullName": {"type": "string", "x-classification": "public"}}}]}}`),
			pointer: "/components/schemas/Citizen/allOf/1/properties/fullName",
			message: []string{`field "fullName" is public here but personal at /components/schemas/Citizen/allOf/0/properties/fullName`, "same x-classification"},
		},
		{
			name:    "kin-openapi validation",
			data:    doc("3.1.0", "", "{}", citizen(`"fullName": {"type": "strin", "x-classification": "personal"}`)),
			pointer: "/components/schemas/Citizen",
			message: []string{"invalid OpenAPI", `"strin"`},
		},
		{
			name:    "kin-openapi example validation",
			data:    doc("3.0.3", "", "{}", citizen(`"personalId": {"type": "string", "pattern": "^[0-9]{12}$", "example": "12", "x-classification": "personal"}`)),
			pointer: "/components/schemas/Citizen",
			message: []string{"invalid OpenAPI", "example"},
		},
		{
			name:    "kin-openapi validation in paths",
			data:    doc("3.1.0", "", `{"/citizens/{id}": {"get": {"responses": {"200": {"description": "ok"}}}}}`, citizen(fullName)),
			pointer: "/paths/~1citizens~1{id}/get",
			message: []string{"invalid OpenAPI", "path parameters"},
		},
		{
			name: "kin-openapi duplicate operation ids",
			data: doc("3.1.0", "", `{"/a": {"get": {"operationId": "x", "responses": {"200": {"description": "ok"}}}},
				"/b": {"get": {"operationId": "x", "responses": {"200": {"description": "ok"}}}}}`, citizen(fullName)),
			pointer: "/paths/~1b/get/operationId",
			message: []string{"invalid OpenAPI", "same operation id"},
		},
		{
			name:    "kin-openapi undefined security scheme",
			data:    []byte(`{"openapi": "3.1.0", "info": {"title": "T", "version": "1"}, "security": [{"mtls": []}], "paths": {}, "components": {"schemas": ` + citizen(fullName) + `}}`),
			pointer: "/security/0/mtls",
			message: []string{"invalid OpenAPI", "mtls"},
		},
		{
			name:    "info missing",
			data:    []byte(`{"openapi": "3.1.0", "paths": {}, "components": {"schemas": ` + citizen(fullName) + `}}`),
			pointer: "/info",
			message: []string{"expected an info object"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := LoadDocument(context.Background(), tt.data)
			if err == nil {
				t.Fatalf("loaded %+v; want a problem at %q", doc, tt.pointer)
			}
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("error %T %v; want *ValidationError", err, err)
			}
			if verr.What != "dataset document" {
				t.Errorf("What = %q", verr.What)
			}
			for _, p := range verr.Problems {
				if p.Pointer != tt.pointer {
					continue
				}
				missing := false
				for _, m := range tt.message {
					if !strings.Contains(p.Message, m) {
						missing = true
					}
				}
				if !missing {
					return
				}
			}
			t.Errorf("no problem at %q whose message contains %q; got:", tt.pointer, tt.message)
			for _, p := range verr.Problems {
				t.Logf("  %q: %s", p.Pointer, p.Message)
			}
		})
	}
}

// TestLoadDocumentListsAllProblems checks that one round reports every
// problem, not only the first.
func TestLoadDocumentListsAllProblems(t *testing.T) {
	data := doc("3.1.0", `, "x-min-security-level": 0`, "{}", citizen(`
		"fullName": {"type": "string"},
		"ethnicity": {"type": "string", "x-classification": "secret"},
		"a.b": {"type": "string", "x-classification": "public"},
		"relatives": {"type": "array", "x-classification": "personal", "items": {"type": "object", "properties": {"fullName": {"type": "string"}}}}`))
	_, err := LoadDocument(context.Background(), data)
	var verr *ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("error %v; want *ValidationError", err)
	}
	want := []string{
		"/components/schemas/Citizen/properties/a.b",
		"/components/schemas/Citizen/properties/ethnicity/x-classification",
		"/components/schemas/Citizen/properties/fullName",
		"/components/schemas/Citizen/properties/relatives/items/properties/fullName",
		"/info/x-min-security-level",
	}
	var got []string
	for _, p := range verr.Problems {
		got = append(got, p.Pointer)
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("pointers:\n got %q\nwant %q", got, want)
	}
	if !strings.HasPrefix(err.Error(), "invalid dataset document: ") {
		t.Errorf("Error() = %q", err.Error())
	}
}

// TestLoadDocumentManyProblems checks that the list of problems is bounded.
func TestLoadDocumentManyProblems(t *testing.T) {
	var props []string
	for i := range 3000 {
		props = append(props, fmt.Sprintf(`"p%d": {"type": "string"}`, i))
	}
	_, err := LoadDocument(context.Background(), doc("3.1.0", "", "{}", citizen(strings.Join(props, ", "))))
	var verr *ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("error %v; want *ValidationError", err)
	}
	if n := len(verr.Problems); n != maxProblems+1 {
		t.Errorf("%d problems, want %d", n, maxProblems+1)
	}
	if last := verr.Problems[maxProblems]; last.Pointer != "" || !strings.Contains(last.Message, "further problems are not listed") {
		t.Errorf("last problem %+v; want a note that problems were left out", last)
	}
}

func TestLoadDocumentRecursion(t *testing.T) {
	t.Run("a schema used at two levels is not recursive", func(t *testing.T) {
		data := doc("3.1.0", `, "x-record-schema": "Citizen"`, "{}", `{
			"Citizen": {"allOf": [{"$ref": "#/components/schemas/Base"}, {"type": "object", "properties": {
				"previous": {"$ref": "#/components/schemas/Base", "x-classification": "personal"}}}]},
			"Base": {"type": "object", "properties": {`+fullName+`}}}`)
		got := mustLoad(t, data)
		var paths []string
		for _, f := range got.Fields {
			paths = append(paths, f.Path)
		}
		if want := "fullName previous previous.fullName"; strings.Join(paths, " ") != want {
			t.Errorf("paths %q, want %q", paths, want)
		}
	})
	tests := []struct{ name, schemas, pointer string }{
		{
			name: "through array items",
			schemas: `{"Node": {"type": "object", "properties": {` + fullName + `,
				"children": {"type": "array", "x-classification": "personal", "items": {"$ref": "#/components/schemas/Node"}}}}}`,
			pointer: "/components/schemas/Node/properties/children/items/$ref",
		},
		{
			name: "an array of itself",
			schemas: `{"Citizen": {"type": "object", "properties": {` + fullName + `,
				"nested": {"$ref": "#/components/schemas/List", "x-classification": "personal"}}},
				"List": {"type": "array", "items": {"$ref": "#/components/schemas/List"}}}`,
			pointer: "/components/schemas/List/items/$ref",
		},
		{
			name: "through two schemas",
			schemas: `{"Citizen": {"type": "object", "properties": {` + fullName + `,
				"household": {"$ref": "#/components/schemas/Household", "x-classification": "personal"}}},
				"Household": {"type": "object", "properties": {"head": {"$ref": "#/components/schemas/Citizen", "x-classification": "personal"}}}}`,
			pointer: "/components/schemas/Household/properties/head/$ref",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			extra := ""
			if strings.Contains(tt.schemas, `"Citizen"`) {
				extra = `, "x-record-schema": "Citizen"`
			}
			_, err := LoadDocument(context.Background(), doc("3.1.0", extra, "{}", tt.schemas))
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("error %v; want *ValidationError", err)
			}
			for _, p := range verr.Problems {
				if p.Pointer == tt.pointer && strings.Contains(p.Message, "recursive reference") {
					return
				}
			}
			t.Errorf("no recursive reference reported at %q; got %v", tt.pointer, verr.Problems)
		})
	}
}

// TestLoadDocumentCost feeds documents shaped to make naive loaders slow:
// long chains of references and an allOf that doubles at each level.
func TestLoadDocumentCost(t *testing.T) {
	for _, tmpl := range []string{`{"$ref": "#/components/schemas/S%d"}`, `{"type": "object", "properties": {"n": {"$ref": "#/components/schemas/S%d", "x-classification": "public"}}}`} {
		var chain strings.Builder
		const n = 5000
		chain.WriteString(`{"Citizen": {"type": "object", "properties": {"x": {"$ref": "#/components/schemas/S0", "x-classification": "public"}}}`)
		for i := range n {
			fmt.Fprintf(&chain, `, "S%d": `+tmpl, i, i+1)
		}
		fmt.Fprintf(&chain, `, "S%d": {"type": "string"}}`, n)
		start := time.Now()
		_, err := LoadDocument(context.Background(), doc("3.1.0", `, "x-record-schema": "Citizen"`, "{}", chain.String()))
		if err == nil || !strings.Contains(err.Error(), "/components/schemas/S0: references nest 5001 deep from here") {
			t.Errorf("error %v; want a problem about nesting references", err)
		}
		if elapsed := time.Since(start); elapsed > 10*time.Second {
			t.Errorf("took %v", elapsed)
		}
	}
	// 32 references deep is fine.
	var chain strings.Builder
	chain.WriteString(`{"Citizen": {"type": "object", "properties": {"x": {"$ref": "#/components/schemas/S0", "x-classification": "public"}}}`)
	for i := range maxRefDepth - 1 {
		fmt.Fprintf(&chain, `, "S%d": {"$ref": "#/components/schemas/S%d"}`, i, i+1)
	}
	fmt.Fprintf(&chain, `, "S%d": {"type": "string"}}`, maxRefDepth-1)
	if got := mustLoad(t, doc("3.1.0", `, "x-record-schema": "Citizen"`, "{}", chain.String())); len(got.Fields) != 1 || got.Fields[0].Type != "string" {
		t.Errorf("fields %+v", got.Fields)
	}

	var doubling strings.Builder
	doubling.WriteString(`{"Citizen": {"allOf": [{"$ref": "#/components/schemas/D0"}, {"$ref": "#/components/schemas/D0"}]}`)
	for i := range 40 {
		fmt.Fprintf(&doubling, `, "D%d": {"allOf": [{"$ref": "#/components/schemas/D%d"}, {"$ref": "#/components/schemas/D%d"}]}`, i, i+1, i+1)
	}
	doubling.WriteString(`, "D40": {"type": "object", "properties": {` + fullName + `}}}`)
	_, err := LoadDocument(context.Background(), doc("3.1.0", `, "x-record-schema": "Citizen"`, "{}", doubling.String()))
	if err == nil || !strings.Contains(err.Error(), "too complex") {
		t.Errorf("error %v; want a problem saying the record schema is too complex", err)
	}
}

func TestLoadDocumentDeepNesting(t *testing.T) {
	deep := strings.Repeat("[", 5000) + strings.Repeat("]", 5000)
	for _, data := range []string{deep, "a: " + deep, `{"openapi": ` + deep + `}`} {
		_, err := LoadDocument(context.Background(), []byte(data))
		var verr *ValidationError
		if !errors.As(err, &verr) || len(verr.Problems) == 0 || !strings.Contains(err.Error(), "deeper than") {
			t.Errorf("error %v; want a problem about nesting", err)
		}
	}
	// A schema nested 20 levels deep passes JSON parsing but not field derivation.
	schema := `{"type": "string", "x-classification": "public"}`
	for range 20 {
		schema = `{"type": "object", "x-classification": "public", "properties": {"n": ` + schema + `}}`
	}
	_, err := LoadDocument(context.Background(), doc("3.1.0", "", "{}", `{"Citizen": `+schema+`}`))
	if err == nil || !strings.Contains(err.Error(), "deeper than 16 levels") {
		t.Errorf("error %v; want a problem about 16 levels", err)
	}
}

func TestLoadDocumentYAMLAliases(t *testing.T) {
	// A "billion laughs" document: each level doubles the one before.
	var b strings.Builder
	b.WriteString("openapi: 3.1.0\nx-a0: &a0 [x, x]\n")
	for i := 1; i < 40; i++ {
		fmt.Fprintf(&b, "x-a%d: &a%d [*a%d, *a%d]\n", i, i, i-1, i-1)
	}
	_, err := LoadDocument(context.Background(), []byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "too many aliases") {
		t.Errorf("error %v; want a problem about aliases", err)
	}
	// Aliases within bounds are expanded like written-out values.
	data := readFile(t, "testdata/documents/openapi30.yaml")
	data = bytes.Replace(data, []byte("      properties:\n        name:"), []byte("      properties: &props\n        name:"), 1)
	data = append(data, []byte("    Copy:\n      type: object\n      properties: *props\n")...)
	if got := mustLoad(t, data); len(got.Fields) != 5 {
		t.Errorf("%d fields, want 5", len(got.Fields))
	}
}

func TestLoadDocumentCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := LoadDocument(ctx, readFile(t, "../examples/population.yaml"))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v; want context.Canceled", err)
	}
}

func TestMinConsumerLevel(t *testing.T) {
	tests := []struct {
		declared int
		classes  []Classification
		want     int
	}{
		{0, []Classification{Public, Internal}, 1},
		{0, []Classification{Public, Personal}, DefaultPersonalDataLevel},
		{0, []Classification{Sensitive}, DefaultPersonalDataLevel},
		{0, nil, 1},
		{2, []Classification{Sensitive}, 2},
		{4, []Classification{Public}, 4},
	}
	for _, tt := range tests {
		d := &Document{DeclaredMinLevel: tt.declared}
		for i, c := range tt.classes {
			d.Fields = append(d.Fields, Field{Path: fmt.Sprint("f", i), Type: "string", Classification: c})
		}
		if got := d.MinConsumerLevel(); got != tt.want {
			t.Errorf("declared %d, classes %v: MinConsumerLevel = %d, want %d", tt.declared, tt.classes, got, tt.want)
		}
	}
}
