package embedded

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/scrypt"
)

// PEM block types of key files. Plain keys are PKCS #8 so that openssl
// reads them; encrypted ones use our own envelope, described below, because
// the standard encrypted PKCS #8 schemes in the wild lean on PBKDF2 with low
// iteration counts.
const (
	plainKeyType     = "PRIVATE KEY"
	encryptedKeyType = "LIENTHONG ENCRYPTED PRIVATE KEY"
)

// Encryption of key files: scrypt derives a 256-bit key from the passphrase
// and a random 16-byte salt; AES-256-GCM seals the PKCS #8 DER with a
// random 12-byte nonce. Parameters travel in PEM headers so they can be
// raised later without breaking old files; the headers are bound to the
// ciphertext as additional data, so altering them fails decryption.
const (
	scryptR   = 8
	scryptP   = 1
	saltBytes = 16
)

// scryptN is the cost for new files: 2^15 with r=8 takes 32 MiB, the
// interactive-login cost scrypt's authors suggest. Only tests lower it (to
// 2^14, the least decodeKey accepts), to stay fast under the race detector.
var scryptN = 1 << 15

// errNeedPassphrase is returned for an encrypted key without a passphrase.
var errNeedPassphrase = errors.New("the key is encrypted and no passphrase was given (set " + PassphraseEnv + ")")

func encodeKey(key crypto.Signer, passphrase []byte) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	if len(passphrase) == 0 {
		return pem.EncodeToMemory(&pem.Block{Type: plainKeyType, Bytes: der}), nil
	}
	salt := make([]byte, saltBytes)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("salt: %w", err)
	}
	headers := map[string]string{
		"KDF":    fmt.Sprintf("scrypt N=%d r=%d p=%d", scryptN, scryptR, scryptP),
		"Salt":   hex.EncodeToString(salt),
		"Cipher": "AES-256-GCM",
	}
	aead, err := newAEAD(passphrase, salt, scryptN, scryptR, scryptP)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("nonce: %w", err)
	}
	headers["Nonce"] = hex.EncodeToString(nonce)
	sealed := aead.Seal(nil, nonce, der, associatedData(headers))
	return pem.EncodeToMemory(&pem.Block{Type: encryptedKeyType, Headers: headers, Bytes: sealed}), nil
}

// decodeKey reads a key file; encrypted reports whether it was sealed.
func decodeKey(data, passphrase []byte) (key crypto.Signer, encrypted bool, err error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, false, errors.New("no PEM block")
	}
	der := block.Bytes
	switch block.Type {
	case plainKeyType:
	case encryptedKeyType:
		encrypted = true
		if len(passphrase) == 0 {
			return nil, true, errNeedPassphrase
		}
		if der, err = openKey(block, passphrase); err != nil {
			return nil, true, err
		}
	default:
		return nil, false, fmt.Errorf("unexpected PEM block %q", block.Type)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, encrypted, fmt.Errorf("parse key: %w", err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, encrypted, fmt.Errorf("key of type %T cannot sign", k)
	}
	return signer, encrypted, nil
}

// isEncrypted reports whether a key file is sealed, without decrypting it.
func isEncrypted(data []byte) bool {
	block, _ := pem.Decode(data)
	return block != nil && block.Type == encryptedKeyType
}

func openKey(block *pem.Block, passphrase []byte) ([]byte, error) {
	if block.Headers["Cipher"] != "AES-256-GCM" {
		return nil, fmt.Errorf("unsupported cipher %q", block.Headers["Cipher"])
	}
	n, r, p, err := parseKDF(block.Headers["KDF"])
	if err != nil {
		return nil, err
	}
	salt, err := hex.DecodeString(block.Headers["Salt"])
	if err != nil || len(salt) < saltBytes {
		return nil, errors.New("bad salt header")
	}
	nonce, err := hex.DecodeString(block.Headers["Nonce"])
	if err != nil {
		return nil, errors.New("bad nonce header")
	}
	aead, err := newAEAD(passphrase, salt, n, r, p)
	if err != nil {
		return nil, err
	}
	if len(nonce) != aead.NonceSize() {
		return nil, errors.New("bad nonce header")
	}
	der, err := aead.Open(nil, nonce, block.Bytes, associatedData(block.Headers))
	if err != nil {
		return nil, errors.New("cannot decrypt: wrong passphrase or damaged file")
	}
	return der, nil
}

// parseKDF reads "scrypt N=.. r=.. p=..", within bounds that keep a crafted
// file from making Open allocate without limit.
func parseKDF(h string) (n, r, p int, err error) {
	fields := strings.Fields(h)
	if len(fields) != 4 || fields[0] != "scrypt" {
		return 0, 0, 0, fmt.Errorf("unsupported key derivation %q", h)
	}
	vals := map[string]int{}
	for _, f := range fields[1:] {
		k, v, ok := strings.Cut(f, "=")
		x, err := strconv.Atoi(v)
		if !ok || err != nil {
			return 0, 0, 0, fmt.Errorf("bad key derivation parameter %q", f)
		}
		vals[k] = x
	}
	n, r, p = vals["N"], vals["r"], vals["p"]
	if n < 1<<14 || n > 1<<20 || n&(n-1) != 0 || r < 1 || r > 32 || p < 1 || p > 16 {
		return 0, 0, 0, fmt.Errorf("key derivation parameters out of range in %q", h)
	}
	return n, r, p, nil
}

func newAEAD(passphrase, salt []byte, n, r, p int) (cipher.AEAD, error) {
	k, err := scrypt.Key(passphrase, salt, n, r, p, 32)
	if err != nil {
		return nil, fmt.Errorf("derive key: %w", err)
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, fmt.Errorf("cipher: %w", err)
	}
	return cipher.NewGCM(block)
}

func associatedData(h map[string]string) []byte {
	return []byte("lienthong-ca-key/v1\nKDF: " + h["KDF"] + "\nSalt: " + h["Salt"] + "\nCipher: " + h["Cipher"] + "\n")
}
