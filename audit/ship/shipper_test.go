package ship

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/lienthong/lienthong/audit"
)

// controlPlane is a stand-in for the control plane's audit API (built on
// another branch), holding what the wire contract says it holds: entries by
// seq, checked against the chain, and verified checkpoints. It is a fake
// only because that server is not on this branch.
type controlPlane struct {
	mu          sync.Mutex
	key         ed25519.PublicKey
	lines       [][]byte // entry seq i+1 at i
	chain       audit.Chain
	checkpoints map[uint64]*audit.Checkpoint
	posted      int // entries received, duplicates included
	// beats, when set, takes heartbeats (PUT .../head) as the control
	// plane does; unset, they are 404 not-found problems, as from one that
	// predates them, or, with proxy404, a bare 404 from a proxy in between.
	beats    bool
	proxy404 bool
	// heads are the log heads reported, in order: with shipments
	// (shipHeads, each with the last seq of its shipment) and heartbeats.
	shipHeads  [][2]uint64
	heartbeats []uint64
	beatTries  int
}

func (cp *controlPlane) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	problem := func(typ string) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusConflict)
		json.NewEncoder(w).Encode(map[string]string{"type": typ, "title": typ})
	}
	if r.Header.Get("Authorization") != "Bearer gw-token" {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	base := "/v1/audit/gateways/VN:GOV:000.00.00.G01:GW/"
	switch r.Method + " " + r.URL.Path {
	case "PUT " + base + "key":
		var body struct{ PublicKey []byte }
		json.NewDecoder(r.Body).Decode(&body)
		cp.key = body.PublicKey
	case "GET " + base + "position":
		head := ""
		if n := len(cp.lines); n > 0 {
			head = audit.EntryHash(cp.lines[n-1])
		}
		json.NewEncoder(w).Encode(map[string]any{"next": len(cp.lines) + 1, "head": head})
	case "PUT " + base + "head":
		cp.beatTries++
		switch {
		case cp.proxy404:
			http.Error(w, "404 page not found", http.StatusNotFound)
			return
		case !cp.beats: // what the control plane's API answers a route it lacks
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(map[string]any{"type": "urn:lienthong:problem:not-found", "title": "Not Found", "status": 404,
				"detail": "no endpoint " + r.Method + " " + r.URL.Path + "; see /openapi.json"})
			return
		}
		var body struct{ Head uint64 }
		json.NewDecoder(r.Body).Decode(&body)
		cp.heartbeats = append(cp.heartbeats, body.Head)
		w.WriteHeader(http.StatusNoContent)
	case "POST " + base + "entries":
		var body struct{ Entries []string }
		json.NewDecoder(r.Body).Decode(&body)
		if h := r.Header.Get(HeadHeader); h != "" && len(body.Entries) > 0 {
			head, _ := strconv.ParseUint(h, 10, 64)
			last, _ := audit.ParseEntry([]byte(body.Entries[len(body.Entries)-1]))
			if last != nil {
				cp.shipHeads = append(cp.shipHeads, [2]uint64{head, last.Seq})
			}
		}
		for _, raw := range body.Entries {
			cp.posted++
			e, err := audit.ParseEntry([]byte(raw))
			if err != nil {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			switch {
			case e.Seq <= uint64(len(cp.lines)):
				if !bytes.Equal(cp.lines[e.Seq-1], []byte(raw)) {
					problem("audit-fork")
					return
				}
				continue
			case e.Seq > uint64(len(cp.lines))+1:
				problem("audit-gap")
				return
			}
			cp.chain.Stream = true
			if _, err := cp.chain.Add([]byte(raw)); err != nil {
				problem("audit-chain")
				return
			}
			cp.lines = append(cp.lines, []byte(raw))
		}
		json.NewEncoder(w).Encode(map[string]any{"next": len(cp.lines) + 1})
	case "POST " + base + "checkpoints":
		var c audit.Checkpoint
		json.NewDecoder(r.Body).Decode(&c)
		if c.Verify(cp.key) != nil || c.Seq > uint64(len(cp.lines)) || audit.EntryHash(cp.lines[c.Seq-1]) != c.Head {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		cp.checkpoints[c.Seq] = &c
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

// dropAfter forgets entries after n, as a control plane restored from an
// older backup would.
func (cp *controlPlane) dropAfter(n int) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	cp.lines = cp.lines[:n]
	cp.chain = audit.Chain{Stream: true}
	for _, l := range cp.lines {
		cp.chain.Add(l)
	}
}

func (cp *controlPlane) count() int {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return len(cp.lines)
}

// Entries and checkpoints reach the control plane, across segment
// rotations, once each; after either side restarts (here the control plane
// loses its newest entries and the shipper is stopped and started again)
// shipping resumes from the control plane's position, and its copy is the
// log, byte for byte.
func TestShipperResumesAndDeliversEachEntryOnce(t *testing.T) {
	cp := &controlPlane{checkpoints: map[uint64]*audit.Checkpoint{}}
	srv := httptest.NewTLSServer(cp)
	defer srv.Close()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{5}, ed25519.SeedSize))
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var shipper *Shipper
	opts := audit.Options{Gateway: "VN:GOV:000.00.00.G01:GW", Key: key, CheckpointEvery: 16, SegmentBytes: 16 << 10,
		OnCheckpoint: func(c audit.Checkpoint) {
			if shipper != nil {
				shipper.Nudge(c)
			}
		}}
	sink, err := audit.OpenFile(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	client := NewClient(srv.Client(), srv.URL, opts.Gateway, "gw-token")
	shipper = New(client, path, Options{Key: key.Public().(ed25519.PublicKey), Batch: 50, Poll: 10 * time.Millisecond, Log: quiet, Durable: sink.Durable})
	write := func(from, to int) {
		for i := from; i < to; i++ {
			if err := audit.Write(context.Background(), sink, &audit.Record{ExchangeID: fmt.Sprintf("x%04d", i), Phase: audit.Outcome}); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor := func(n uint64) {
		deadline := time.Now().Add(20 * time.Second)
		for uint64(cp.count()) < n {
			if time.Now().After(deadline) {
				t.Fatalf("control plane holds %d entries, want %d", cp.count(), n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { shipper.Run(ctx); close(done) }()
	write(0, 150)
	waitFor(sink.Head().Seq)
	cancel()
	<-done

	cp.dropAfter(37)
	write(150, 300)
	ctx, cancel = context.WithCancel(context.Background())
	done = make(chan struct{})
	go func() { shipper.Run(ctx); close(done) }()
	if err := sink.Close(); err != nil { // the final checkpoint, too
		t.Fatal(err)
	}
	files, _ := audit.LogFiles(path)
	rep, err := audit.Verify(files, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(rep.Last.Seq)
	deadline := time.Now().Add(10 * time.Second)
	for {
		cp.mu.Lock()
		got := cp.checkpoints[rep.LastCheckpoint.Seq]
		cp.mu.Unlock()
		if got != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the last checkpoint never reached the control plane")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if len(files) < 3 {
		t.Fatalf("%d segments; the test wants rotations", len(files))
	}
	var i int
	err = audit.EachEntry(files, func(_ *audit.Entry, line []byte) error {
		if !bytes.Equal(cp.lines[i], line) {
			return fmt.Errorf("entry %d differs at the control plane", i+1)
		}
		i++
		return nil
	})
	if err != nil || i != len(cp.lines) {
		t.Fatalf("%v; the log has %d entries, the control plane %d", err, i, len(cp.lines))
	}
	if len(cp.checkpoints) != int(rep.Checkpoints) {
		t.Fatalf("%d checkpoints at the control plane, %d in the log", len(cp.checkpoints), rep.Checkpoints)
	}
}

// The shipper reports where its log ends: with each shipment (never below
// the last entry it carries) and, while idle, in heartbeats that carry the
// durable head exactly. A control plane that predates heartbeats (404) does
// not stop shipping (TestHeartbeatsPauseOnNotFoundAndRetry follows the
// heartbeats themselves).
func TestShipperReportsItsLogHead(t *testing.T) {
	for _, beats := range []bool{true, false} {
		t.Run(fmt.Sprintf("heartbeats=%v", beats), func(t *testing.T) {
			cp := &controlPlane{checkpoints: map[uint64]*audit.Checkpoint{}, beats: beats}
			srv := httptest.NewTLSServer(cp)
			defer srv.Close()
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{6}, ed25519.SeedSize))
			sink, err := audit.OpenFile(path, audit.Options{Gateway: "VN:GOV:000.00.00.G01:GW", Key: key, CheckpointEvery: 16})
			if err != nil {
				t.Fatal(err)
			}
			defer sink.Close()
			quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
			shipper := New(NewClient(srv.Client(), srv.URL, "VN:GOV:000.00.00.G01:GW", "gw-token"), path, Options{Key: key.Public().(ed25519.PublicKey),
				Batch: 7, Poll: 2 * time.Millisecond, Heartbeat: 5 * time.Millisecond, Log: quiet, Durable: sink.Durable})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { shipper.Run(ctx); close(done) }()
			defer func() { cancel(); <-done }()
			for i := 0; i < 60; i++ {
				if err := audit.Write(ctx, sink, &audit.Record{ExchangeID: fmt.Sprintf("x%04d", i), Phase: audit.Outcome}); err != nil {
					t.Fatal(err)
				}
			}
			head := sink.Durable()
			deadline := time.Now().Add(20 * time.Second)
			for {
				cp.mu.Lock()
				n, beat, tries := uint64(len(cp.lines)), uint64(0), cp.beatTries
				if len(cp.heartbeats) > 0 {
					beat = cp.heartbeats[len(cp.heartbeats)-1]
				}
				cp.mu.Unlock()
				if n == head && (!beats || beat == head) && tries > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("control plane holds %d of %d entries, last heartbeat %d, %d heartbeats tried", n, head, beat, tries)
				}
				time.Sleep(2 * time.Millisecond)
			}
			cp.mu.Lock()
			defer cp.mu.Unlock()
			if len(cp.shipHeads) == 0 {
				t.Fatal("no shipment carried the log head")
			}
			for _, h := range cp.shipHeads {
				if h[0] < h[1] || h[0] > head {
					t.Fatalf("a shipment ending at %d reported head %d (the log ends at %d)", h[1], h[0], head)
				}
			}
		})
	}
}

// A control plane that says it has no heartbeat route (one older than
// heartbeats, in a rolling upgrade that moved the gateways first) pauses
// heartbeats for HeartbeatRetryAfter periods, never for good: once it is
// upgraded, an idle gateway reports its head again. A 404 from anything
// else (a proxy during a deploy) pauses nothing: it is an error, and the
// session retries it with backoff. The clock is the test's, and each call
// of heartbeat is one idle poll, so the tries are counted, not timed.
func TestHeartbeatsPauseOnNotFoundAndRetry(t *testing.T) {
	cp := &controlPlane{checkpoints: map[uint64]*audit.Checkpoint{}}
	srv := httptest.NewTLSServer(cp)
	defer srv.Close()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	const beat = 10 * time.Second
	s := New(NewClient(srv.Client(), srv.URL, "VN:GOV:000.00.00.G01:GW", "gw-token"), "", Options{Heartbeat: beat, Log: quiet})
	clock := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return clock }
	ctx := context.Background()
	const head = 42
	state := func() (tries, beats int) {
		cp.mu.Lock()
		defer cp.mu.Unlock()
		return cp.beatTries, len(cp.heartbeats)
	}
	set := func(beats, proxy bool) {
		cp.mu.Lock()
		cp.beats, cp.proxy404 = beats, proxy
		cp.mu.Unlock()
	}
	// poll runs n idle polls, the clock moving by step before each, and
	// checks the heartbeats tried and taken by then.
	poll := func(what string, n int, step time.Duration, wantTries, wantBeats int) {
		t.Helper()
		for range n {
			clock = clock.Add(step)
			if err := s.heartbeat(ctx, head); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		}
		if tries, beats := state(); tries != wantTries || beats != wantBeats {
			t.Fatalf("%s: %d heartbeats tried, %d taken; want %d, %d", what, tries, beats, wantTries, wantBeats)
		}
	}

	poll("first idle poll, old control plane", 1, 0, 1, 0)
	poll("nine heartbeat periods of idle polls", 9*4, beat/4, 1, 0)
	poll("the tenth period", 4, beat/4, 2, 0)
	set(true, false) // the control plane is upgraded
	poll("still paused after the second 404", 9, beat, 2, 0)
	poll("ten periods after it", 1, beat, 3, 1)
	poll("under a heartbeat period", 1, beat/2, 3, 1)
	poll("a heartbeat period", 1, beat/2, 4, 2)

	set(false, true) // a proxy answers 404 during a deploy
	clock = clock.Add(beat)
	for i := range 2 {
		var ae *Error
		if err := s.heartbeat(ctx, head); !errors.As(err, &ae) || ae.Status != http.StatusNotFound {
			t.Fatalf("a proxy's 404 (try %d): %v; want it as an error", i+1, err)
		}
	}
	if tries, _ := state(); tries != 6 {
		t.Fatalf("%d heartbeats tried; a proxy's 404 must not pause them (want 6)", tries)
	}
}
