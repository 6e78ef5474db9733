package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// FreshPostgresDatabase creates an empty database on the test PostgreSQL
// server (see PostgresDSN, which it calls: it skips or fails the same way),
// drops it when the test ends, and returns a DSN that points at it. Every
// test that needs PostgreSQL gets its own database, so tests neither see
// each other's rows nor depend on order.
func FreshPostgresDatabase(t testing.TB) string {
	t.Helper()
	dsn := PostgresDSN(t)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect to PostgreSQL: %v", err)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	name := "lt_" + hex.EncodeToString(b[:]) // made here, never from input
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		admin.Close(ctx)
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		defer admin.Close(ctx)
		if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("test DSN: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}
