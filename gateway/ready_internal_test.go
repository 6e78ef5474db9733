package gateway

import (
	"strings"
	"testing"
)

// TestPolicyBundleCheck: with no bundle in force the check fails, naming it.
func TestPolicyBundleCheck(t *testing.T) {
	g := &Gateway{sync: &syncer{}}
	if err := g.checkBundle(); err == nil || !strings.Contains(err.Error(), "policy bundle") {
		t.Errorf("no bundle in force: %v", err)
	}
}
