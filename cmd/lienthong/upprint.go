package main

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lienthong/lienthong/adapters/synthetic"
	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane"
)

// printUp shows where everything is, the grants in force, and curl
// commands for each kind of exchange, each under a heading that says what
// it shows. Gateways are named by SPIFFE id, not host name, so curl pins
// the gateway's public key instead of checking a host name (-k turns off
// only the name check; the pin is still enforced).
func printUp(out io.Writer, cp controlplane.Ready, dir string, o upOptions, pop *population, fed *upFederation, trickle *upTrickle) error {
	origin := "kept from an earlier start"
	if pop.created {
		origin = "generated on this start"
	}
	fmt.Fprintf(out, "  control plane   %s\n                  export LIENTHONG_URL=%s LIENTHONG_CA_FILE=%s LIENTHONG_TOKEN=%s\n",
		cp.URL, cp.URL, cp.CAFile, cp.AdminToken)
	fmt.Fprintf(out, "  population DB   %d synthetic citizens (%s), %s\n", pop.count, origin, pop.where)
	if o.kafkaListen != "" {
		fmt.Fprintf(out, "  change feeds    Kafka protocol (embedded) at %s", o.kafkaListen)
		if trickle != nil {
			fmt.Fprintf(out, "; a synthetic birth or death registration every %s, at most %d", trickle.every, trickle.max)
		}
		fmt.Fprintln(out)
	}
	fmt.Fprintf(out, "  audit logs      lienthong audit read %s/<member code>/audit.jsonl\n\n", dir)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  agency\tmember\tgateway: its systems call\tpeers call")
	for _, a := range upAgencies {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", a.name, a.member, a.outbound(o), a.inbound(o))
	}
	tw.Flush()

	fmt.Fprintln(out, "\nGrants in force:")
	for _, r := range upRequests() {
		switch {
		case r.pending && fed.pendingState == catalog.RequestPending:
			fmt.Fprintf(out, "  - %s: pending, for a %s approver (request %s)\n", r.describe, agency(memberOfSystem(r.input.Provider)).name, fed.pending)
		case r.pending:
			fmt.Fprintf(out, "  - %s: request %s, %s\n", r.describe, fed.pending, fed.pendingState)
		default:
			fmt.Fprintf(out, "  - %s\n", r.describe)
		}
	}
	fmt.Fprintln(out)

	bhxh, err := systemCurl(dir, upConsumer)
	if err != nil {
		return err
	}
	lgsp, err := systemCurl(dir, upLGSP)
	if err != nil {
		return err
	}
	s := pop.sample
	rec := func(a upAgency, id string) string {
		return "https://" + a.outbound(o) + "/r/" + upProviderSystem + "/population/citizens/" + id
	}
	bhxhRec := rec(agency(upConsumer), s.PersonalID)
	bhxhQ := fmt.Sprintf("%s -H 'X-LT-Purpose: %s'", bhxh, upPurpose)
	lgspQ := fmt.Sprintf("%s -H 'X-LT-Purpose: 1.004194'", lgsp)
	elsewhere := strings.TrimPrefix(strings.TrimPrefix(provinceOf(pop.elsewhere), "Thành phố "), "Tỉnh ")
	fmt.Fprintf(out, `Allowed read: Social Security reads three granted fields of a citizen:
  %s '%s?fields=fullName,dateOfBirth,sex'
Masked read: every granted field; the personal id comes hashed (per provider, so records can still be joined):
  %s '%s'
Verify: Social Security checks a claimed date of birth (match / no_match, never the stored value):
  %s -H 'Content-Type: application/json' -d '{"attributes":{"dateOfBirth":"%s"}}' '%s'
Refused read: religion is sensitive and was not granted:
  %s '%s?fields=religion'
Row-scoped read: the Hà Nội portal reads a Hà Nội resident (personal id shown by its last digits only):
  %s '%s'
Outside the row scope: a resident of %s is not found for the Hà Nội portal:
  %s '%s'

`, bhxhQ, bhxhRec, bhxhQ, bhxhRec,
		bhxhQ, s.DateOfBirth, "https://"+o.outbound+"/v/"+upProviderSystem+"/population/"+s.PersonalID,
		bhxhQ, bhxhRec,
		lgspQ, rec(agency(upLGSP), pop.inHanoi.PersonalID),
		elsewhere, lgspQ, rec(agency(upLGSP), pop.elsewhere.PersonalID))
	if o.kafkaListen == "" {
		return nil
	}
	return printFeeds(out, dir, o, pop)
}

// printFeeds shows how to publish change events and read the feeds.
func printFeeds(out io.Writer, dir string, o upOptions, pop *population) error {
	justice, err := systemCurl(dir, upJustice)
	if err != nil {
		return err
	}
	popDB, err := systemCurl(dir, upProvider)
	if err != nil {
		return err
	}
	bhxh, err := systemCurl(dir, upConsumer)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	birth := synthetic.NewRegistrations(now.UnixNano()).Birth(pop.mothers[0], now)
	data, _ := json.Marshal(birth)
	ev := fmt.Sprintf(`[{"specversion":"1.0","id":"%s","source":"%s","type":"%s","subject":"%s","time":"%s","data":%s}]`,
		birth.RegistrationID, upJusticeSystem, birthRegistered, birth.RegistrationID, now.Format(time.RFC3339), data)
	s := pop.sample
	popEv := fmt.Sprintf(`[{"specversion":"1.0","id":"demo-%d","source":"%s","type":"vn.gov.population.personal-id.issued","subject":"%s","time":"%s","data":{"personalId":"%s","fullName":"%s","dateOfBirth":"%s","sex":"%s"}}]`,
		now.Unix(), upProviderSystem, s.PersonalID, now.Format(time.RFC3339), s.PersonalID, s.FullName, s.DateOfBirth, s.Sex)
	sse := func(c, member, provider, dataset string) string {
		return fmt.Sprintf("%s -N 'https://%s/feeds/%s/%s'", c, agency(member).outbound(o), provider, dataset)
	}
	fmt.Fprintf(out, `Publish a birth registration: the civil registry sends it through the Ministry of Justice's gateway:
  %s -H 'Content-Type: application/json' -d '%s' 'https://%s/feeds/birth-registration/events'
Birth feed: Social Security reads birth registrations, only its granted fields, as Server-Sent Events (Last-Event-ID resumes):
  %s
Death feed: Public Security reads death registrations, to remove the permanent residence:
  %s
Publish a population change: the population database sends one through its own gateway:
  %s -H 'Content-Type: application/json' -d '%s' 'https://%s/feeds/population/events'
Population feed: Social Security reads it, personal id hashed as in its queries:
  %s

`, justice, ev, o.justiceOutbound,
		sse(bhxh, upConsumer, upJusticeSystem, "birth-registration"),
		sse(popDB, upProvider, upJusticeSystem, "death-registration"),
		popDB, popEv, o.providerOutbound,
		sse(bhxh, upConsumer, upProviderSystem, "population"))
	return nil
}

// systemCurl is the start of a curl command as the agency's own system:
// its client certificate, and its gateway's pinned key.
func systemCurl(dir, member string) (string, error) {
	a := agency(member)
	pin, err := gatewayPin(filepath.Join(dir, member, "cert.pem"))
	if err != nil {
		return "", err
	}
	c := filepath.Join(dir, a.clientDir)
	return fmt.Sprintf("curl -sk --pinnedpubkey %s --cert %s --key %s", pin, filepath.Join(c, "cert.pem"), filepath.Join(c, "key.pem")), nil
}

// provinceOf names the province of a citizen's permanent residence.
func provinceOf(c synthetic.Citizen) string {
	for _, p := range synthetic.Provinces() {
		if p.Code == c.PermanentResidence.ProvinceCode {
			return p.Name
		}
	}
	return c.PermanentResidence.ProvinceCode
}

// gatewayPin is curl's sha256// pin of the gateway certificate's public key.
func gatewayPin(certFile string) (string, error) {
	raw, err := os.ReadFile(certFile)
	if err != nil {
		return "", err
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		return "", fmt.Errorf("%s: no certificate", certFile)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256//" + base64.StdEncoding.EncodeToString(sum[:]), nil
}
