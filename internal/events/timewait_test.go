package events_test

import (
	"testing"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/events/eventstest"
)

// twStart is the timewait socket's start the kernel reports just before a
// connection's CLOSE (timer_start in tcp_time_wait, then tcp_done).
func twStart(close *events.Event, sub events.State) events.Event {
	return events.Event{Kind: events.KindTimeWait, TwOp: events.TwStart, Time: close.Time - 1,
		Cookie: close.Cookie, Netns: close.Netns, Family: close.Family, Saddr: close.Saddr,
		Daddr: close.Daddr, Sport: close.Sport, Dport: close.Dport, New: sub}
}

// withTimeWait inserts, before each graceful CLOSE from FIN_WAIT2 or
// CLOSING of a recorded sequence, the timewait start the kernel gives it.
func withTimeWait(evs []events.Event, sub events.State) []events.Event {
	var out []events.Event
	for _, e := range evs {
		if e.Kind == events.KindTransition && e.New == events.Close && e.Err == 0 &&
			(e.Old == events.FinWait2 || e.Old == events.Closing) {
			out = append(out, twStart(&e, sub))
		}
		out = append(out, e)
	}
	return out
}

func TestTrackerTimeWaitFromKernel(t *testing.T) {
	for _, tc := range []struct {
		name    string
		sub     events.State
		wantTW  bool
		orphan  bool
		wantTWs int
	}{
		{"client_close", events.TimeWait, true, false, 1},
		{"client_close", events.FinWait2, false, true, 1},
		{"server_close", events.TimeWait, true, false, 1},
	} {
		t.Run(tc.name+"/"+tc.sub.String(), func(t *testing.T) {
			evs := withTimeWait(tkLoad(t, tc.name), tc.sub)
			col, tr := tkRun(evs, 0)
			if got := tr.Stats().TimeWait; got != uint64(tc.wantTWs) {
				t.Fatalf("timewait steps observed: %d, want %d", got, tc.wantTWs)
			}
			n := 0
			for _, c := range col.Conns {
				if c.TwState == events.Unknown {
					if c.TimeWait {
						t.Errorf("cookie %d: TIME_WAIT without a timewait socket", c.Cookie)
					}
					continue
				}
				n++
				if c.TwState != tc.sub || c.TimeWait != tc.wantTW {
					t.Errorf("cookie %d: TwState %v TimeWait %v, want %v %v", c.Cookie, c.TwState, c.TimeWait, tc.sub, tc.wantTW)
				}
				if !c.Owner.Known() {
					t.Errorf("cookie %d: owner unknown", c.Cookie)
				}
			}
			if n != tc.wantTWs {
				t.Fatalf("%d connections with a timewait socket, want %d", n, tc.wantTWs)
			}
			orphans := 0
			for i := range col.Transitions {
				if col.Transitions[i].Orphan {
					orphans++
				}
			}
			if (orphans > 0) != tc.orphan {
				t.Errorf("orphan transitions: %d, want orphan %v", orphans, tc.orphan)
			}
		})
	}
}

// With timewait events on, a graceful close that no timewait socket took
// over (tcp_max_tw_buckets full) is not TIME_WAIT; without them it is
// inferred, as for captures recorded before timewait events.
func TestTrackerTimeWaitEventsOff(t *testing.T) {
	evs := tkLoad(t, "client_close")
	for _, on := range []bool{false, true} {
		col := &eventstest.Collector{}
		tr := events.NewTracker(col, nil, 0)
		tr.SetTimeWaitEvents(on)
		for i := range evs {
			ev := evs[i]
			tr.Observe(&ev)
		}
		tw := 0
		for _, c := range col.Conns {
			if c.TimeWait {
				tw++
			}
		}
		if want := map[bool]int{false: 1, true: 0}[on]; tw != want {
			t.Errorf("timewait events %v: %d TIME_WAIT connections, want %d", on, tw, want)
		}
	}
}

// The tracker stamps the live connection's owner on its timewait start and
// fills Old from the connection's state; steps of finished connections and
// found sockets pass untouched.
func TestTrackerTimeWaitStamp(t *testing.T) {
	evs := tkLoad(t, "client_close")
	col := &eventstest.Collector{}
	tr := events.NewTracker(col, nil, 0)
	var start *events.Event
	for i := range evs {
		ev := evs[i]
		if ev.New == events.Close && ev.Old == events.FinWait2 {
			s := twStart(&ev, events.TimeWait)
			tr.Observe(&s)
			start = &s
		}
		tr.Observe(&ev)
	}
	if start == nil {
		t.Fatal("no FIN_WAIT2 close in the fixture")
	}
	if !start.OwnerKnown() || start.PID == 0 || start.Old != events.FinWait2 {
		t.Errorf("start after stamping: pid %d flags %v old %v", start.PID, start.Flags, start.Old)
	}
	end := events.Event{Kind: events.KindTimeWait, TwOp: events.TwExpire, Cookie: start.Cookie, Old: events.TimeWait, New: events.Close}
	tr.Observe(&end)
	if end.PID != 0 {
		t.Errorf("end of a finished connection stamped with pid %d", end.PID)
	}
}

// A timewait step passes --pid and --comm only with its stamped owner: a
// hint (FlagHint) names a process that is not the owner.
func TestMatchEventOwner(t *testing.T) {
	ev := events.Event{Kind: events.KindTimeWait, TwOp: events.TwFound, PID: 42, Comm: events.MakeComm("redis-cli"),
		Sport: 40000, Dport: 6379}
	byPID, byComm, byPort := events.Filter{PID: 42}, events.Filter{Comm: "redis-cli"}, events.Filter{Ports: []uint16{6379}}
	ev.Flags = events.FlagHint
	if byPID.MatchEvent(&ev) || byComm.MatchEvent(&ev) || !byPort.MatchEvent(&ev) {
		t.Error("a hint matched --pid/--comm, or the port did not match")
	}
	ev.Flags = events.FlagResolved
	if !byPID.MatchEvent(&ev) || !byComm.MatchEvent(&ev) {
		t.Error("the stamped owner did not match")
	}
}
