package catalog

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
)

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewID returns prefix + "-" + 80 random bits in lower-case base32, e.g.
// "req-k3j5…": unguessable, readable, and safe in URLs and file names.
func NewID(prefix string) string {
	var b [10]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("catalog: crypto/rand failed: " + err.Error())
	}
	return prefix + "-" + strings.ToLower(idEncoding.EncodeToString(b[:]))
}
