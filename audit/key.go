package audit

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// keyPEMType labels the checkpoint key file's one PEM block: the Ed25519
// seed, so the file stays small and readable by the gateway alone.
const keyPEMType = "LIENTHONG AUDIT CHECKPOINT KEY"

// LoadKey reads the gateway's checkpoint key from path, creating it (mode
// 0600, a new random key) if the file does not exist. A file readable by
// others is refused: whoever holds the key can sign checkpoints in the
// gateway's name.
func LoadKey(path string) (ed25519.PrivateKey, error) {
	bs, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return createKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("audit checkpoint key: %w", err)
	}
	if info, err := os.Stat(path); err == nil && info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("audit checkpoint key %s: mode %v; it must be readable by the gateway alone (0600)", path, info.Mode().Perm())
	}
	b, _ := pem.Decode(bs)
	if b == nil || b.Type != keyPEMType || len(b.Bytes) != ed25519.SeedSize {
		return nil, fmt.Errorf("audit checkpoint key %s: not a %q PEM block of %d bytes", path, keyPEMType, ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(b.Bytes), nil
}

func createKey(path string) (ed25519.PrivateKey, error) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit checkpoint key: %w", err)
	}
	err = pem.Encode(f, &pem.Block{Type: keyPEMType, Bytes: seed})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("audit checkpoint key: %w", err)
	}
	if err := syncDir(path); err != nil {
		return nil, err
	}
	return ed25519.NewKeyFromSeed(seed), nil
}
