package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lienthong/lienthong/adapters/synthetic"
	"github.com/lienthong/lienthong/audit"
	"github.com/lienthong/lienthong/catalog/storetest"
	"github.com/lienthong/lienthong/gateway"
	"github.com/lienthong/lienthong/gateway/feed/broker"
)

// requireAuditLogFree opens the gateway's audit log as the gateway does.
// An open audit log is locked to its holder, so this fails while a
// gateway that returned still holds it.
func requireAuditLogFree(t *testing.T, c *gateway.Config) {
	t.Helper()
	keyFile := c.AuditLog.CheckpointKeyFile
	if keyFile == "" {
		keyFile = filepath.Join(c.StateDir, "audit-checkpoint.key")
	}
	key, err := audit.LoadKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	sink, err := audit.OpenFile(c.AuditFile, audit.Options{Gateway: c.System, Key: key})
	if err != nil {
		t.Errorf("the audit log is still held after the gateway returned: %v", err)
		return
	}
	_ = sink.Close()
}

// pgBackend is a PostgreSQL backend on a fresh database whose connections
// carry a name of their own, so the test can count them on the server;
// loaded, the table exists (else the backend's start-up check fails).
func pgBackend(t *testing.T, loaded bool) (gateway.Backend, func() int) {
	t.Helper()
	dsn := storetest.FreshPostgresDatabase(t)
	ctx := context.Background()
	admin, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.Close)
	mapping := synthetic.CitizenMapping("citizens")
	if loaded {
		if err := synthetic.LoadPostgres(ctx, admin, "citizens", synthetic.Citizens(3, 7)); err != nil {
			t.Fatal(err)
		}
	}
	const app = "lienthong-release-test"
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("application_name", app)
	u.RawQuery = q.Encode()
	var b gateway.Backend
	raw, _ := json.Marshal(map[string]any{"recordPath": "citizens/{id}", "postgres": map[string]any{
		"dsn": u.String(), "table": mapping.Table, "key": mapping.Key, "listPath": mapping.ListPath, "columns": mapping.Columns,
	}})
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatal(err)
	}
	sessions := func() int {
		var n int
		if err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	return b, sessions
}

// requireNoSessions waits (bounded) for the server to see the gateway's
// database connections closed: a pool left open keeps its idle ones.
func requireNoSessions(t *testing.T, sessions func() int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); sessions() > 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("%d connections of the gateway's database pool still open after it returned", sessions())
			return
		}
	}
}

// TestNewFailingClosesWhatItOpened: a New that fails after it opened the
// audit log (and, with a PostgreSQL backend, a database pool) closes them
// before it returns.
func TestNewFailingClosesWhatItOpened(t *testing.T) {
	var cfg *gateway.Config
	newFederationWith(t, func(c *gateway.Config) { cfg = c })
	t.Run("feed router misconfigured", func(t *testing.T) {
		c := freshCopy(t, cfg)
		c.Feeds = &gateway.FeedsConfig{Kafka: broker.Config{Brokers: []string{"127.0.0.1:1"}},
			Router: &gateway.FeedRouterConfig{Provider: population, Lanes: -1}}
		if _, err := gateway.New(context.Background(), c, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil {
			t.Fatal("New accepted a broken feed router")
		}
		requireAuditLogFree(t, c)
	})
	t.Run("postgres table missing", func(t *testing.T) {
		c := freshCopy(t, cfg)
		b, sessions := pgBackend(t, false)
		c.Backends = map[string]gateway.Backend{population + "/population": b}
		if _, err := gateway.New(context.Background(), c, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil {
			t.Fatal("New accepted a backend with no table")
		}
		requireAuditLogFree(t, c)
		requireNoSessions(t, sessions)
	})
}

// TestRunFailingEarlyClosesWhatNewOpened: a Run that fails while starting
// (its health port taken) closes the audit log and the database pools New
// opened, as a Run that stops does.
func TestRunFailingEarlyClosesWhatNewOpened(t *testing.T) {
	var cfg *gateway.Config
	newFederationWith(t, func(c *gateway.Config) { cfg = c })
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	for _, withPostgres := range []bool{false, true} {
		name := "rest backend"
		if withPostgres {
			name = "postgres backend"
		}
		t.Run(name, func(t *testing.T) {
			c := freshCopy(t, cfg)
			c.Health.Listen = held.Addr().String()
			sessions := func() int { return 0 }
			if withPostgres {
				var b gateway.Backend
				b, sessions = pgBackend(t, true)
				c.Backends = map[string]gateway.Backend{population + "/population": b}
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			gw, err := gateway.New(ctx, c, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			if withPostgres && sessions() == 0 {
				t.Fatal("the backend's pool holds no connection: the test would prove nothing")
			}
			if err := gw.Run(ctx, func(gateway.Addrs) { t.Error("ready called") }); err == nil {
				t.Fatal("Run started")
			}
			requireAuditLogFree(t, c)
			requireNoSessions(t, sessions)
		})
	}
}
