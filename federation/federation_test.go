package federation_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/catalog/sqlstore"
	"github.com/lienthong/lienthong/federation"
)

const (
	mps, vss   = "000.00.00.G01", "000.00.00.G14"
	population = "VN:GOV:000.00.00.G01:CSDLDC"
	insurance  = "VN:GOV:000.00.00.G14:BHXH"
)

var t0 = time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)

func snapshotFixture() *federation.Snapshot {
	revoked := t0
	return &federation.Snapshot{
		Revision: 42,
		Systems: []catalog.System{
			{ID: population, Member: mps},
			{ID: insurance, Member: vss, RevokedAt: &revoked},
		},
		Datasets: []catalog.Dataset{
			{System: population, Code: "population", Version: 3, Digest: "d1", RecordSchema: "Citizen"},
			{System: insurance, Code: "cards", Version: 1, Digest: "d2", RecordSchema: "Card"},
		},
		Gateways: []catalog.Gateway{{Member: mps, System: "VN:GOV:000.00.00.G01:GW", Address: "10.0.0.1:9444"}},
		Revoked: []federation.RevokedCertificate{
			{Serial: "0a", NotAfter: t0.Add(time.Hour)},
			{Serial: "0b", NotAfter: t0.Add(-time.Hour)}, // expired: fails on its own
		},
	}
}

func TestConfigIsTheMembersShare(t *testing.T) {
	snap := snapshotFixture()
	trust, err := snap.Trust("lienthong.vn", "ROOTS", t0)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(trust.RevokedSerials, ",") != "0a" || strings.Join(trust.RevokedSystems, ",") != insurance || trust.Revision != 42 {
		t.Fatalf("trust = %+v", trust)
	}
	for _, tc := range []struct {
		member string
		want   []string
	}{
		{mps, []string{population}},
		{vss, []string{insurance}},
		{"000.00.00.G99", nil},
		{"", []string{population, insurance}},
	} {
		cfg, err := snap.Config(tc.member, trust)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, d := range cfg.Datasets {
			got = append(got, d.Provider)
		}
		if strings.Join(got, ",") != strings.Join(tc.want, ",") || cfg.Member != tc.member || len(cfg.Gateways) != 1 || cfg.Content == "" {
			t.Errorf("config of %q: datasets %v, member %q, content %q", tc.member, got, cfg.Member, cfg.Content)
		}
	}
	a, _ := snap.Config(mps, trust)
	b, _ := snap.Config(vss, trust)
	if a.Content == b.Content {
		t.Error("two members' shares have one content digest")
	}
	later, _ := snap.Trust("lienthong.vn", "ROOTS", t0.Add(2*time.Hour))
	if later.ETag == trust.ETag || len(later.RevokedSerials) != 0 {
		t.Errorf("an expired serial leaving the list must change the trust ETag: %s %v", later.ETag, later.RevokedSerials)
	}
}

func TestSignedConfigAndFreshness(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	snap := snapshotFixture()
	trust, _ := snap.Trust("lienthong.vn", "ROOTS", t0)
	cfg, _ := snap.Config(mps, trust)

	full, err := federation.Issue(cfg, "", t0, "k1", key)
	if err != nil || full.NotModified {
		t.Fatalf("issue: %+v %v", full, err)
	}
	got, err := federation.VerifyConfig("k1", &key.PublicKey, full.Body, full.Signature)
	if err != nil || got.ETag() != full.ETag || !got.IssuedAt.Equal(t0) || got.Member != mps {
		t.Fatalf("verify: %+v %v", got, err)
	}
	// Tampering with any byte, another key, another key id: refused.
	tampered := []byte(strings.Replace(string(full.Body), "10.0.0.1", "10.6.6.6", 1))
	for name, err := range map[string]error{
		"tampered body": federation.Verify("k1", &key.PublicKey, tampered, full.Signature),
		"other key":     federation.Verify("k1", &other.PublicKey, full.Body, full.Signature),
		"other key id":  federation.Verify("k2", &key.PublicKey, full.Body, full.Signature),
		"no key id":     federation.Verify("k1", &key.PublicKey, full.Body, strings.TrimPrefix(full.Signature, "k1.")),
	} {
		if !errors.Is(err, federation.ErrBadSignature) {
			t.Errorf("%s: %v, want ErrBadSignature", name, err)
		}
	}

	// Asked with its ETag: a statement, bound to the ETag and the time.
	fresh, err := federation.Issue(cfg, full.ETag, t0.Add(time.Minute), "k1", key)
	if err != nil || !fresh.NotModified || len(fresh.Body) != 0 {
		t.Fatalf("not modified: %+v %v", fresh, err)
	}
	if err := federation.Verify("k1", &key.PublicKey, federation.FreshnessMessage(fresh.ETag, fresh.FreshAt), fresh.Signature); err != nil {
		t.Fatal(err)
	}
	for _, msg := range [][]byte{
		federation.FreshnessMessage(fresh.ETag, fresh.FreshAt.Add(time.Hour)),
		federation.FreshnessMessage(`"other"`, fresh.FreshAt),
	} {
		if err := federation.Verify("k1", &key.PublicKey, msg, fresh.Signature); !errors.Is(err, federation.ErrBadSignature) {
			t.Errorf("statement verified over %q", msg)
		}
	}
	// A freshness statement is never a configuration.
	if _, err := federation.VerifyConfig("k1", &key.PublicKey, federation.FreshnessMessage(fresh.ETag, fresh.FreshAt), fresh.Signature); err == nil {
		t.Error("a freshness statement was read as a configuration")
	}
	// A stale ETag gets the whole configuration.
	if again, _ := federation.Issue(cfg, `"stale"`, t0, "k1", key); again.NotModified {
		t.Error("an unknown ETag was answered not modified")
	}
	var raw map[string]any
	if err := json.Unmarshal(full.Body, &raw); err != nil || raw["member"] != mps {
		t.Errorf("signed body names member %v", raw["member"])
	}
}

// Read inside a View sees one revision even while writes commit between
// its lists.
func TestReadIsOneRevision(t *testing.T) {
	ctx := context.Background()
	store, err := sqlstore.OpenSQLite(ctx, filepath.Join(t.TempDir(), "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	write := func(code string) {
		t.Helper()
		err := store.Update(ctx, func(tx catalog.Tx) error {
			if err := tx.CreateMember(ctx, &catalog.Member{Code: code, Name: code, CreatedAt: t0}); err != nil {
				return err
			}
			return tx.AppendTrail(ctx, &catalog.TrailEntry{At: t0, Actor: "test", Action: "member.create", Object: code, Outcome: "ok"})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	write(mps)
	var snap *federation.Snapshot
	err = store.View(ctx, func(r catalog.Reader) error {
		rev, err := r.Revision(ctx)
		if err != nil {
			return err
		}
		write(vss) // commits before Read's lists run
		if snap, err = federation.Read(ctx, r); err != nil {
			return err
		}
		if snap.Revision != rev {
			return errors.New("the snapshot moved to a newer revision inside one view")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	now, _ := store.Revision(ctx)
	if snap.Revision >= now || snap.Revoked == nil {
		t.Fatalf("snapshot revision %d, store now %d", snap.Revision, now)
	}
}
