package diagnosis

import (
	"testing"
	"time"
)

// smallRange is a namespace of 100 ephemeral ports without tcp_tw_reuse:
// the churn fixture's pile runs it out within seconds.
func smallRange(uint32) *Sysctls {
	s := DefaultSysctls
	s.PortLo, s.PortHi, s.TwReuse, s.Known = 40000, 40099, 0, true
	return &s
}

// TestTimeline: a client closing first toward one destination makes one timeline whose
// points count every connect, whose pile grows, and whose worst moment
// runs out of ports; the remedies' forecasts do not (pooled, reuse) or
// later (a wide range).
func TestTimeline(t *testing.T) {
	e := New(Options{Sysctls: smallRange})
	replayFixture(t, e, "client_close.jsonl", 30, 200e6, 20) // 100 connects/s for 6 s
	r := e.Report(e.lastRun+1, 6*time.Second, "")
	if len(r.Timelines) != 1 {
		t.Fatalf("%d timelines, want 1: %+v", len(r.Timelines), r.Timelines)
	}
	tl := r.Timelines[0]
	var connects uint64
	prev := uint64(0)
	for i, p := range tl.Points {
		connects += p.Connects
		if i > 0 && i < len(tl.Points)-1 && p.T-prev < uint64(firstStep) { // the last ends at the report
			t.Errorf("point %d only %v after the previous", i, time.Duration(p.T-prev))
		}
		prev = p.T
	}
	var want uint64
	for _, c := range r.Closers {
		want += c.Established + c.FailedConnects
	}
	if connects == 0 || connects != want {
		t.Errorf("points count %d connects, the closers %d", connects, want)
	}
	if tl.Peak < 100 || tl.Sysctls.Ports() != 100 {
		t.Errorf("peak %d of %d ports, want the 100 ports held", tl.Peak, tl.Sysctls.Ports())
	}
	w := tl.Worst
	if w.Forecast.Never || !w.Pooled.Never || !w.Reuse.Never {
		t.Errorf("worst moment: forecast %+v, pooled %+v, with reuse %+v", w.Forecast, w.Pooled, w.Reuse)
	}
	if !w.WideRange.Never && w.WideRange.ETA <= w.Forecast.ETA {
		t.Errorf("a wide range runs out in %v, no later than %v", w.WideRange.ETA, w.Forecast.ETA)
	}
}

// TestTimelineBounded: a long run keeps at most maxPoints per timeline by
// merging pairs, and no connect is lost in the merging.
func TestTimelineBounded(t *testing.T) {
	e := New(Options{})
	replayFixture(t, e, "client_close.jsonl", 1200, 200e6, 2) // 240 s: 960 points at the first step
	ts := e.Report(e.lastRun+1, 240*time.Second, "").Timelines
	if len(ts) != 1 {
		t.Fatalf("%d timelines", len(ts))
	}
	tl := ts[0]
	if len(tl.Points) > maxPoints || tl.Step != 2*firstStep {
		t.Errorf("%d points every %v, want at most %d every %v", len(tl.Points), tl.Step, maxPoints, 2*firstStep)
	}
	var connects uint64
	var dur time.Duration
	for _, p := range tl.Points {
		connects += p.Connects
		dur += p.Dur
	}
	if want := e.dests[tl.Dest].connects; connects != want {
		t.Errorf("points count %d connects, the destination %d", connects, want)
	}
	if first := tl.Points[0].T - uint64(tl.Points[0].Dur); time.Duration(tl.Points[len(tl.Points)-1].T-first) != dur {
		t.Errorf("the points' lengths add up to %v, not their span", dur)
	}
}
