package diagnosis

import (
	"math"
	"time"
)

// run is n timers at one value.
type run struct {
	v time.Duration
	n int
}

// timers is the multiset of a destination's timewait timers that the
// forecast works on, as ascending runs of equal values: from the table
// (the seconds their timers run out in), or, without timewait events, the
// traced handovers of each second of the last minute at TimeWaitLen less
// their age.
type timers struct {
	runs []run
}

// each calls fn with the timers above off, less off, in ascending order,
// as runs of equal values, until fn returns true.
func (tm *timers) each(off time.Duration, fn func(v time.Duration, n int) bool) {
	for _, r := range tm.runs {
		if r.v > off && fn(r.v-off, r.n) {
			return
		}
	}
}

// count returns how many timers are above off.
func (tm *timers) count(off time.Duration) int {
	n := 0
	for _, r := range tm.runs {
		if r.v > off {
			n += r.n
		}
	}
	return n
}

// forecast returns the forecast's inputs for d at now (Held the count of
// the timers) and the forecast from them, working on the timers as runs
// per second, not one per timewait socket. With timewait events
// the held sockets and their timers are the table's; without, the traced
// handovers of the last minute, each assumed to last TimeWaitLen.
func (e *Engine) forecast(d *destState, s Sysctls, now uint64) (Inputs, Forecast) {
	in := Inputs{Sysctls: s, Loopback: d.dest.Loopback(), Rate: d.rate(&d.tw, now), InUse: d.open}
	var tm timers
	if e.twEvents {
		tm.runs = d.exp.timers(now, e.runs[:0])
		in.Held = d.timeWait + d.finWait2
		in.NetnsTW = d.ns.tw + d.ns.fw2
	} else {
		nowSec := int64(now / 1e9)
		d.tw.advance(nowSec)
		tm.runs = e.runs[:0]
		for a := int64(TimeWaitLen/time.Second) - 1; a >= 0; a-- {
			if n := d.tw.counts[(nowSec-a+window)%window]; nowSec-a >= 0 && n > 0 {
				tm.runs = append(tm.runs, run{TimeWaitLen - time.Duration(a)*time.Second, int(n)})
				in.Held += int(n)
			}
		}
		in.NetnsTW = in.Held
	}
	e.runs = tm.runs
	return in, predictTimers(in, &tm)
}

// predictTimers forecasts from in with the held sockets' timers tm: when
// the ports blocked, the held ones still blocking plus rate·min(t, hold) new
// ones, first reach the usable ports (tests check it against predict, a
// reference over the timers one by one).
func predictTimers(in Inputs, tm *timers) Forecast {
	s := in.Sysctls
	f := Forecast{Ports: s.Ports(), Hold: TimeWaitLen, Steady: in.Rate * TimeWaitLen.Seconds()}
	f.Usable = max(f.Ports-max(in.InUse, 0), 0)
	f.Reuse = s.Reuses(in.Loopback)
	off := time.Duration(0) // every timer (all are positive) blocks
	if f.Reuse {
		f.Hold = min(s.ReuseDelay, TimeWaitLen)
		off = TimeWaitLen - f.Hold // a timer blocks for what it has beyond
	}
	f.Blocking = tm.count(off)
	f.Left = max(f.Usable-f.Blocking, 0)
	if capped(&in, f.Usable) {
		f.Capped, f.Never = true, true
		return f
	}
	switch {
	case f.Usable <= 0 || f.Blocking >= f.Usable:
		return f // exhausted now
	case in.Rate <= 0:
		f.Never = true // and no new ones
		return f
	}
	x := exhaust{n: f.Blocking, usable: f.Usable, rate: in.Rate, hold: f.Hold}
	// Once the new ones expire before they fill the range, they do for
	// every later timer too, unless the float conversion overflows.
	x.monotone = float64(f.Usable)/in.Rate*float64(time.Second) < 1<<62
	tm.each(off, x.run)
	if !x.done {
		x.try(math.MaxInt64)
	}
	f.Never, f.ETA = !x.ok, x.eta
	return f
}

// exhaust is exhaustion over timers given as ascending runs. Inside a run
// (start = end) no time qualifies, and ports held by the old timers can
// reach usable only before the first: it tries the runs' starts.
type exhaust struct {
	n, usable int
	rate      float64
	hold      time.Duration
	monotone  bool
	k         int           // timers passed
	start     time.Duration // the latest passed
	eta       time.Duration
	ok, done  bool
}

// run passes n timers at v; it returns true once decided.
func (x *exhaust) run(v time.Duration, n int) bool {
	if x.try(v) {
		return true
	}
	x.k += n
	x.start = v
	return false
}

// try is exhaustion's step at x.k timers passed, before a timer at end.
func (x *exhaust) try(end time.Duration) bool {
	old := x.n - x.k
	if old >= x.usable {
		x.eta, x.ok, x.done = x.start, true, true
		return true
	}
	if x.rate <= 0 {
		return false
	}
	t := time.Duration(float64(x.usable-old) / x.rate * float64(time.Second))
	if t > x.hold {
		x.done = x.monotone // never: later steps wait longer still
		return x.done
	}
	t = max(t, x.start)
	if t < end {
		x.eta, x.ok, x.done = t, true, true
		return true
	}
	return false
}
