package synthetic

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lienthong/lienthong/adapters/postgres"
)

// citizenColumn is one column of the flat citizens table: the dataset
// field it holds, its SQL type and how to read it from a Citizen. One list
// drives the DDL, the load and the adapter mapping, so they cannot drift.
type citizenColumn struct {
	field   string
	column  string
	sqlType string
	value   func(c *Citizen) any
}

// text and date adapt optional strings to what COPY expects.
func text(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

func date(s *string) any {
	if s == nil {
		return nil
	}
	t, err := time.Parse(time.DateOnly, *s)
	if err != nil {
		return *s // COPY reports it with the column name
	}
	return t
}

func placeColumns(field, prefix string, get func(c *Citizen) *Place) []citizenColumn {
	return []citizenColumn{
		{field + ".provinceCode", prefix + "_province_code", "text", func(c *Citizen) any { return get(c).ProvinceCode }},
		{field + ".districtCode", prefix + "_district_code", "text", func(c *Citizen) any { return text(get(c).DistrictCode) }},
		{field + ".wardCode", prefix + "_ward_code", "text", func(c *Citizen) any { return text(get(c).WardCode) }},
		{field + ".name", prefix + "_name", "text", func(c *Citizen) any { return get(c).Name }},
	}
}

func addressColumns(field, prefix string, get func(c *Citizen) *Address) []citizenColumn {
	opt := func(f func(a *Address) any) func(c *Citizen) any {
		return func(c *Citizen) any {
			if a := get(c); a != nil {
				return f(a)
			}
			return nil
		}
	}
	return []citizenColumn{
		{field + ".provinceCode", prefix + "_province_code", "text", opt(func(a *Address) any { return a.ProvinceCode })},
		{field + ".districtCode", prefix + "_district_code", "text", opt(func(a *Address) any { return text(a.DistrictCode) })},
		{field + ".wardCode", prefix + "_ward_code", "text", opt(func(a *Address) any { return a.WardCode })},
		{field + ".addressLine", prefix + "_address_line", "text", opt(func(a *Address) any { return a.AddressLine })},
	}
}

func personColumns(field, prefix string, get func(c *Citizen) *PersonRef) []citizenColumn {
	opt := func(f func(p *PersonRef) any) func(c *Citizen) any {
		return func(c *Citizen) any {
			if p := get(c); p != nil {
				return f(p)
			}
			return nil
		}
	}
	return []citizenColumn{
		{field + ".personalId", prefix + "_personal_id", "text", opt(func(p *PersonRef) any { return text(p.PersonalID) })},
		{field + ".fullName", prefix + "_full_name", "text", opt(func(p *PersonRef) any { return p.FullName })},
	}
}

var citizenColumns = func() []citizenColumn {
	cols := []citizenColumn{
		{"personalId", "personal_id", "text PRIMARY KEY", func(c *Citizen) any { return c.PersonalID }},
		{"oldIdNumber", "old_id_number", "text", func(c *Citizen) any { return text(c.OldIDNumber) }},
		{"fullName", "full_name", "text NOT NULL", func(c *Citizen) any { return c.FullName }},
		{"dateOfBirth", "date_of_birth", "date NOT NULL", func(c *Citizen) any { return date(&c.DateOfBirth) }},
		{"sex", "sex", "text NOT NULL", func(c *Citizen) any { return c.Sex }},
	}
	cols = append(cols, placeColumns("birthRegistrationPlace", "birth_registration", func(c *Citizen) *Place { return &c.BirthRegistrationPlace })...)
	cols = append(cols, placeColumns("homeTown", "home_town", func(c *Citizen) *Place { return &c.HomeTown })...)
	cols = append(cols,
		citizenColumn{"ethnicity", "ethnicity", "text", func(c *Citizen) any { return c.Ethnicity }},
		citizenColumn{"religion", "religion", "text", func(c *Citizen) any { return text(c.Religion) }},
		citizenColumn{"nationality", "nationality", "text", func(c *Citizen) any { return c.Nationality }},
		citizenColumn{"bloodType", "blood_type", "text", func(c *Citizen) any { return text(c.BloodType) }},
		citizenColumn{"maritalStatus", "marital_status", "text", func(c *Citizen) any { return c.MaritalStatus }},
	)
	cols = append(cols, addressColumns("permanentResidence", "permanent_residence", func(c *Citizen) *Address { return &c.PermanentResidence })...)
	cols = append(cols, addressColumns("temporaryResidence", "temporary_residence", func(c *Citizen) *Address { return c.TemporaryResidence })...)
	cols = append(cols, addressColumns("currentResidence", "current_residence", func(c *Citizen) *Address { return &c.CurrentResidence })...)
	cols = append(cols, personColumns("father", "father", func(c *Citizen) *PersonRef { return &c.Father })...)
	cols = append(cols, personColumns("mother", "mother", func(c *Citizen) *PersonRef { return &c.Mother })...)
	cols = append(cols, personColumns("spouse", "spouse", func(c *Citizen) *PersonRef { return c.Spouse })...)
	cols = append(cols, personColumns("householdHead", "household_head", func(c *Citizen) *PersonRef { return &c.HouseholdHead })...)
	cols = append(cols,
		citizenColumn{"relationToHouseholdHead", "relation_to_household_head", "text", func(c *Citizen) any { return c.RelationToHouseholdHead }},
		// An array of objects has no flat form: it stays JSON.
		citizenColumn{"relatives", "relatives", "jsonb NOT NULL", func(c *Citizen) any {
			rel := c.Relatives
			if rel == nil {
				rel = []Relative{}
			}
			b, _ := json.Marshal(rel) // strings only: cannot fail
			return string(b)
		}},
		citizenColumn{"idCardIssueDate", "id_card_issue_date", "date", func(c *Citizen) any { return date(c.IDCardIssueDate) }},
		citizenColumn{"idCardExpiryDate", "id_card_expiry_date", "date", func(c *Citizen) any { return date(c.IDCardExpiryDate) }},
		citizenColumn{"idCardIssuePlace", "id_card_issue_place", "text", func(c *Citizen) any { return text(c.IDCardIssuePlace) }},
		citizenColumn{"dateOfDeath", "date_of_death", "date", func(c *Citizen) any { return date(c.DateOfDeath) }},
		citizenColumn{"updatedAt", "updated_at", "timestamptz NOT NULL", func(c *Citizen) any {
			t, err := time.Parse(time.RFC3339, c.UpdatedAt)
			if err != nil {
				return c.UpdatedAt
			}
			return t
		}},
	)
	return cols
}()

// CitizenMapping maps the table LoadPostgres creates to the population
// dataset: every leaf field of the Citizen schema to its column (relatives
// to a jsonb column), keyed by personal id, listed at "citizens".
func CitizenMapping(table string) postgres.Mapping {
	m := postgres.Mapping{Table: table, Key: "personal_id", ListPath: "citizens", Columns: map[string]string{}}
	for _, c := range citizenColumns {
		m.Columns[c.field] = c.column
	}
	return m
}

// LoadPostgres creates table (optionally schema-qualified; it must not
// exist yet) with one column per leaf field and loads citizens into it with
// COPY, in one transaction: either the whole set is there or nothing is.
// It also indexes the permanent residence province, the usual row-scope
// field. Use CitizenMapping(table) to serve it.
func LoadPostgres(ctx context.Context, pool *pgxpool.Pool, table string, citizens []Citizen) error {
	// New validates the table name by the adapter's own rules.
	if _, err := postgres.New(pool, CitizenMapping(table)); err != nil {
		return fmt.Errorf("synthetic: loading citizens: %w", err)
	}
	ident := pgx.Identifier(strings.Split(table, "."))
	defs := make([]string, len(citizenColumns))
	names := make([]string, len(citizenColumns))
	for i, c := range citizenColumns {
		defs[i] = pgx.Identifier{c.column}.Sanitize() + " " + c.sqlType
		names[i] = c.column
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("synthetic: loading citizens into %s: %w", table, err)
	}
	defer tx.Rollback(ctx) // no-op after Commit
	// Identifiers are validated and quoted; nothing else is spliced.
	if _, err := tx.Exec(ctx, "CREATE TABLE "+ident.Sanitize()+" (\n\t"+strings.Join(defs, ",\n\t")+"\n)"); err != nil {
		return fmt.Errorf("synthetic: creating %s: %w", table, err)
	}
	if _, err := tx.Exec(ctx, "CREATE INDEX ON "+ident.Sanitize()+" (permanent_residence_province_code)"); err != nil {
		return fmt.Errorf("synthetic: indexing %s: %w", table, err)
	}
	n, err := tx.CopyFrom(ctx, ident, names, pgx.CopyFromSlice(len(citizens), func(i int) ([]any, error) {
		row := make([]any, len(citizenColumns))
		for j, c := range citizenColumns {
			row[j] = c.value(&citizens[i])
		}
		return row, nil
	}))
	if err != nil {
		return fmt.Errorf("synthetic: copying citizens into %s: %w", table, err)
	}
	if n != int64(len(citizens)) {
		return fmt.Errorf("synthetic: copied %d of %d citizens into %s", n, len(citizens), table)
	}
	if _, err := tx.Exec(ctx, "ANALYZE "+ident.Sanitize()); err != nil {
		return fmt.Errorf("synthetic: analyzing %s: %w", table, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("synthetic: committing %s: %w", table, err)
	}
	return nil
}
