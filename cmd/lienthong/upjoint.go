package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lienthong/lienthong/adapters/synthetic"
	"github.com/lienthong/lienthong/gateway/feed/broker"
	"github.com/lienthong/lienthong/internal/durable"
)

// Event types the population database publishes in the joint services.
const (
	personalIDIssued = "vn.gov.population.personal-id.issued"
	residenceRemoved = "vn.gov.population.permanent-residence.removed"
	feedRetryIn      = 2 * time.Second
)

// startPrograms runs the agencies' own programs in the two joint
// services, each reading its feeds through its gateway's SSE door (only the
// fields its grants allow) and acting through its gateway, as the
// agencies' systems would:
//
//   - the population database (Public Security), for each birth or death
//     registration, publishes through its publish door the personal id
//     issued to the newborn or the deceased's permanent residence removed;
//   - Social Security reads the birth and death registrations and the
//     population feed (health-insurance card for a child under six,
//     funeral allowance), and for each birth checks the mother's record in
//     the population database with a query.
//
// So each service crosses three agencies, every hop is audited by the
// gateways, and the flow view shows feeds and queries between them. Each
// feed's position is kept in the data directory (Last-Event-ID), and
// published events have ids derived from the registrations', so a restart
// neither skips nor repeats.
func startPrograms(dir string, o upOptions, kafka *broker.Config, pop *population, log *slog.Logger, stack *stopStack) error {
	if kafka == nil {
		return nil
	}
	known := map[string]synthetic.Citizen{}
	for _, c := range append(append([]synthetic.Citizen{}, pop.mothers...), pop.elders...) {
		known[c.PersonalID] = c
	}
	// Each system has a client for its streams, which stay open, and one
	// for its exchanges, which are bounded.
	clients := map[string][2]*http.Client{}
	for _, member := range []string{upProvider, upConsumer} {
		stream, err := systemClient(filepath.Join(dir, agency(member).clientDir))
		if err != nil {
			return fmt.Errorf("programs: %w", err)
		}
		stream.Timeout = 0
		exchange, err := systemClient(filepath.Join(dir, agency(member).clientDir))
		if err != nil {
			return fmt.Errorf("programs: %w", err)
		}
		clients[member] = [2]*http.Client{stream, exchange}
	}
	popProg := &populationProgram{hc: clients[upProvider][1], o: o, known: known}
	bhxhProg := &insuranceProgram{hc: clients[upConsumer][1], o: o}
	readers := []*feedReader{
		{member: upProvider, provider: upJusticeSystem, dataset: "birth-registration", act: popProg.act},
		{member: upProvider, provider: upJusticeSystem, dataset: "death-registration", act: popProg.act},
		{member: upConsumer, provider: upJusticeSystem, dataset: "birth-registration", act: bhxhProg.act},
		{member: upConsumer, provider: upJusticeSystem, dataset: "death-registration", act: bhxhProg.act},
		{member: upConsumer, provider: upProviderSystem, dataset: "population", act: bhxhProg.act},
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{}, len(readers))
	for _, r := range readers {
		r.hc = clients[r.member][0]
		r.url = "https://" + agency(r.member).outbound(o) + "/feeds/" + r.provider + "/" + r.dataset
		r.cursorFile = filepath.Join(dir, agency(r.member).clientDir, "feed-cursor."+r.dataset)
		r.log = log.With("component", "program", "member", r.member, "feed", r.dataset)
		go func() { defer func() { done <- struct{}{} }(); r.run(ctx) }()
	}
	stack.push(func() {
		stop()
		for range readers {
			<-done
		}
	})
	return nil
}

// feedReader follows one feed of one agency's system through its gateway.
type feedReader struct {
	hc                        *http.Client
	member, provider, dataset string
	url, cursorFile           string
	act                       func(ctx context.Context, event []byte) error
	log                       *slog.Logger
}

// run reads the feed until ctx ends, reconnecting after an error (the feed
// does not exist until its first delivery).
func (p *feedReader) run(ctx context.Context) {
	for ctx.Err() == nil {
		if err := p.follow(ctx); err != nil && ctx.Err() == nil {
			p.log.Debug("feed read ended; reconnecting", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(feedRetryIn):
		}
	}
}

// follow reads the feed from the saved position, acting on each event
// before saving its id as the new position.
func (p *feedReader) follow(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return err
	}
	if raw, err := os.ReadFile(p.cursorFile); err == nil {
		req.Header.Set("Last-Event-ID", strings.TrimSpace(string(raw)))
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var id, data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "id: "):
			id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "data: "):
			data = strings.TrimPrefix(line, "data: ")
		case line == "" && data != "":
			if err := p.act(ctx, []byte(data)); err != nil {
				var refused *refusedError
				if !errors.As(err, &refused) || refused.status >= 500 {
					return err // not saved: the event comes again
				}
				// Refused for good: trying again would stop the feed.
				p.log.Warn("what an event leads to was refused; going on", "status", refused.status)
			}
			if id != "" {
				if err := durable.WriteFile(p.cursorFile, []byte(id+"\n"), 0o600); err != nil {
					return err
				}
			}
			id, data = "", ""
		}
	}
	return sc.Err()
}

// populationProgram is the population database's part.
type populationProgram struct {
	hc    *http.Client
	o     upOptions
	known map[string]synthetic.Citizen
}

// insuranceProgram is Social Security's part.
type insuranceProgram struct {
	hc *http.Client
	o  upOptions
}

// act checks, for a birth registration, the mother's record in the
// population database (the card is issued in her household); the other
// events (a personal id issued, a death) need no further exchange here.
func (p *insuranceProgram) act(ctx context.Context, raw []byte) error {
	var ev registration
	if err := json.Unmarshal(raw, &ev); err != nil {
		return fmt.Errorf("an event: %w", err)
	}
	if ev.Type != birthRegistered || ev.Data.Mother == nil || ev.Data.Mother.PersonalID == "" {
		return nil
	}
	url := "https://" + p.o.outbound + "/r/" + upProviderSystem + "/population/citizens/" + ev.Data.Mother.PersonalID + "?fields=fullName,dateOfBirth"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("X-LT-Purpose", upPurpose)
	resp, err := p.hc.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	// A refusal or a missing record is an answer too (it is audited); only
	// a failed exchange is retried.
	if resp.StatusCode >= 500 {
		return &refusedError{status: resp.StatusCode, answer: "checking the mother's record"}
	}
	return nil
}

// registration is what the population database's grants let it see of a
// birth or death registration event.
type registration struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	Data struct {
		Child *struct {
			FullName     string `json:"fullName"`
			DateOfBirth  string `json:"dateOfBirth"`
			Sex          string `json:"sex"`
			PlaceOfBirth struct {
				ProvinceCode string `json:"provinceCode"`
			} `json:"placeOfBirth"`
		} `json:"child"`
		Mother *struct {
			PersonalID string `json:"personalId"`
			FullName   string `json:"fullName"`
		} `json:"mother"`
		Deceased *struct {
			PersonalID  string `json:"personalId"`
			DateOfDeath string `json:"dateOfDeath"`
		} `json:"deceased"`
	} `json:"data"`
}

// act publishes what one registration leads to. A registration naming
// someone this program does not know (published by hand, say) leads to
// nothing.
func (p *populationProgram) act(ctx context.Context, raw []byte) error {
	var ev registration
	if err := json.Unmarshal(raw, &ev); err != nil {
		return fmt.Errorf("an event: %w", err)
	}
	now := time.Now().UTC()
	switch {
	case ev.Type == birthRegistered && ev.Data.Child != nil && ev.Data.Mother != nil:
		child, mother := ev.Data.Child, ev.Data.Mother
		m, ok := p.known[mother.PersonalID]
		prov, okProv := synthetic.ProvinceByIDCode("0" + child.PlaceOfBirth.ProvinceCode)
		born, err := time.Parse(time.DateOnly, child.DateOfBirth)
		if !ok || !okProv || err != nil {
			return nil
		}
		id := synthetic.PersonalID{Province: prov, Sex: child.Sex, BirthYear: born.Year(), Serial: serialFor(ev.ID)}.String()
		rec := map[string]any{"personalId": id, "fullName": child.FullName, "dateOfBirth": child.DateOfBirth, "sex": child.Sex,
			"mother":             map[string]any{"personalId": mother.PersonalID, "fullName": mother.FullName},
			"permanentResidence": m.PermanentResidence, "currentResidence": m.PermanentResidence}
		return p.publish(ctx, personalIDIssued, "pid-"+ev.ID, id, now, rec)
	case ev.Type == deathRegistered && ev.Data.Deceased != nil:
		c, ok := p.known[ev.Data.Deceased.PersonalID]
		if !ok {
			return nil
		}
		rec := map[string]any{"personalId": c.PersonalID, "fullName": c.FullName, "dateOfBirth": c.DateOfBirth, "sex": c.Sex,
			"dateOfDeath": ev.Data.Deceased.DateOfDeath, "permanentResidence": c.PermanentResidence}
		return p.publish(ctx, residenceRemoved, "rm-"+ev.ID, c.PersonalID, now, rec)
	}
	return nil
}

// publish sends one population event through the gateway's publish door.
func (p *populationProgram) publish(ctx context.Context, typ, id, subject string, at time.Time, rec any) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	body, _ := json.Marshal([]map[string]any{{
		"specversion": "1.0", "id": id, "source": upProviderSystem, "type": typ, "subject": subject,
		"time": at.Format(time.RFC3339), "datacontenttype": "application/json", "data": json.RawMessage(data),
	}})
	return postEvents(ctx, p.hc, "https://"+p.o.providerOutbound+"/feeds/population/events", body)
}

// serialFor is the six-digit serial of a newborn's personal id, derived
// from the registration event so that the same registration always gives
// the same id.
func serialFor(eventID string) string {
	sum := sha256.Sum256([]byte(eventID))
	n := uint32(sum[0])<<24 | uint32(sum[1])<<16 | uint32(sum[2])<<8 | uint32(sum[3])
	return fmt.Sprintf("%06d", n%1_000_000)
}
