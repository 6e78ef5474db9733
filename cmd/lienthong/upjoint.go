package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
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
	personalIDIssued  = "vn.gov.population.personal-id.issued"
	residenceRemoved  = "vn.gov.population.permanent-residence.removed"
	populationRetryIn = 2 * time.Second
)

// startPopulationProgram runs the population database's part in the two
// joint services, as the Ministry of Public Security's own system would:
// it reads its birth and death registration feeds through its gateway's
// SSE door (only the fields its grants allow), and for each registration
// publishes what follows through the same gateway's publish door: a
// personal id issued to the newborn, or the deceased's permanent residence
// removed. Social Security then receives those on its population feed, so
// each service crosses three agencies. Each feed's position is kept in the
// data directory (Last-Event-ID), and the events it publishes have ids
// derived from the registrations', so a restart neither skips nor repeats.
func startPopulationProgram(dir string, o upOptions, kafka *broker.Config, pop *population, log *slog.Logger, stack *stopStack) error {
	if kafka == nil {
		return nil
	}
	hc, err := systemClient(filepath.Join(dir, agency(upProvider).clientDir))
	if err != nil {
		return fmt.Errorf("population program: %w", err)
	}
	hc.Timeout = 0 // a feed stays open
	known := map[string]synthetic.Citizen{}
	for _, c := range append(append([]synthetic.Citizen{}, pop.mothers...), pop.elders...) {
		known[c.PersonalID] = c
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	for _, ds := range []string{"birth-registration", "death-registration"} {
		p := &populationProgram{hc: hc, o: o, dataset: ds, known: known, log: log.With("component", "population-program", "feed", ds),
			cursorFile: filepath.Join(dir, "population-program."+ds+".cursor")}
		go func() { defer func() { done <- struct{}{} }(); p.run(ctx) }()
	}
	stack.push(func() { stop(); <-done; <-done })
	return nil
}

// populationProgram follows one feed.
type populationProgram struct {
	hc         *http.Client
	o          upOptions
	dataset    string
	known      map[string]synthetic.Citizen
	cursorFile string
	log        *slog.Logger
}

// run reads the feed until ctx ends, reconnecting after an error (the feed
// does not exist until its first delivery).
func (p *populationProgram) run(ctx context.Context) {
	for ctx.Err() == nil {
		if err := p.follow(ctx); err != nil && ctx.Err() == nil {
			p.log.Debug("feed read ended; reconnecting", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(populationRetryIn):
		}
	}
}

// follow reads the feed from the saved position, acting on each event
// before saving its id as the new position.
func (p *populationProgram) follow(ctx context.Context) error {
	url := "https://" + p.o.providerOutbound + "/feeds/" + upJusticeSystem + "/" + p.dataset
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
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
				return err // not saved: the event comes again
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
		return fmt.Errorf("an event of %s: %w", p.dataset, err)
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
