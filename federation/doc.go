// Package federation is what the control plane tells the gateways, and the
// one read of the catalog it is all built from.
//
// A Snapshot is the catalog at one revision, read in one store View: the
// systems, datasets, active grants, agency modules, gateways and revoked
// certificates. The control plane builds from the same Snapshot the
// configuration every gateway pulls (Config, with its Trust), the policy
// bundles of each member (controlplane/bundles), and, later, the xDS
// resources of Envoy, so no two of them can describe different catalogs.
//
// The wire types (Config, Dataset, Trust), their signing and verification,
// and the signed statement that a configuration is still current
// (FreshnessMessage) live here, below both the control plane that issues
// them and the gateway that checks them, so the gateway depends on no part
// of the control plane. The package imports only catalog and the standard
// library.
package federation
