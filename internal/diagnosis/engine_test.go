package diagnosis

import (
	"testing"

	"github.com/tcptrace/tcptrace/internal/events"
)

// collect is a Reporter that keeps what it is given.
type collect struct {
	warns  []Warning
	failed []FailedNotice
}

func (c *collect) Warning(w *Warning)         { c.warns = append(c.warns, *w) }
func (c *collect) Failed(f *FailedNotice)     { c.failed = append(c.failed, *f) }
func (c *collect) TimeWaitEnd(e *TimeWaitEnd) {}

// replayChurn feeds the engine, through a tracker, the recorded churn
// fixture's connections repeated every period ns for n rounds with fresh
// cookies: connect-per-request toward one destination.
func replayChurn(t *testing.T, e *Engine, rounds int, period uint64) {
	t.Helper()
	evs, err := events.LoadJSONL("../events/testdata/churn.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	tr := events.NewTracker(e, nil, 0)
	base := evs[0].Time
	for r := 0; r < rounds; r++ {
		for i := range evs {
			ev := evs[i]
			if ev.Old == events.Close && ev.New == events.Listen || ev.Old == events.Listen && ev.New == events.Close {
				continue // the listener lives on
			}
			ev.Cookie += uint64(r) << 32
			ev.Time = base + uint64(r)*period + (ev.Time - base)
			tr.Observe(&ev)
			e.Tick(ev.Time)
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

// TestCookieTable checks the join table's bound, overwrite and reset.
func TestCookieTable(t *testing.T) {
	tb := newCookieTable()
	d := Dest{Dport: 80}
	for i := uint64(1); i <= maxCookies+10; i++ {
		tb.put(i, cookieRec{dest: d, owner: ProcKey{PID: 7}, sport: uint16(i), at: i})
	}
	if _, ok := tb.get(1); ok {
		t.Error("the oldest entry survived a full table")
	}
	if r, ok := tb.get(maxCookies + 10); !ok || r.dest != d || r.owner.PID != 7 || r.at != maxCookies+10 {
		t.Errorf("newest entry %+v %v", r, ok)
	}
	if tb.len() != maxCookies {
		t.Errorf("%d entries, want the bound %d", tb.len(), maxCookies)
	}
	for i := 0; i <= maxInterned; i++ {
		tb.put(uint64(1<<40+i), cookieRec{dest: Dest{Dport: uint16(i), Netns: uint32(i)}})
	}
	if tb.resets != 1 || len(tb.dests.vals) > maxInterned {
		t.Errorf("resets %d, %d interned destinations", tb.resets, len(tb.dests.vals))
	}
}
