package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"
)

// naiveRoot is RFC 9162's recursive definition, written out plainly so the
// incremental builder is checked against the text, not against itself.
func naiveRoot(data [][]byte) Hash {
	switch n := len(data); n {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return leafHashData(data[0])
	default:
		k := 1
		for k*2 < n {
			k *= 2
		}
		return nodeHash(naiveRoot(data[:k]), naiveRoot(data[k:]))
	}
}

func TestMerkleKnownRoot(t *testing.T) {
	// The eight-leaf test vector of Certificate Transparency's reference code.
	leaves := []string{"", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"}
	var data [][]byte
	for _, l := range leaves {
		b, _ := hex.DecodeString(l)
		data = append(data, b)
	}
	var hs []Hash
	for _, d := range data {
		hs = append(hs, leafHashData(d))
	}
	if got, want := HexHash(MerkleRoot(hs)), "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"; got != want {
		t.Fatalf("root = %s, want %s", got, want)
	}
	if got := HexHash(MerkleRoot(nil)); got != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Fatalf("empty root = %s", got)
	}
}

func TestMerkleEverySizeAndProof(t *testing.T) {
	for n := 1; n <= 70; n++ {
		var data [][]byte
		var hs []Hash
		for i := range n {
			d := []byte(fmt.Sprintf("entry %d of %d", i, n))
			data = append(data, d)
			hs = append(hs, leafHashData(d))
		}
		root := MerkleRoot(hs)
		if root != naiveRoot(data) {
			t.Fatalf("n=%d: builder root differs from the RFC definition", n)
		}
		for i := range n {
			p, err := InclusionProof(hs, i)
			if err != nil {
				t.Fatal(err)
			}
			if err := VerifyInclusion(hs[i], uint64(i), uint64(n), p, root); err != nil {
				t.Fatalf("n=%d i=%d: %v", n, i, err)
			}
			// Every way of lying must fail: another leaf, another index,
			// another size, a changed or shortened path.
			other := leafHashData([]byte("forged"))
			if VerifyInclusion(other, uint64(i), uint64(n), p, root) == nil {
				t.Fatalf("n=%d i=%d: a forged leaf verified", n, i)
			}
			if n > 1 && VerifyInclusion(hs[i], uint64((i+1)%n), uint64(n), p, root) == nil {
				t.Fatalf("n=%d i=%d: the proof verified at another index", n, i)
			}
			if len(p) > 0 {
				bad := append([]Hash(nil), p...)
				bad[len(bad)-1][0] ^= 1
				if !errors.Is(VerifyInclusion(hs[i], uint64(i), uint64(n), bad, root), ErrProof) {
					t.Fatalf("n=%d i=%d: an altered path verified", n, i)
				}
				if VerifyInclusion(hs[i], uint64(i), uint64(n), p[:len(p)-1], root) == nil {
					t.Fatalf("n=%d i=%d: a shortened path verified", n, i)
				}
			}
		}
		if _, err := InclusionProof(hs, n); err == nil {
			t.Fatalf("n=%d: proof for a leaf past the end", n)
		}
	}
}
