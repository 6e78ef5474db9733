package synthetic

import (
	"errors"
	"fmt"
	"time"
)

// Sexes as the population schema spells them.
const (
	Male   = "male"
	Female = "female"
)

// PersonalID is a decoded 12-digit personal identification number (số định
// danh cá nhân): the province where the birth was registered, the century
// and sex digit, the last two digits of the birth year and six random
// digits (Decree 137/2015/NĐ-CP and the Ministry of Public Security's
// circulars under it).
type PersonalID struct {
	// Province is where the birth was registered.
	Province Province
	// Sex is Male or Female.
	Sex string
	// BirthYear is the full year, e.g. 2003.
	BirthYear int
	// Serial is the six random digits.
	Serial string
}

// ParsePersonalID decodes and checks s: twelve digits, a known province
// code, and a century/sex digit giving a birth year no later than the
// current year. The century digit is 0 or 1 for the 1900s (male, female),
// 2 or 3 for the 2000s, and so on, two digits per century.
func ParsePersonalID(s string) (PersonalID, error) {
	if len(s) != 12 {
		return PersonalID{}, fmt.Errorf("a personal id has 12 digits, not %d characters", len(s))
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return PersonalID{}, errors.New("a personal id has only digits")
		}
	}
	p, ok := ProvinceByIDCode(s[:3])
	if !ok {
		return PersonalID{}, fmt.Errorf("%s is not a province code", s[:3])
	}
	d := int(s[3] - '0')
	year := 1900 + 100*(d/2) + int(s[4]-'0')*10 + int(s[5]-'0')
	if year > time.Now().Year() {
		return PersonalID{}, fmt.Errorf("birth year %d is in the future", year)
	}
	sex := Male
	if d%2 == 1 {
		sex = Female
	}
	return PersonalID{Province: p, Sex: sex, BirthYear: year, Serial: s[6:]}, nil
}

// ValidPersonalID reports whether s is a well-formed personal id (see
// ParsePersonalID). It cannot tell whether the id was ever issued.
func ValidPersonalID(s string) bool {
	_, err := ParsePersonalID(s)
	return err == nil
}

// String encodes the id: it is the inverse of ParsePersonalID.
func (id PersonalID) String() string {
	d := 2 * ((id.BirthYear - 1900) / 100)
	if id.Sex == Female {
		d++
	}
	return fmt.Sprintf("%s%d%02d%s", id.Province.IDCode(), d, id.BirthYear%100, id.Serial)
}
