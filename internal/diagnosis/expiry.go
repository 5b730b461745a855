package diagnosis

import "time"

// Bounds of the timers kept per second.
const (
	expSlots   = 128              // seconds of timers a destination's ring holds
	maxAhead   = 100              // a timer is filed at most this many seconds ahead (< expSlots)
	pruneAfter = 10 * time.Second // a socket this long past its timer without an end: its end was lost
	dueSlots   = 256              // seconds of due lists (> maxAhead + pruneAfter, with room)
)

// dueRing counts a destination's timewait sockets by the second their
// timer runs out: n[s%expSlots] for second s, cur ≤ s < cur+expSlots.
// Those whose second is before cur are overdue: their end has not come yet.
type dueRing struct {
	n       [expSlots]int32
	cur     int64
	overdue int
}

// advance moves the ring to second sec: the seconds passed are overdue.
func (x *dueRing) advance(sec int64) {
	if sec <= x.cur {
		return
	}
	if sec-x.cur >= expSlots {
		for i := range x.n {
			x.overdue += int(x.n[i])
		}
		x.n = [expSlots]int32{}
	} else {
		for s := x.cur; s < sec; s++ {
			x.overdue += int(x.n[s%expSlots])
			x.n[s%expSlots] = 0
		}
	}
	x.cur = sec
}

// add counts k (±1) timers running out in second due. A socket's timer is
// counted and uncounted with the same due: in its second while that is
// ahead, overdue once the ring passed it.
func (x *dueRing) add(due int64, k int) {
	if due >= x.cur+expSlots {
		x.advance(due - expSlots + 1) // those seconds are past: due is at most maxAhead ahead
	}
	if due < x.cur {
		x.overdue += k
		return
	}
	x.n[due%expSlots] += int32(k)
}

// timers appends to runs the timers left at now, ascending: the overdue
// ones at 1 ns (they end any moment), then each second's at its end.
func (x *dueRing) timers(now uint64, runs []run) []run {
	x.advance(int64(now / 1e9))
	add := func(v time.Duration, n int) {
		if k := len(runs) - 1; k >= 0 && runs[k].v == v {
			runs[k].n += n
			return
		}
		runs = append(runs, run{v, n})
	}
	if x.overdue > 0 {
		add(1, x.overdue)
	}
	for s := x.cur; s < x.cur+expSlots; s++ {
		if n := x.n[s%expSlots]; n > 0 {
			add(max(time.Duration(uint64(s+1)*1e9-now), 1), int(n))
		}
	}
	return runs
}

// dueList is the cookies of the timewait sockets whose timer runs out in
// second sec (some since moved or ended: the table is checked, unless none
// is left).
type dueList struct {
	sec     int64
	cookies []uint64
	live    int // of them, those still in the table with this second
}

// dueSec is the second a timer started at (ns) for life runs out in, as
// filed: at most maxAhead seconds ahead, and after the seconds pruned.
func (t *twTable) dueSec(at uint64, life time.Duration) int64 {
	sec := min(int64((at+uint64(max(life, 0)))/1e9), int64(at/1e9)+maxAhead)
	return max(sec, t.pruned+1)
}

// listDue adds cookie to the due list of second sec.
func (e *Engine) listDue(sec int64, cookie uint64) {
	l := &e.tw.due[sec%dueSlots]
	if l.sec != sec {
		if l.sec > sec && len(l.cookies) > 0 {
			return // cannot happen (sec is after the pruned seconds): not pruned then
		}
		e.pruneList(l) // an older second's: long past its ten seconds
		l.sec = sec
	}
	l.cookies = append(l.cookies, cookie)
	l.live++
}

// unlistDue notes that a socket listed for second sec left the table or
// that second.
func (e *Engine) unlistDue(sec int64) {
	if l := &e.tw.due[sec%dueSlots]; l.sec == sec && l.live > 0 {
		l.live--
	}
}

// prune drops the timewait sockets whose timer ran out pruneAfter before
// now without an end event (it was lost): amortized O(1) per socket, the
// due lists of the seconds passed.
func (e *Engine) prune(now uint64) {
	limit := int64(now/1e9) - int64(pruneAfter/time.Second) - 1
	t := &e.tw
	if limit <= t.pruned {
		return
	}
	for s := max(t.pruned+1, limit-dueSlots+1); s <= limit; s++ {
		if l := &t.due[s%dueSlots]; l.sec == s {
			e.pruneList(l)
		}
	}
	t.pruned = limit
}

// pruneList drops the sockets of due list l still due then, and empties
// it: without a lookup when none is left (every end came).
func (e *Engine) pruneList(l *dueList) {
	t := &e.tw
	for i := 0; i < len(l.cookies) && l.live > 0; i++ {
		c := l.cookies[i]
		if s, ok := t.socks.get(c); ok && s.due == l.sec {
			e.unplace(&s)
			t.socks.del(c)
			t.lost++
			l.live--
		}
	}
	l.cookies, l.live = l.cookies[:0], 0
}
