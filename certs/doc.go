// Package certs issues and rotates the X.509 certificates that carry a
// system's identity on the Liên Thông network.
//
// Every information system gets short-lived certificates (72 hours by
// default) whose one and only identity is a SPIFFE id carried as a URI
// subject alternative name, spiffe://<trust domain>/<class>/<member>/<system>.
// Gateways authenticate each other with mutual TLS and map that URI back to a
// catalog.SystemID; nothing in a header or a body can claim an identity.
//
// The package holds:
//
//   - Authority, the one interface behind which the embedded CA
//     (package certs/embedded) and a Vault or OpenBao PKI secrets engine
//     (package certs/vault) sign certificate requests. Both pass the same
//     conformance suite (package certs/authoritytest).
//   - ValidateCSR, the gate every certificate request passes before any
//     authority sees it, and GenerateKeyAndCSR for enrolment clients, so a
//     private key is made where it is used and never travels.
//   - CheckIssued, which verifies that a certificate an authority returned is
//     exactly what Liên Thông issues, so a permissive CA configuration cannot
//     hand out more rights than intended.
//   - Rotator, which keeps a gateway's own certificate fresh and swaps it
//     without dropping connections, and TrustStore, which holds the roots and
//     the revoked serials a gateway checks its peers against.
//
// Authorities do not decide who may have a certificate: the control plane
// checks the system's security assessment ("not secure, not connected") and
// its revocation before it calls Sign.
package certs
