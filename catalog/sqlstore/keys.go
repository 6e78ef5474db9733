package sqlstore

import (
	"context"
	"fmt"
	"time"
)

// PinKeyFingerprint records fingerprint under name (e.g. "ca",
// "bundle-signing-key") unless a fingerprint is already recorded there, and
// returns the one recorded: the caller's own when it was the first, or the
// first control plane's. Two control planes starting at once against an
// empty store get the same answer: one insert wins.
func (s *Store) PinKeyFingerprint(ctx context.Context, name, fingerprint string) (string, error) {
	if _, err := s.db.ExecContext(ctx, "INSERT INTO federation_keys (name, fingerprint, recorded_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
		name, fingerprint, s.d.time(time.Now())); err != nil {
		return "", fmt.Errorf("record the %s fingerprint: %w", name, err)
	}
	return s.KeyFingerprint(ctx, name)
}

// KeyFingerprint returns the fingerprint recorded under name, "" when none is.
func (s *Store) KeyFingerprint(ctx context.Context, name string) (string, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT fingerprint FROM federation_keys WHERE name = $1", name)
	if err != nil {
		return "", fmt.Errorf("read the %s fingerprint: %w", name, err)
	}
	defer rows.Close()
	var fp string
	if rows.Next() {
		if err := rows.Scan(&fp); err != nil {
			return "", fmt.Errorf("read the %s fingerprint: %w", name, err)
		}
	}
	return fp, rows.Err()
}

// ReplaceKeyFingerprint records fingerprint under name whatever was there:
// for a deliberate key rotation that the caller has checked.
func (s *Store) ReplaceKeyFingerprint(ctx context.Context, name, fingerprint string) error {
	if _, err := s.db.ExecContext(ctx, "INSERT INTO federation_keys (name, fingerprint, recorded_at) VALUES ($1, $2, $3)"+
		" ON CONFLICT (name) DO UPDATE SET fingerprint = excluded.fingerprint, recorded_at = excluded.recorded_at",
		name, fingerprint, s.d.time(time.Now())); err != nil {
		return fmt.Errorf("record the %s fingerprint: %w", name, err)
	}
	return nil
}
