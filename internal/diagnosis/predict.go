package diagnosis

import (
	"math"
	"slices"
	"sort"
	"time"
)

// run is count timers at one value.
type run struct {
	v time.Duration
	n int
}

// timers is the multiset of a destination's TIME_WAIT timers that the
// forecast works on, in ascending order without a copy: a fresh snapshot's
// (ms, sorted, those still running at age) less its age, and the traced
// handovers since at TimeWaitLen less that age; else, per second of the
// last minute, the traced handovers at TimeWaitLen less their age.
type timers struct {
	ms     []uint32 // sorted; all run past age
	age    time.Duration
	traced int
	runs   []run // without a fresh snapshot: ascending
}

// each calls fn with the timers above off, less off, in ascending order,
// as runs of equal values, until fn returns true.
func (tm *timers) each(off time.Duration, fn func(v time.Duration, n int) bool) {
	if tm.runs != nil {
		for _, r := range tm.runs {
			if r.v > off && fn(r.v-off, r.n) {
				return
			}
		}
		return
	}
	x := TimeWaitLen - tm.age // the traced handovers'
	pending := tm.traced > 0 && x > off
	for _, ms := range tm.ms[tm.above(off):] {
		v := time.Duration(ms)*time.Millisecond - tm.age
		if pending && x <= v {
			if pending = false; fn(x-off, tm.traced) {
				return
			}
		}
		if fn(v-off, 1) {
			return
		}
	}
	if pending {
		fn(x-off, tm.traced)
	}
}

// above returns the index of the first of tm.ms above off once less the age.
func (tm *timers) above(off time.Duration) int {
	return sort.Search(len(tm.ms), func(i int) bool { return time.Duration(tm.ms[i])*time.Millisecond-tm.age > off })
}

// count returns how many timers are above off.
func (tm *timers) count(off time.Duration) int {
	if tm.runs != nil {
		n := 0
		for _, r := range tm.runs {
			if r.v > off {
				n += r.n
			}
		}
		return n
	}
	n := len(tm.ms) - tm.above(off)
	if TimeWaitLen-tm.age > off {
		n += tm.traced
	}
	return n
}

// forecast returns the forecast's inputs for d at now (Expiries left nil,
// Held their count) and what Predict makes of them, without building and
// sorting the timers: the snapshot's are sorted once (radix), then an
// evaluation costs binary searches and the timers the forecast looks at,
// not every TIME_WAIT socket.
func (e *Engine) forecast(d *destState, s Sysctls, now uint64) (Inputs, Forecast) {
	in := Inputs{Sysctls: s, Loopback: d.dest.Loopback(), Rate: d.rate(&d.tw, now)}
	var tm timers
	l := &d.ledger
	if l.at != 0 && now >= l.at && now-l.at < uint64(staleLedger) {
		if !l.sorted {
			sortTimers(l.expiries, &e.radix)
			l.sorted = true
		}
		tm.age = time.Duration(now - l.at)
		tm.ms, tm.traced = l.expiries, int(l.traced)
		tm.ms = tm.ms[tm.above(0):]
		in.Held = len(tm.ms) + int(l.traced)
		in.InUse, in.NetnsTW = l.inUse, l.netnsTW+int(l.traced)
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
		e.runs = tm.runs
		in.NetnsTW = in.Held
	}
	return in, predictTimers(in, &tm)
}

// predictTimers is Predict(in) for in.Expiries the timers tm.
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

// sortTimers sorts timers (ms), a radix sort for big slices with scratch
// memory kept in buf.
func sortTimers(a []uint32, buf *[]uint32) {
	if len(a) < 512 {
		slices.Sort(a)
		return
	}
	var top uint32
	for _, v := range a {
		top = max(top, v)
	}
	if cap(*buf) < len(a) {
		*buf = make([]uint32, len(a)+len(a)/4)
	}
	src, dst := a, (*buf)[:len(a)]
	for shift := uint(0); shift < 32 && top>>shift != 0; shift += 8 {
		var at [256]int
		for _, v := range src {
			at[uint8(v>>shift)]++
		}
		sum := 0
		for i, c := range at {
			at[i], sum = sum, sum+c
		}
		for _, v := range src {
			d := uint8(v >> shift)
			dst[at[d]] = v
			at[d]++
		}
		src, dst = dst, src
	}
	if &src[0] != &a[0] {
		copy(a, src)
	}
}
