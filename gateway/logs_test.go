package gateway_test

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lienthong/lienthong/gateway"
)

// TestLogsNameExchangesNeverTheirData runs a mix of exchanges (allowed,
// denied, verify, backend errors, invalid answers, a missing purpose)
// through a federation whose gateways log JSON at debug level, and reads
// every line: each is JSON; each line about an exchange names its exchange
// id; and no line holds a field value, a personal id or its audit subject,
// a private key or a masking key.
func TestLogsNameExchangesNeverTheirData(t *testing.T) {
	f := newFederation(t)
	c := f.systemClient(insurance)
	for _, x := range []struct {
		path    string
		headers map[string]string
	}{
		{recordPath + citizenID, purposeHeader()},
		{recordPath + "079195000002?fields=fullName", purposeHeader()},
		{recordPath + citizenID + "?fields=religion", purposeHeader()},
		{recordPath + citizenID, nil},
		{recordPath + badContentTypeID, purposeHeader()},
		{recordPath + "001090000003", purposeHeader()},
		{recordPath + "001090000004", purposeHeader()},
		{recordPath + "001099999999", purposeHeader()},
	} {
		f.get(c, x.path, x.headers)
	}
	if a, err := f.call(c, http.MethodPost, "/v/"+population+"/population/"+citizenID,
		map[string]string{gateway.HeaderPurpose: purpose, "Content-Type": "application/json"},
		`{"attributes":{"dateOfBirth":"1990-05-01"}}`); err != nil || a.status != http.StatusOK {
		t.Fatalf("verify: %v %d", err, a.status)
	}

	// What must never be logged: every string value of every record the
	// backend holds (long ones anywhere, short codes as a whole value), the
	// personal ids and their audit subjects, key material.
	forbidden := map[string]bool{logMarker: true}
	sk := f.subjectKey()
	for id, raw := range citizens {
		forbidden[id], forbidden[sk.Subject(id)] = true, true
		var rec map[string]any
		if json.Unmarshal([]byte(raw), &rec) != nil {
			continue
		}
		var walk func(v any)
		walk = func(v any) {
			switch v := v.(type) {
			case string:
				forbidden[v] = true
			case map[string]any:
				for _, x := range v {
					walk(x)
				}
			}
		}
		walk(rec)
	}
	forbidden[badContentTypeID], forbidden[sk.Subject(badContentTypeID)] = true, true
	for _, member := range []string{mps, vss} {
		if key, err := os.ReadFile(filepath.Join(f.dir, member, "masking.key")); err == nil {
			forbidden[hex.EncodeToString(key)] = true
			forbidden[strings.TrimSpace(string(key))] = true
		}
	}

	lines, aboutExchanges := 0, 0
	sc := bufio.NewScanner(strings.NewReader(f.logs.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		lines++
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("not a JSON line: %s", line)
			continue
		}
		if strings.Contains(line, "PRIVATE KEY") || strings.Contains(line, `"lt_`) {
			t.Errorf("key or token material in %s", line)
		}
		for _, v := range rec {
			s, _ := v.(string)
			for bad := range forbidden {
				if len(bad) < 2 {
					continue
				}
				if s == bad || (len(bad) >= 5 && strings.Contains(line, bad)) {
					t.Errorf("log line holds %q: %s", bad, line)
				}
			}
		}
		// A line about an exchange (its outcome, its backend, its peer)
		// names the exchange.
		_, fault := rec["fault"]
		_, peer := rec["peer"]
		if rec["msg"] == "exchange finished" || fault || peer {
			aboutExchanges++
			if id, _ := rec["exchange"].(string); !strings.HasPrefix(id, "exc") {
				t.Errorf("a line about an exchange names no exchange id: %s", line)
			}
		}
	}
	// Every exchange was logged once per side it reached (9 on the consumer
	// side, 8 on the provider side: the missing purpose stops at the
	// consumer), plus the warnings of the refused backend answers.
	if lines == 0 || aboutExchanges < 17 {
		t.Errorf("%d lines, %d about exchanges; want every exchange logged", lines, aboutExchanges)
	}
}
