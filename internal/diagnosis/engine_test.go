package diagnosis

import (
	"testing"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/events/eventstest"
)

// collect is a Reporter that keeps what it is given.
type collect struct {
	warns  []Warning
	failed []FailedNotice
	steps  []TimeWaitStep
}

func (c *collect) Warning(w *Warning)       { c.warns = append(c.warns, *w) }
func (c *collect) Failed(f *FailedNotice)   { c.failed = append(c.failed, *f) }
func (c *collect) TimeWait(s *TimeWaitStep) { c.steps = append(c.steps, *s) }

// replayChurn feeds the engine, through a tracker, the recorded churn
// fixture's connections repeated every period ns for n rounds with fresh
// cookies: connect-per-request toward one destination.
func replayChurn(t *testing.T, e *Engine, rounds int, period uint64) {
	t.Helper()
	replayFixture(t, e, "churn.jsonl", rounds, period, 1)
}

// replayFixture feeds the engine, through a tracker, the recorded fixture's
// connections copies times per round, spread over the round, every period
// ns for n rounds, with fresh cookies.
func replayFixture(t *testing.T, e *Engine, fixture string, rounds int, period uint64, copies int) {
	t.Helper()
	evs, err := eventstest.LoadJSONL("../events/testdata/" + fixture)
	if err != nil {
		t.Fatal(err)
	}
	tr := events.NewTracker(e, nil, 0)
	base := evs[0].Time
	for r := 0; r < rounds; r++ {
		for c := 0; c < copies; c++ {
			for i := range evs {
				ev := evs[i]
				if ev.Old == events.Close && ev.New == events.Listen || ev.Old == events.Listen && ev.New == events.Close {
					continue // the listener lives on
				}
				ev.Cookie += uint64(r*copies+c) << 32
				ev.Time = base + uint64(r)*period + uint64(c)*(period/uint64(copies)) + (ev.Time - base)
				tr.Observe(&ev)
				e.Tick(ev.Time)
			}
		}
	}
}

// TestChurnFlagged: 50 short connections every 200 ms toward one
// destination (250/s) is the connect-per-command pattern.
func TestChurnFlagged(t *testing.T) {
	var out collect
	e := New(Options{Out: &out})
	replayChurn(t, e, 30, 200e6)
	var churn int
	for _, w := range out.warns {
		if w.Kind == KindChurn {
			churn++
			if w.Rate < DefaultChurnRate || w.Lifetime > DefaultShortLife {
				t.Errorf("churn warning rate %.1f/s lifetime %v", w.Rate, w.Lifetime)
			}
		}
	}
	if churn != 1 {
		t.Errorf("%d churn warnings, want exactly one: %+v", churn, out.warns)
	}
}

// TestChurnNotFlaggedSlow: the same connections once every 5 s are no churn.
func TestChurnNotFlaggedSlow(t *testing.T) {
	var out collect
	e := New(Options{Out: &out})
	replayChurn(t, e, 6, 5e9)
	for _, w := range out.warns {
		if w.Kind == KindChurn {
			t.Errorf("slow connections flagged as churn: %+v", w)
		}
	}
}
