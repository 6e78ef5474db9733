package policies

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"io"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/bundle"
)

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// rewriteTar copies a bundle, letting edit change each file's content (return
// nil to leave a file out).
func rewriteTar(t *testing.T, bs []byte, edit func(name string, content []byte) []byte) []byte {
	t.Helper()
	return retar(t, bs, edit, "", nil)
}

// retar is rewriteTar that also appends one file when name is set.
func retar(t *testing.T, bs []byte, edit func(name string, content []byte) []byte, name string, extra []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(bs))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	tw := tar.NewWriter(zw)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		content, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		content = edit(h.Name, content)
		if content == nil {
			continue
		}
		h.Size = int64(len(content))
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(content); err != nil {
			t.Fatal(err)
		}
	}
	if name != "" {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Typeflag: tar.TypeReg, Size: int64(len(extra))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(extra); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func tarNames(t *testing.T, bs []byte) []string {
	var names []string
	rewriteTar(t, bs, func(name string, c []byte) []byte { names = append(names, name); return c })
	return names
}

func TestBundleRoundTripDecidesTheSame(t *testing.T) {
	key := newKey(t)
	snap := fixtureSnapshot(t, "", fixtureGrants(), map[string][]byte{provider: []byte(narrowing)})
	bs, err := BuildBundle(snap, "rev-42", SigningKey{KeyID: "cp-2026", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	names := strings.Join(tarNames(t, bs), " ")
	for _, want := range []string{"/data.json", "/.manifest", "/.signatures.json", "/lienthong/exchange.rego", "/lienthong/agency/vn_gov_000_00_00_g01_csdldc.rego"} {
		if !strings.Contains(names, want) {
			t.Errorf("bundle lacks %s: %s", want, names)
		}
	}
	if strings.Contains(names, "_test.rego") {
		t.Errorf("bundle carries tests: %s", names)
	}

	// OPA's own reader, verification on, accepts it.
	pubPEM, err := PublicKeyPEM(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	vc := bundle.NewVerificationConfig(map[string]*bundle.KeyConfig{"cp-2026": {Key: string(pubPEM), Algorithm: "ES256"}}, "cp-2026", "", nil)
	ob, err := bundle.NewReader(bytes.NewReader(bs)).WithBundleVerificationConfig(vc).Read()
	if err != nil {
		t.Fatalf("OPA reader refused the bundle: %v", err)
	}
	if ob.Manifest.Revision != "rev-42" || len(*ob.Manifest.Roots) != 1 || (*ob.Manifest.Roots)[0] != Root {
		t.Fatalf("manifest %+v", ob.Manifest)
	}

	vk, err := VerificationKeyFromPEM("cp-2026", pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadBundle(bytes.NewReader(bs), vk)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Revision != "rev-42" || !loaded.IssuedAt.Equal(t0) {
		t.Fatalf("revision %q issued %s", loaded.Revision, loaded.IssuedAt)
	}

	snap.Revision = "rev-42"
	mem := loadedEngine(t, snap, WithCacheSize(0))
	fromBundle := loadedEngine(t, loaded, WithCacheSize(0))
	ctx := context.Background()
	inputs := []Input{
		ask(nil), ask(fields()), ask(fields("personalId", "permanentResidence", "religion", "nationality")),
		ask(func(in *Input) { in.Consumer.ID = portal }),
		ask(func(in *Input) {
			in.Consumer.ID = portal
			in.Purpose = "2.000004"
			in.Fields = []string{"permanentResidence"}
		}),
		ask(func(in *Input) { in.Consumer.ID = noGrant; in.Fields = []string{"nationality"} }),
		ask(func(in *Input) { in.Consumer.ID = lowSys }),
		ask(func(in *Input) { in.Dataset = hhCode; in.Fields = nil }),
	}
	for _, in := range inputs {
		a, errA := mem.Decide(ctx, in)
		b, errB := fromBundle.Decide(ctx, in)
		if errA != nil || errB != nil {
			t.Fatal(errA, errB)
		}
		check(t, b, want{allow: a.Allow, fields: a.Fields, masks: a.Masks, rowScope: a.RowScope, grantID: a.GrantID})
		if len(a.Reasons) != len(b.Reasons) || a.Expires != b.Expires || a.Revision != b.Revision {
			t.Errorf("in-memory %+v\nfrom bundle %+v", a, b)
		}
	}
}

func TestBundleRejections(t *testing.T) {
	key := newKey(t)
	vk := VerificationKey{KeyID: "cp", Key: &key.PublicKey}
	snap := fixtureSnapshot(t, "", fixtureGrants(), map[string][]byte{provider: []byte(narrowing)})
	bs, err := BuildBundle(snap, "r1", SigningKey{KeyID: "cp", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadBundle(bytes.NewReader(bs), vk); err != nil {
		t.Fatalf("untouched bundle refused: %v", err)
	}

	other := newKey(t)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	unsigned := rewriteTar(t, bs, func(name string, c []byte) []byte {
		if name == "/.signatures.json" {
			return nil
		}
		return c
	})
	cases := map[string]struct {
		bundle []byte
		key    VerificationKey
	}{
		"one byte of data.json changed": {rewriteTar(t, bs, func(name string, c []byte) []byte {
			if name == "/data.json" {
				// Level 3 becomes level 4 for every system at 3: one byte.
				i := bytes.Index(c, []byte(`"level":3`))
				if i < 0 {
					t.Fatal("fixture level not found")
				}
				c = bytes.Clone(c)
				c[i+len(`"level":`)] = '4'
			}
			return c
		}), vk},
		"policy file swapped": {rewriteTar(t, bs, func(name string, c []byte) []byte {
			if name == "/lienthong/exchange.rego" {
				return []byte("package lienthong.exchange\n\nresult := {\"decision\": {\"allow\": true}}\n")
			}
			return c
		}), vk},
		"agency module removed": {rewriteTar(t, bs, func(name string, c []byte) []byte {
			if strings.HasPrefix(name, "/lienthong/agency/") {
				return nil
			}
			return c
		}), vk},
		"manifest revision changed": {rewriteTar(t, bs, func(name string, c []byte) []byte {
			if name == "/.manifest" {
				return bytes.Replace(c, []byte(`"r1"`), []byte(`"r2"`), 1)
			}
			return c
		}), vk},
		"wrong key":                     {bs, VerificationKey{KeyID: "cp", Key: &other.PublicKey}},
		"wrong key id":                  {bs, VerificationKey{KeyID: "other", Key: &key.PublicKey}},
		"wrong key type":                {bs, VerificationKey{KeyID: "cp", Key: &rsaKey.PublicKey}},
		"unsigned":                      {unsigned, vk},
		"not a bundle":                  {[]byte("hello"), vk},
		"signed by RSA, ECDSA expected": {mustBundle(t, snap, SigningKey{KeyID: "cp", Key: rsaKey}), vk},
	}
	cases["file added"] = struct {
		bundle []byte
		key    VerificationKey
	}{retar(t, bs, func(_ string, c []byte) []byte { return c }, "/lienthong/extra.rego", []byte("package lienthong.exchange\n\nextra := true\n")), vk}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := LoadBundle(bytes.NewReader(tc.bundle), tc.key)
			if err == nil {
				t.Fatal("bundle accepted")
			}
			t.Logf("refused as expected: %v", err)
		})
	}

	// RSA works end to end when the gateway holds the RSA key.
	rb := mustBundle(t, snap, SigningKey{KeyID: "cp", Key: rsaKey})
	if _, err := LoadBundle(bytes.NewReader(rb), VerificationKey{KeyID: "cp", Key: &rsaKey.PublicKey}); err != nil {
		t.Fatalf("RSA bundle refused: %v", err)
	}
}

func mustBundle(t *testing.T, snap *Snapshot, key SigningKey) []byte {
	t.Helper()
	bs, err := BuildBundle(snap, "r1", key)
	if err != nil {
		t.Fatal(err)
	}
	return bs
}

func TestSigningKeyPEM(t *testing.T) {
	key := newKey(t)
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := SigningKeyFromPEM("cp", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
	if err != nil {
		t.Fatal(err)
	}
	snap := fixtureSnapshot(t, "", fixtureGrants(), nil)
	bs := mustBundle(t, snap, sk)
	if _, err := LoadBundle(bytes.NewReader(bs), VerificationKey{KeyID: "cp", Key: &key.PublicKey}); err != nil {
		t.Fatal(err)
	}
	if _, err := SigningKeyFromPEM("cp", []byte("nope")); err == nil {
		t.Fatal("garbage accepted as a key")
	}
}
