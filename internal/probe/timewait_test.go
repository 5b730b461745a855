package probe

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tcptrace/tcptrace/internal/events"
)

// TestDecodeTimeWait: timer records decode to the timewait steps the kernel
// saw, before pairing.
func TestDecodeTimeWait(t *testing.T) {
	for _, c := range []struct {
		kind, sub, flags uint8
		want             string
	}{
		{kindTwStart, 6, 0, "start UNKNOWN>TIME_WAIT"},
		{kindTwStart, 5, 0, "start UNKNOWN>FIN_WAIT2"},
		{kindTwCancel, 6, 0, "kill TIME_WAIT>CLOSE"},
		{kindTwCancel, 6, flagTwConnect, "reuse TIME_WAIT>CLOSE"},
		{kindTwExpire, 5, 0, "expire FIN_WAIT2>CLOSE"},
	} {
		r := tcptraceRecord{E: tcptraceEvent{Cookie: 7, Family: afInet, Kind: c.kind, Newstate: c.sub, Flags: c.flags, Pid: 3, Tid: 4}}
		var ev events.Event
		if err := Decode(record(&r, headSize), &ev); err != nil {
			t.Fatal(err)
		}
		got := fmt.Sprintf("%v %v>%v", ev.TwOp, ev.Old, ev.New)
		if ev.Kind != events.KindTimeWait || got != c.want || ev.Flags != 0 || ev.PID != 0 || ev.TaskPID != 3 {
			t.Errorf("kind %d: %v %s flags=%d pid=%d task=%d, want %s", c.kind, ev.Kind, got, ev.Flags, ev.PID, ev.TaskPID, c.want)
		}
	}
	r := tcptraceRecord{E: tcptraceEvent{Family: afInet, Kind: 9}}
	var ev events.Event
	if err := Decode(record(&r, headSize), &ev); err == nil {
		t.Errorf("unknown kind decoded")
	}
}

// TestTimeWaitPairing: what Next makes of sequences of timer records.
func TestTimeWaitPairing(t *testing.T) {
	const ms = 1_000_000
	tw := func(at uint64, cookie uint64, op events.TwOp, sub events.State) events.Event {
		e := events.Event{Kind: events.KindTimeWait, Time: at * ms, Cookie: cookie, TwOp: op, Old: sub, New: events.Close}
		if op == events.TwStart {
			e.Old, e.New = events.Unknown, sub
		}
		return e
	}
	tr := func(at uint64, cookie uint64) events.Event {
		return events.Event{Kind: events.KindTransition, Time: at * ms, Cookie: cookie, Old: events.FinWait2, New: events.Close}
	}
	fw2, tw6 := events.FinWait2, events.TimeWait
	for _, c := range []struct {
		name string
		in   []events.Event
		want string
	}{
		{"start", []events.Event{tw(1, 1, events.TwStart, tw6), tr(1, 1)},
			"1:start UNKNOWN>TIME_WAIT 1:FIN_WAIT2>CLOSE"},
		// The cancel of a FIN_WAIT2 socket that got its FIN already
		// reads TIME_WAIT: the start in FIN_WAIT2 tells.
		{"move", []events.Event{tw(1, 1, events.TwStart, fw2), tw(5, 1, events.TwKill, tw6), tw(5, 1, events.TwStart, tw6)},
			"1:start UNKNOWN>FIN_WAIT2 1:move FIN_WAIT2>TIME_WAIT"},
		{"restart", []events.Event{tw(5, 1, events.TwKill, tw6), tw(5, 1, events.TwStart, tw6)},
			"1:move TIME_WAIT>TIME_WAIT"},
		{"expire", []events.Event{tw(5, 1, events.TwKill, fw2), tw(5, 1, events.TwExpire, fw2)},
			"1:expire FIN_WAIT2>CLOSE"},
		// A kill is known once a record 2 ms later comes, and goes
		// before it.
		{"kill", []events.Event{tw(5, 1, events.TwKill, tw6), tr(6, 2), tr(8, 3)},
			"2:FIN_WAIT2>CLOSE 1:kill TIME_WAIT>CLOSE 3:FIN_WAIT2>CLOSE"},
		{"reuse", []events.Event{tw(5, 1, events.TwReuse, tw6), tw(5, 2, events.TwStart, tw6), tr(9, 3)},
			"2:start UNKNOWN>TIME_WAIT 1:reuse TIME_WAIT>CLOSE 3:FIN_WAIT2>CLOSE"},
		// Two cancels of one socket: the first was a kill.
		{"twice", []events.Event{tw(5, 1, events.TwKill, tw6), tw(5, 1, events.TwKill, tw6)},
			"1:kill TIME_WAIT>CLOSE 1:kill TIME_WAIT>CLOSE"},
	} {
		p := &Probe{finWait2: map[uint64]bool{}}
		var out []string
		for i := range c.in {
			ev := c.in[i]
			if p.order(&ev) {
				out = append(out, show(&ev))
			}
			for p.popPending(&ev) {
				out = append(out, show(&ev))
			}
		}
		p.resolveAll() // Stop
		var ev events.Event
		for p.popPending(&ev) {
			out = append(out, show(&ev))
		}
		if got := strings.Join(out, " "); got != c.want {
			t.Errorf("%s: got  %s\nwant %s", c.name, got, c.want)
		}
		if len(p.finWait2) != 0 && c.name != "start" {
			t.Errorf("%s: FIN_WAIT2 sockets left %v", c.name, p.finWait2)
		}
	}
}

func show(e *events.Event) string {
	if e.Kind == events.KindTimeWait {
		return fmt.Sprintf("%d:%v %v>%v", e.Cookie, e.TwOp, e.Old, e.New)
	}
	return fmt.Sprintf("%d:%v>%v", e.Cookie, e.Old, e.New)
}
