// Package ship sends a gateway's audit log to the control plane: its
// checkpoint key, its entries (raw, contiguous, at least once, resumable by
// asking the control plane's position) and its signed checkpoints. Once a
// checkpoint has left the gateway, the gateway can no longer rewrite the
// entries under it unnoticed.
package ship

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/lienthong/lienthong/audit"
)

// Client is the audit part of the control plane's management API, as a
// gateway calls it.
type Client struct {
	hc      *http.Client
	base    string
	gateway string
	token   string
}

// NewClient returns a client for the control plane at baseURL. hc carries
// the transport (the gateway's TLS identity); token, if not empty, is sent
// as a bearer token.
func NewClient(hc *http.Client, baseURL, gateway, token string) *Client {
	return &Client{hc: hc, base: strings.TrimRight(baseURL, "/"), gateway: gateway, token: token}
}

// Error is a non-2xx answer: its status and problem type.
type Error struct {
	Status int
	Type   string
	Title  string
	Detail string
}

// Error names the status and the problem.
func (e *Error) Error() string {
	return fmt.Sprintf("control plane: %d %s: %s", e.Status, e.Title, e.Detail)
}

// Problem reports whether the answer is the problem named (the last part of
// its type: "audit-fork", "audit-gap", "audit-chain").
func (e *Error) Problem(name string) bool {
	return e.Type == name || strings.HasSuffix(e.Type, "/"+name) || strings.HasSuffix(e.Type, ":"+name)
}

// Position is where the control plane's copy ends.
type Position struct {
	// Next is the seq it expects next; Head the hash of entry Next-1.
	Next uint64 `json:"next"`
	Head string `json:"head"`
}

func (c *Client) path(what string) string {
	return c.base + "/v1/audit/gateways/" + url.PathEscape(c.gateway) + "/" + what
}

func (c *Client) do(ctx context.Context, method, what string, body, out any) error {
	return c.doWith(ctx, method, what, nil, body, out)
}

// doWith is do with extra request headers.
func (c *Client) doWith(ctx context.Context, method, what string, hdr http.Header, body, out any) error {
	var rd io.Reader
	if body != nil {
		bs, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(bs)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.path(what), rd)
	if err != nil {
		return err
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("control plane: %w", err)
	}
	defer resp.Body.Close()
	bs, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("control plane: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		e := &Error{Status: resp.StatusCode}
		_ = json.Unmarshal(bs, e)
		var p struct{ Type, Title, Detail string }
		if json.Unmarshal(bs, &p) == nil {
			e.Type, e.Title, e.Detail = p.Type, p.Title, p.Detail
		}
		if e.Title == "" {
			e.Title = http.StatusText(resp.StatusCode)
		}
		return e
	}
	if out != nil {
		if err := json.Unmarshal(bs, out); err != nil {
			return fmt.Errorf("control plane %s %s: %w", method, what, err)
		}
	}
	return nil
}

// PutKey enrols the gateway's checkpoint key: body {"publicKey": base64}.
func (c *Client) PutKey(ctx context.Context, pub ed25519.PublicKey) error {
	return c.do(ctx, http.MethodPut, "key", map[string][]byte{"publicKey": pub}, nil)
}

// Position asks where the control plane's copy ends.
func (c *Client) Position(ctx context.Context) (Position, error) {
	var p Position
	err := c.do(ctx, http.MethodGet, "position", nil, &p)
	return p, err
}

// HeadHeader carries, on a shipment, the last seq of the gateway's log
// (durably written) when the entries were read, so the control plane knows
// the lag of its copy. A header rather than a body member: a control plane
// that does not know it ignores it, where it refuses unknown members.
const HeadHeader = "X-Lt-Audit-Log-Head"

// PostEntries sends contiguous raw entries and returns the seq the control
// plane expects next. head, when not 0, is the last seq of the log.
func (c *Client) PostEntries(ctx context.Context, lines [][]byte, head uint64) (uint64, error) {
	raw := make([]string, len(lines))
	for i, l := range lines {
		raw[i] = string(l)
	}
	var out struct {
		Next uint64 `json:"next"`
	}
	var hdr http.Header
	if head != 0 {
		hdr = http.Header{HeadHeader: {strconv.FormatUint(head, 10)}}
	}
	err := c.doWith(ctx, http.MethodPost, "entries", hdr, map[string][]string{"entries": raw}, &out)
	return out.Next, err
}

// PutHead reports the last seq of the log while there is nothing to ship
// (a heartbeat): body {"head": N}.
func (c *Client) PutHead(ctx context.Context, head uint64) error {
	return c.do(ctx, http.MethodPut, "head", map[string]uint64{"head": head}, nil)
}

// PostCheckpoint sends one signed checkpoint.
func (c *Client) PostCheckpoint(ctx context.Context, cp *audit.Checkpoint) error {
	return c.do(ctx, http.MethodPost, "checkpoints", cp, nil)
}
