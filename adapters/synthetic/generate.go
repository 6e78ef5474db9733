package synthetic

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// Dates the generator works with. Records are generated as of asOf, a fixed
// date rather than the clock, so a seed gives the same records whenever it
// runs.
var (
	asOf = time.Date(2026, 6, 30, 0, 0, 0, 0, time.UTC)
	// districtsAbolished: places recorded from then on have no district.
	districtsAbolished = time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)
	// chipCardsFrom: the 12-digit citizen identity card replaced the
	// 9-digit identity card (chứng minh nhân dân) from 2016.
	chipCardsFrom = time.Date(2016, 1, 1, 0, 0, 0, 0, time.UTC)
	// ministryIssuesFrom: under the 2023 Law on Identification, cards
	// issued from 1 July 2024 name the Ministry of Public Security.
	ministryIssuesFrom = time.Date(2024, 7, 1, 0, 0, 0, 0, time.UTC)
	// recordsMigrated: records were brought into the database from 2021.
	recordsMigrated = time.Date(2021, 7, 1, 0, 0, 0, 0, time.UTC)
)

// Card issuers as printed on the card.
const (
	issuerPolice   = "Cục Cảnh sát quản lý hành chính về trật tự xã hội"
	issuerMinistry = "Bộ Công an"
)

// maxCitizens bounds one Citizens call (a few hundred bytes per record in
// memory); larger sets should stream from a Generator.
const maxCitizens = 10_000_000

// Generator produces citizens one at a time from a seed. It is not safe for
// concurrent use; give each goroutine its own (with its own seed).
type Generator struct {
	rng *rand.Rand
	// used holds the personal ids given to generated citizens, so ids are
	// unique within a generator's output (they are primary keys). Ids of
	// referenced people (parents, spouses, children) are not tracked: they
	// are not records.
	used map[string]bool
}

// NewGenerator returns a generator whose output depends only on seed.
func NewGenerator(seed int64) *Generator {
	return &Generator{
		rng:  rand.New(rand.NewPCG(uint64(seed), 0x6c69656e74686f6e)),
		used: map[string]bool{},
	}
}

// Citizens returns n citizens generated from seed (none for n <= 0; at most
// 10 million). The same n and seed always give the same records, and the
// first k records of a larger n equal those of n = k.
func Citizens(n int, seed int64) []Citizen {
	n = min(max(n, 0), maxCitizens)
	g := NewGenerator(seed)
	out := make([]Citizen, n)
	for i := range out {
		out[i] = g.Next()
	}
	return out
}

var provinceTable = func() []weighted[int] {
	t := make([]weighted[int], len(provinces))
	for i, p := range provinces {
		t[i] = weighted[int]{i, p.weight}
	}
	return t
}()

// Where people move to: the big cities and the industrial provinces around
// Hồ Chí Minh City.
var migrationTable = []weighted[string]{{"79", 40}, {"01", 35}, {"74", 10}, {"75", 8}, {"48", 7}}

// Next generates the next citizen.
func (g *Generator) Next() Citizen {
	r := g.rng
	sex := Male
	if r.IntN(2) == 1 {
		sex = Female
	}
	birth := g.birthDate()
	age := yearsOld(birth, asOf)
	birthProv := provinces[pick(r, provinceTable)]
	family := pick(r, familyNames)

	c := Citizen{
		PersonalID:  g.ownID(birthProv, sex, birth.Year()),
		FullName:    fullName(r, family, sex),
		DateOfBirth: birth.Format(time.DateOnly),
		Sex:         sex,
		Nationality: "VN",
		Relatives:   []Relative{},
	}
	c.BirthRegistrationPlace = g.place(birthProv, birth.Before(districtsAbolished), true)
	homeProv := birthProv
	if r.IntN(10) < 3 {
		homeProv = provinces[pick(r, provinceTable)]
	}
	c.HomeTown = g.place(homeProv, true, r.IntN(10) < 7)
	c.Ethnicity = ethnicityFor(r, homeProv.Code)
	c.Religion = optional(pick(r, religions))
	c.BloodType = optional(pick(r, bloodTypes))

	permProv := birthProv
	if age >= 18 && r.IntN(100) < 20 {
		permProv = provinces[provinceByCode[pick(r, migrationTable)]]
	}
	c.PermanentResidence = g.address(permProv, r.IntN(100) < 12)
	c.CurrentResidence = c.PermanentResidence
	if age >= 16 && r.IntN(100) < 8 {
		tmp := g.address(provinces[provinceByCode[pick(r, migrationTable)]], r.IntN(2) == 0)
		c.TemporaryResidence = &tmp
		c.CurrentResidence = tmp
	}

	fatherBirth := birth.AddDate(-20-r.IntN(16), -r.IntN(12), -r.IntN(28))
	motherBirth := birth.AddDate(-18-r.IntN(14), -r.IntN(12), -r.IntN(28))
	c.Father = g.ref(homeProv, Male, fatherBirth, family)
	c.Mother = g.ref(birthProv, Female, motherBirth, pick(r, familyNames))

	c.MaritalStatus = g.maritalStatus(age)
	spouseFamily := ""
	if c.MaritalStatus == "married" {
		spouseSex, gap := Female, -r.IntN(7) // wives are usually a few years younger
		if sex == Female {
			spouseSex, gap = Male, r.IntN(7)
		}
		spouseBirth := birth.AddDate(-gap, r.IntN(12)-6, 0)
		if latest := asOf.AddDate(-18, 0, 0); spouseBirth.After(latest) {
			spouseBirth = latest
		}
		spouseFamily = pick(r, familyNames)
		s := g.ref(permProv, spouseSex, spouseBirth, spouseFamily)
		c.Spouse = &s
	}
	g.household(&c, age)
	childFamily := family
	if sex == Female {
		childFamily = spouseFamily
		if childFamily == "" {
			childFamily = pick(r, familyNames)
		}
	}
	g.relatives(&c, birth, age, permProv, family, childFamily)

	var death time.Time
	if age >= 50 && r.IntN(1000) < 15 {
		from := maxTime(birth.AddDate(50, 0, 0), asOf.AddDate(-3, 0, 0))
		death = between(r, from, asOf.AddDate(0, 0, -1))
		c.DateOfDeath = optional(death.Format(time.DateOnly))
	}
	issued := g.idCard(&c, birth, death)
	if birth.Before(time.Date(2002, 1, 1, 0, 0, 0, 0, time.UTC)) && r.IntN(10) < 6 {
		c.OldIDNumber = optional(fmt.Sprintf("%09d", r.IntN(1_000_000_000)))
	}
	updated := between(r, maxTime(recordsMigrated, birth, issued, death), asOf)
	c.UpdatedAt = updated.Add(time.Duration(r.IntN(86400)) * time.Second).Format(time.RFC3339)
	return c
}

// birthDate draws a date of birth with Vietnam's age structure: about 23%
// under 15, 68% of working age, 9% 65 and older (oldest 95).
func (g *Generator) birthDate() time.Time {
	r := g.rng
	var age int
	switch n := r.IntN(1000); {
	case n < 230:
		age = r.IntN(15)
	case n < 910:
		age = 15 + r.IntN(50)
	default:
		age = 65 + r.IntN(31)
	}
	return asOf.AddDate(-age, 0, -1-r.IntN(364))
}

// ownID issues a personal id not yet given to another generated citizen:
// a random serial, and after repeated collisions the next free one. A
// province, sex and birth year have a million serials, far more than any
// data set this package is meant for uses, so running out means misuse.
func (g *Generator) ownID(p Province, sex string, year int) string {
	id := PersonalID{Province: p, Sex: sex, BirthYear: year}
	for range 64 {
		id.Serial = fmt.Sprintf("%06d", g.rng.IntN(1_000_000))
		if s := id.String(); !g.used[s] {
			g.used[s] = true
			return s
		}
	}
	start := g.rng.IntN(1_000_000)
	for i := range 1_000_000 {
		id.Serial = fmt.Sprintf("%06d", (start+i)%1_000_000)
		if s := id.String(); !g.used[s] {
			g.used[s] = true
			return s
		}
	}
	panic(fmt.Sprintf("synthetic: all personal ids of province %s, %s, born %d, are used", p.Code, sex, year))
}

// ref names another person; people born before 1925 are known by name only
// (the id system came long after them, and the century digit cannot express
// the 1800s).
func (g *Generator) ref(p Province, sex string, birth time.Time, family string) PersonRef {
	ref := PersonRef{FullName: fullName(g.rng, family, sex)}
	if birth.Year() >= 1925 {
		id := PersonalID{Province: p, Sex: sex, BirthYear: birth.Year(), Serial: fmt.Sprintf("%06d", g.rng.IntN(1_000_000))}
		ref.PersonalID = optional(id.String())
	}
	return ref
}

// maritalStatus draws a status typical for the age.
func (g *Generator) maritalStatus(age int) string {
	var table []weighted[string]
	switch {
	case age < 18:
		return "single"
	case age < 25:
		table = []weighted[string]{{"single", 75}, {"married", 25}}
	case age < 35:
		table = []weighted[string]{{"single", 27}, {"married", 70}, {"divorced", 3}}
	case age < 60:
		table = []weighted[string]{{"single", 5}, {"married", 85}, {"divorced", 6}, {"widowed", 4}}
	default:
		table = []weighted[string]{{"single", 2}, {"married", 68}, {"divorced", 2}, {"widowed", 28}}
	}
	return pick(g.rng, table)
}

// household sets the household head and the citizen's relation to them.
func (g *Generator) household(c *Citizen, age int) {
	self := PersonRef{PersonalID: optional(c.PersonalID), FullName: c.FullName}
	switch n := g.rng.IntN(100); {
	case age < 18 || c.MaritalStatus == "single" && age < 30:
		c.HouseholdHead, c.RelationToHouseholdHead = c.Father, "Con"
	case c.MaritalStatus == "married" && c.Sex == Male && n < 75,
		c.MaritalStatus == "married" && c.Sex == Female && n < 20,
		c.MaritalStatus != "married":
		c.HouseholdHead, c.RelationToHouseholdHead = self, "Chủ hộ"
	case c.MaritalStatus == "married" && c.Sex == Male && n < 85:
		c.HouseholdHead, c.RelationToHouseholdHead = *c.Spouse, "Chồng"
	case c.MaritalStatus == "married" && c.Sex == Female && n < 90:
		c.HouseholdHead, c.RelationToHouseholdHead = *c.Spouse, "Vợ"
	default:
		c.HouseholdHead, c.RelationToHouseholdHead = c.Father, "Con"
	}
}

// relatives adds children (for citizens who have married) and sometimes a
// sibling, all born no later than asOf.
func (g *Generator) relatives(c *Citizen, birth time.Time, age int, p Province, family, childFamily string) {
	r := g.rng
	if c.MaritalStatus != "single" && age >= 22 {
		n := pick(r, []weighted[int]{{0, 15}, {1, 30}, {2, 40}, {3, 15}})
		for range n {
			childBirth := birth.AddDate(20+r.IntN(min(age-20, 20)), 0, r.IntN(365))
			if childBirth.After(asOf) {
				continue
			}
			sex := Male
			if r.IntN(2) == 1 {
				sex = Female
			}
			ref := g.ref(p, sex, childBirth, childFamily)
			c.Relatives = append(c.Relatives, Relative{Relationship: "Con đẻ", PersonalID: *ref.PersonalID, FullName: ref.FullName})
		}
	}
	if r.IntN(10) == 0 {
		sibBirth := birth.AddDate(r.IntN(17)-8, r.IntN(12), 0)
		if sibBirth.After(asOf) || sibBirth.Year() < 1925 {
			return
		}
		sex := Male
		if r.IntN(2) == 1 {
			sex = Female
		}
		rel := "Em ruột"
		if sibBirth.Before(birth) {
			rel = map[string]string{Male: "Anh ruột", Female: "Chị ruột"}[sex]
		}
		ref := g.ref(p, sex, sibBirth, family)
		c.Relatives = append(c.Relatives, Relative{Relationship: rel, PersonalID: *ref.PersonalID, FullName: ref.FullName})
	}
}

// idCard sets the identity card fields for citizens who had turned 14 by
// asOf and returns the issue date (zero when none). A card expires at 25,
// 40 or 60 (one issued within two years before such a birthday lasts to the
// next); one issued from 58 on does not expire.
func (g *Generator) idCard(c *Citizen, birth, death time.Time) time.Time {
	from := maxTime(birth.AddDate(14, 0, 0), chipCardsFrom)
	to := asOf.AddDate(0, 0, -1)
	if !death.IsZero() {
		to = death.AddDate(0, 0, -1)
	}
	if !from.Before(to) {
		return time.Time{}
	}
	issued := between(g.rng, from, to)
	c.IDCardIssueDate = optional(issued.Format(time.DateOnly))
	ageAtIssue := yearsOld(birth, issued)
	for _, m := range []int{25, 40, 60} {
		if ageAtIssue < m-2 {
			c.IDCardExpiryDate = optional(birth.AddDate(m, 0, 0).Format(time.DateOnly))
			break
		}
	}
	issuer := issuerPolice
	if !issued.Before(ministryIssuesFrom) {
		issuer = issuerMinistry
	}
	c.IDCardIssuePlace = optional(issuer)
	return issued
}

// place draws a place in province p; its name lists ward, district and
// province as far as they are known.
func (g *Generator) place(p Province, withDistrict, withWard bool) Place {
	d := oneOf(g.rng, geography[p.Code])
	w := oneOf(g.rng, d.wards)
	pl := Place{ProvinceCode: p.Code}
	var parts []string
	if withWard {
		pl.WardCode = optional(w.code)
		parts = append(parts, w.name)
	}
	if withDistrict {
		pl.DistrictCode = optional(d.code)
		parts = append(parts, d.name)
	}
	pl.Name = strings.Join(append(parts, p.Name), ", ")
	return pl
}

// address draws an address in province p; one registered after the 2025
// reform has no district.
func (g *Generator) address(p Province, afterReform bool) Address {
	r := g.rng
	d := oneOf(r, geography[p.Code])
	w := oneOf(r, d.wards)
	a := Address{ProvinceCode: p.Code, WardCode: w.code}
	if !afterReform {
		a.DistrictCode = optional(d.code)
	}
	north, south := p.Code < "40", p.Code >= "70"
	switch {
	case d.urban && north && r.IntN(2) == 0:
		a.AddressLine = fmt.Sprintf("Số %d ngõ %d phố %s", 1+r.IntN(120), 1+r.IntN(300), oneOf(r, streets))
	case d.urban && north:
		a.AddressLine = fmt.Sprintf("Số %d phố %s", 1+r.IntN(200), oneOf(r, streets))
	case d.urban && south && r.IntN(3) == 0:
		a.AddressLine = fmt.Sprintf("Số %d/%d đường %s", 1+r.IntN(400), 1+r.IntN(60), oneOf(r, streets))
	case d.urban:
		a.AddressLine = fmt.Sprintf("Số %d đường %s", 1+r.IntN(400), oneOf(r, streets))
	case south:
		a.AddressLine = "Ấp " + placeName(r)
	case north && r.IntN(2) == 0:
		a.AddressLine = fmt.Sprintf("Xóm %d", 1+r.IntN(20))
	default:
		a.AddressLine = "Thôn " + placeName(r)
	}
	return a
}

// optional returns a pointer to s, or nil for "" (null in JSON).
func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// yearsOld is the age in whole years at a given date.
func yearsOld(birth, at time.Time) int {
	y := at.Year() - birth.Year()
	if at.Month() < birth.Month() || at.Month() == birth.Month() && at.Day() < birth.Day() {
		y--
	}
	return y
}

// between draws a day from [from, to] (from when to is not after it).
func between(r *rand.Rand, from, to time.Time) time.Time {
	days := int(to.Sub(from).Hours() / 24)
	if days <= 0 {
		return from
	}
	return from.AddDate(0, 0, r.IntN(days+1))
}

// maxTime is the latest of ts.
func maxTime(ts ...time.Time) time.Time {
	var m time.Time
	for _, t := range ts {
		if t.After(m) {
			m = t
		}
	}
	return m
}
