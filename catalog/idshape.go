package catalog

// Hand-written matchers for the shapes of system ids and agency codes. Every
// exchange parses its caller's and its provider's system id several times,
// and the regular expressions these replace were a measurable part of the
// gateway's CPU per exchange; idshape_test.go checks each against the
// regular expression it stands for.

// isUpper reports whether b is an ASCII capital letter.
func isUpper(b byte) bool { return 'A' <= b && b <= 'Z' }

// isDigit reports whether b is an ASCII digit.
func isDigit(b byte) bool { return '0' <= b && b <= '9' }

// validUpperName matches ^[A-Z]{2,8}$: an instance or a member class.
func validUpperName(s string) bool {
	if len(s) < 2 || len(s) > 8 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isUpper(s[i]) {
			return false
		}
	}
	return true
}

// validSystemCode matches ^[A-Z0-9][A-Z0-9_-]{0,63}$.
func validSystemCode(s string) bool {
	if len(s) < 1 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		switch {
		case isUpper(b), isDigit(b):
		case i > 0 && (b == '_' || b == '-'):
		default:
			return false
		}
	}
	return true
}

// validMemberCode matches ^[0-9]{3}\.[0-9]{2}\.[0-9]{2}\.[A-Z][0-9]{2}$.
func validMemberCode(s string) bool {
	const shape = "ddd.dd.dd.Add"
	if len(s) != len(shape) {
		return false
	}
	for i := 0; i < len(s); i++ {
		var ok bool
		switch shape[i] {
		case 'd':
			ok = isDigit(s[i])
		case 'A':
			ok = isUpper(s[i])
		default:
			ok = s[i] == shape[i]
		}
		if !ok {
			return false
		}
	}
	return true
}
