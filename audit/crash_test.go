package audit

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// crashChildEnv makes the test binary the crash test's writer.
const crashChildEnv = "LIENTHONG_AUDIT_CRASH_CHILD"

// TestCrashChild is the process the crash test kills: it drives a file sink
// as the gateway does (an intent made durable, then an outcome riding the
// next commit, from concurrent exchanges) and prints "ack <id> <seq>" for
// each record once its receipt settled, as an answer would be released.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashChildEnv)
	if path == "" {
		t.Skip("run by TestSIGKILLLosesNoAcknowledgedRecord")
	}
	opts := testOptions()
	opts.CheckpointEvery = 64
	opts.SegmentBytes = 256 << 10
	s, err := OpenFile(path, opts)
	if err != nil {
		fmt.Println("open-failed", err)
		os.Exit(3)
	}
	run := os.Getenv("LIENTHONG_AUDIT_CRASH_RUN")
	var mu sync.Mutex
	var wg sync.WaitGroup
	deadline := time.Now().Add(5 * time.Second)
	for w := range 8 {
		wg.Go(func() {
			for i := 0; i < 2000 && time.Now().Before(deadline); i++ {
				id := fmt.Sprintf("r%s-w%d-%04d", run, w, i)
				intent := s.Submit(&Record{ExchangeID: id, Phase: Intent, Fields: []string{"fullName"}}, CommitNow)
				if intent.Wait(context.Background()) != nil {
					return
				}
				out := s.Submit(&Record{ExchangeID: id, Phase: Outcome, Status: 200}, CommitSoon)
				if out.Wait(context.Background()) != nil {
					return
				}
				mu.Lock()
				fmt.Fprintf(os.Stdout, "ack %s %d %d\n", id, intent.Position().Seq, out.Position().Seq)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	s.Close()
	os.Exit(0)
}

// A writer SIGKILLed at random moments, again and again, under a bounded
// load: every record it acknowledged is in the log at the position its
// receipt reported, and the whole log, across rotations, verifies.
func TestSIGKILLLosesNoAcknowledgedRecord(t *testing.T) {
	if testing.Short() {
		t.Skip("kills processes")
	}
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	acked := map[string][2]uint64{}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	kills := 0
	for run := 0; kills < 6; run++ {
		if run > 20 {
			t.Fatalf("only %d kills in %d runs", kills, run)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+path, "LIENTHONG_AUDIT_CRASH_RUN="+strconv.Itoa(run))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan []string)
		go func() {
			var got []string
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				got = append(got, sc.Text())
			}
			lines <- got
		}()
		time.Sleep(time.Duration(50+rng.IntN(400)) * time.Millisecond)
		if cmd.Process.Signal(os.Kill) == nil {
			kills++
		}
		got := <-lines
		cmd.Wait()
		for _, l := range got {
			f := strings.Fields(l)
			if len(f) > 0 && f[0] == "open-failed" {
				t.Fatalf("run %d: the sink refused the log after a kill: %s", run, l)
			}
			if len(f) != 4 || f[0] != "ack" {
				continue // a line cut by the kill: its record is only not counted
			}
			a, _ := strconv.ParseUint(f[2], 10, 64)
			b, _ := strconv.ParseUint(f[3], 10, 64)
			acked[f[1]] = [2]uint64{a, b}
		}
	}
	// One clean start and stop: recovery of the last kill.
	s, err := OpenFile(path, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	files, err := LogFiles(path)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(files, nil)
	if err != nil {
		t.Fatal(err)
	}
	found := map[string][2]uint64{}
	err = EachEntry(files, func(e *Entry, _ []byte) error {
		if r := e.Record; r != nil {
			p := found[r.ExchangeID]
			if r.Phase == Intent {
				p[0] = e.Seq
			} else {
				p[1] = e.Seq
			}
			found[r.ExchangeID] = p
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for id, pos := range acked {
		if found[id] != pos {
			t.Fatalf("acknowledged %s at %v, the log has it at %v", id, pos, found[id])
		}
	}
	if len(acked) == 0 {
		t.Fatal("nothing was acknowledged: the test proved nothing")
	}
	t.Logf("%d kills, %d acknowledged exchanges, %d entries in %d segments", kills, len(acked), rep.Entries, len(files))
}
