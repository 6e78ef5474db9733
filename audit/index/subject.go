package index

import (
	"github.com/lienthong/lienthong/audit"
)

// SubjectKeyFile is the name of the federation-wide audit subject key in the
// control plane's data directory; `lienthong up` gives its path to every
// gateway, so records and the tracker's lookups name a citizen alike.
const SubjectKeyFile = "audit-subject.key"

// SubjectKey turns a citizen's personal ID into the HMAC the audit log and
// the index store: the audit package's key, so the control plane and the
// gateways share one definition.
type SubjectKey = audit.SubjectKey

// LoadOrCreateSubjectKey makes the key at path if none is there (never
// replacing one), then reads it.
func LoadOrCreateSubjectKey(path string) (SubjectKey, error) {
	if _, err := audit.CreateSubjectKey(path); err != nil {
		return nil, err
	}
	return audit.LoadSubjectKey(path)
}
