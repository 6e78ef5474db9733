package synthetic_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/lienthong/lienthong/adapters/synthetic"
)

func exampleSchema(t *testing.T, file, name string) *openapi3.Schema {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromFile("../../examples/" + file)
	if err != nil {
		t.Fatal(err)
	}
	ref := doc.Components.Schemas[name]
	if ref == nil || ref.Value == nil {
		t.Fatalf("%s: no %s schema", file, name)
	}
	return ref.Value
}

// TestRegistrationsMatchTheCivilRegistrySchemas generates birth and death
// registrations for synthetic citizens and checks each against the civil
// registry's published schemas, and that they name their citizens.
func TestRegistrationsMatchTheCivilRegistrySchemas(t *testing.T) {
	birth := exampleSchema(t, "birth-registration.yaml", "BirthRegistration")
	death := exampleSchema(t, "death-registration.yaml", "DeathRegistration")
	on := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	g := synthetic.NewRegistrations(3)
	ids := map[string]bool{}
	for i, c := range synthetic.Citizens(300, 11) {
		b, d := g.Birth(c, on), g.Death(c, on)
		for _, rec := range []struct {
			schema *openapi3.Schema
			v      any
			id     string
		}{{birth, b, b.RegistrationID}, {death, d, d.RegistrationID}} {
			opts := []openapi3.SchemaValidationOption{openapi3.EnableFormatValidation()}
			if i < 20 {
				opts = append(opts, openapi3.EnableJSONSchema2020())
			}
			if err := rec.schema.VisitJSON(decode(t, rec.v), opts...); err != nil {
				t.Fatalf("registration %d does not match its schema: %v", i, err)
			}
			if ids[rec.id] {
				t.Fatalf("registration id %s given twice", rec.id)
			}
			ids[rec.id] = true
		}
		if *b.Mother.PersonalID != c.PersonalID || d.Deceased.PersonalID != c.PersonalID {
			t.Fatalf("registration %d does not name its citizen", i)
		}
		if b.Child.DateOfBirth >= b.RegisteredAt || !strings.HasPrefix(b.RegistrationOffice.Name, "Ủy ban nhân dân") {
			t.Fatalf("birth %d: born %s, registered %s at %q", i, b.Child.DateOfBirth, b.RegisteredAt, b.RegistrationOffice.Name)
		}
	}
	// The same seed gives the same registrations.
	a, b := synthetic.NewRegistrations(9).Birth(synthetic.Citizens(1, 1)[0], on), synthetic.NewRegistrations(9).Birth(synthetic.Citizens(1, 1)[0], on)
	if !reflect.DeepEqual(a, b) {
		t.Error("registrations differ for the same seed")
	}
}
