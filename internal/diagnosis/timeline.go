package diagnosis

import (
	"cmp"
	"slices"
	"time"
)

// Bounds of the timelines: the report's charts.
const (
	firstStep    = evalEvery // a timeline's first resolution: every evaluation
	maxPoints    = 480       // points per timeline; past it, pairs merge and the step doubles
	maxTimelines = 32        // destinations followed; past it, the one with the smallest peak goes
	TopTimelines = 8         // timelines a report carries
)

// Point is a destination's state over one step of a timeline.
type Point struct {
	T        uint64        // CLOCK_MONOTONIC ns at the end of the step
	Dur      time.Duration // the step's length: from the previous point, or from the first sight of the destination
	TimeWait int           // timewait sockets toward it (TIME_WAIT and orphaned FIN_WAIT2), the most of the step
	Connects uint64        // connects in the step: handshakes completed and connects failed
	Failed   uint64        // connects failed in the step
	ETA      time.Duration // the nearest forecast of the step; -1: never at that rate
}

// WhatIf is the forecast at a destination's worst moment (its nearest
// exhaustion, else its biggest pile) and what it would have been with a
// remedy applied.
type WhatIf struct {
	T         uint64   // when
	Inputs    Inputs   // the forecast's inputs then
	Forecast  Forecast // as it was
	Reuse     Forecast // with tcp_tw_reuse=1 and tcp_timestamps=1
	WideRange Forecast // with ip_local_port_range 1024-65535
	Pooled    Forecast // with no new TIME_WAIT (connections reused, or the server closing first)
}

// Timeline is one client-side destination's history, for the report's charts.
type Timeline struct {
	Dest    Dest
	Owner   ProcKey       // the process with the most TIME_WAIT handovers toward it
	Sysctls Sysctls       // its namespace's, at the latest point
	Step    time.Duration // the points' spacing
	Points  []Point
	Worst   WhatIf
	Peak    int // the most timewait sockets of a point
	// Failed is every connect that failed toward it.
	Failed uint64
	// cumulative counts at the previous point, for the next one's deltas
	connects, failed uint64
	last             uint64 // T of the latest point
	worstSet         bool
}

// timelines follows the destinations worth a chart, one point per step.
type timelines struct {
	by   map[Dest]*Timeline
	next uint64 // event time of the next point
	step time.Duration
}

// sample ends a step at now, when one is due or (final, for a report)
// whenever time went on: a point for every destination followed, and a
// timeline for each destination with TIME_WAIT or connects. Points come
// from the evaluation just made (evaluate).
func (e *Engine) sample(now uint64, final bool) {
	tl := &e.tl
	if tl.by == nil {
		tl.by, tl.step = map[Dest]*Timeline{}, firstStep
	}
	if now < tl.next && !final {
		return
	}
	tl.next = now + uint64(tl.step)
	for _, d := range e.dests {
		if d.dest.Lport != 0 {
			continue
		}
		t := tl.by[d.dest]
		if t != nil && now <= t.last {
			continue
		}
		if t == nil {
			if d.timeWait+d.finWait2 == 0 && d.connects == 0 && d.failed == 0 {
				continue
			}
			if t = tl.add(d.dest); t == nil {
				continue
			}
		}
		e.point(t, d, now)
	}
	for _, t := range tl.by {
		if len(t.Points) > maxPoints {
			tl.halve()
			break
		}
	}
}

// add starts a timeline, making room by dropping the one with the smallest
// peak and no failed connects; nil when every one followed matters more.
func (tl *timelines) add(d Dest) *Timeline {
	if len(tl.by) >= maxTimelines {
		var low *Timeline
		for _, t := range tl.by {
			if t.Failed == 0 && (low == nil || t.Peak < low.Peak) {
				low = t
			}
		}
		if low == nil {
			return nil
		}
		delete(tl.by, low.Dest)
	}
	t := &Timeline{Dest: d, Step: tl.step}
	tl.by[d] = t
	return t
}

// point adds d's state at now to t.
func (e *Engine) point(t *Timeline, d *destState, now uint64) {
	eta := time.Duration(-1)
	if d.hasFcast && !d.lastETA.Never {
		eta = d.lastETA.ETA
	}
	held := d.timeWait + d.finWait2
	if !e.twEvents {
		held = d.lastIn.Held
	}
	from := max(d.first, t.last)
	t.last = now
	p := Point{T: now, Dur: time.Duration(now - min(from, now)), TimeWait: held, Connects: d.connects - t.connects, Failed: d.failed - t.failed, ETA: eta}
	t.connects, t.failed, t.Failed = d.connects, d.failed, d.failed
	t.Points = append(t.Points, p)
	t.Peak = max(t.Peak, held)
	t.Sysctls = d.lastIn.Sysctls
	if o, ok := d.owner(); ok {
		t.Owner = o
	} else if t.Owner == (ProcKey{}) {
		t.Owner = d.lastOwner
	}
	if d.hasFcast && worse(d.lastETA, d.lastIn, &t.Worst, t.worstSet) {
		t.worstSet = true
		e.whatIf(t, d, now)
	}
}

// worse reports whether forecast f with inputs in is worse than w: nearer
// exhaustion, or (neither running out) a bigger pile.
func worse(f Forecast, in Inputs, w *WhatIf, set bool) bool {
	switch {
	case !set:
		return true
	case f.Never != w.Forecast.Never:
		return !f.Never
	case !f.Never:
		return f.ETA < w.Forecast.ETA
	}
	return in.Held > w.Inputs.Held
}

// whatIf records d's forecast at now as t's worst, with the remedies'.
func (e *Engine) whatIf(t *Timeline, d *destState, now uint64) {
	w := WhatIf{T: now, Inputs: d.lastIn, Forecast: d.lastETA}
	s := d.lastIn.Sysctls
	reuse, wide := s, s
	reuse.TwReuse, reuse.Timestamps = 1, 1
	wide.PortLo, wide.PortHi = 1024, 65535
	_, w.Reuse = e.forecast(d, reuse, now)
	_, w.WideRange = e.forecast(d, wide, now)
	pooled := d.lastIn
	pooled.Rate = 0
	w.Pooled = predictTimers(pooled, &timers{})
	t.Worst = w
}

// halve merges each pair of points of every timeline and doubles the step.
func (tl *timelines) halve() {
	tl.step *= 2
	for _, t := range tl.by {
		t.Step = tl.step
		ps := t.Points
		out := ps[:0]
		for i := 0; i < len(ps); i += 2 {
			p := ps[i]
			if i+1 < len(ps) {
				q := ps[i+1]
				p.T, p.Dur, p.TimeWait = q.T, p.Dur+q.Dur, max(p.TimeWait, q.TimeWait)
				p.Connects += q.Connects
				p.Failed += q.Failed
				if q.ETA >= 0 && (p.ETA < 0 || q.ETA < p.ETA) {
					p.ETA = q.ETA
				}
			}
			out = append(out, p)
		}
		t.Points = out
	}
}

// Timelines returns copies of the TopTimelines timelines that matter
// most, of those with TIME_WAIT or failed connects: nearest exhaustion
// first, then failed connects, then the biggest peak.
func (e *Engine) Timelines() []Timeline {
	all := make([]*Timeline, 0, len(e.tl.by))
	for _, t := range e.tl.by {
		if t.Peak > 0 || t.Failed > 0 {
			all = append(all, t)
		}
	}
	never := func(t *Timeline) bool { return !t.worstSet || t.Worst.Forecast.Never }
	slices.SortFunc(all, func(a, b *Timeline) int {
		if na, nb := never(a), never(b); na != nb {
			if na {
				return 1
			}
			return -1
		} else if !na {
			if c := cmp.Compare(a.Worst.Forecast.ETA, b.Worst.Forecast.ETA); c != 0 {
				return c
			}
		}
		return cmp.Or(cmp.Compare(b.Failed, a.Failed), cmp.Compare(b.Peak, a.Peak), a.Dest.compare(&b.Dest))
	})
	out := make([]Timeline, 0, min(len(all), TopTimelines))
	for _, t := range all[:min(len(all), TopTimelines)] {
		c := *t
		c.Points = slices.Clone(t.Points)
		out = append(out, c)
	}
	return out
}
