package render

import (
	"sort"
	"strings"

	"github.com/tcptrace/tcptrace/internal/events"
)

// reservoirK is how many connections of a shape are kept for percentiles:
// exact up to it, a uniform sample beyond.
const reservoirK = 128

// sample is one connection of a shape: its lifetime and the time of each
// step (the left column's steps, then the right's) since its first.
type sample struct {
	life int64
	at   []int64
}

// shape is the connections with one transition sequence, service endpoint
// and owners, drawn as one diagram.
type shape struct {
	key        string
	l          *ladder // the first connection: the structure drawn
	n          uint64
	res        []sample
	rng        uint64
	maxL       int64
	active     [2]uint64 // the column closed first
	simul, nop uint64    // simultaneous closes; no FIN exchange
	tw         [2]uint64 // the column held TIME_WAIT
	orphan     [2]uint64 // the column closed as an orphaned FIN_WAIT2
}

// aggregator collapses connections into shapes, in bounded memory.
type aggregator struct {
	shapes   map[string]*shape
	total    uint64
	overflow uint64 // connections whose shape was past the limit
}

// shapeKey identifies l's shape: sequences, end, service endpoint, owners.
func shapeKey(l *ladder) string {
	var b strings.Builder
	for x, h := range l.sides {
		if x > 0 {
			b.WriteString(" | ")
		}
		if h == nil {
			b.WriteString("~" + l.init[x].String())
			continue
		}
		b.WriteString(h.initial().String())
		for _, s := range h.steps {
			b.WriteString(">" + s.New.String())
		}
		b.WriteString(" " + endName(h.end) + " " + roleName(h.role) + " " + sanitize(h.owner.Comm.String()))
	}
	b.WriteString(" | " + endpointOf(l, 1))
	return b.String()
}

// add counts l in its shape; past max shapes it is only counted.
func (a *aggregator) add(l *ladder, max int) {
	a.total++
	key := shapeKey(l)
	sh := a.shapes[key]
	if sh == nil {
		if len(a.shapes) >= max {
			a.overflow++
			return
		}
		if a.shapes == nil {
			a.shapes = make(map[string]*shape)
		}
		sh = &shape{key: key, l: l, rng: 0x9e3779b97f4a7c15}
		a.shapes[key] = sh
	}
	sh.n++
	smp := sample{life: lifetime(l)}
	for _, h := range l.sides {
		if h != nil {
			for _, s := range h.steps {
				smp.at = append(smp.at, diffNs(s.T, l.t0))
			}
		}
	}
	if smp.life > sh.maxL {
		sh.maxL = smp.life
	}
	if len(sh.res) < reservoirK {
		sh.res = append(sh.res, smp)
	} else {
		sh.rng ^= sh.rng << 13
		sh.rng ^= sh.rng >> 7
		sh.rng ^= sh.rng << 17
		if j := sh.rng % sh.n; j < reservoirK {
			sh.res[j] = smp
		}
	}
	r := rolesOf(l)
	switch {
	case r.active[0] && r.active[1]:
		sh.simul++
	case r.active[0]:
		sh.active[0]++
	case r.active[1]:
		sh.active[1]++
	default:
		sh.nop++
	}
	for x := range r.timeWait {
		if r.timeWait[x] {
			sh.tw[x]++
		}
		if r.orphan[x] {
			sh.orphan[x]++
		}
	}
}

// lifetime is the time from a ladder's first step to its last.
func lifetime(l *ladder) int64 {
	var end uint64
	for _, h := range l.sides {
		for _, s := range h.stepsOrNil() {
			if s.T > end {
				end = s.T
			}
		}
	}
	return diffNs(end, l.t0)
}

func (h *half) stepsOrNil() []dstep {
	if h == nil {
		return nil
	}
	return h.steps
}

// quantile returns the q-th percentile (nearest rank) of v, sorting v.
func quantile(v []int64, q int) int64 {
	if len(v) == 0 {
		return -1
	}
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	return v[(len(v)-1)*q/100]
}

// aggTimes are a shape's median times.
type aggTimes struct{ sh *shape }

func (a aggTimes) index(side, step int) int {
	if side == 1 {
		step += len(a.sh.l.sides[0].stepsOrNil())
	}
	return step
}

func (a aggTimes) at(side, step int) int64 {
	i := a.index(side, step)
	var v []int64
	for _, s := range a.sh.res {
		if step >= 0 && i < len(s.at) {
			v = append(v, s.at[i])
		}
	}
	return quantile(v, 50)
}

func (a aggTimes) dur(side, step int) int64 {
	h := a.sh.l.sides[side]
	if h == nil || step < 0 || step >= len(h.steps) {
		return -1
	}
	if step+1 >= len(h.steps) {
		return durOf(h, step)
	}
	i := a.index(side, step)
	var v []int64
	for _, s := range a.sh.res {
		if i+1 < len(s.at) {
			v = append(v, max(0, s.at[i+1]-s.at[i]))
		}
	}
	return quantile(v, 50)
}

// pct formats part of n as a percentage, never rounding to 0 or 100.
func pct(part, n uint64) string {
	if n == 0 {
		return "0%"
	}
	p := (part*100 + n/2) / n
	switch {
	case part > 0 && p == 0:
		return "<1%"
	case part < n && p == 100:
		return ">99%"
	}
	return itoa(p) + "%"
}

// grouped formats n with thousands separators.
func grouped(n uint64) string {
	s := itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// draw renders every shape, most frequent first, then what was not drawn.
func (a *aggregator) draw(d *drawer, lost events.Losses) [][]string {
	shapes := make([]*shape, 0, len(a.shapes))
	for _, sh := range a.shapes {
		shapes = append(shapes, sh)
	}
	sort.Slice(shapes, func(i, j int) bool {
		if shapes[i].n != shapes[j].n {
			return shapes[i].n > shapes[j].n
		}
		return shapes[i].key < shapes[j].key
	})
	var out [][]string
	for _, sh := range shapes {
		out = append(out, d.drawShape(sh))
	}
	var tail []note
	if a.total == 0 {
		tail = append(tail, note{"no finished connections to aggregate", &d.st.faint})
	}
	if a.overflow > 0 {
		tail = append(tail, note{grouped(a.overflow) + " more connections in shapes past the limit of " +
			itoa(uint64(len(a.shapes))) + " (not drawn)", &d.st.loss})
	}
	if lost.Total() > 0 {
		tail = append(tail, note{grouped(lost.Total()) + " events lost in the kernel: some steps were filled in", &d.st.loss})
	}
	if len(tail) > 0 {
		out = append(out, d.footer(tail))
	}
	return out
}

// footer wraps each note on lines of its own.
func (d *drawer) footer(ns []note) []string {
	var out []string
	for _, n := range ns {
		out = append(out, wrap(d.st.styles, []note{n}, "  ", "    ", d.g.width)...)
	}
	return out
}

// drawShape renders one shape's diagram with its counts and percentiles.
func (d *drawer) drawShape(sh *shape) []string {
	l, st := sh.l, d.st
	var lives []int64
	for _, s := range sh.res {
		lives = append(lives, s.life)
	}
	h := l.sides[0]
	if h == nil {
		h = l.sides[1]
	}
	title := st.g.times + grouped(sh.n) + "  " + sideWord(l, 0) + st.g.arrow + sideWord(l, 1) + " " +
		endpointOf(l, 1) + "  " + endName(h.end)
	q := "lifetime p50 " + formatDur(quantile(lives, 50), d.o.ASCII) + "  p90 " + formatDur(quantile(lives, 90), d.o.ASCII) +
		"  p99 " + formatDur(quantile(lives, 99), d.o.ASCII) + "  max " + formatDur(sh.maxL, d.o.ASCII) + "  (times: p50)"
	out := []string{st.paint(st.title, truncRight(title, d.g.width, st.g.ell)), st.paint(st.bold, truncRight(q, d.g.width, st.g.ell))}
	var heads [2][]string
	for x := 0; x < 2; x++ {
		ep := aggEndpoint(l, x)
		role, owner := sideWord(l, x), "(inferred)"
		if s := l.sides[x]; s == nil {
			role += " (inferred)"
		} else if s.owner.Known() {
			owner = sanitize(s.owner.Comm.String())
		} else {
			owner = "owner unknown"
		}
		mark := ""
		if a := sh.active[x] + sh.simul; a > 0 {
			mark = st.g.mark + " active closer " + pct(a, sh.n)
		}
		heads[x] = []string{role, ep, owner, mark}
	}
	out = append(out, d.header(heads[0], heads[1])...)
	out = append(out, d.rows(l, aggTimes{sh}, nil)...)
	var ns []note
	for x := 0; x < 2; x++ {
		if sh.active[x] > 0 {
			ns = append(ns, note{"active closer: " + sideWord(l, x) + " " + aggEndpoint(l, x) + " in " +
				pct(sh.active[x], sh.n) + " (" + grouped(sh.active[x]) + " of " + grouped(sh.n) + ")", &st.active})
		}
	}
	if sh.simul > 0 {
		ns = append(ns, note{"active closer: both (simultaneous close) in " + pct(sh.simul, sh.n), &st.active})
	}
	if sh.nop > 0 {
		ns = append(ns, note{"no FIN exchange (" + endName(h.end) + ") in " + pct(sh.nop, sh.n), &st.reset})
	}
	tw := false
	for x := 0; x < 2; x++ {
		if sh.tw[x] > 0 {
			tw = true
			ns = append(ns, note{"TIME_WAIT: " + sideWord(l, x) + " holds it in " + pct(sh.tw[x], sh.n) +
				", " + TimeWaitHold + " each", &st.timeWait})
		}
	}
	for x := 0; x < 2; x++ {
		if sh.orphan[x] > 0 {
			tw = true
			ns = append(ns, note{"orphaned FIN_WAIT2: " + sideWord(l, x) + " in " + pct(sh.orphan[x], sh.n) +
				", held by a timewait socket until the peer's FIN", &st.timeWait})
		}
	}
	if !tw {
		ns = append(ns, note{"TIME_WAIT: none", &st.faint})
	}
	return append(out, d.footer(append(ns, extraNotes(l, st)...))...)
}

// aggEndpoint is column x's endpoint in a shape: the client's port varies.
func aggEndpoint(l *ladder, x int) string {
	ep := endpointOf(l, x)
	if x == 0 {
		if i := strings.LastIndexByte(ep, ':'); i >= 0 {
			ep = ep[:i] + ":*"
		}
	}
	return ep
}
