package ladder

import (
	"sort"
	"strings"
)

// reservoirK is how many connections of a shape are kept for quantiles:
// exact up to it, a uniform sample beyond.
const reservoirK = 128

// sample is one connection of a shape: its lifetime and the time of each
// step (the left column's steps, then the right's) since its first.
type sample struct {
	life int64
	at   []int64
}

// Shape is the connections with one transition sequence, service endpoint
// and owners, drawn as one diagram.
type Shape struct {
	Ladder   *Ladder   // the first connection: the structure drawn
	N        uint64    // connections of the shape
	Active   [2]uint64 // the column closed first
	Simul    uint64    // simultaneous closes
	NoFIN    uint64    // no FIN exchange
	TimeWait [2]uint64 // the column held TIME_WAIT
	Orphan   [2]uint64 // the column closed as an orphaned FIN_WAIT2
	MaxLife  int64     // the longest lifetime
	key      string
	res      []sample
	rng      uint64
}

// Aggregator collapses connections into shapes, in bounded memory.
type Aggregator struct {
	MaxShapes int // distinct shapes kept; more are only counted (0: DefaultShapes)
	shapes    map[string]*Shape
	total     uint64
	overflow  uint64 // connections whose shape was past the limit
}

// shapeKey identifies l's shape: sequences, end, service endpoint, owners.
func shapeKey(l *Ladder) string {
	var b strings.Builder
	for x, h := range l.Sides {
		if x > 0 {
			b.WriteString(" | ")
		}
		if h == nil {
			b.WriteString("~" + l.Init[x].String())
			continue
		}
		b.WriteString(h.initial().String())
		for _, s := range h.Steps {
			b.WriteString(">" + s.New.String())
		}
		b.WriteString(" " + h.End.String() + " " + h.Role.String() + " " + h.Owner.Comm.String())
	}
	b.WriteString(" | " + endpoint(l, 1))
	return b.String()
}

// endpoint returns column x's address:port.
func endpoint(l *Ladder, x int) string {
	if h := l.Sides[x]; h != nil {
		return h.Local.String()
	}
	if h := l.Sides[1-x]; h != nil {
		return h.Remote.String()
	}
	return "*"
}

// Add counts l in its shape; past MaxShapes shapes it is only counted.
func (a *Aggregator) Add(l *Ladder) {
	a.total++
	key := shapeKey(l)
	sh := a.shapes[key]
	if sh == nil {
		if len(a.shapes) >= orDefault(a.MaxShapes, DefaultShapes) {
			a.overflow++
			return
		}
		if a.shapes == nil {
			a.shapes = make(map[string]*Shape)
		}
		sh = &Shape{key: key, Ladder: l, rng: 0x9e3779b97f4a7c15}
		a.shapes[key] = sh
	}
	sh.N++
	smp := sample{life: l.Lifetime()}
	for _, h := range l.Sides {
		for _, s := range h.steps() {
			smp.at = append(smp.at, DiffNs(s.T, l.T0))
		}
	}
	sh.MaxLife = max(sh.MaxLife, smp.life)
	if len(sh.res) < reservoirK {
		sh.res = append(sh.res, smp)
	} else {
		sh.rng ^= sh.rng << 13
		sh.rng ^= sh.rng >> 7
		sh.rng ^= sh.rng << 17
		if j := sh.rng % sh.N; j < reservoirK {
			sh.res[j] = smp
		}
	}
	r := RolesOf(l)
	switch {
	case r.Active[0] && r.Active[1]:
		sh.Simul++
	case r.Active[0]:
		sh.Active[0]++
	case r.Active[1]:
		sh.Active[1]++
	default:
		sh.NoFIN++
	}
	for x := range r.TimeWait {
		if r.TimeWait[x] {
			sh.TimeWait[x]++
		}
		if r.Orphan[x] {
			sh.Orphan[x]++
		}
	}
}

// Shapes returns every shape, most frequent first.
func (a *Aggregator) Shapes() []*Shape {
	shapes := make([]*Shape, 0, len(a.shapes))
	for _, sh := range a.shapes {
		shapes = append(shapes, sh)
	}
	sort.Slice(shapes, func(i, j int) bool {
		if shapes[i].N != shapes[j].N {
			return shapes[i].N > shapes[j].N
		}
		return shapes[i].key < shapes[j].key
	})
	return shapes
}

// Total returns how many connections were added.
func (a *Aggregator) Total() uint64 { return a.total }

// Overflow returns how many connections were only counted: their shape was
// past MaxShapes.
func (a *Aggregator) Overflow() uint64 { return a.overflow }

// quantile returns the q-th percentile (nearest rank) of v, sorting v; -1
// for none.
func quantile(v []int64, q int) int64 {
	if len(v) == 0 {
		return -1
	}
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	return v[(len(v)-1)*q/100]
}

// Lifetime returns the q-th percentile of the shape's lifetimes (of a
// uniform sample when there are many).
func (sh *Shape) Lifetime(q int) int64 {
	var lives []int64
	for _, s := range sh.res {
		lives = append(lives, s.life)
	}
	return quantile(lives, q)
}

// index returns where step k of side x is in a sample's times.
func (sh *Shape) index(x, k int) int {
	if x == 1 {
		k += len(sh.Ladder.Sides[0].steps())
	}
	return k
}

// At returns the median time of step k of side x since the first step.
func (sh *Shape) At(x, k int) int64 {
	i := sh.index(x, k)
	var v []int64
	for _, s := range sh.res {
		if k >= 0 && i < len(s.at) {
			v = append(v, s.at[i])
		}
	}
	return quantile(v, 50)
}

// Medians returns the shape's ladder laid out again with each step at its
// median time (At), so that its rows go forward in time as the medians do.
func (sh *Shape) Medians() *Ladder {
	l := sh.Ladder
	var hs [2]*Half
	for x, h := range l.Sides {
		if h == nil {
			continue
		}
		c := *h
		c.Steps = append([]Step(nil), h.Steps...)
		for k := range c.Steps {
			if at := sh.At(x, k); at >= 0 {
				c.Steps[k].T = l.T0 + uint64(at)
			}
		}
		hs[x] = &c
	}
	if hs[0] == nil || hs[1] == nil {
		return l // one side: its rows are in its own order already
	}
	return New(hs[0], hs[1])
}

// Dur returns the median time side x spent in the state entered at step
// k; -1 when unknown, TIME_WAIT's hold for a final TIME_WAIT.
func (sh *Shape) Dur(x, k int) int64 {
	h := sh.Ladder.Sides[x]
	if h == nil || k < 0 || k >= len(h.Steps) {
		return -1
	}
	if k+1 >= len(h.Steps) {
		return sh.Ladder.Dur(x, k)
	}
	i := sh.index(x, k)
	var v []int64
	for _, s := range sh.res {
		if i+1 < len(s.at) {
			v = append(v, max(0, s.at[i+1]-s.at[i]))
		}
	}
	return quantile(v, 50)
}
