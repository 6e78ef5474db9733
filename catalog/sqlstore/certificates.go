package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/lienthong/lienthong/catalog"
)

const certificateCols = "serial, system_id, spiffe, authority, not_before, not_after, pem, revoked_at, revoke_reason"

func scanCertificate(r rowScanner) (catalog.Certificate, error) {
	var c catalog.Certificate
	err := r.Scan(&c.Serial, &c.System, &c.SPIFFE, &c.Authority, scanTime(&c.NotBefore), scanTime(&c.NotAfter),
		&c.PEM, scanTimePtr(&c.RevokedAt), &c.RevokeReason)
	return c, err
}

// GetCertificate returns the certificate with the serial, or ErrNotFound.
func (r reader) GetCertificate(ctx context.Context, serial string) (*catalog.Certificate, error) {
	c, err := scanCertificate(r.q.QueryRowContext(ctx, "SELECT "+certificateCols+" FROM certificates WHERE serial = $1", serial))
	if err != nil {
		return nil, fmt.Errorf("get certificate %s: %w", serial, notFoundErr(err))
	}
	return &c, nil
}

// ListCertificates returns the certificates of a system or of a member's
// systems (or all), ordered by NotBefore then serial.
func (r reader) ListCertificates(ctx context.Context, f catalog.CertificateFilter) ([]catalog.Certificate, error) {
	var w where
	w.eq("system_id", f.System)
	w.eq("member", f.Member)
	cs, err := queryList(ctx, r.q, scanCertificate,
		"SELECT "+certificateCols+" FROM certificates"+w.sql()+" ORDER BY not_before, serial", w.args...)
	if err != nil {
		return nil, fmt.Errorf("list certificates: %w", err)
	}
	return cs, nil
}

// InsertCertificate records an issued certificate; ErrConflict if the
// serial is known, ErrNotFound if its system does not exist.
func (t *tx) InsertCertificate(ctx context.Context, c *catalog.Certificate) error {
	err := t.write(ctx, func() error {
		_, err := t.q.ExecContext(ctx, `INSERT INTO certificates
			(serial, system_id, member, spiffe, authority, not_before, not_after, pem, revoked_at, revoke_reason)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			c.Serial, c.System, memberOf(c.System), c.SPIFFE, c.Authority, t.d.time(c.NotBefore), t.d.time(c.NotAfter),
			c.PEM, t.d.timePtr(c.RevokedAt), c.RevokeReason)
		return t.d.insertErr(err, "system "+c.System+" does not exist")
	})
	if err != nil {
		return fmt.Errorf("insert certificate %s: %w", c.Serial, err)
	}
	return nil
}

// RevokeCertificate records the revocation; ErrNotFound if the serial is unknown.
func (t *tx) RevokeCertificate(ctx context.Context, serial string, at time.Time, reason string) error {
	err := t.write(ctx, func() error {
		return mustAffect(t.q.ExecContext(ctx, "UPDATE certificates SET revoked_at = $1, revoke_reason = $2 WHERE serial = $3",
			t.d.time(at), reason, serial))
	})
	if err != nil {
		return fmt.Errorf("revoke certificate %s: %w", serial, err)
	}
	return nil
}
