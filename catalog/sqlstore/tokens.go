package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/lienthong/lienthong/catalog"
)

const tokenCols = "id, name, role, member, secret_hash, created_at, created_by, expires_at, revoked_at"

func scanToken(r rowScanner) (catalog.Token, error) {
	var (
		tk     catalog.Token
		member sql.NullString
	)
	err := r.Scan(&tk.ID, &tk.Name, &tk.Role, &member, &tk.SecretHash, scanTime(&tk.CreatedAt), &tk.CreatedBy,
		scanTimePtr(&tk.ExpiresAt), scanTimePtr(&tk.RevokedAt))
	tk.Member = member.String
	return tk, err
}

// GetToken returns the token with the id, or ErrNotFound.
func (r reader) GetToken(ctx context.Context, id string) (*catalog.Token, error) {
	tk, err := scanToken(r.q.QueryRowContext(ctx, "SELECT "+tokenCols+" FROM tokens WHERE id = $1", id))
	if err != nil {
		return nil, fmt.Errorf("get token %s: %w", id, notFoundErr(err))
	}
	return &tk, nil
}

// ListTokens returns the tokens (of one member if f.Member is set), oldest first.
func (r reader) ListTokens(ctx context.Context, f catalog.TokenFilter) ([]catalog.Token, error) {
	var w where
	w.eq("member", f.Member)
	ts, err := queryList(ctx, r.q, scanToken, "SELECT "+tokenCols+" FROM tokens"+w.sql()+" ORDER BY created_at, id", w.args...)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return ts, nil
}

// CreateToken stores a new token; ErrConflict if the id is taken,
// ErrNotFound if its member does not exist.
func (t *tx) CreateToken(ctx context.Context, tk *catalog.Token) error {
	err := t.write(ctx, func() error {
		_, err := t.q.ExecContext(ctx, "INSERT INTO tokens ("+tokenCols+") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
			tk.ID, tk.Name, string(tk.Role), nullString(tk.Member), tk.SecretHash, t.d.time(tk.CreatedAt), tk.CreatedBy,
			t.d.timePtr(tk.ExpiresAt), t.d.timePtr(tk.RevokedAt))
		return t.d.insertErr(err, "member "+tk.Member+" does not exist")
	})
	if err != nil {
		return fmt.Errorf("create token %s: %w", tk.ID, err)
	}
	return nil
}

// RevokeToken records the revocation; ErrNotFound if the token does not exist.
func (t *tx) RevokeToken(ctx context.Context, id string, at time.Time) error {
	err := t.write(ctx, func() error {
		return mustAffect(t.q.ExecContext(ctx, "UPDATE tokens SET revoked_at = $1 WHERE id = $2", t.d.time(at), id))
	})
	if err != nil {
		return fmt.Errorf("revoke token %s: %w", id, err)
	}
	return nil
}
