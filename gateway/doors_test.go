package gateway_test

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lienthong/lienthong/audit"
	"github.com/lienthong/lienthong/gateway"
	"github.com/lienthong/lienthong/internal/problem"
)

type rawAnswer struct {
	status int
	header http.Header
	body   string
}

// rawTLS writes raw bytes on a new mTLS connection and reads every response
// until the server closes the connection; closed is false when it kept the
// connection open (the read timed out).
func rawTLS(t *testing.T, addr string, pair *tls.Certificate, raw string) (answers []rawAnswer, closed bool) {
	t.Helper()
	// The gateway's certificate names a SPIFFE id, not a host: the test
	// checks framing, not the server's identity.
	c, err := tls.Dial("tcp", addr, &tls.Config{Certificates: []tls.Certificate{*pair}, InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	br := bufio.NewReader(c)
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			var ne net.Error
			return answers, !(errors.As(err, &ne) && ne.Timeout())
		}
		b, _ := io.ReadAll(resp.Body)
		answers = append(answers, rawAnswer{resp.StatusCode, resp.Header, string(b)})
	}
}

// Both doors refuse ambiguous framing (and close), HEAD, unclean paths and
// over-long exchange headers with problem JSON, before anything is fetched.
func TestDoorsRefuseBadFraming(t *testing.T) {
	f := newFederation(t)
	systemPair, _ := f.enrolledPair(insurance)
	gatewayPair, err := loadPair(filepath.Join(f.dir, vss, "cert.pem"), filepath.Join(f.dir, vss, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("9", 100) + "LONGVALUE"
	query := "/r/" + population + "/population/citizens/" + citizenID
	for _, door := range []struct {
		name string
		addr string
		pair *tls.Certificate
	}{{"outbound", f.outbound, systemPair}, {"inbound", f.inbound, gatewayPair}} {
		for _, tc := range []struct {
			name, raw string
			status    int
			closes    bool
		}{
			{"both lengths", "POST /v/" + population + "/population/" + citizenID + " HTTP/1.1\r\nHost: gw\r\nX-LT-Purpose: " + purpose +
				"\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET " + query + " HTTP/1.1\r\nHost: gw\r\nX-LT-Purpose: " + purpose + "\r\n\r\n", 400, true},
			{"HEAD", "HEAD " + query + " HTTP/1.1\r\nHost: gw\r\nX-LT-Purpose: " + purpose + "\r\nConnection: close\r\n\r\n", 405, false},
			{"double slash", "GET /r/" + population + "//population/citizens/" + citizenID + " HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n", 400, false},
			{"dot dot", "GET /r/" + population + "/population/../../openapi.json HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n", 400, false},
			{"long purpose", "GET " + query + " HTTP/1.1\r\nHost: gw\r\nX-LT-Purpose: " + long + "\r\nConnection: close\r\n\r\n", 431, false},
			{"long case", "GET " + query + " HTTP/1.1\r\nHost: gw\r\nX-LT-Purpose: " + purpose + "\r\nX-LT-Case: " + long + long + "\r\nConnection: close\r\n\r\n", 431, false},
		} {
			t.Run(door.name+"/"+tc.name, func(t *testing.T) {
				before := f.backendCalls.Load()
				answers, closed := rawTLS(t, door.addr, door.pair, tc.raw)
				if len(answers) != 1 || answers[0].status != tc.status {
					t.Fatalf("answers %+v, want one %d", answers, tc.status)
				}
				a := answers[0]
				if tc.status != 405 && (a.header.Get("Content-Type") != problem.ContentType || !strings.Contains(a.body, `"status":`)) {
					t.Fatalf("not problem JSON: %s %s", a.header.Get("Content-Type"), a.body)
				}
				if a.header.Get("Location") != "" || strings.Contains(a.body, "LONGVALUE") || strings.Contains(a.body, "Nguyễn") {
					t.Fatalf("redirect or echo: %v %s", a.header, a.body)
				}
				if tc.closes && !closed {
					t.Fatal("the connection was kept after an ambiguous framing")
				}
				if n := f.backendCalls.Load() - before; n != 0 {
					t.Fatalf("the backend was called %d times", n)
				}
			})
		}
	}
}

// fields= naming granted and ungranted fields: 200 with the granted ones,
// the others named in X-LT-Withheld-Fields, the reason in both logs.
func TestPartialAnswerSaysWhatWasWithheld(t *testing.T) {
	f := newFederation(t)
	a := f.get(f.systemClient(insurance), recordPath+citizenID+"?fields=fullName,religion,ethnicity", purposeHeader())
	if a.status != http.StatusOK || !slices.Equal(keys(a.body), []string{"fullName"}) || strings.Contains(a.raw, "Không") {
		t.Fatalf("partial answer: %d %s", a.status, a.raw)
	}
	if got := a.header.Get(gateway.HeaderWithheld); got != "ethnicity,religion" {
		t.Fatalf("%s = %q", gateway.HeaderWithheld, got)
	}
	id := a.header.Get(gateway.HeaderExchangeID)
	for member, file := range f.auditFile {
		recs := waitOutcome(t, file, id)
		out := recs[len(recs)-1]
		if !slices.Contains(out.Reasons, "fields_withheld") {
			t.Errorf("%s outcome reasons %v", member, out.Reasons)
		}
	}
	if a := f.get(f.systemClient(insurance), recordPath+citizenID+"?fields=fullName", purposeHeader()); a.header.Get(gateway.HeaderWithheld) != "" {
		t.Fatalf("withheld header on a full answer: %v", a.header)
	}
}

// Verify mode cannot confirm a masked field (personalId is granted hashed).
func TestVerifyOfAMaskedFieldIsRefused(t *testing.T) {
	f := newFederation(t)
	a, err := f.call(f.systemClient(insurance), http.MethodPost, "/v/"+population+"/population/"+citizenID,
		map[string]string{gateway.HeaderPurpose: purpose, "Content-Type": "application/json"}, `{"attributes":{"personalId":"001090000001"}}`)
	if err != nil {
		t.Fatal(err)
	}
	if a.status != http.StatusForbidden || a.body["type"] != "urn:lienthong:problem:masked-field" || !strings.Contains(a.raw, "personalId") || strings.Contains(a.raw, "match") {
		t.Fatalf("verify of a hashed field: %d %s", a.status, a.raw)
	}
}

// Both gateways' records of one exchange name the same subject, under the
// federation's audit key, with the consumer and the request hash the answer
// carries; the provider's names the grant.
func TestRecordsNameSubjectGrantConsumerAndHash(t *testing.T) {
	f := newFederation(t)
	a := f.get(f.systemClient(insurance), recordPath+citizenID, purposeHeader())
	if a.status != http.StatusOK {
		t.Fatalf("%d %s", a.status, a.raw)
	}
	id, hash := a.header.Get(gateway.HeaderExchangeID), a.header.Get(gateway.HeaderHash)
	subject := f.subjectKey().Subject(citizenID)
	hashed, _ := a.body["personalId"].(string)
	for member, file := range f.auditFile {
		recs := waitOutcome(t, file, id)
		if len(recs) != 2 {
			t.Fatalf("%s: records %+v", member, recs)
		}
		for _, r := range recs {
			if r.Subject != subject || r.Consumer != insurance || r.RequestHash != hash {
				t.Errorf("%s %s: subject %q consumer %q hash %q; want %q %q %q", member, r.Phase, r.Subject, r.Consumer, r.RequestHash, subject, insurance, hash)
			}
			if member == mps && r.GrantID != f.grantID {
				t.Errorf("provider %s grant %q, want %q", r.Phase, r.GrantID, f.grantID)
			}
			if strings.Contains(hashed, r.Subject) {
				t.Errorf("%s: the subject is the hash-masked value the consumer received", member)
			}
		}
	}
}

// A backend's bytes (here its Content-Type) never reach a log line.
func TestLogsNeverQuoteBackendBytes(t *testing.T) {
	f := newFederation(t)
	a := f.get(f.systemClient(insurance), recordPath+badContentTypeID, purposeHeader())
	if a.status != http.StatusBadGateway || strings.Contains(a.raw, logMarker) {
		t.Fatalf("%d %s", a.status, a.raw)
	}
	logs := f.logs.String()
	if strings.Contains(logs, logMarker) || strings.Contains(logs, badContentTypeID) {
		t.Fatalf("a log line quotes backend or caller bytes:\n%s", logs)
	}
	if !strings.Contains(logs, `"fault":"backend"`) {
		t.Fatalf("the fault was not logged by kind:\n%s", logs)
	}
}

// Configuration files are decoded strictly, naming the JSON path.
func TestConfigurationIsStrict(t *testing.T) {
	dir := t.TempDir()
	base := `"member":"000.00.00.G14","system":"VN:GOV:000.00.00.G14:GW","identity":{"keyFile":"k","certFile":"c"},
		"controlPlane":{"url":"https://cp","caFile":"ca"},"outbound":{"listen":"127.0.0.1:0"},"inbound":{"listen":""},
		"stateDir":"s","maskingKeyFile":"m","auditFile":"a","auditSubjectKeyFile":"sk"`
	for _, tc := range []struct{ name, extra, want string }{
		{"typo", `,"maxStalness":"5m"`, "maxStalness: unknown key"},
		{"bad duration", `,"maxStaleness":"soon"`, "maxStaleness"},
		{"nested", `,"rateLimit":{"perSecond":"many"}`, "rateLimit.perSecond"},
		{"backend", `,"backends":{"x/y":{"rest":{"baseUrl":"http://b","timout":"1s"}}}`, `backends["x/y"].rest.timout: unknown key`},
		{"duplicate", `,"auditFile":"b"`, "auditFile: key given twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name+".json")
			writeFile(t, path, []byte("{"+base+tc.extra+"}"))
			if _, err := gateway.LoadConfig(path); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to say %q", err, tc.want)
			}
		})
	}
	path := filepath.Join(dir, "good.json")
	writeFile(t, path, []byte("{"+base+"}"))
	cfg, err := gateway.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxStaleness.Duration != 10*time.Minute || cfg.RateLimit.Burst != 200 || cfg.MaxResponseBytes != 16<<20 {
		t.Fatalf("defaults not applied: %+v", cfg)
	}
}

// waitOutcome returns the records of one exchange in file once its outcome
// is durable.
func waitOutcome(t *testing.T, file, id string) []audit.Record {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var out []audit.Record
		for _, r := range readAudit(t, file) {
			if r.ExchangeID == id {
				out = append(out, r)
			}
		}
		if (len(out) > 0 && out[len(out)-1].Phase == audit.Outcome) || time.Now().After(deadline) {
			return out
		}
		time.Sleep(10 * time.Millisecond)
	}
}
