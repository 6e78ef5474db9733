package synthetic

import "math/rand/v2"

// weighted is a value with a relative frequency.
type weighted[T any] struct {
	v T
	w int
}

// pick draws from a weighted table. Tables are small and fixed, so a linear
// scan is fine.
func pick[T any](rng *rand.Rand, table []weighted[T]) T {
	total := 0
	for _, e := range table {
		total += e.w
	}
	n := rng.IntN(total)
	for _, e := range table {
		if n < e.w {
			return e.v
		}
		n -= e.w
	}
	return table[len(table)-1].v
}

// oneOf draws uniformly.
func oneOf[T any](rng *rand.Rand, list []T) T { return list[rng.IntN(len(list))] }

// Family names with their approximate share of the population (per mille).
var familyNames = []weighted[string]{
	{"Nguyễn", 380}, {"Trần", 110}, {"Lê", 95}, {"Phạm", 70}, {"Hoàng", 30}, {"Huỳnh", 20}, {"Phan", 45},
	{"Vũ", 20}, {"Võ", 19}, {"Đặng", 21}, {"Bùi", 20}, {"Đỗ", 14}, {"Hồ", 13}, {"Ngô", 13}, {"Dương", 10},
	{"Lý", 5}, {"Đinh", 6}, {"Trương", 6}, {"Lâm", 4}, {"Mai", 3}, {"Tạ", 2}, {"Cao", 2},
}

var (
	maleMiddle   = []weighted[string]{{"Văn", 40}, {"Đức", 10}, {"Minh", 12}, {"Quang", 8}, {"Hữu", 8}, {"Thành", 6}, {"Công", 6}, {"Tuấn", 4}, {"Gia", 4}, {"Hoàng", 4}}
	femaleMiddle = []weighted[string]{{"Thị", 45}, {"Ngọc", 12}, {"Thu", 8}, {"Thanh", 8}, {"Minh", 6}, {"Phương", 5}, {"Kim", 6}, {"Bảo", 4}, {"Hồng", 6}}
	maleGiven    = []string{"An", "Bảo", "Cường", "Dũng", "Đức", "Hải", "Hiếu", "Hoàng", "Hùng", "Huy", "Khang", "Khoa", "Long",
		"Minh", "Nam", "Phong", "Phúc", "Quân", "Quang", "Sơn", "Tài", "Thắng", "Thành", "Trung", "Tuấn", "Việt", "Vinh", "Kiên", "Lâm", "Nghĩa"}
	femaleGiven = []string{"Anh", "Chi", "Dung", "Giang", "Hà", "Hạnh", "Hằng", "Hoa", "Hương", "Lan", "Linh", "Mai", "My",
		"Ngân", "Ngọc", "Nhung", "Oanh", "Phương", "Quỳnh", "Tâm", "Thảo", "Thu", "Trang", "Vân", "Yến", "Huyền", "Loan", "Uyên"}
)

// fullName composes family name, middle name and given name.
func fullName(rng *rand.Rand, family, sex string) string {
	if sex == Male {
		return family + " " + pick(rng, maleMiddle) + " " + oneOf(rng, maleGiven)
	}
	return family + " " + pick(rng, femaleMiddle) + " " + oneOf(rng, femaleGiven)
}

// Ethnicities are the 54 ethnic groups of Vietnam with the General
// Statistics Office's two-digit codes, which the population database's
// ethnicity field holds (examples/population.yaml: pattern ^[0-9]{2}$).
var Ethnicities = map[string]string{
	"01": "Kinh", "02": "Tày", "03": "Thái", "04": "Hoa", "05": "Khơ-me", "06": "Mường", "07": "Nùng",
	"08": "Hmông", "09": "Dao", "10": "Gia-rai", "11": "Ngái", "12": "Ê-đê", "13": "Ba-na", "14": "Xơ-đăng",
	"15": "Sán Chay", "16": "Cơ-ho", "17": "Chăm", "18": "Sán Dìu", "19": "Hrê", "20": "Mnông", "21": "Ra-glai",
	"22": "Xtiêng", "23": "Bru-Vân Kiều", "24": "Thổ", "25": "Giáy", "26": "Cơ-tu", "27": "Gié-Triêng", "28": "Mạ",
	"29": "Khơ-mú", "30": "Co", "31": "Tà-ôi", "32": "Chơ-ro", "33": "Kháng", "34": "Xinh-mun", "35": "Hà Nhì",
	"36": "Chu-ru", "37": "Lào", "38": "La Chí", "39": "La Ha", "40": "Phù Lá", "41": "La Hủ", "42": "Lự",
	"43": "Lô Lô", "44": "Chứt", "45": "Mảng", "46": "Pà Thẻn", "47": "Co Lao", "48": "Cống", "49": "Bố Y",
	"50": "Si La", "51": "Pu Péo", "52": "Brâu", "53": "Ơ Đu", "54": "Rơ-măm",
}

// Regional ethnic make-up, as codes with weights: minorities live mostly in
// the northern mountains, the Central Highlands and the Mekong delta, so a
// Hmông citizen registered in Cà Mau would look wrong in a demo.
var (
	ethnicNorthMountains = []weighted[string]{{"01", 45}, {"02", 12}, {"03", 10}, {"08", 10}, {"07", 8}, {"09", 7}, {"06", 6}, {"25", 1}, {"15", 1}}
	ethnicHighlands      = []weighted[string]{{"01", 65}, {"10", 10}, {"12", 9}, {"13", 6}, {"14", 4}, {"16", 3}, {"20", 3}}
	ethnicKhmerDelta     = []weighted[string]{{"01", 80}, {"05", 18}, {"04", 2}}
	ethnicSaigon         = []weighted[string]{{"01", 93}, {"04", 6}, {"05", 1}}
	ethnicNorthCentral   = []weighted[string]{{"01", 85}, {"06", 8}, {"03", 7}}
	ethnicDefault        = []weighted[string]{{"01", 98}, {"06", 1}, {"02", 1}}
)

// ethnicityFor draws an ethnicity code for a citizen registered in the
// province with the given two-digit code.
func ethnicityFor(rng *rand.Rand, province string) string {
	switch province {
	case "02", "04", "06", "08", "10", "11", "12", "14", "15", "17", "20":
		return pick(rng, ethnicNorthMountains)
	case "62", "64", "66", "67", "68":
		return pick(rng, ethnicHighlands)
	case "84", "89", "91", "94", "95":
		return pick(rng, ethnicKhmerDelta)
	case "79":
		return pick(rng, ethnicSaigon)
	case "38", "40":
		return pick(rng, ethnicNorthCentral)
	}
	return pick(rng, ethnicDefault)
}

// Religions a citizen may be recorded with. Most Vietnamese follow none
// (86% in the 2019 census); the schema records that as null rather than as
// "Không" (none).
var religions = []weighted[string]{
	{"", 860}, {"Công giáo", 61}, {"Phật giáo", 48}, {"Tin lành", 10}, {"Phật giáo Hòa Hảo", 10}, {"Cao Đài", 6}, {"Hồi giáo", 1},
}

// Blood types among those who asked for theirs to be recorded; "" (not
// recorded, null) is the common case.
var bloodTypes = []weighted[string]{{"", 700}, {"O", 126}, {"B", 93}, {"A", 63}, {"AB", 18}}
