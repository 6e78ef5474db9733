package envoy

import (
	"encoding/json"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/lienthong/lienthong/catalog"
)

func sampleHandover() Handover {
	return Handover{
		Handle: "00112233445566778899aabbccddeeff", ExchangeID: "exc-1", RequestHash: "ab", PolicyRevision: "r1",
		Grant: "grant-1", Consumer: "VN:GOV:000.00.00.G14:CSDLBH", Provider: "VN:GOV:000.00.00.G01:CSDLDC", Dataset: "population",
		Fields: []string{"fullName", "personalId"}, Masks: map[string]string{"personalId": "hash"},
		RowScope: &catalog.RowScope{Field: "permanentResidence.provinceCode", Values: []string{"79"}}, Withheld: []string{},
	}
}

// TestHandoverRoundTrip: what Check writes as metadata, Process reads back
// as the same decision; any change to it is seen.
func TestHandoverRoundTrip(t *testing.T) {
	h := sampleHandover()
	s, err := h.Struct()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ReadHandover(s)
	if err != nil || !got.same(h) {
		t.Fatalf("read %+v (%v), want %+v", got, err, h)
	}
	for name, change := range map[string]func(*Handover){
		"fields":    func(h *Handover) { h.Fields = append(h.Fields, "religion") },
		"mask":      func(h *Handover) { h.Masks = map[string]string{} },
		"row scope": func(h *Handover) { h.RowScope.Values = []string{"79", "01"} },
		"no scope":  func(h *Handover) { h.RowScope = nil },
		"grant":     func(h *Handover) { h.Grant = "" },
		"revision":  func(h *Handover) { h.PolicyRevision = "r0" },
		"exchange":  func(h *Handover) { h.ExchangeID = "exc-2" },
		"withheld":  func(h *Handover) { h.Withheld = []string{"sex"} },
	} {
		c := sampleHandover()
		change(&c)
		if c.same(h) {
			t.Errorf("%s: a changed handover reads as the same decision", name)
		}
	}
	for _, bad := range []*structpb.Struct{nil, {}, mustStruct(t, map[string]any{"handle": 7})} {
		if _, err := ReadHandover(bad); err == nil {
			t.Errorf("%v read as a handover", bad)
		}
	}
}

func mustStruct(t *testing.T, m map[string]any) *structpb.Struct {
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// FuzzReadHandover: metadata of any shape is either refused or read into a
// handover that names an exchange; it never panics.
func FuzzReadHandover(f *testing.F) {
	raw, _ := json.Marshal(sampleHandover())
	f.Add(raw)
	f.Add([]byte(`{"handle":"x","fields":"notalist"}`))
	f.Add([]byte(`{"handle":"x","row_scope":{"field":1}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var m map[string]any
		if json.Unmarshal(data, &m) != nil {
			return
		}
		s, err := structpb.NewStruct(m)
		if err != nil {
			return
		}
		h, err := ReadHandover(s)
		if err == nil && h.Handle == "" {
			t.Fatal("a handover without a handle was accepted")
		}
	})
}

// FuzzPeerChain: whatever Envoy forwards as the peer certificate, the door
// returns no chain unless it parses (and VerifyPeer, here absent, accepts).
func FuzzPeerChain(f *testing.F) {
	f.Add("")
	f.Add("-----BEGIN%20CERTIFICATE-----%0AMIIB%0A-----END%20CERTIFICATE-----%0A")
	f.Add("%zz")
	s := &Server{peers: map[string]peerEntry{}}
	f.Fuzz(func(t *testing.T, encoded string) {
		for _, c := range s.verifyChain(encoded) {
			if c == nil || len(c.Raw) == 0 {
				t.Fatal("an empty certificate in a returned chain")
			}
		}
	})
}

// TestHandoverStructIsItsJSON: the metadata holds the handover's JSON form,
// key for key, as the contract in docs/envoy-doors.md lists it.
func TestHandoverStructIsItsJSON(t *testing.T) {
	for _, h := range []Handover{sampleHandover(), {Handle: "h", Fields: []string{}, Masks: map[string]string{}, Withheld: []string{}}} {
		s, err := h.Struct()
		if err != nil {
			t.Fatal(err)
		}
		got, _ := json.Marshal(s.AsMap())
		raw, _ := json.Marshal(h)
		var want map[string]any
		_ = json.Unmarshal(raw, &want)
		wantJSON, _ := json.Marshal(want)
		if string(got) != string(wantJSON) {
			t.Errorf("metadata %s\nwant     %s", got, wantJSON)
		}
	}
}
