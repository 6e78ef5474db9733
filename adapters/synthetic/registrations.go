package synthetic

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// BirthRegistration is one record of the civil registry's birth
// registrations (examples/birth-registration.yaml, schema
// BirthRegistration), as the birth.registered event carries it: the child
// has no personal id yet; the population database issues it.
type BirthRegistration struct {
	RegistrationID     string  `json:"registrationId"`
	RegistrationNumber string  `json:"registrationNumber"`
	BookNumber         string  `json:"bookNumber"`
	RegistrationType   string  `json:"registrationType"`
	RegisteredAt       string  `json:"registeredAt"`
	RegistrationOffice Office  `json:"registrationOffice"`
	Registrar          string  `json:"registrar"`
	Child              Child   `json:"child"`
	Mother             Parent  `json:"mother"`
	Father             *Parent `json:"father"`
	Status             string  `json:"status"`
}

// DeathRegistration is one record of the civil registry's death
// registrations (examples/death-registration.yaml).
type DeathRegistration struct {
	RegistrationID     string   `json:"registrationId"`
	RegistrationNumber string   `json:"registrationNumber"`
	RegisteredAt       string   `json:"registeredAt"`
	RegistrationOffice Office   `json:"registrationOffice"`
	Deceased           Deceased `json:"deceased"`
}

// Office is the civil status office (a commune's People's Committee).
type Office struct {
	Code string `json:"code"`
	Name string `json:"name"`
}

// Child is the person a birth registration registers.
type Child struct {
	FullName     string       `json:"fullName"`
	DateOfBirth  string       `json:"dateOfBirth"`
	Sex          string       `json:"sex"`
	Ethnicity    string       `json:"ethnicity"`
	Nationality  string       `json:"nationality"`
	PlaceOfBirth PlaceOfBirth `json:"placeOfBirth"`
}

// PlaceOfBirth is where a child was born.
type PlaceOfBirth struct {
	FacilityName *string `json:"facilityName"`
	ProvinceCode string  `json:"provinceCode"`
	WardCode     *string `json:"wardCode"`
}

// Parent is a parent named in a birth registration.
type Parent struct {
	PersonalID  *string `json:"personalId"`
	FullName    string  `json:"fullName"`
	DateOfBirth *string `json:"dateOfBirth,omitempty"`
	Ethnicity   *string `json:"ethnicity,omitempty"`
	Nationality string  `json:"nationality"`
	Residence   *string `json:"residence,omitempty"`
}

// Deceased is the person a death registration registers.
type Deceased struct {
	PersonalID   string  `json:"personalId"`
	FullName     string  `json:"fullName"`
	DateOfDeath  string  `json:"dateOfDeath"`
	PlaceOfDeath string  `json:"placeOfDeath"`
	CauseOfDeath *string `json:"causeOfDeath"`
}

// Registrations makes the civil registry's birth and death registrations
// for citizens of the population database, deterministically from a seed:
// demos publish them as change events of the two joint public services.
// Not safe for concurrent use.
type Registrations struct {
	rng *rand.Rand
}

// NewRegistrations returns a generator whose output depends only on seed
// (and the citizens and dates it is given).
func NewRegistrations(seed int64) *Registrations {
	return &Registrations{rng: rand.New(rand.NewPCG(uint64(seed), 0x686f74696368))}
}

// Birth registers a child of mother (and of her spouse, when she has one),
// born a few days before on, at the office of her permanent residence.
func (g *Registrations) Birth(mother Citizen, on time.Time) BirthRegistration {
	r := g.rng
	sex := Male
	if r.IntN(2) == 1 {
		sex = Female
	}
	res := mother.PermanentResidence
	family := familyOf(mother.FullName)
	var father *Parent
	if mother.Spouse != nil {
		family = familyOf(mother.Spouse.FullName)
		father = &Parent{PersonalID: mother.Spouse.PersonalID, FullName: mother.Spouse.FullName, Nationality: "VN"}
	}
	ward := res.WardCode
	var facility *string
	if r.IntN(10) < 9 { // almost all births are in a health facility
		facility = optional(oneOf(r, []string{"Bệnh viện Phụ sản", "Bệnh viện đa khoa", "Trung tâm y tế"}) + " " + shortProvinceName(res.ProvinceCode))
	}
	born := on.AddDate(0, 0, -1-r.IntN(20))
	dob := mother.DateOfBirth
	line := res.AddressLine + ", " + lowerFirst(provinceName(res.ProvinceCode))
	return BirthRegistration{
		RegistrationID:     g.uuid(),
		RegistrationNumber: fmt.Sprintf("%d/%d", 1+r.IntN(900), on.Year()),
		BookNumber:         fmt.Sprintf("01/%d", on.Year()),
		RegistrationType:   "on-time",
		RegisteredAt:       on.Format(time.DateOnly),
		RegistrationOffice: office(res.ProvinceCode, ward),
		Registrar:          fullName(r, pick(r, familyNames), Female),
		Child: Child{FullName: fullName(r, family, sex), DateOfBirth: born.Format(time.DateOnly), Sex: sex,
			Ethnicity: mother.Ethnicity, Nationality: "VN",
			PlaceOfBirth: PlaceOfBirth{FacilityName: facility, ProvinceCode: res.ProvinceCode, WardCode: optional(ward)}},
		Mother: Parent{PersonalID: optional(mother.PersonalID), FullName: mother.FullName, DateOfBirth: &dob,
			Ethnicity: optional(mother.Ethnicity), Nationality: "VN", Residence: &line},
		Father: father,
		Status: "valid",
	}
}

// Death registers the death of a citizen a day or two before on.
func (g *Registrations) Death(c Citizen, on time.Time) DeathRegistration {
	r := g.rng
	res := c.PermanentResidence
	var cause *string
	if r.IntN(3) > 0 {
		cause = optional(oneOf(r, []string{"Tuổi già", "Bệnh tim mạch", "Đột quỵ", "Ung thư", "Viêm phổi"}))
	}
	return DeathRegistration{
		RegistrationID:     g.uuid(),
		RegistrationNumber: fmt.Sprintf("%d/%d", 1+r.IntN(400), on.Year()),
		RegisteredAt:       on.Format(time.DateOnly),
		RegistrationOffice: office(res.ProvinceCode, res.WardCode),
		Deceased: Deceased{PersonalID: c.PersonalID, FullName: c.FullName,
			DateOfDeath:  on.AddDate(0, 0, -1-r.IntN(2)).Format(time.DateOnly),
			PlaceOfDeath: oneOf(r, []string{"Tại nhà riêng", "Tại bệnh viện"}) + ", " + lowerFirst(provinceName(res.ProvinceCode)),
			CauseOfDeath: cause},
	}
}

// uuid draws a version 4 UUID from the generator.
func (g *Registrations) uuid() string {
	hi, lo := g.rng.Uint64(), g.rng.Uint64()
	hi = hi&^0xf000 | 0x4000     // version 4
	lo = lo&^(0xc<<60) | 0x8<<60 // RFC 9562 variant
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", hi>>32, hi>>16&0xffff, hi&0xffff, lo>>48, lo&0xffffffffffff)
}

// familyOf is the family name: the first word of a full name.
func familyOf(full string) string {
	for i, c := range full {
		if c == ' ' {
			return full[:i]
		}
	}
	return full
}

// provinceName is the name of a province by its two-digit code.
func provinceName(code string) string {
	if i, ok := provinceByCode[code]; ok {
		return provinces[i].Name
	}
	return code
}

// office is the civil status office of a ward: its People's Committee.
func office(province, wardCode string) Office {
	for _, d := range geography[province] {
		for _, w := range d.wards {
			if w.code == wardCode {
				return Office{Code: wardCode, Name: "Ủy ban nhân dân " + lowerFirst(w.name) + ", " + lowerFirst(provinceName(province))}
			}
		}
	}
	return Office{Code: wardCode, Name: "Ủy ban nhân dân cấp xã, " + lowerFirst(provinceName(province))}
}

// shortProvinceName is a province's name without "Tỉnh" or "Thành phố".
func shortProvinceName(code string) string {
	name := provinceName(code)
	for _, unit := range []string{"Thành phố ", "Tỉnh "} {
		name = strings.TrimPrefix(name, unit)
	}
	return name
}

// lowerFirst lowers the first letter: an administrative unit's kind is
// written in lower case inside a longer name ("Ủy ban nhân dân phường Ba
// Đình, thành phố Hà Nội").
func lowerFirst(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToLower(r)) + s[n:]
}
