package projection

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strings"
	"sync"
	"unicode/utf8"
)

// MinKeySize is the shortest HMAC key NewMasker accepts (32 bytes, the
// output size of SHA-256): a shorter key would make hashed values easier to
// recover by trying candidate values.
const MinKeySize = 32

// DefaultPartialKeep is how many trailing characters a partial mask keeps
// when NewMasker is given 0: enough to recognise a number ("********1234")
// and little enough to identify nobody.
const DefaultPartialKeep = 4

// HashPrefix starts every hashed value, so a consumer can tell a hash from
// a value that happens to look like hex.
const HashPrefix = "hmac-sha256:"

// Masker applies the hash and partial masks with one provider's secret. A
// provider keeps its key stable, so the same value always hashes the same
// way and consumers can still join records on hashed fields without ever
// learning the values. Make one with NewMasker (the zero Masker has no key
// and panics); it is safe for concurrent use.
type Masker struct {
	keep int
	pool sync.Pool // of hash.Hash, each an HMAC keyed with the provider key
}

// NewMasker returns a Masker that hashes with HMAC-SHA-256 under key (at
// least MinKeySize bytes; it is copied) and whose partial mask keeps the
// last partialKeep characters (0 means DefaultPartialKeep).
func NewMasker(key []byte, partialKeep int) (*Masker, error) {
	if len(key) < MinKeySize {
		return nil, fmt.Errorf("projection: the masking key has %d bytes; it needs at least %d", len(key), MinKeySize)
	}
	if partialKeep < 0 {
		return nil, fmt.Errorf("projection: partial mask keeps %d characters; expected 0 (default %d) or more", partialKeep, DefaultPartialKeep)
	}
	if partialKeep == 0 {
		partialKeep = DefaultPartialKeep
	}
	k := append([]byte(nil), key...)
	m := &Masker{keep: partialKeep}
	m.pool.New = func() any { return hmac.New(sha256.New, k) }
	return m, nil
}

// Hash returns HashPrefix followed by the hex HMAC-SHA-256 of canonical,
// which should be the canonical JSON of a value (see the package's hash
// mask) so that equal values hash equally however the backend wrote them.
func (m *Masker) Hash(canonical []byte) string {
	h := m.pool.Get().(hash.Hash)
	h.Reset()
	h.Write(canonical)
	var sum [sha256.Size]byte
	out := h.Sum(sum[:0])
	m.pool.Put(h)
	b := make([]byte, len(HashPrefix)+hex.EncodedLen(len(out)))
	copy(b, HashPrefix)
	hex.Encode(b[len(HashPrefix):], out)
	return string(b)
}

// Partial keeps the last characters of s and replaces every other one with
// '*', one '*' per character, so the length stays visible. Characters are
// runes, not bytes: "Nguyễn Văn An" keeps "n An". It never keeps more than
// half of the characters (rounded down), so a short value such as a
// two-letter code is not sent almost whole: "AB" becomes "*B".
func (m *Masker) Partial(s string) string {
	n := utf8.RuneCountInString(s)
	keep := min(m.keep, n/2)
	hide := n - keep
	var b strings.Builder
	b.Grow(hide + len(s))
	for i := range s {
		if hide == 0 {
			b.WriteString(s[i:])
			break
		}
		b.WriteByte('*')
		hide--
	}
	return b.String()
}

// errNoMasker is returned by NewPlan when a mask needs a key it was not given.
var errNoMasker = errors.New("a hash or partial mask needs a Masker")
