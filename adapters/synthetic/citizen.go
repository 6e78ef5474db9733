// Package synthetic generates deterministic, realistic citizen records of
// the national population database (examples/population.yaml, schema
// Citizen) and serves them from the backends the adapters talk to: a REST
// handler and a PostgreSQL table with its adapter mapping.
//
// Demos, end-to-end tests and benchmarks need data that looks and behaves
// like the real thing (valid personal ids, Vietnamese names with
// diacritics, nested addresses, nullable fields, arrays) without a single
// real person in it. Every record validates against the published schema,
// and the same seed always gives the same records, so benchmark runs and
// test failures can be reproduced.
package synthetic

// Citizen is one record of the population dataset. The JSON encoding
// matches the Citizen schema exactly: nullable properties are pointers and
// encode as null, relatives is always an array.
type Citizen struct {
	PersonalID              string     `json:"personalId"`
	OldIDNumber             *string    `json:"oldIdNumber"`
	FullName                string     `json:"fullName"`
	DateOfBirth             string     `json:"dateOfBirth"`
	Sex                     string     `json:"sex"`
	BirthRegistrationPlace  Place      `json:"birthRegistrationPlace"`
	HomeTown                Place      `json:"homeTown"`
	Ethnicity               string     `json:"ethnicity"`
	Religion                *string    `json:"religion"`
	Nationality             string     `json:"nationality"`
	BloodType               *string    `json:"bloodType"`
	MaritalStatus           string     `json:"maritalStatus"`
	PermanentResidence      Address    `json:"permanentResidence"`
	TemporaryResidence      *Address   `json:"temporaryResidence"`
	CurrentResidence        Address    `json:"currentResidence"`
	Father                  PersonRef  `json:"father"`
	Mother                  PersonRef  `json:"mother"`
	Spouse                  *PersonRef `json:"spouse"`
	HouseholdHead           PersonRef  `json:"householdHead"`
	RelationToHouseholdHead string     `json:"relationToHouseholdHead"`
	Relatives               []Relative `json:"relatives"`
	IDCardIssueDate         *string    `json:"idCardIssueDate"`
	IDCardExpiryDate        *string    `json:"idCardExpiryDate"`
	IDCardIssuePlace        *string    `json:"idCardIssuePlace"`
	DateOfDeath             *string    `json:"dateOfDeath"`
	UpdatedAt               string     `json:"updatedAt"`
}

// Place is a named administrative place (birth registration, home town).
// District and ward may be unknown; places recorded after 1 July 2025 have
// no district, since districts were abolished then.
type Place struct {
	ProvinceCode string  `json:"provinceCode"`
	DistrictCode *string `json:"districtCode"`
	WardCode     *string `json:"wardCode"`
	Name         string  `json:"name"`
}

// Address is a residence address.
type Address struct {
	ProvinceCode string  `json:"provinceCode"`
	DistrictCode *string `json:"districtCode"`
	WardCode     string  `json:"wardCode"`
	AddressLine  string  `json:"addressLine"`
}

// PersonRef names another person; the personal id is null for people the
// database knows only by name (e.g. parents who died before ids existed).
type PersonRef struct {
	PersonalID *string `json:"personalId"`
	FullName   string  `json:"fullName"`
}

// Relative is a further relative recorded with the citizen.
type Relative struct {
	Relationship string `json:"relationship"`
	PersonalID   string `json:"personalId"`
	FullName     string `json:"fullName"`
}
