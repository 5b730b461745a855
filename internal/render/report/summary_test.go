package report

import (
	"bytes"
	"net/netip"
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
	if len(s.ActiveClosers) != 20 || s.ActiveClosers[0].Comm != "w?" {
		t.Fatalf("JSON lists %d processes: %+v", len(s.ActiveClosers), s.ActiveClosers[:1])
	}
	var buf bytes.Buffer
	if err := s.WriteText(&buf, style.Options{Width: 80}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "w? (1): 99\n") || !strings.Contains(buf.String(), "and 15 more processes") {
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

// TestSummaryConnections: the summary counts a connection whose client and
// server sockets are both traced once, and an active closer's share is of
// its established connections, its failed connects counted apart.
func TestSummaryConnections(t *testing.T) {
	app := events.Owner{PID: 42, Comm: events.MakeComm("app-worker")}
	srv := events.Owner{PID: 7, Comm: events.MakeComm("server")}
	cli, svc := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	sum, eng := NewSummarizer(), diagnosis.New(diagnosis.Options{})
	sink := events.Tee{sum, eng}
	spans := func(states ...events.State) []events.Span {
		var s []events.Span
		for _, st := range states {
			s = append(s, events.Span{State: st, Dur: 1000})
		}
		return s
	}
	var cookie uint64
	conn := func(c events.Conn) {
		cookie++
		c.Cookie, c.Start, c.Last, c.Netns, c.Family = cookie, 1000*cookie, 1000*cookie+500, 1, 2
		sink.Finished(&c)
	}
	for i := range uint16(3) {
		port := 40000 + i
		conn(events.Conn{Owner: app, Role: events.RoleClient, Saddr: cli, Sport: port, Daddr: svc, Dport: 80,
			Spans: spans(events.SynSent, events.Established, events.FinWait1, events.FinWait2), Closer: events.CloserLocal,
			End: events.EndGraceful, TimeWait: true, TwState: events.TimeWait})
		conn(events.Conn{Owner: srv, Role: events.RoleServer, Saddr: svc, Sport: 80, Daddr: cli, Dport: port,
			Spans: spans(events.SynRecv, events.Established, events.CloseWait, events.LastAck), Closer: events.CloserPeer,
			End: events.EndGraceful})
	}
	conn(events.Conn{Owner: app, Role: events.RoleClient, Saddr: cli, Sport: 41000, Daddr: netip.MustParseAddr("192.0.2.9"),
		Dport: 443, Spans: spans(events.SynSent, events.Established), Closer: events.CloserPeer, End: events.EndGraceful})
	for range 2 {
		conn(events.Conn{Owner: app, Role: events.RoleClient, Saddr: cli, Daddr: svc, Dport: 80,
			Spans: spans(events.SynSent), End: events.EndFailed, Err: 99})
	}
	conn(events.Conn{Owner: srv, Role: events.RoleListener, Saddr: svc, Sport: 80, Spans: spans(events.Listen),
		End: events.EndClosed})
	s := sum.Summary(events.Stats{Conns: 10, Finished: 10}, events.Losses{}, time.Second)
	s.SetReport(eng.Report(20000, time.Second, ""))
	if s.Sockets != 10 || s.Connections != 4 || s.Pairs != 3 || s.FailedConnects != 2 || s.Listeners != 1 {
		t.Errorf("sockets %d, connections %d, pairs %d, failed %d, listeners %d", s.Sockets, s.Connections, s.Pairs,
			s.FailedConnects, s.Listeners)
	}
	if len(s.ActiveClosers) != 1 || s.ActiveClosers[0].Established != 4 || s.ActiveClosers[0].FailedConnects != 2 {
		t.Fatalf("active closers %+v", s.ActiveClosers)
	}
	var b bytes.Buffer
	if err := s.WriteText(&b, style.Options{Width: 80}); err != nil {
		t.Fatal(err)
	}
	rendertest.CheckWidth(t, b.String(), 80)
	for _, want := range []string{
		"sockets       10 seen, 10 finished, 0 open\n",
		"connections   4 finished (3 client+server pairs on this host), 2 connects\n              failed, 1 listener closed\n",
		"active close  app-worker (42): 3 of 4 established (75%), to 1 destination; 2\n              connects failed\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	if err := s.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	rendertest.Golden(t, "connections.summary.json.golden", b.Bytes())
}

// TestSharePct: a share rounds, but says 100% only of all and 0% only of none.
func TestSharePct(t *testing.T) {
	for _, c := range []struct {
		n, of uint64
		want  string
	}{{302, 303, "99%"}, {1, 1000, "1%"}, {0, 5, "0%"}, {5, 5, "100%"}, {1, 2, "50%"}, {2, 3, "67%"}, {1, 0, "-"}} {
		if got := SharePct(c.n, c.of); got != c.want {
			t.Errorf("sharePct(%d, %d) = %s, want %s", c.n, c.of, got, c.want)
		}
	}
}
