package service

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/certs"
	"github.com/lienthong/lienthong/certs/embedded"
	"github.com/lienthong/lienthong/controlplane/auth"
	"github.com/lienthong/lienthong/federation"
)

// Defaults of the certificate settings, used when the control plane is not
// configured otherwise.
const (
	// DefaultTrustDomain is the federation's SPIFFE trust domain: every
	// system certificate names spiffe://<trust domain>/<class>/<member>/<system>.
	DefaultTrustDomain = federation.DefaultTrustDomain
	// DefaultEnrollMinLevel is the lowest assessed security level that
	// obtains a certificate: level 3 is what systems that read personal data
	// (the population database above all) must have, and a certificate is
	// what lets a system reach any of them.
	DefaultEnrollMinLevel = 3
)

// Errors of the certificate operations that are neither the caller's fault
// nor a catalog rule, so the API can answer them with their own status.
var (
	// ErrNoAuthority means the control plane runs without a certificate
	// authority, so it can neither issue nor publish a trust bundle.
	ErrNoAuthority = errors.New("no certificate authority is configured on this control plane")
	// ErrAuthorityFailed wraps a failure of the authority itself (Vault
	// unreachable, a refused Vault answer, a disk error of the embedded CA):
	// the request was fine, the operator has to look.
	ErrAuthorityFailed = errors.New("the certificate authority failed")
)

// Rotatable is an authority whose keys the control plane can rotate itself,
// as the embedded CA can. Vault rotates inside Vault (several issuers per
// mount) and does not implement it.
type Rotatable interface {
	// Rotate makes a new root and intermediate that sign from now on while
	// the old root stays trusted.
	Rotate() error
	// RetireOldRoot drops the previous root from the trust bundle.
	RetireOldRoot() error
}

// WithAuthority sets the certificate authority that signs enrolments. Without
// one, certificate operations answer ErrNoAuthority.
func WithAuthority(a certs.Authority) Option { return func(s *Service) { s.authority = a } }

// WithTrustDomain sets the SPIFFE trust domain (default DefaultTrustDomain).
// It must match what gateways expect and, with Vault, the role's
// allowed_uri_sans.
func WithTrustDomain(td string) Option { return func(s *Service) { s.trustDomain = td } }

// WithCertTTL sets the lifetime asked for each certificate (default
// certs.DefaultTTL, 72 hours). Short lifetimes are what make a lapsed
// assessment take a system off the network without anyone acting.
func WithCertTTL(d time.Duration) Option { return func(s *Service) { s.certTTL = d } }

// WithEnrollMinLevel sets the platform's minimum assessed level for a
// certificate (default DefaultEnrollMinLevel).
func WithEnrollMinLevel(level int) Option { return func(s *Service) { s.enrollMin = level } }

// TrustDomain is the SPIFFE trust domain the service issues in.
func (s *Service) TrustDomain() string {
	if s.trustDomain == "" {
		return DefaultTrustDomain
	}
	return s.trustDomain
}

// CertTTL is the lifetime asked for each certificate.
func (s *Service) CertTTL() time.Duration {
	if s.certTTL == 0 {
		return certs.DefaultTTL
	}
	return s.certTTL
}

// EnrollMinLevel is the platform's minimum assessed level for a certificate.
func (s *Service) EnrollMinLevel() int {
	if s.enrollMin == 0 {
		return DefaultEnrollMinLevel
	}
	return s.enrollMin
}

// RequiredLevel is the assessed level a system needs for a certificate: the
// platform minimum, or the level the system was declared at if higher. A
// system declared at level 4 but assessed at 3 is not secure at the level it
// claims, and the system listings already show it as not connectable; the
// enrolment gives the same answer for the same reason.
func (s *Service) RequiredLevel(sys *catalog.System) int {
	return max(s.EnrollMinLevel(), sys.SecurityLevel)
}

// CertificateStatus is a certificate's state at the time of an answer.
type CertificateStatus string

// The states of a certificate. Expiry is computed, never stored.
const (
	CertificateValid   CertificateStatus = "valid"
	CertificateExpired CertificateStatus = "expired"
	CertificateRevoked CertificateStatus = "revoked"
)

// CertificateView is a certificate record with its status now, so listings
// show at a glance which certificates still count.
type CertificateView struct {
	catalog.Certificate
	Status CertificateStatus `json:"status"`
}

func (s *Service) certView(c catalog.Certificate) CertificateView {
	st := CertificateValid
	switch {
	case c.RevokedAt != nil:
		st = CertificateRevoked
	case !s.Now().Before(c.NotAfter):
		st = CertificateExpired
	}
	return CertificateView{Certificate: c, Status: st}
}

// Enrolment is what a successful enrolment returns: the record, the chain
// to present in TLS (leaf first, then intermediates) and the roots to trust.
type Enrolment struct {
	Certificate CertificateView `json:"certificate"`
	// ChainPEM is the leaf followed by its intermediates, the form
	// tls.X509KeyPair reads together with the locally kept key.
	ChainPEM string `json:"chainPem"`
	// TrustBundlePEM holds the roots gateways trust now (two during a CA
	// rotation).
	TrustBundlePEM string `json:"trustBundlePem"`
}

const enrollAction = "certificate.enroll"

// Enroll signs a certificate request for a system, and is how a gateway
// renews too. It enforces "not secure, not connected": the system must exist,
// not be revoked, and hold a current assessment at RequiredLevel; otherwise
// the answer wraps catalog.ErrForbidden with the reason (not assessed,
// assessment expired on DATE, assessed level 2 below required 3). A request
// that is itself at fault (malformed, weak key, another system's id, extra
// names, CA rights) is a *catalog.ValidationError at /csr. Every refusal of
// either kind, and every refusal of the caller's rights, is written to the
// admin trail, because auditors must see attempts, not only issuances.
//
// The caller must be platform-admin, a member-admin or integrator of the
// system's member, or the gateway itself renewing its own certificate
// (known by the certificate it presents, see AuthenticateGateway).
func (s *Service) Enroll(ctx context.Context, p auth.Principal, systemID string, csrPEM []byte) (*Enrolment, error) {
	if s.authority == nil {
		return nil, ErrNoAuthority
	}
	id, err := catalog.ParseSystemID(systemID)
	if err != nil {
		return nil, s.refuse(ctx, p, enrollAction, systemID, "", err.Error(),
			catalog.Invalid("enrolment", "id", "%v", err))
	}
	member := id.Member
	if err := mayEnroll(p, id.String(), member); err != nil {
		return nil, s.refuse(ctx, p, enrollAction, systemID, member, forbiddenReason(err), err)
	}
	sys, err := s.store.GetSystem(ctx, systemID)
	if err != nil {
		return nil, fmt.Errorf("enrol %s: %w", systemID, err)
	}
	if err := s.connectable(sys); err != nil {
		return nil, s.refuse(ctx, p, enrollAction, systemID, member, forbiddenReason(err), err)
	}
	td := s.TrustDomain()
	if _, err := certs.ValidateCSR(csrPEM, id, td); err != nil {
		return nil, s.csrRefusal(ctx, p, systemID, member, err)
	}
	issued, err := s.authority.Sign(ctx, certs.SignRequest{CSR: csrPEM, System: id, TrustDomain: td, TTL: s.CertTTL()})
	if err != nil {
		return nil, s.csrRefusal(ctx, p, systemID, member, err)
	}
	roots, err := s.authority.TrustBundle(ctx)
	if err != nil {
		return nil, fmt.Errorf("enrol %s: trust bundle: %w: %w", systemID, ErrAuthorityFailed, err)
	}
	rec := issued.Record(id)
	err = s.store.Update(ctx, func(tx catalog.Tx) error {
		// Look again inside the transaction: an assessment lapsing or a
		// revocation landing while the authority signed wins, and the
		// signed certificate is thrown away unseen.
		sys, err := tx.GetSystem(ctx, systemID)
		if err != nil {
			return err
		}
		if err := s.connectable(sys); err != nil {
			return err
		}
		if err := tx.InsertCertificate(ctx, &rec); err != nil {
			return err
		}
		return s.record(ctx, tx, p, change{action: enrollAction, object: systemID, member: member, after: rec})
	})
	if errors.Is(err, catalog.ErrForbidden) {
		return nil, s.refuse(ctx, p, enrollAction, systemID, member, forbiddenReason(err), err)
	}
	if err != nil {
		return nil, fmt.Errorf("enrol %s: %w", systemID, err)
	}
	return &Enrolment{
		Certificate:    s.certView(rec),
		ChainPEM:       string(issued.CertificatePEM()),
		TrustBundlePEM: string(certs.EncodeCertificatesPEM(roots)),
	}, nil
}

// mayEnroll says whether p may have a certificate signed for system: a
// gateway renews its own certificate and no other system's; people need the
// member-admin or integrator role of the system's member.
func mayEnroll(p auth.Principal, system, member string) error {
	if p.IsGateway() {
		if system != p.System {
			return fmt.Errorf("%w: enrol a certificate: gateway %s may renew only its own certificate, not one for %s", catalog.ErrForbidden, p.System, system)
		}
		return nil
	}
	return p.RequireRoleOf("enrol a certificate", member, catalog.RoleMemberAdmin, catalog.RoleIntegrator)
}

// RefuseEnrolment records an enrolment refused before it reached Enroll (a
// body that is not JSON, too large, of the wrong type) and returns err, so
// the trail holds every refused attempt, not only those that parsed.
func (s *Service) RefuseEnrolment(ctx context.Context, p auth.Principal, systemID, reason string, err error) error {
	return s.refuse(ctx, p, enrollAction, systemID, memberOf(systemID), reason, err)
}

// connectable returns a forbidden error with the reason unless sys may hold
// a certificate now.
func (s *Service) connectable(sys *catalog.System) error {
	if c := sys.ConnectivityAt(s.Now(), s.RequiredLevel(sys)); !c.Connectable {
		return fmt.Errorf("%w: system %s gets no certificate: %s (not secure, not connected)", catalog.ErrForbidden, sys.ID, c.Reason)
	}
	return nil
}

// csrRefusal turns a refused certificate request into a 400 at /csr and
// records it; any other error of the authority is the operator's problem.
func (s *Service) csrRefusal(ctx context.Context, p auth.Principal, systemID, member string, err error) error {
	var csrErr *certs.CSRError
	if !errors.As(err, &csrErr) {
		return fmt.Errorf("enrol %s: %w: %w", systemID, ErrAuthorityFailed, err)
	}
	return s.refuse(ctx, p, enrollAction, systemID, member, csrErr.Reason,
		catalog.Invalid("certificate request", "/csr", "%s", csrErr.Reason))
}

// refuse records a refused attempt in the admin trail and returns err. The
// refusal is written even if the caller has hung up, and if it cannot be
// written the answer becomes an internal error: an attempt auditors cannot
// see must not look like an ordinary refusal.
func (s *Service) refuse(ctx context.Context, p auth.Principal, action, object, member, reason string, err error) error {
	if rerr := s.RecordRefusal(context.WithoutCancel(ctx), p, action, clip(object), member, reason); rerr != nil {
		return fmt.Errorf("%s of %s refused (%s), but the refusal could not be written to the trail: %w", action, clip(object), reason, rerr)
	}
	return err
}

// forbiddenReason is the message of a forbidden error without the sentinel's
// prefix, as the trail's "refused: <reason>" shows it.
func forbiddenReason(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, catalog.ErrForbidden.Error()+": "); i >= 0 {
		return msg[i+len(catalog.ErrForbidden.Error())+2:]
	}
	return msg
}

// clip bounds caller-chosen text (a system id from a URL) before it is
// stored in the trail.
func clip(s string) string {
	const limit = 200
	if len(s) > limit {
		s = s[:limit] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}

// Certificates lists certificate records: any the platform operator asks
// for, and only those of the caller's own member for everyone else.
func (s *Service) Certificates(ctx context.Context, p auth.Principal, f catalog.CertificateFilter) ([]CertificateView, error) {
	f.Member = scopeMember(p, f.Member)
	cs, err := s.store.ListCertificates(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("list certificates: %w", err)
	}
	out := make([]CertificateView, len(cs))
	for i, c := range cs {
		out[i] = s.certView(c)
	}
	return out, nil
}

// Certificate shows one certificate. The serial may be written in any case
// and with colons (as Vault writes it). Certificates of other members are
// "not found" for non-admins, as other agencies' requests are.
func (s *Service) Certificate(ctx context.Context, p auth.Principal, serial string) (*CertificateView, error) {
	key, err := serialKey(serial)
	if err != nil {
		return nil, err
	}
	c, err := s.store.GetCertificate(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("certificate %s: %w", key, err)
	}
	if !p.IsPlatformAdmin() && memberOf(c.System) != p.Member {
		return nil, fmt.Errorf("certificate %s: %w", key, catalog.ErrNotFound)
	}
	v := s.certView(*c)
	return &v, nil
}

// serialKey normalises a serial to the catalog's form (certs.SerialHex).
func serialKey(serial string) (string, error) {
	n, err := certs.ParseSerial(serial)
	if err != nil {
		return "", catalog.Invalid("certificate", "serial", "%q is not a certificate serial: write it in hexadecimal, e.g. 3f1a9c…", clip(serial))
	}
	return certs.SerialHex(n), nil
}

func requireReason(reason string) error {
	if strings.TrimSpace(reason) == "" {
		return catalog.Invalid("revocation", "/reason", "a revocation needs a written reason")
	}
	return nil
}

// RevokeCertificate revokes one certificate. Its serial goes into the
// revocation list of the trust configuration, so every gateway refuses it
// from its next pull. The platform operator or a member-admin of the
// system's member may do it, with a written reason.
func (s *Service) RevokeCertificate(ctx context.Context, p auth.Principal, serial, reason string) (*CertificateView, error) {
	const action = "certificate.revoke"
	key, err := serialKey(serial)
	if err != nil {
		return nil, err
	}
	if err := requireReason(reason); err != nil {
		return nil, err
	}
	var (
		out    catalog.Certificate
		member string
	)
	err = s.store.Update(ctx, func(tx catalog.Tx) error {
		c, err := tx.GetCertificate(ctx, key)
		if err != nil {
			return err
		}
		member = memberOf(c.System)
		if err := p.RequireMemberAdmin("revoke a certificate", member); err != nil {
			return err
		}
		if c.RevokedAt != nil {
			return fmt.Errorf("%w: certificate %s was already revoked on %s", catalog.ErrConflict, key, c.RevokedAt.UTC().Format(time.RFC3339))
		}
		if err := tx.RevokeCertificate(ctx, key, s.Now(), reason); err != nil {
			return err
		}
		after, err := tx.GetCertificate(ctx, key)
		if err != nil {
			return err
		}
		out = *after
		return s.record(ctx, tx, p, change{action: action, object: key, member: member, before: c, after: after})
	})
	if errors.Is(err, catalog.ErrForbidden) {
		return nil, s.refuse(ctx, p, action, key, member, forbiddenReason(err), err)
	}
	if err != nil {
		return nil, fmt.Errorf("revoke certificate %s: %w", key, err)
	}
	v := s.certView(out)
	return &v, nil
}

// SystemRevocation is the outcome of revoking a system.
type SystemRevocation struct {
	System SystemView `json:"system"`
	// RevokedCertificates are the serials revoked with it (those not
	// revoked before).
	RevokedCertificates []string `json:"revokedCertificates"`
}

// RevokeSystem cuts a system off the network: it is marked revoked, so it
// gets no certificate, grant or decision whatever its assessment, and every
// certificate of it not yet revoked is revoked in the same transaction, so no
// gateway ever sees the system revoked but its certificates good. Only the
// platform operator may do it, with a written reason.
func (s *Service) RevokeSystem(ctx context.Context, p auth.Principal, systemID, reason string) (*SystemRevocation, error) {
	const action = "system.revoke"
	member := memberOf(systemID)
	if err := p.RequirePlatformAdmin("revoke a system"); err != nil {
		return nil, s.refuse(ctx, p, action, systemID, member, forbiddenReason(err), err)
	}
	if err := requireReason(reason); err != nil {
		return nil, err
	}
	var (
		after   *catalog.System
		revoked = []string{}
	)
	err := s.store.Update(ctx, func(tx catalog.Tx) error {
		before, err := tx.GetSystem(ctx, systemID)
		if err != nil {
			return err
		}
		if before.RevokedAt != nil {
			return fmt.Errorf("%w: system %s was already revoked on %s", catalog.ErrConflict, systemID, before.RevokedAt.UTC().Format(time.RFC3339))
		}
		now := s.Now()
		if err := tx.RevokeSystem(ctx, systemID, now, reason); err != nil {
			return err
		}
		cs, err := tx.ListCertificates(ctx, catalog.CertificateFilter{System: systemID})
		if err != nil {
			return err
		}
		for _, c := range cs {
			if c.RevokedAt != nil {
				continue
			}
			why := "system revoked: " + reason
			if err := tx.RevokeCertificate(ctx, c.Serial, now, why); err != nil {
				return err
			}
			rc := c
			rc.RevokedAt, rc.RevokeReason = &now, why
			if err := s.record(ctx, tx, p, change{action: "certificate.revoke", object: c.Serial, member: before.Member, before: c, after: rc}); err != nil {
				return err
			}
			revoked = append(revoked, c.Serial)
		}
		if after, err = tx.GetSystem(ctx, systemID); err != nil {
			return err
		}
		return s.record(ctx, tx, p, change{action: action, object: systemID, member: before.Member, before: before, after: after})
	})
	if err != nil {
		return nil, fmt.Errorf("revoke system %s: %w", systemID, err)
	}
	return &SystemRevocation{System: s.view(*after), RevokedCertificates: revoked}, nil
}

// Trust returns the trust configuration gateways pull, from the current
// snapshot. Any authenticated caller may read it: it holds public
// certificates and serials only.
func (s *Service) Trust(ctx context.Context) (*federation.Trust, error) {
	if s.authority == nil {
		return nil, ErrNoAuthority
	}
	snap, err := s.Snapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("trust: %w", err)
	}
	return s.trustOf(ctx, snap)
}

// trustOf is the trust configuration of snap with the authority's current
// roots, which live outside the catalog.
func (s *Service) trustOf(ctx context.Context, snap *federation.Snapshot) (*federation.Trust, error) {
	if s.authority == nil {
		return nil, ErrNoAuthority
	}
	roots, err := s.authority.TrustBundle(ctx)
	if err != nil {
		return nil, fmt.Errorf("trust bundle: %w: %w", ErrAuthorityFailed, err)
	}
	return snap.Trust(s.TrustDomain(), string(certs.EncodeCertificatesPEM(roots)), s.Now())
}

// RootInfo describes one trusted root for people: which it is and until when.
type RootInfo struct {
	Subject   string    `json:"subject"`
	Serial    string    `json:"serial"`
	NotBefore time.Time `json:"notBefore"`
	NotAfter  time.Time `json:"notAfter"`
	// SHA256 is the fingerprint of the root's DER encoding, in hex, for
	// comparing bundles across gateways.
	SHA256 string `json:"sha256"`
}

// CAStatus describes the certificate authority and its current trust bundle.
type CAStatus struct {
	Authority string `json:"authority"`
	// Rotatable says whether RotateCA and RetireCA work here (embedded CA)
	// or the rotation happens inside Vault.
	Rotatable   bool   `json:"rotatable"`
	TrustDomain string `json:"trustDomain"`
	// CertificateLifetime is the lifetime asked for, as a Go duration.
	CertificateLifetime string     `json:"certificateLifetime"`
	EnrollMinLevel      int        `json:"enrollMinLevel"`
	Roots               []RootInfo `json:"roots"`
	RootsPEM            string     `json:"rootsPem"`
}

// CA reports the authority's configuration and trusted roots; any
// authenticated caller may read it.
func (s *Service) CA(ctx context.Context) (*CAStatus, error) {
	if s.authority == nil {
		return nil, ErrNoAuthority
	}
	roots, err := s.authority.TrustBundle(ctx)
	if err != nil {
		return nil, fmt.Errorf("trust bundle: %w: %w", ErrAuthorityFailed, err)
	}
	_, rotatable := s.authority.(Rotatable)
	st := &CAStatus{
		Authority:           s.authority.Name(),
		Rotatable:           rotatable,
		TrustDomain:         s.TrustDomain(),
		CertificateLifetime: s.CertTTL().String(),
		EnrollMinLevel:      s.EnrollMinLevel(),
		Roots:               make([]RootInfo, len(roots)),
		RootsPEM:            string(certs.EncodeCertificatesPEM(roots)),
	}
	for i, r := range roots {
		st.Roots[i] = rootInfo(r)
	}
	return st, nil
}

func rootInfo(c *x509.Certificate) RootInfo {
	sum := sha256.Sum256(c.Raw)
	return RootInfo{
		Subject:   c.Subject.String(),
		Serial:    certs.SerialHex(c.SerialNumber),
		NotBefore: c.NotBefore.UTC(),
		NotAfter:  c.NotAfter.UTC(),
		SHA256:    hex.EncodeToString(sum[:]),
	}
}

// RotateCA starts a CA rotation: a new root and intermediate sign from now
// on and the trust bundle holds both roots until RetireCA. Gateways pick the
// two-root bundle up with their next pull. Platform-admin only; a conflict
// when the authority rotates elsewhere (Vault) or a rotation is under way.
func (s *Service) RotateCA(ctx context.Context, p auth.Principal) (*CAStatus, error) {
	return s.rotation(ctx, p, "ca.rotate", "rotate the certificate authority", Rotatable.Rotate)
}

// RetireCA ends a CA rotation: the previous root leaves the trust bundle
// and certificates chaining to it stop verifying. Call it once those have
// been renewed or have expired (the certificate lifetime plus the gateways'
// allowed staleness after RotateCA). Platform-admin only.
func (s *Service) RetireCA(ctx context.Context, p auth.Principal) (*CAStatus, error) {
	return s.rotation(ctx, p, "ca.retire", "retire the previous CA root", Rotatable.RetireOldRoot)
}

func (s *Service) rotation(ctx context.Context, p auth.Principal, action, what string, step func(Rotatable) error) (*CAStatus, error) {
	if s.authority == nil {
		return nil, ErrNoAuthority
	}
	name := s.authority.Name()
	if err := p.RequirePlatformAdmin(what); err != nil {
		return nil, s.refuse(ctx, p, action, name, "", forbiddenReason(err), err)
	}
	rot, ok := s.authority.(Rotatable)
	if !ok {
		return nil, fmt.Errorf("%w: the %s authority cannot %s from the control plane; rotate its issuers inside Vault (see docs/certificates.md, CA rotation)", catalog.ErrConflict, name, what)
	}
	before, err := s.CA(ctx)
	if err != nil {
		return nil, err
	}
	if err := step(rot); err != nil {
		if errors.Is(err, embedded.ErrRotationPending) || errors.Is(err, embedded.ErrNoPreviousRoot) {
			return nil, fmt.Errorf("%w: %v", catalog.ErrConflict, err)
		}
		return nil, fmt.Errorf("%s: %w: %w", action, ErrAuthorityFailed, err)
	}
	after, err := s.CA(ctx)
	if err != nil {
		return nil, err
	}
	// The step is on disk already; the trail entry is also what changes the
	// catalog revision, and with it the ETag gateways poll.
	err = s.store.Update(ctx, func(tx catalog.Tx) error {
		return s.record(ctx, tx, p, change{action: action, object: name, before: before.Roots, after: after.Roots})
	})
	if err != nil {
		return nil, fmt.Errorf("%s done, but not recorded in the trail: %w", action, err)
	}
	return after, nil
}
