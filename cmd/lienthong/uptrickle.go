package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/lienthong/lienthong/adapters/synthetic"
	"github.com/lienthong/lienthong/gateway/feed/broker"
	"github.com/lienthong/lienthong/internal/durable"
)

// Event types of the two joint services' feeds (declared in the datasets'
// x-events).
const (
	birthRegistered = "vn.gov.civilstatus.birth.registered"
	deathRegistered = "vn.gov.civilstatus.death.registered"
)

// upTrickle is the civil registry's stream of synthetic registrations: one
// every `every`, births and deaths in turn, at most max per start, each
// published through the Ministry of Justice's gateway as the registry's
// own system would, so every hop of both feeds carries traffic.
type upTrickle struct {
	every time.Duration
	max   int
}

// startTrickle starts publishing (the first registration at once); nil when
// feeds or the trickle are off.
func startTrickle(dir string, o upOptions, kafka *broker.Config, pop *population, log *slog.Logger, stack *stopStack) (*upTrickle, error) {
	if kafka == nil || o.trickleEvery <= 0 || o.trickleMax <= 0 {
		return nil, nil
	}
	hc, err := systemClient(filepath.Join(dir, agency(upJustice).clientDir))
	if err != nil {
		return nil, fmt.Errorf("trickle: %w", err)
	}
	// Registrations carry on where the last start stopped, so their ids
	// and the citizens they name differ from one start to the next.
	seqFile := filepath.Join(dir, "trickle.seq")
	seq := 0
	if raw, err := os.ReadFile(seqFile); err == nil {
		seq, _ = strconv.Atoi(strings.TrimSpace(string(raw)))
	}
	gen := synthetic.NewRegistrations(upSeed + int64(seq))
	base := "https://" + o.justiceOutbound + "/feeds/"
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(o.trickleEvery)
		defer tick.Stop()
		for sent := 0; sent < o.trickleMax; sent++ {
			now := time.Now().UTC()
			var dataset, typ, id string
			var record any
			if seq%2 == 0 {
				b := gen.Birth(pop.mothers[(seq/2)%len(pop.mothers)], now)
				dataset, typ, id, record = "birth-registration", birthRegistered, b.RegistrationID, b
			} else {
				d := gen.Death(pop.elders[(seq/2)%len(pop.elders)], now)
				dataset, typ, id, record = "death-registration", deathRegistered, d.RegistrationID, d
			}
			seq++
			if err := publishEvent(ctx, hc, base+dataset+"/events", typ, id, now, record); err != nil && ctx.Err() == nil {
				log.Warn("trickle: a synthetic registration was not published", "dataset", dataset, "err", err)
			}
			_ = durable.WriteFile(seqFile, []byte(strconv.Itoa(seq)+"\n"), 0o600)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	stack.push(func() { stop(); <-done })
	return &upTrickle{every: o.trickleEvery, max: o.trickleMax}, nil
}

// publishEvent posts one CloudEvent through the publish door.
func publishEvent(ctx context.Context, hc *http.Client, url, typ, id string, at time.Time, record any) error {
	data, err := json.Marshal(record)
	if err != nil {
		return err
	}
	body, err := json.Marshal([]map[string]any{{
		"specversion": "1.0", "id": id, "source": upJusticeSystem, "type": typ, "subject": id,
		"time": at.Format(time.RFC3339), "datacontenttype": "application/json", "data": json.RawMessage(data),
	}})
	if err != nil {
		return err
	}
	return postEvents(ctx, hc, url, body)
}

// postEvents posts a batch of CloudEvents to a gateway's publish door and
// wants it accepted.
func postEvents(ctx context.Context, hc *http.Client, url string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusAccepted {
		return &refusedError{status: resp.StatusCode, answer: string(answer)}
	}
	return nil
}

// refusedError is a gateway's answer other than the one wanted: a 4xx
// will not change by trying again, a 5xx may.
type refusedError struct {
	status int
	answer string // problem JSON: it never quotes a field value
}

func (e *refusedError) Error() string { return fmt.Sprintf("%d: %s", e.status, e.answer) }

// systemClient is the mTLS client of an agency's system enrolled in dir:
// its key and certificate, and the federation's trust bundle for the
// gateway. Gateways are named by SPIFFE id, not host name, so the chain is
// checked against the bundle without a host name check.
func systemClient(dir string) (*http.Client, error) {
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		return nil, err
	}
	bundle, err := os.ReadFile(filepath.Join(dir, "bundle.pem"))
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(bundle) {
		return nil, fmt.Errorf("%s: no certificate in the trust bundle", dir)
	}
	verify := func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("the gateway sent no certificate")
		}
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
		return err
	}
	return &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS13,
		InsecureSkipVerify: true, VerifyConnection: verify, // the chain is verified by VerifyConnection
	}}}, nil
}
