package catalog

import (
	"regexp"
	"sort"
	"time"
)

// Classification is the sensitivity of one dataset field. Every property of a
// published schema carries one in `x-classification`.
type Classification string

// The four classifications, least to most sensitive. Sensitive covers what
// Vietnam's personal-data rules call sensitive: ethnicity, religion, health,
// biometrics, criminal records.
const (
	Public    Classification = "public"
	Internal  Classification = "internal"
	Personal  Classification = "personal"
	Sensitive Classification = "sensitive"
)

// Classifications lists the valid values in ascending sensitivity.
var Classifications = []Classification{Public, Internal, Personal, Sensitive}

// Valid reports whether c is one of the four classifications.
func (c Classification) Valid() bool {
	switch c {
	case Public, Internal, Personal, Sensitive:
		return true
	}
	return false
}

// IsPersonal reports whether c concerns a person (personal or sensitive),
// which raises the dataset's default minimum consumer level to 3.
func (c Classification) IsPersonal() bool { return c == Personal || c == Sensitive }

// DefaultPersonalDataLevel is the minimum consumer security level of a dataset
// holding personal data unless its publisher sets another (Circular 46/2022).
const DefaultPersonalDataLevel = 3

var datasetCodePattern = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}[a-z0-9]$`)

// ValidDatasetCode reports whether code is a valid dataset code: lower-case
// letters, digits and dashes, 2-64 characters, e.g. "population".
func ValidDatasetCode(code string) bool { return datasetCodePattern.MatchString(code) }

// Field is one leaf or inner node of a dataset's record schema. Paths are
// dotted from the record root; arrays are transparent, so the names of the
// items of array `relatives` are at `relatives.fullName`.
type Field struct {
	Path           string         `json:"path"`
	Type           string         `json:"type"`
	Format         string         `json:"format,omitempty"`
	Classification Classification `json:"classification"`
	// DefaultShared marks master data any assessed consumer may read for a
	// declared purpose without an access request (Decree 47/2020).
	DefaultShared bool `json:"defaultShared,omitempty"`
	// Array is true when this field, or one of its ancestors, is an array.
	Array       bool   `json:"array,omitempty"`
	Description string `json:"description,omitempty"`
}

// Dataset is one published version of a dataset of a provider system.
type Dataset struct {
	// System is the provider system id.
	System string `json:"system"`
	// Code names the dataset within its system, e.g. "population".
	Code string `json:"code"`
	// Version counts publications from 1.
	Version     int    `json:"version"`
	Title       string `json:"title"`
	Description string `json:"description,omitempty"`
	// RecordSchema is the components.schemas name the fields derive from.
	RecordSchema string `json:"recordSchema"`
	// MinConsumerLevel is the lowest assessed security level a consumer
	// system needs to read any field of this dataset.
	MinConsumerLevel int `json:"minConsumerLevel"`
	// Digest is the SHA-256 (hex) of Document.
	Digest string  `json:"digest"`
	Fields []Field `json:"fields"`
	// Document is the OpenAPI document as published. Listings may leave it empty.
	Document    []byte    `json:"-"`
	PublishedAt time.Time `json:"publishedAt"`
	PublishedBy string    `json:"publishedBy"`
}

// Ref is the dataset's address: "<system id>/<code>".
func (d *Dataset) Ref() string { return d.System + "/" + d.Code }

// Field returns the field at path, if the dataset has one.
func (d *Dataset) Field(path string) (Field, bool) {
	for _, f := range d.Fields {
		if f.Path == path {
			return f, true
		}
	}
	return Field{}, false
}

// FieldChange is one difference between two versions of a dataset.
type FieldChange struct {
	Path string `json:"path"`
	// Kind is "added", "removed", "reclassified" or "retyped".
	Kind string `json:"kind"`
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
}

// DiffFields lists what changed from old to new, sorted by path, so a
// re-publication can show its publisher (and later the consumers holding
// grants) exactly what moved.
func DiffFields(old, new []Field) []FieldChange {
	before := make(map[string]Field, len(old))
	for _, f := range old {
		before[f.Path] = f
	}
	changes := []FieldChange{}
	seen := make(map[string]bool, len(new))
	for _, f := range new {
		seen[f.Path] = true
		o, ok := before[f.Path]
		switch {
		case !ok:
			changes = append(changes, FieldChange{Path: f.Path, Kind: "added", To: string(f.Classification)})
		case o.Classification != f.Classification:
			changes = append(changes, FieldChange{Path: f.Path, Kind: "reclassified", From: string(o.Classification), To: string(f.Classification)})
		case o.Type != f.Type:
			changes = append(changes, FieldChange{Path: f.Path, Kind: "retyped", From: o.Type, To: f.Type})
		}
	}
	for _, f := range old {
		if !seen[f.Path] {
			changes = append(changes, FieldChange{Path: f.Path, Kind: "removed", From: string(f.Classification)})
		}
	}
	sort.Slice(changes, func(i, j int) bool { return changes[i].Path < changes[j].Path })
	return changes
}
