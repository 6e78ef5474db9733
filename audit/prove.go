package audit

import (
	"crypto/ed25519"
	"errors"
	"fmt"
)

// Proof shows that one entry is in a gateway's log without the rest of it:
// the entry's stored bytes, the signed checkpoint whose interval holds it,
// and the Merkle audit path from the entry to the checkpoint's root.
type Proof struct {
	// Entry is the entry's stored bytes, as a string.
	Entry      string      `json:"entry"`
	Seq        uint64      `json:"seq"`
	Checkpoint *Checkpoint `json:"checkpoint"`
	// Path is the RFC 9162 audit path, leaf to root, hex.
	Path []string `json:"path"`
	// Key is the checkpoint key the segment's genesis names; check it
	// against the key enrolled at the control plane.
	Key []byte `json:"key"`
}

// Prove streams the log's files, verifying them as Verify does, and returns
// the inclusion proof of entry seq under the checkpoint that covers it. It
// holds the leaf hashes of one checkpoint interval, never the log.
func Prove(files []string, seq uint64) (*Proof, error) {
	var c Chain
	var leaves []Hash
	var proof *Proof
	errFound := errors.New("found")
	rep := &Report{}
	for _, path := range files {
		c.BeginSegment()
		err := walkFile(path, &c, rep, func(e *Entry, line []byte) error {
			switch e.Kind {
			case KindGenesis:
				if proof != nil {
					return fmt.Errorf("entry %d was never under a checkpoint: its segment ends without one", seq)
				}
				leaves = append(leaves[:0], LeafHash(line))
			case KindRecord:
				leaves = append(leaves, LeafHash(line))
			case KindCheckpoint:
				if proof != nil {
					cp := e.Checkpoint
					path, err := InclusionProof(leaves, int(seq-cp.From))
					if err != nil {
						return err
					}
					proof.Checkpoint = cp
					for _, h := range path {
						proof.Path = append(proof.Path, HexHash(h))
					}
					return errFound
				}
				leaves = leaves[:0]
			}
			if e.Seq == seq {
				if e.Kind == KindCheckpoint {
					return fmt.Errorf("entry %d is a checkpoint: checkpoints are chained, not leaves of an interval", seq)
				}
				proof = &Proof{Entry: string(line), Seq: seq, Key: c.Genesis().PublicKey}
			}
			return nil
		})
		if errors.Is(err, errFound) {
			return proof, nil
		}
		if err != nil {
			return nil, err
		}
	}
	if proof != nil {
		return nil, fmt.Errorf("entry %d is not under a checkpoint yet (the next one is due within the checkpoint interval)", seq)
	}
	return nil, fmt.Errorf("the log has no entry %d (it ends at %d)", seq, c.Last().Seq)
}

// VerifyProof checks a proof on its own: the entry is the one named, its
// leaf leads along the path to the checkpoint's root, and the checkpoint is
// signed with key (the gateway's enrolled key; the proof's own Key if nil).
func VerifyProof(p *Proof, key ed25519.PublicKey) error {
	if key == nil {
		key = p.Key
	}
	e, err := ParseEntry([]byte(p.Entry))
	if err != nil {
		return err
	}
	cp := p.Checkpoint
	if cp == nil {
		return errors.New("proof: no checkpoint")
	}
	if e.Seq != p.Seq || p.Seq < cp.From || p.Seq > cp.Seq {
		return fmt.Errorf("proof: entry %d is not entry %d of checkpoint %d..%d", e.Seq, p.Seq, cp.From, cp.Seq)
	}
	if err := cp.Verify(key); err != nil {
		return fmt.Errorf("proof: %w", err)
	}
	path := make([]Hash, len(p.Path))
	for i, s := range p.Path {
		if path[i], err = ParseHash(s); err != nil {
			return fmt.Errorf("proof path: %w", err)
		}
	}
	root, err := ParseHash(cp.Root)
	if err != nil {
		return err
	}
	if err := VerifyInclusion(LeafHash([]byte(p.Entry)), p.Seq-cp.From, cp.Seq-cp.From+1, path, root); err != nil {
		return fmt.Errorf("proof of entry %d under checkpoint %d..%d: %w", p.Seq, cp.From, cp.Seq, err)
	}
	return nil
}
