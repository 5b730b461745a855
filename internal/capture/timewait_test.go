package capture

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/events/eventstest"
)

// timeWaitEvents returns a fixture's events with the timewait steps the
// kernel reports: each graceful CLOSE from FIN_WAIT2 or CLOSING is preceded
// by a timewait socket's start (TIME_WAIT, or an orphaned FIN_WAIT2 every
// other time) and followed by its later steps, one of each kind of end in
// turn from the n-th; a socket that predates tracing (found, with a hint)
// comes first. It returns n plus the closes.
func timeWaitEvents(evs []events.Event, n int) ([]events.Event, int) {
	var out, later []events.Event
	ends := []events.TwOp{events.TwExpire, events.TwKill, events.TwReuse}
	for i, e := range evs {
		if i == 0 {
			found := events.Event{Kind: events.KindTimeWait, TwOp: events.TwFound, Time: e.Time, Cookie: 1 << 40,
				Netns: e.Netns + 1, Family: e.Family, Saddr: e.Saddr, Daddr: e.Daddr, Sport: 40123, Dport: 443,
				New: events.TimeWait, Remain: 41_250, PID: 777, Comm: events.MakeComm("redis-cli"), Flags: events.FlagHint}
			out = append(out, found)
			gone := found
			gone.TwOp, gone.Old, gone.New, gone.Remain, gone.Time = events.TwExpire, events.TimeWait, events.Close, 0, e.Time+41_250_000_000
			later = append(later, gone)
		}
		if e.Kind == events.KindTransition && e.New == events.Close && e.Err == 0 &&
			(e.Old == events.FinWait2 || e.Old == events.Closing) {
			sub := events.TimeWait
			if n%2 == 1 {
				sub = events.FinWait2
			}
			tw := events.Event{Kind: events.KindTimeWait, TwOp: events.TwStart, Time: e.Time - 1, Cookie: e.Cookie,
				Netns: e.Netns, Family: e.Family, Saddr: e.Saddr, Daddr: e.Daddr, Sport: e.Sport, Dport: e.Dport,
				Old: e.Old, New: sub, PID: e.PID, TID: e.TID, Comm: e.Comm, Flags: events.FlagResolved}
			out = append(out, tw)
			t := e.Time
			if sub == events.FinWait2 {
				mv := tw
				t += 300_000_000
				mv.TwOp, mv.Old, mv.New, mv.Time = events.TwMove, events.FinWait2, events.TimeWait, t
				later = append(later, mv)
				sub = events.TimeWait
			}
			again := tw
			t += 1_000_000_000
			again.TwOp, again.Old, again.New, again.Time = events.TwMove, events.TimeWait, events.TimeWait, t
			end := tw
			end.TwOp, end.Old, end.New, end.Time = ends[n%len(ends)], sub, events.Close, t+60_000_000_000
			later = append(later, again, end)
			n++
		}
		out = append(out, e)
	}
	// The later steps come after the fixture, in time order.
	for len(later) > 0 {
		k := 0
		for j := range later {
			if later[j].Time < later[k].Time {
				k = j
			}
		}
		out = append(out, later[k])
		later = append(later[:k], later[k+1:]...)
	}
	return out, n
}

// TestRoundTripTimeWait: every timewait step, IPv4 and IPv6, survives a
// capture with its op, substates, remaining time and hint.
func TestRoundTripTimeWait(t *testing.T) {
	n := 0
	ops := map[events.TwOp]bool{}
	for _, name := range []string{"client_close.jsonl", "server_close.jsonl", "simultaneous.jsonl", "ipv6.jsonl"} {
		t.Run(name, func(t *testing.T) {
			var evs []events.Event
			evs, n = timeWaitEvents(fixtures(t)[name], n)
			for _, e := range evs {
				ops[e.TwOp] = true
			}
			opts := testOptions()
			opts.TimeWaitEvents = true
			b := encodeAll(t, evs, opts)
			r, got, err := readAll(b)
			if err != nil {
				t.Fatal(err)
			}
			sameEvents(t, got, evs)
			if h := r.Header(); !h.TimeWaitEvents || h.Format != Version {
				t.Fatalf("header %+v", h)
			}
			if len(r.Header().Netns) < 2 {
				t.Fatalf("the found socket's namespace was not recorded: %+v", r.Header().Netns)
			}
			t.Logf("%d events, %.1f bytes/event", len(evs), float64(len(b))/float64(len(evs)))
		})
	}
	for op := events.TwStart; op <= events.TwFound; op++ {
		if !ops[op] {
			t.Errorf("no %v step in the test events", op)
		}
	}
}

// TestRoundTripTimeWaitOdd: extreme values of the timewait fields.
func TestRoundTripTimeWaitOdd(t *testing.T) {
	v6 := netip.MustParseAddr("2001:db8::1")
	evs := []events.Event{
		{Kind: events.KindTimeWait, TwOp: events.TwFound, Time: 1, Cookie: 1<<64 - 1, Remain: 1<<32 - 1, New: events.FinWait2, Saddr: v6, Daddr: v6, Family: 10},
		{Kind: events.KindTimeWait, TwOp: 255, Time: 2, Cookie: 3},
		{Kind: events.KindTimeWait, TwOp: events.TwExpire, Time: 0, Cookie: 1<<64 - 1, Old: events.FinWait2, New: events.Close},
		{Time: 5, Cookie: 3, Old: events.Close, New: events.SynSent, TwOp: events.TwKill, Remain: 9}, // not from the kernel, but kept
		{Time: 6, Cookie: 3, Old: events.SynSent, New: events.Close},
	}
	_, got, err := readAll(encodeAll(t, evs, testOptions()))
	if err != nil {
		t.Fatal(err)
	}
	sameEvents(t, got, evs)
}

// TestReadVersion1 reads a capture written by the version 1 writer (before
// the timewait fields): the same events as when it was written.
func TestReadVersion1(t *testing.T) {
	want, err := eventstest.LoadJSONL("testdata/v1.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	r, err := Open("testdata/v1.tcpt")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var got []events.Event
	for {
		var ev events.Event
		if err := r.Next(&ev); err != nil {
			if err.Error() != "EOF" {
				t.Fatal(err)
			}
			break
		}
		got = append(got, ev)
	}
	sameEvents(t, got, want)
	if h := r.Header(); h.Format != 1 || h.TimeWaitEvents || r.Truncated() != nil {
		t.Fatalf("header %+v truncated %v", h, r.Truncated())
	}
}

// TestVersion1RefusesTimeWaitFields: the timewait field bits are not part
// of version 1, so a version 1 file that has them is damaged.
func TestVersion1RefusesTimeWaitFields(t *testing.T) {
	evs := []events.Event{{Kind: events.KindTimeWait, TwOp: events.TwStart, Time: 1, Cookie: 2, New: events.TimeWait}}
	b := encodeAll(t, evs, testOptions())
	binary.LittleEndian.PutUint16(b[len(Magic):], 1)
	_, _, err := readAll(b)
	if err == nil || !strings.Contains(err.Error(), "unknown field bits") {
		t.Fatalf("got %v", err)
	}
}

// timeWaitCapture is a capture with timewait steps, for the fuzzer's seeds.
func timeWaitCapture(t testing.TB) []byte {
	evs, _ := timeWaitEvents(fixtures(t)["client_close.jsonl"], 0)
	opts := testOptions()
	opts.TimeWaitEvents = true
	return encodeAll(t, evs, opts)
}
