package gateway

import (
	"time"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/gateway/exchange"
)

// snapshotOf is a state as the exchange core reads it: the same maps, never
// changed after install.
func snapshotOf(st *state) *exchange.Snapshot {
	snap := &exchange.Snapshot{
		Engine: st.engine, TrustDomain: trustDomainOf(st),
		Gateways: st.gateways, GatewayMember: st.gatewayMember, RevokedSystem: st.revokedSystem,
		Datasets: make(map[string]*exchange.Dataset, len(st.documents)),
	}
	for ref, d := range st.documents {
		snap.Datasets[ref] = &exchange.Dataset{Catalog: d.catalogDataset(), Validator: d.validator, Partial: d.partial, Schema: d.schema}
	}
	return snap
}

// catalogDataset is the dataset as adapters see it.
func (d *dataset) catalogDataset() *catalog.Dataset {
	return &catalog.Dataset{System: d.info.Provider, Code: d.info.Code, Version: d.info.Version, Digest: d.info.Digest,
		RecordSchema: d.info.RecordSchema, Document: d.document}
}

// source gives the exchange core the snapshot the syncer keeps.
type source struct{ s *syncer }

// Current returns the snapshot in force and its signed freshness.
func (s source) Current() (*exchange.Snapshot, time.Time) {
	st := s.s.current.Load()
	if st == nil {
		return nil, time.Time{}
	}
	return st.snap, st.syncedAt
}
