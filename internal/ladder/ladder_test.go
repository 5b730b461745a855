package ladder

import (
	"testing"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/events/eventstest"
)

// replay feeds a recorded sequence of internal/events/testdata through a
// tracker into sink.
func replay(t *testing.T, name string, sink events.Sink) {
	t.Helper()
	evs, err := eventstest.LoadJSONL("../events/testdata/" + name + ".jsonl")
	if err != nil {
		t.Fatal(err)
	}
	tr := events.NewTracker(sink, nil, 0)
	for i := range evs {
		tr.Observe(&evs[i])
	}
}

// TestPairerPairs: the two sockets of a same-host connection come out as
// one ladder, client on the left.
func TestPairerPairs(t *testing.T) {
	var got []*Ladder
	p := NewPairer(func(l *Ladder) { got = append(got, l) })
	replay(t, "client_close", p)
	p.Flush()
	if len(got) != 1 || got[0].Sides[0] == nil || got[0].Sides[1] == nil {
		t.Fatalf("want one pair, got %d ladders", len(got))
	}
	l := got[0]
	if l.Sides[0].Role != events.RoleClient || l.Sides[1].Role != events.RoleServer {
		t.Errorf("columns: %v | %v", l.Sides[0].Role, l.Sides[1].Role)
	}
	if r := RolesOf(l); !r.Active[0] || r.Active[1] || !r.TimeWait[0] || r.TimeWait[1] {
		t.Errorf("roles %+v: want the client closing first and holding TIME_WAIT", r)
	}
}

// TestPairerBounds drives every bound and the spans fallback: every
// connection still comes out, and nothing is left after Flush.
func TestPairerBounds(t *testing.T) {
	var n int
	p := NewPairer(func(*Ladder) { n++ })
	p.MaxRecords, p.MaxPending = 1, 1
	for _, name := range []string{"churn", "client_close", "refused", "linger_reset"} {
		replay(t, name, p)
	}
	p.Flush()
	if n == 0 {
		t.Fatal("no ladders")
	}
	if len(p.recs) != 0 || len(p.pending) != 0 || len(p.live) != 0 || len(p.queue) != 0 {
		t.Errorf("state left after Flush: %d records, %d pending, %d live, %d queued", len(p.recs), len(p.pending), len(p.live), len(p.queue))
	}
}

// TestAggregator collapses repeated connections (the server closing
// first) into one shape, and counts those past the limit of shapes.
func TestAggregator(t *testing.T) {
	a := &Aggregator{MaxShapes: 1}
	p := NewPairer(a.Add)
	for range 4 {
		replay(t, "churn", p)
	}
	replay(t, "refused", p)
	p.Flush()
	sh := a.Shapes()
	if len(sh) != 1 || sh[0].N != 200 || sh[0].Active[1] != 200 || a.Total() != 201 || a.Overflow() != 1 {
		t.Fatalf("%d shapes (first %+v), total %d, overflow %d", len(sh), *sh[0], a.Total(), a.Overflow())
	}
	if len(sh[0].res) != reservoirK || sh[0].Lifetime(50) <= 0 || sh[0].Lifetime(99) > sh[0].MaxLife {
		t.Errorf("reservoir %d, p50 %d, p99 %d, max %d", len(sh[0].res), sh[0].Lifetime(50), sh[0].Lifetime(99), sh[0].MaxLife)
	}
}

func TestQuantile(t *testing.T) {
	if got := quantile(nil, 50); got != -1 {
		t.Errorf("empty: %d", got)
	}
	if got := quantile([]int64{5, 1, 4, 2, 3}, 50); got != 3 {
		t.Errorf("median: %d", got)
	}
	if got := quantile([]int64{5, 1, 4, 2, 3}, 99); got != 4 {
		t.Errorf("p99 (nearest rank below): %d", got)
	}
}

// TestPairTimeOrder: a pair's rows are in time order, and every segment
// is drawn before (or on) the row of the step that received it: a
// segment whose sender's step is stamped after the receipt is drawn
// ahead, and that step's own row then draws none.
func TestPairTimeOrder(t *testing.T) {
	for _, name := range []string{"client_close", "server_close", "simultaneous", "linger_reset", "half_close", "churn"} {
		var got []*Ladder
		p := NewPairer(func(l *Ladder) { got = append(got, l) })
		replay(t, name, p)
		p.Flush()
		for _, l := range got {
			var prev uint64
			drawn := [2]map[int]bool{{}, {}}
			for i, r := range l.Rows {
				h := l.Sides[r.Side]
				if h == nil || r.Inferred {
					continue
				}
				if r.Ahead {
					drawn[r.Side][r.Step] = true
					continue
				}
				if tm := h.Steps[r.Step].T; tm < prev {
					t.Errorf("%s: row %d goes back in time (%d < %d)", name, i, tm, prev)
				} else {
					prev = tm
				}
				if drawn[r.Side][r.Step] && r.Sent != SegNone {
					t.Errorf("%s: row %d draws its segment twice", name, i)
				}
				drawn[r.Side][r.Step] = true
				if o := l.Sides[1-r.Side]; o != nil {
					if j := matchDeps(h, o)[r.Step]; j >= 0 && !drawn[1-r.Side][j] {
						t.Errorf("%s: row %d receives a segment not drawn yet", name, i)
					}
				}
			}
		}
	}
}
