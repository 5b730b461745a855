package report

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/diagnosis"
	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/render/rendertest"
	"github.com/tcptrace/tcptrace/internal/render/style"
)

// summarize replays a fixture into a Summarizer and a diagnosis engine, as
// tcptrace does, and returns the summary with the diagnosis's processes,
// and the diagnosis's report.
func summarize(t *testing.T, path string, elapsed time.Duration) (*Summary, *diagnosis.Report) {
	t.Helper()
	sum, eng := NewSummarizer(), diagnosis.New(diagnosis.Options{})
	st, lost, last := rendertest.Replay(t, path, events.Tee{sum, eng})
	s, rep := sum.Summary(st, lost, elapsed), eng.Report(last, elapsed, "")
	s.SetReport(rep)
	return s, rep
}

func TestGoldenSummary(t *testing.T) {
	for _, path := range rendertest.Fixtures(t) {
		t.Run(rendertest.Name(path), func(t *testing.T) {
			s, _ := summarize(t, path, 83*time.Second)
			var buf bytes.Buffer
			if err := s.WriteText(&buf, style.Options{Width: 80}); err != nil {
				t.Fatal(err)
			}
			rendertest.CheckWidth(t, buf.String(), 80)
			rendertest.Golden(t, rendertest.Name(path)+".summary.golden", buf.Bytes())
		})
	}
}

// TestSummaryManyProcesses: the text lists the first processes and counts
// the rest; JSON lists up to 20.
func TestSummaryManyProcesses(t *testing.T) {
	rep := &diagnosis.Report{}
	for pid := uint32(1); pid <= 30; pid++ {
		rep.Closers = append(rep.Closers, diagnosis.CloserRow{Owner: diagnosis.ProcKey{PID: pid, Comm: events.MakeComm("w\x1b")},
			ActiveCloses: uint64(100 - pid), Finished: 100})
	}
	s, _ := summarize(t, rendertest.Fixture(t, "client_close"), time.Second)
	s.SetReport(rep)
	if len(s.ActiveCloses) != 20 || s.ActiveCloses[0].Comm != "w?" {
		t.Fatalf("JSON lists %d processes: %+v", len(s.ActiveCloses), s.ActiveCloses[:1])
	}
	var buf bytes.Buffer
	if err := s.WriteText(&buf, style.Options{Width: 80}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "w? (1): 99 of 100 finished, 99%") || !strings.Contains(buf.String(), "and 15 more processes") {
		t.Errorf("summary:\n%s", buf.String())
	}
}

func TestSummaryColor(t *testing.T) {
	s, _ := summarize(t, rendertest.Fixture(t, "synthetic_gaps"), 0)
	for _, color := range []bool{false, true} {
		var buf bytes.Buffer
		if err := s.WriteText(&buf, style.Options{Color: color}); err != nil {
			t.Fatal(err)
		}
		if got := bytes.Contains(buf.Bytes(), []byte("\x1b[")); got != color {
			t.Errorf("Color=%v: escape codes present = %v", color, got)
		}
	}
}

// TestSummaryNoPanic: nil summaries and odd verdicts write.
func TestSummaryNoPanic(t *testing.T) {
	sum := NewSummarizer()
	sum.Transition(nil)
	sum.Finished(nil)
	sum.Finished(&events.Conn{Role: 200, Closer: 200, End: 200, ResetBy: 200, Owner: events.Owner{Source: 200}, Start: 5})
	sum.Loss(nil)
	sum.Loss(&events.Event{Kind: events.KindLoss, Lost: events.Losses{Ring: 1 << 63, Recursion: 1 << 63}})
	var buf bytes.Buffer
	if err := sum.Summary(events.Stats{}, events.Losses{}, 0).WriteText(&buf, style.Options{}); err != nil {
		t.Fatal(err)
	}
	var nilSum *Summary
	if err := nilSum.WriteText(&buf, style.Options{}); err != nil {
		t.Fatal(err)
	}
	if err := nilSum.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
}

// TestProcLabel: Options.ProcLabel names each process's container in the
// report's tables.
func TestProcLabel(t *testing.T) {
	rep := &diagnosis.Report{Failed: []diagnosis.FailedRow{{Owner: diagnosis.ProcKey{PID: 42, Comm: events.MakeComm("app")}, Err: "EADDRNOTAVAIL", Count: 3}}}
	var buf bytes.Buffer
	err := WriteText(&buf, style.Options{Width: 120}, Options{Short: true, ProcLabel: func(pid uint32) string {
		if pid == 42 {
			return "[container abc123]"
		}
		return ""
	}}, rep)
	if err != nil || !strings.Contains(buf.String(), "app (42) [container abc123]") {
		t.Errorf("report lacks the container label (%v):\n%s", err, buf.String())
	}
}
