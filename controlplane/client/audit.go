package client

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/lienthong/lienthong/audit"
	"github.com/lienthong/lienthong/audit/index"
	"github.com/lienthong/lienthong/controlplane/auditapi"
	"github.com/lienthong/lienthong/internal/problem"
)

// AuditPosition asks where the control plane's copy of a gateway's log stands.
func (c *Client) AuditPosition(ctx context.Context, gateway string) (index.Position, error) {
	var p index.Position
	return p, c.Do(ctx, http.MethodGet, "/v1/audit/gateways/"+url.PathEscape(gateway)+"/position", nil, &p)
}

// ShipAudit sends raw log entries of a gateway, contiguous by seq, and
// returns the seq the control plane expects next.
func (c *Client) ShipAudit(ctx context.Context, gateway string, lines [][]byte) (uint64, error) {
	in := auditapi.Shipment{Entries: make([]string, len(lines))}
	for i, l := range lines {
		in.Entries[i] = string(l)
	}
	var out auditapi.Shipped
	err := c.Do(ctx, http.MethodPost, "/v1/audit/gateways/"+url.PathEscape(gateway)+"/entries", in, &out)
	return out.Next, err
}

// SendCheckpoint sends a signed checkpoint of a gateway.
func (c *Client) SendCheckpoint(ctx context.Context, gateway string, cp *audit.Checkpoint) error {
	return c.Do(ctx, http.MethodPost, "/v1/audit/gateways/"+url.PathEscape(gateway)+"/checkpoints", cp, nil)
}

// EnrolAuditKey enrols a gateway's Ed25519 checkpoint public key.
func (c *Client) EnrolAuditKey(ctx context.Context, gateway string, pub []byte) error {
	return c.Do(ctx, http.MethodPut, "/v1/audit/gateways/"+url.PathEscape(gateway)+"/key", auditapi.KeyEnrolment{PublicKey: pub}, nil)
}

// AuditExchanges runs an auditor's query (POST, so a personal ID stays out of URLs).
func (c *Client) AuditExchanges(ctx context.Context, q auditapi.ExchangeQuery) (index.Page[index.Exchange], error) {
	var p index.Page[index.Exchange]
	return p, c.Do(ctx, http.MethodPost, "/v1/audit/exchanges/query", q, &p)
}

// AuditFlows returns the flow matrix of [from, until) (zero: unbounded).
func (c *Client) AuditFlows(ctx context.Context, from, until time.Time) (auditapi.FlowMatrix, error) {
	var m auditapi.FlowMatrix
	return m, c.Do(ctx, http.MethodGet, "/v1/audit/flows"+query("from", rfc3339(from), "until", rfc3339(until)), nil, &m)
}

// AuditAlerts lists shipment alerts after the id after.
func (c *Client) AuditAlerts(ctx context.Context, after int64) ([]index.Alert, error) {
	return getList[index.Alert](ctx, c, "/v1/audit/alerts"+query("after", strconv.FormatInt(after, 10)))
}

// ExportAudit streams the exchange records q matches as JSON lines into w
// and returns how many lines it copied. (q.PersonalID is not accepted
// here: an export runs on URL parameters.)
func (c *Client) ExportAudit(ctx context.Context, q auditapi.ExchangeQuery, w io.Writer) (int, error) {
	if q.PersonalID != "" {
		return 0, fmt.Errorf("export by personal ID: query exchanges instead, or export by subject")
	}
	status := ""
	if q.Status != 0 {
		status = strconv.Itoa(q.Status)
	}
	path := "/v1/audit/export" + query("consumer", q.Consumer, "provider", q.Provider, "dataset", q.Dataset, "purpose", q.Purpose,
		"status", status, "subject", q.Subject, "phase", q.Phase, "from", rfc3339(q.From), "until", rfc3339(q.Until))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("export: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return 0, problem.Read(resp, body)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	n := 0
	for sc.Scan() {
		if _, err := w.Write(append(sc.Bytes(), '\n')); err != nil {
			return n, err
		}
		n++
	}
	return n, sc.Err()
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}
