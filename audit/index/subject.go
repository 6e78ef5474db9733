package index

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// SubjectKeyFile is the name of the federation-wide audit subject key in the
// control plane's data directory. `lienthong up` creates the same file; the
// control plane creates it at first start when it is missing, so both agree.
const SubjectKeyFile = "audit-subject.key"

// subjectDomain separates subject HMACs from any other use of the key.
const subjectDomain = "lienthong-audit-subject-v1\x00"

// SubjectKey turns a citizen's personal ID into the HMAC the audit log and
// the index hold instead of it.
type SubjectKey struct{ key []byte }

// Subject returns lowercase hex HMAC-SHA-256(key, domain || personalID).
func (k SubjectKey) Subject(personalID string) string {
	m := hmac.New(sha256.New, k.key)
	m.Write([]byte(subjectDomain))
	m.Write([]byte(personalID))
	return hex.EncodeToString(m.Sum(nil))
}

// LoadOrCreateSubjectKey reads the 32-byte key at path (raw bytes, or 64 hex
// digits), creating it with mode 0600 when it does not exist. A key of the
// wrong size is refused: a different key would make every stored subject
// unfindable.
func LoadOrCreateSubjectKey(path string) (SubjectKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return SubjectKey{}, fmt.Errorf("audit subject key: %w", err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) {
			return LoadOrCreateSubjectKey(path) // created meanwhile by `lienthong up`
		}
		if err != nil {
			return SubjectKey{}, fmt.Errorf("audit subject key: %w", err)
		}
		if _, err := f.Write(key); err != nil {
			f.Close()
			return SubjectKey{}, fmt.Errorf("audit subject key %s: %w", path, err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return SubjectKey{}, fmt.Errorf("audit subject key %s: %w", path, err)
		}
		if err := f.Close(); err != nil {
			return SubjectKey{}, fmt.Errorf("audit subject key %s: %w", path, err)
		}
		return SubjectKey{key: key}, nil
	}
	if err != nil {
		return SubjectKey{}, fmt.Errorf("audit subject key: %w", err)
	}
	if len(b) == 32 {
		return SubjectKey{key: b}, nil
	}
	if h, err := hex.DecodeString(strings.TrimSpace(string(b))); err == nil && len(h) == 32 {
		return SubjectKey{key: h}, nil
	}
	return SubjectKey{}, fmt.Errorf("audit subject key %s: want 32 bytes (raw or hex), found %d bytes", path, len(b))
}
