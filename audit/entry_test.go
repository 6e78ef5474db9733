package audit

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCheckpointSignatureCoversEveryField(t *testing.T) {
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	pub := key.Public().(ed25519.PublicKey)
	h := EntryHash([]byte("x"))
	c := Checkpoint{Gateway: "gw", From: 1, Seq: 9, Head: h, Root: h, Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)}
	c.Sign(key)
	if err := c.Verify(pub); err != nil {
		t.Fatal(err)
	}
	// A JSON round trip (another time zone included) keeps it verifiable.
	local := c
	local.Time = c.Time.In(time.FixedZone("ICT", 7*3600))
	bs, _ := json.Marshal(local)
	var back Checkpoint
	if err := json.Unmarshal(bs, &back); err != nil {
		t.Fatal(err)
	}
	if err := back.Verify(pub); err != nil {
		t.Fatalf("after a round trip: %v", err)
	}
	other := EntryHash([]byte("y"))
	for name, change := range map[string]func(*Checkpoint){
		"gateway": func(c *Checkpoint) { c.Gateway = "gx" },
		"from":    func(c *Checkpoint) { c.From = 2 },
		"seq":     func(c *Checkpoint) { c.Seq = 10 },
		"head":    func(c *Checkpoint) { c.Head = other },
		"root":    func(c *Checkpoint) { c.Root = other },
		"time":    func(c *Checkpoint) { c.Time = c.Time.Add(time.Nanosecond) },
	} {
		x := c
		change(&x)
		if err := x.Verify(pub); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s changed: Verify = %v", name, err)
		}
	}
	_, otherPriv, _ := ed25519.GenerateKey(nil)
	if c.Verify(otherPriv.Public().(ed25519.PublicKey)) == nil {
		t.Error("verified under another key")
	}
	if c.Verify(pub[:5]) == nil {
		t.Error("verified under a short key")
	}
}

func TestParseEntryStrict(t *testing.T) {
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	pub := key.Public().(ed25519.PublicKey)
	h := EntryHash([]byte("x"))
	good := map[string]Entry{
		"genesis":   {Seq: 1, Kind: KindGenesis, Genesis: &Genesis{Gateway: "gw", PublicKey: pub}},
		"continued": {Seq: 7, Prev: h, Kind: KindGenesis, Genesis: &Genesis{Gateway: "gw", PublicKey: pub, Continues: h}},
		"record":    {Seq: 2, Prev: h, Kind: KindRecord, Record: &Record{ExchangeID: "x1"}},
		"checkpoint": {Seq: 3, Prev: h, Kind: KindCheckpoint,
			Checkpoint: &Checkpoint{Gateway: "gw", From: 1, Seq: 2, Head: h, Root: h}},
	}
	for name, e := range good {
		bs, _ := json.Marshal(e)
		got, err := ParseEntry(bs)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		again, _ := json.Marshal(got)
		if string(again) != string(bs) {
			t.Fatalf("%s: round trip changed the bytes:\n%s\n%s", name, bs, again)
		}
	}
	bad := map[string]string{
		"unknown key":         `{"seq":2,"prev":"` + h + `","kind":"record","record":{"exchangeId":"a"},"extra":1}`,
		"unknown nested key":  `{"seq":2,"prev":"` + h + `","kind":"record","record":{"exchangeId":"a","value":"secret"}}`,
		"trailing":            `{"seq":2,"prev":"` + h + `","kind":"record","record":{}} {}`,
		"seq zero":            `{"seq":0,"prev":"` + h + `","kind":"record","record":{}}`,
		"no prev":             `{"seq":2,"prev":"","kind":"record","record":{}}`,
		"upper-case prev":     `{"seq":2,"prev":"` + strings.ToUpper(h) + `","kind":"record","record":{}}`,
		"kind mismatch":       `{"seq":2,"prev":"` + h + `","kind":"checkpoint","record":{}}`,
		"two payloads":        `{"seq":2,"prev":"` + h + `","kind":"record","record":{},"genesis":{}}`,
		"no payload":          `{"seq":2,"prev":"` + h + `","kind":"record"}`,
		"bad key size":        `{"seq":1,"prev":"","kind":"genesis","genesis":{"gateway":"g","publicKey":"AAAA","continues":""}}`,
		"checkpoint ahead":    `{"seq":3,"prev":"` + h + `","kind":"checkpoint","checkpoint":{"gateway":"g","from":1,"seq":3,"head":"` + h + `","root":"` + h + `"}}`,
		"checkpoint reversed": `{"seq":9,"prev":"` + h + `","kind":"checkpoint","checkpoint":{"gateway":"g","from":5,"seq":3,"head":"` + h + `","root":"` + h + `"}}`,
		"not json":            `{"seq":2,`,
		"empty":               ``,
	}
	for name, line := range bad {
		if _, err := ParseEntry([]byte(line)); err == nil {
			t.Errorf("%s: accepted %s", name, line)
		}
	}
}

func TestEntryHash(t *testing.T) {
	if got := EntryHash([]byte("abc")); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatal(got)
	}
}

// ParseEntry and the chain's fast record reader never panic on any line,
// and where both read one, they agree on its place in the chain.
func FuzzParseEntry(f *testing.F) {
	h := EntryHash([]byte("x"))
	f.Add([]byte(`{"seq":2,"prev":"` + h + `","kind":"record","record":{"exchangeId":"a"}}`))
	f.Add([]byte(`{"seq":1,"prev":"","kind":"genesis","genesis":{"gateway":"g","publicKey":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","continues":"","time":"2026-01-01T00:00:00Z"}}`))
	f.Add([]byte(`{"seq":3,"prev":"` + h + `","kind":"checkpoint","checkpoint":{"gateway":"g","from":1,"seq":2,"head":"` + h + `","root":"` + h + `"}}`))
	f.Add([]byte(`{"seq":01,"prev":"` + h + `","kind":"record","record":{}}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		e, err := ParseEntry(line)
		fast, ok := recordHeader(line)
		if err == nil && ok && (e.Seq != fast.Seq || e.Prev != fast.Prev || e.Kind != fast.Kind) {
			t.Fatalf("readers disagree on %q: %+v vs %+v", line, e, fast)
		}
		var c Chain
		c.BeginSegment()
		_, _ = c.Add(line)
		_ = c.Commit(line)
	})
}
