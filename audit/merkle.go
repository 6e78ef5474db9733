package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
)

// The Merkle tree of a checkpoint interval is RFC 9162's (Certificate
// Transparency 2.0) tree hash: a leaf is SHA-256(0x00 || data), an inner
// node SHA-256(0x01 || left || right), and a tree of n leaves splits at the
// largest power of two below n. A leaf's data is the entry's 32-byte
// SHA-256 (the binary form of EntryHash), so each entry is hashed once for
// both the chain and the tree. A checkpoint signs the root, so one entry can
// be shown to be in the log with log2(n) hashes (InclusionProof), without
// the rest of it.

// Hash is one SHA-256 value of the tree.
type Hash = [sha256.Size]byte

// LeafHash returns the Merkle leaf hash of an entry's stored bytes:
// SHA-256(0x00 || SHA-256(line)).
func LeafHash(line []byte) Hash { return leafOf(sha256.Sum256(line)) }

// leafOf returns the leaf hash of an entry whose SHA-256 is h.
func leafOf(h Hash) Hash { return leafHashData(h[:]) }

// leafHashData is RFC 9162's leaf hash of arbitrary data.
func leafHashData(data []byte) Hash {
	var buf [1 + sha256.Size]byte
	if len(data) == sha256.Size {
		copy(buf[1:], data)
		return sha256.Sum256(buf[:])
	}
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(data)
	var out Hash
	h.Sum(out[:0])
	return out
}

func nodeHash(l, r Hash) Hash {
	var buf [1 + 2*sha256.Size]byte
	buf[0] = 1
	copy(buf[1:], l[:])
	copy(buf[1+sha256.Size:], r[:])
	return sha256.Sum256(buf[:])
}

// MerkleBuilder computes the tree hash of leaves added one at a time, in
// O(log n) memory: it keeps the roots of the perfect subtrees so far.
type MerkleBuilder struct {
	stack []Hash // roots of perfect subtrees, largest first
	n     uint64
}

// Add appends a leaf hash.
func (b *MerkleBuilder) Add(leaf Hash) {
	b.stack = append(b.stack, leaf)
	// Merge as many subtrees as the new count has trailing one bits.
	for k := b.n; k&1 == 1; k >>= 1 {
		top := len(b.stack) - 1
		b.stack[top-1] = nodeHash(b.stack[top-1], b.stack[top])
		b.stack = b.stack[:top]
	}
	b.n++
}

// Len returns how many leaves were added.
func (b *MerkleBuilder) Len() uint64 { return b.n }

// Root returns the tree hash of the leaves added so far (SHA-256 of nothing
// for none, as RFC 9162 defines).
func (b *MerkleBuilder) Root() Hash {
	if len(b.stack) == 0 {
		return sha256.Sum256(nil)
	}
	root := b.stack[len(b.stack)-1]
	for i := len(b.stack) - 2; i >= 0; i-- {
		root = nodeHash(b.stack[i], root)
	}
	return root
}

// Reset empties the builder for the next interval.
func (b *MerkleBuilder) Reset() { b.stack, b.n = b.stack[:0], 0 }

// MerkleRoot returns the tree hash of leaves.
func MerkleRoot(leaves []Hash) Hash {
	var b MerkleBuilder
	for _, l := range leaves {
		b.Add(l)
	}
	return b.Root()
}

// InclusionProof returns the audit path of leaf index (0-based) in the tree
// over leaves, as RFC 9162 section 2.1.3.1 defines it.
func InclusionProof(leaves []Hash, index int) ([]Hash, error) {
	if index < 0 || index >= len(leaves) {
		return nil, fmt.Errorf("merkle proof: leaf %d of %d", index, len(leaves))
	}
	return path(leaves, index), nil
}

func path(leaves []Hash, m int) []Hash {
	n := len(leaves)
	if n <= 1 {
		return nil
	}
	k := 1 << (bits.Len(uint(n-1)) - 1) // largest power of two below n
	if m < k {
		return append(path(leaves[:k], m), MerkleRoot(leaves[k:]))
	}
	return append(path(leaves[k:], m-k), MerkleRoot(leaves[:k]))
}

// ErrProof reports an inclusion proof that does not lead to the root.
var ErrProof = errors.New("merkle inclusion proof does not match the root")

// VerifyInclusion checks that leaf is leaf index (0-based) of a tree of size
// leaves whose hash is root, by RFC 9162 section 2.1.3.2.
func VerifyInclusion(leaf Hash, index, size uint64, proof []Hash, root Hash) error {
	if index >= size {
		return fmt.Errorf("merkle proof: leaf %d of %d: %w", index, size, ErrProof)
	}
	fn, sn := index, size-1
	r := leaf
	for _, p := range proof {
		if sn == 0 {
			return ErrProof
		}
		if fn&1 == 1 || fn == sn {
			r = nodeHash(p, r)
			for fn&1 == 0 && fn != 0 {
				fn >>= 1
				sn >>= 1
			}
		} else {
			r = nodeHash(r, p)
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 || r != root {
		return ErrProof
	}
	return nil
}

// HexHash formats a tree hash as the log writes it.
func HexHash(h Hash) string { return hex.EncodeToString(h[:]) }

// ParseHash reads a hex hash as the log writes it.
func ParseHash(s string) (Hash, error) {
	var h Hash
	if !isHash(s) {
		return h, fmt.Errorf("not a hex SHA-256: %q", s)
	}
	_, err := hex.Decode(h[:], []byte(s))
	return h, err
}
