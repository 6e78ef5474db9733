package envoy

import (
	"encoding/json"
	"errors"
	"maps"
	"slices"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/gateway/exchange"
)

// Namespace is the dynamic-metadata namespace Envoy files ext_authz's
// metadata under, and the one ext_proc's metadata_options forward
// (controlplane/xds/ir.ExtAuthzNamespace).
const Namespace = "envoy.filters.http.ext_authz"

// Handover is the decision Check hands to Process through Envoy: the
// dynamic_metadata of an allowing CheckResponse, which Envoy forwards in the
// metadata_context of each ext_proc ProcessingRequest. Keys are snake_case
// JSON names, the values strings, lists of strings or, for masks and row
// scope, objects of them. Process takes the exchange by Handle and refuses
// when the rest differs from the decision it holds: the metadata names the
// decision for Envoy's logs and access logs, and cannot change it.
type Handover struct {
	// Handle names the waiting exchange (random, one per Check).
	Handle         string `json:"handle"`
	ExchangeID     string `json:"exchange_id"`
	RequestHash    string `json:"request_hash"`
	PolicyRevision string `json:"policy_revision"`
	// Grant is the grant that allowed the fields ("" for default-shared
	// fields only).
	Grant string `json:"grant"`
	// Mode is the exchange's mode: "query" (Process filters the
	// backend's answer) or "verify" (Process answers at the request
	// headers with the core's comparison; no backend is routed to).
	Mode     string `json:"mode"`
	Consumer string `json:"consumer"`
	Provider string `json:"provider"`
	Dataset  string `json:"dataset"`
	// Fields the decision allows, Masks on them, RowScope of the grant.
	Fields   []string          `json:"fields"`
	Masks    map[string]string `json:"masks"`
	RowScope *catalog.RowScope `json:"row_scope"`
	// Withheld names the fields asked for that no grant covers.
	Withheld []string `json:"withheld"`
}

// handoverOf is the handover of an allowed exchange.
func handoverOf(handle string, x *exchange.Exchange) Handover {
	rec := x.Record()
	h := Handover{
		Handle: handle, ExchangeID: x.ID(), RequestHash: x.RequestHash(), PolicyRevision: rec.PolicyRevision,
		Mode: rec.Mode, Consumer: x.Consumer(), Provider: rec.Provider, Dataset: rec.Dataset,
		Masks: map[string]string{}, Withheld: x.Withheld(),
	}
	// A relayed (consumer-side) exchange has no decision here: the
	// provider's gateway decides.
	if d := x.Decision(); d != nil {
		h.Grant, h.Fields, h.RowScope = d.GrantID, slices.Clone(d.Fields), d.RowScope
		for p, m := range d.Masks {
			if m != "" && m != catalog.MaskNone {
				h.Masks[p] = string(m)
			}
		}
	}
	if h.Fields == nil {
		h.Fields = []string{}
	}
	if h.Withheld == nil {
		h.Withheld = []string{}
	}
	return h
}

// Struct is the handover as Envoy dynamic metadata, built directly (no
// JSON round trip: it is made on every allowed Check).
func (h Handover) Struct() (*structpb.Struct, error) {
	str := structpb.NewStringValue
	list := func(v []string) *structpb.Value {
		vals := make([]*structpb.Value, len(v))
		for i, s := range v {
			vals[i] = str(s)
		}
		return structpb.NewListValue(&structpb.ListValue{Values: vals})
	}
	masks := make(map[string]*structpb.Value, len(h.Masks))
	for p, m := range h.Masks {
		masks[p] = str(m)
	}
	scope := structpb.NewNullValue()
	if h.RowScope != nil {
		scope = structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
			"field": str(h.RowScope.Field), "values": list(h.RowScope.Values),
		}})
	}
	return &structpb.Struct{Fields: map[string]*structpb.Value{
		"handle": str(h.Handle), "exchange_id": str(h.ExchangeID), "request_hash": str(h.RequestHash),
		"policy_revision": str(h.PolicyRevision), "grant": str(h.Grant), "mode": str(h.Mode),
		"consumer": str(h.Consumer), "provider": str(h.Provider), "dataset": str(h.Dataset),
		"fields": list(h.Fields), "masks": structpb.NewStructValue(&structpb.Struct{Fields: masks}),
		"row_scope": scope, "withheld": list(h.Withheld),
	}}, nil
}

// ReadHandover reads the handover from the namespace's metadata.
func ReadHandover(s *structpb.Struct) (Handover, error) {
	var h Handover
	if s == nil {
		return h, errors.New("no ext_authz metadata: the request was not allowed by this gateway's Check")
	}
	raw, err := json.Marshal(s.AsMap())
	if err != nil {
		return h, err
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		return h, errors.New("the ext_authz metadata is not a handover")
	}
	if h.Handle == "" {
		return h, errors.New("the ext_authz metadata names no exchange")
	}
	return h, nil
}

// same reports whether two handovers name the same decision.
func (h Handover) same(o Handover) bool {
	eqScope := (h.RowScope == nil) == (o.RowScope == nil) &&
		(h.RowScope == nil || h.RowScope.Field == o.RowScope.Field && slices.Equal(h.RowScope.Values, o.RowScope.Values))
	return h.Handle == o.Handle && h.ExchangeID == o.ExchangeID && h.RequestHash == o.RequestHash &&
		h.PolicyRevision == o.PolicyRevision && h.Grant == o.Grant && h.Mode == o.Mode && h.Consumer == o.Consumer &&
		h.Provider == o.Provider && h.Dataset == o.Dataset && slices.Equal(h.Fields, o.Fields) &&
		maps.Equal(h.Masks, o.Masks) && eqScope && slices.Equal(h.Withheld, o.Withheld)
}
