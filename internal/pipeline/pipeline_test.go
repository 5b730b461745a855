package pipeline

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/capture"
	"github.com/tcptrace/tcptrace/internal/diagnosis"
	"github.com/tcptrace/tcptrace/internal/events"
)

// sample is the real capture shipped with the repository.
const sample = "../capture/testdata/sample.tcpt"

// counter is a sink that counts what it is given, and optionally writes a
// line per transition to w.
type counter struct {
	transitions, finished, losses int
	w                             *Output
}

func (c *counter) Transition(*events.Transition) {
	c.transitions++
	if c.w != nil {
		_, _ = c.w.WriteString("a transition\n")
	}
}
func (c *counter) Finished(*events.Conn) { c.finished++ }
func (c *counter) Loss(*events.Event)    { c.losses++ }

// run replays path through a pipeline with a counter, recording to rec
// when not nil, and returns the counter and the pipeline after Run.
func run(t *testing.T, path string, rec *capture.Writer) (*counter, *Pipeline, *Replay) {
	t.Helper()
	src, err := OpenReplay(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	c := &counter{}
	p := New(src, Config{Diagnosis: diagnosis.Options{}, Sinks: []events.Sink{c}, Record: rec})
	if err := p.Run(); err != nil {
		t.Fatal(err)
	}
	return c, p, src
}

// TestReplayClock: a replay's ticks run on the recorded clock, in order,
// within the recording, and its elapsed time is the recording's.
func TestReplayClock(t *testing.T) {
	src, err := OpenReplay(sample)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	p := New(src, Config{})
	var ticks []uint64
	const every = 100 * time.Millisecond
	p.Every(every, func(now uint64) { ticks = append(ticks, now) })
	ended := false
	p.AtEnd(func() { ended = true })
	if err := p.Run(); err != nil {
		t.Fatal(err)
	}
	h := src.Capture().Header()
	tr := src.Capture().Trailer()
	if tr == nil || !ended {
		t.Fatalf("trailer %v, end work run %v", tr, ended)
	}
	if len(ticks) < 2 {
		t.Fatalf("%d ticks of a job every %v over a recording of %v", len(ticks), every, p.Elapsed())
	}
	for i, now := range ticks {
		if now < h.StartMono || now > tr.EndMono || i > 0 && now-ticks[i-1] < uint64(every) {
			t.Errorf("tick %d at %d: want in [%d, %d], %v after %v", i, now, h.StartMono, tr.EndMono, every, ticks[:i])
		}
	}
	if want := time.Duration(tr.EndMono - h.StartMono); p.Elapsed() != want {
		t.Errorf("elapsed %v, want the recording's %v", p.Elapsed(), want)
	}
	if rep := p.Report(); rep.Elapsed != p.Elapsed() {
		t.Errorf("report's elapsed %v, the run's %v", rep.Elapsed, p.Elapsed())
	}
}

// TestRecordedReplay: what a pipeline records is what it passed on, so the
// replay of its recording gives the sinks and the diagnosis the same.
func TestRecordedReplay(t *testing.T) {
	orig, err := capture.Open(sample)
	if err != nil {
		t.Fatal(err)
	}
	h := orig.Header()
	orig.Close()
	path := filepath.Join(t.TempDir(), "again.tcpt")
	rec, err := capture.Create(path, capture.Options{ClockOffset: h.ClockOffset, StartMono: h.StartMono,
		TimeWaitEvents: h.TimeWaitEvents, Lookup: func(ns uint32, _ ...uint32) *capture.Netns {
			for _, n := range h.Netns {
				if n.Inode == ns {
					return n
				}
			}
			return &capture.Netns{Inode: ns}
		}})
	if err != nil {
		t.Fatal(err)
	}
	first, p1, _ := run(t, sample, rec)
	second, p2, _ := run(t, path, nil)
	if first.transitions == 0 || first.finished == 0 {
		t.Fatalf("the sample gave %+v", first)
	}
	if *first != *second {
		t.Errorf("sinks: %+v, replayed recording %+v", first, second)
	}
	if p1.Stats() != p2.Stats() || p1.Losses() != p2.Losses() || p1.Elapsed() != p2.Elapsed() {
		t.Errorf("stats %+v, %+v, %v; replayed recording %+v, %+v, %v",
			p1.Stats(), p1.Losses(), p1.Elapsed(), p2.Stats(), p2.Losses(), p2.Elapsed())
	}
	r1, r2 := p1.Report(), p2.Report()
	if len(r1.TimeWait) != len(r2.TimeWait) || len(r1.Closers) != len(r2.Closers) || len(r1.Ends) != len(r2.Ends) {
		t.Errorf("reports differ: %d/%d/%d rows, replayed recording %d/%d/%d",
			len(r1.TimeWait), len(r1.Closers), len(r1.Ends), len(r2.TimeWait), len(r2.Closers), len(r2.Ends))
	}
}

// TestClosedOutputEnds: once the output's reader is gone the run stops
// reading and ends quietly.
func TestClosedOutputEnds(t *testing.T) {
	all, _, _ := run(t, sample, nil)
	pw, src := closedPipeReplay(t)
	out := NewOutput(pw, 64)
	c := &counter{w: out}
	p := New(src, Config{Sinks: []events.Sink{c}, Out: out})
	if err := p.Run(); err != nil {
		t.Fatalf("a closed output ended the run with %v", err)
	}
	if out.Err() == nil || c.transitions >= all.transitions {
		t.Errorf("output error %v; %d transitions of %d passed on", out.Err(), c.transitions, all.transitions)
	}
}

// closedPipeReplay returns the write end of a pipe whose reader is gone
// (as `| head -1` leaves it) and the sample's replay, both closed at the
// test's end.
func closedPipeReplay(t *testing.T) (*os.File, *Replay) {
	t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	pr.Close()
	t.Cleanup(func() { pw.Close() })
	src, err := OpenReplay(sample)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return pw, src
}
