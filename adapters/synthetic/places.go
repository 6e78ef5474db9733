package synthetic

import (
	"fmt"
	"math/rand/v2"
	"strconv"
)

// Province is a province-level administrative unit as numbered by the
// General Statistics Office. The same numbers, with a leading zero, open
// every personal identification number (001 Hà Nội, 079 Hồ Chí Minh City).
//
// The list is the 63 provinces in force until the 2025 merger. The personal
// ids already issued keep these codes, which is why they are the ones that
// matter for the id rule.
type Province struct {
	// Code is the two-digit administrative code used in addresses, "01".
	Code string
	// Name is the official name, "Thành phố Hà Nội".
	Name string
	// weight is roughly the population in hundred thousands (2019 census),
	// so generated citizens are spread like real ones.
	weight int
}

// IDCode is the three-digit code that opens a personal id, "001".
func (p Province) IDCode() string { return "0" + p.Code }

var provinces = []Province{
	{"01", "Thành phố Hà Nội", 80}, {"02", "Tỉnh Hà Giang", 9}, {"04", "Tỉnh Cao Bằng", 5},
	{"06", "Tỉnh Bắc Kạn", 3}, {"08", "Tỉnh Tuyên Quang", 8}, {"10", "Tỉnh Lào Cai", 7},
	{"11", "Tỉnh Điện Biên", 6}, {"12", "Tỉnh Lai Châu", 5}, {"14", "Tỉnh Sơn La", 12},
	{"15", "Tỉnh Yên Bái", 8}, {"17", "Tỉnh Hòa Bình", 9}, {"19", "Tỉnh Thái Nguyên", 13},
	{"20", "Tỉnh Lạng Sơn", 8}, {"22", "Tỉnh Quảng Ninh", 13}, {"24", "Tỉnh Bắc Giang", 18},
	{"25", "Tỉnh Phú Thọ", 15}, {"26", "Tỉnh Vĩnh Phúc", 12}, {"27", "Tỉnh Bắc Ninh", 14},
	{"30", "Tỉnh Hải Dương", 19}, {"31", "Thành phố Hải Phòng", 20}, {"33", "Tỉnh Hưng Yên", 13},
	{"34", "Tỉnh Thái Bình", 19}, {"35", "Tỉnh Hà Nam", 9}, {"36", "Tỉnh Nam Định", 18},
	{"37", "Tỉnh Ninh Bình", 10}, {"38", "Tỉnh Thanh Hóa", 36}, {"40", "Tỉnh Nghệ An", 33},
	{"42", "Tỉnh Hà Tĩnh", 13}, {"44", "Tỉnh Quảng Bình", 9}, {"45", "Tỉnh Quảng Trị", 6},
	{"46", "Tỉnh Thừa Thiên Huế", 11}, {"48", "Thành phố Đà Nẵng", 11}, {"49", "Tỉnh Quảng Nam", 15},
	{"51", "Tỉnh Quảng Ngãi", 12}, {"52", "Tỉnh Bình Định", 15}, {"54", "Tỉnh Phú Yên", 9},
	{"56", "Tỉnh Khánh Hòa", 12}, {"58", "Tỉnh Ninh Thuận", 6}, {"60", "Tỉnh Bình Thuận", 12},
	{"62", "Tỉnh Kon Tum", 5}, {"64", "Tỉnh Gia Lai", 15}, {"66", "Tỉnh Đắk Lắk", 19},
	{"67", "Tỉnh Đắk Nông", 6}, {"68", "Tỉnh Lâm Đồng", 13}, {"70", "Tỉnh Bình Phước", 10},
	{"72", "Tỉnh Tây Ninh", 12}, {"74", "Tỉnh Bình Dương", 26}, {"75", "Tỉnh Đồng Nai", 31},
	{"77", "Tỉnh Bà Rịa - Vũng Tàu", 11}, {"79", "Thành phố Hồ Chí Minh", 90}, {"80", "Tỉnh Long An", 17},
	{"82", "Tỉnh Tiền Giang", 18}, {"83", "Tỉnh Bến Tre", 13}, {"84", "Tỉnh Trà Vinh", 10},
	{"86", "Tỉnh Vĩnh Long", 10}, {"87", "Tỉnh Đồng Tháp", 16}, {"89", "Tỉnh An Giang", 19},
	{"91", "Tỉnh Kiên Giang", 17}, {"92", "Thành phố Cần Thơ", 12}, {"93", "Tỉnh Hậu Giang", 7},
	{"94", "Tỉnh Sóc Trăng", 12}, {"95", "Tỉnh Bạc Liêu", 9}, {"96", "Tỉnh Cà Mau", 12},
}

// provinceByCode indexes provinces by their two-digit code.
var provinceByCode = func() map[string]int {
	m := make(map[string]int, len(provinces))
	for i, p := range provinces {
		m[p.Code] = i
	}
	return m
}()

// Provinces returns the 63 provinces, in code order.
func Provinces() []Province { return append([]Province(nil), provinces...) }

// ProvinceByIDCode returns the province a personal id's first three digits
// name, e.g. "079".
func ProvinceByIDCode(code string) (Province, bool) {
	if len(code) != 3 || code[0] != '0' {
		return Province{}, false
	}
	i, ok := provinceByCode[code[1:]]
	if !ok {
		return Province{}, false
	}
	return provinces[i], true
}

// district is a district-level unit with its wards. Districts were
// abolished on 1 July 2025; addresses registered since then have none.
type district struct {
	code  string
	name  string
	urban bool
	wards []ward
}

type ward struct {
	code string
	name string
}

// realDistricts names actual districts (with their statistical codes) of
// the five centrally-governed cities, so demo addresses look familiar.
// Their wards, and all districts of other provinces, are synthetic: well
// formed (3- and 5-digit codes) and plausibly named, but not real units.
var realDistricts = map[string][][2]string{
	"01": {{"001", "Quận Ba Đình"}, {"002", "Quận Hoàn Kiếm"}, {"003", "Quận Tây Hồ"}, {"004", "Quận Long Biên"},
		{"005", "Quận Cầu Giấy"}, {"006", "Quận Đống Đa"}, {"007", "Quận Hai Bà Trưng"}, {"008", "Quận Hoàng Mai"},
		{"009", "Quận Thanh Xuân"}},
	"31": {{"303", "Quận Hồng Bàng"}, {"304", "Quận Ngô Quyền"}, {"305", "Quận Lê Chân"}, {"306", "Quận Hải An"},
		{"307", "Quận Kiến An"}},
	"48": {{"490", "Quận Liên Chiểu"}, {"491", "Quận Thanh Khê"}, {"492", "Quận Hải Châu"}, {"493", "Quận Sơn Trà"},
		{"494", "Quận Ngũ Hành Sơn"}, {"495", "Quận Cẩm Lệ"}},
	"79": {{"760", "Quận 1"}, {"761", "Quận 12"}, {"764", "Quận Gò Vấp"}, {"765", "Quận Bình Thạnh"},
		{"766", "Quận Tân Bình"}, {"767", "Quận Tân Phú"}, {"768", "Quận Phú Nhuận"}, {"769", "Thành phố Thủ Đức"},
		{"770", "Quận 3"}, {"771", "Quận 10"}, {"772", "Quận 11"}, {"773", "Quận 4"}, {"774", "Quận 5"},
		{"775", "Quận 6"}, {"776", "Quận 8"}, {"777", "Quận Bình Tân"}, {"778", "Quận 7"}},
	"92": {{"916", "Quận Ninh Kiều"}, {"917", "Quận Ô Môn"}, {"918", "Quận Bình Thủy"}, {"919", "Quận Cái Răng"},
		{"923", "Quận Thốt Nốt"}},
}

// Syllables that Vietnamese place names are commonly built from.
var (
	placeFirst  = []string{"An", "Bình", "Phú", "Tân", "Hòa", "Long", "Thạnh", "Phước", "Vĩnh", "Xuân", "Thanh", "Hưng", "Đông", "Tây", "Nam", "Bắc", "Trung", "Quang", "Minh", "Đức"}
	placeSecond = []string{"An", "Hòa", "Lợi", "Phú", "Thịnh", "Hưng", "Thuận", "Lộc", "Thành", "Tiến", "Phong", "Sơn", "Hải", "Mỹ", "Lạc"}
)

// geography holds each province's districts and wards. It is generated
// from fixed seeds, independent of the citizens' seed, so a ward code means
// the same ward in every data set.
var geography = func() map[string][]district {
	g := make(map[string][]district, len(provinces))
	for pi, p := range provinces {
		rng := rand.New(rand.NewPCG(uint64(pi)+1, 0x67656f))
		var ds []district
		if real, ok := realDistricts[p.Code]; ok {
			for _, d := range real {
				ds = append(ds, district{code: d[0], name: d[1], urban: true})
			}
		} else {
			// A provincial city and two rural districts, with synthetic
			// codes 500-751, which no real district above uses, so ward
			// codes stay unique nationwide.
			for k := range 3 {
				name := placeName(rng)
				d := district{code: fmt.Sprintf("%03d", 500+pi*4+k), urban: k == 0}
				if d.urban {
					d.name = "Thành phố " + name
				} else {
					d.name = "Huyện " + name
				}
				ds = append(ds, d)
			}
		}
		for di := range ds {
			seen := map[string]bool{}
			for k := 0; len(ds[di].wards) < 6 && k < 100; k++ {
				name := placeName(rng)
				if seen[name] {
					continue
				}
				seen[name] = true
				prefix := "Xã "
				if ds[di].urban {
					prefix = "Phường "
				}
				code, _ := strconv.Atoi(ds[di].code) // three digits, set above
				ds[di].wards = append(ds[di].wards, ward{
					code: fmt.Sprintf("%05d", code*35+len(ds[di].wards)*5+1),
					name: prefix + name,
				})
			}
		}
		g[p.Code] = ds
	}
	return g
}()

// placeName makes a two-syllable place name such as "Tân Lợi".
func placeName(rng *rand.Rand) string {
	for range 10 {
		a, b := placeFirst[rng.IntN(len(placeFirst))], placeSecond[rng.IntN(len(placeSecond))]
		if a != b {
			return a + " " + b
		}
	}
	return "Tân Phú"
}

// Street names found in most Vietnamese cities.
var streets = []string{"Lê Lợi", "Nguyễn Huệ", "Trần Hưng Đạo", "Hai Bà Trưng", "Lý Thường Kiệt", "Phan Chu Trinh",
	"Điện Biên Phủ", "Nguyễn Trãi", "Lê Duẩn", "Quang Trung", "Bạch Đằng", "Hoàng Diệu", "Nguyễn Thị Minh Khai",
	"Võ Thị Sáu", "Trần Phú", "Lê Thánh Tông", "Hùng Vương", "Nguyễn Du", "Phạm Ngũ Lão", "Ngô Quyền", "Kim Mã",
	"Bà Triệu", "Pasteur", "Cách Mạng Tháng Tám"}
