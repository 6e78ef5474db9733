package audit

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// SubjectKeySize is the length of an audit subject key: 32 random bytes.
const SubjectKeySize = 32

// subjectDomain separates audit subjects from every other use of HMAC in the
// federation, and names the formula's version.
const subjectDomain = "lienthong-audit-subject-v1\x00"

// SubjectKey names data subjects (citizens) in audit records. It is one key
// for the whole federation, so both gateways of an exchange, and every
// provider, name the same citizen the same way and a citizen's records can be
// found across logs; and it is used for nothing else, in particular never for
// the hash mask, whose output consumers receive: a value a consumer holds must
// not be the index of the provider's log.
type SubjectKey []byte

// Subject is how audit records name the data subject with this personal id:
// the lowercase hex of HMAC-SHA-256(key, "lienthong-audit-subject-v1\x00" +
// personalID). Other components depend on this exact formula.
func (k SubjectKey) Subject(personalID string) string {
	m := hmac.New(sha256.New, k)
	m.Write([]byte(subjectDomain))
	m.Write([]byte(personalID))
	return hex.EncodeToString(m.Sum(nil))
}

// LoadSubjectKey reads a subject key file, refusing one that is short or
// readable by others.
func LoadSubjectKey(path string) (SubjectKey, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("audit subject key: %w", err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("audit subject key %s is readable by others (mode %v); chmod 600 it", path, info.Mode().Perm())
	}
	key, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("audit subject key: %w", err)
	}
	if len(key) != SubjectKeySize {
		return nil, fmt.Errorf("audit subject key %s: %d bytes, want %d", path, len(key), SubjectKeySize)
	}
	return SubjectKey(key), nil
}

// CreateSubjectKey writes a new random subject key to path (mode 0600) unless
// a file is already there: the key must stay stable for the federation's life,
// so an existing one is never replaced. It reports whether it made one.
func CreateSubjectKey(path string) (bool, error) {
	key := make([]byte, SubjectKeySize)
	if _, err := rand.Read(key); err != nil {
		return false, fmt.Errorf("audit subject key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("audit subject key: %w", err)
	}
	if _, err := f.Write(key); err != nil {
		f.Close()
		return false, fmt.Errorf("audit subject key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return false, fmt.Errorf("audit subject key: %w", err)
	}
	return true, f.Close()
}
