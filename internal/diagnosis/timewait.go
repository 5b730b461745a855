package diagnosis

import (
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
)

// Bounds of the timewait table's memory of unknown ends. A cookie is never
// reused, so a socket read at start whose end came already is gone: the
// window only bounds how stale a remembered end may be (the command stamps
// found sockets with the time they are fed, seconds after the read).
const (
	recentEnds = 1 << 15     // ends of sockets the table did not hold, remembered
	raceWindow = TimeWaitLen // a TwFound up to this long after its socket's end raced with it
)

// twTable is the live timewait sockets by cookie, and what follows them.
// Every step costs O(1) whatever its size: a socket's counts per
// destination, owner and namespace are kept as it comes and goes.
type twTable struct {
	socks  sockMap
	due    [dueSlots]dueList // cookies by the second their timer runs out, for prune
	pruned int64             // seconds pruned up to
	ended  endedSet
	step   TimeWaitStep // reused for reports
	lost   uint64       // sockets dropped by prune: their end never came
	stray  uint64       // ends of sockets the table did not hold
	rows   []*twRow     // by twRow.id: sockets name their row by number, so that the table holds no pointer for the collector to scan
	free   []uint32     // ids of rows dropped, for new rows
}

// twSock is a live timewait socket. It holds no pointer: a table of
// hundreds of thousands is not scanned by the garbage collector.
type twSock struct {
	row   uint32 // its destination and owner: twTable.rows[row]
	took  uint64 // ns it took the connection over (found: was read)
	due   int64  // second its timer runs out
	sport uint16
	sub   events.State // TIME_WAIT or FIN_WAIT2
	found bool         // predates tracing (read from the table at start)
}

// twKey names the owner of timewait sockets toward a destination.
type twKey struct {
	owner ProcKey
	hint  ProcKey // not known: a process that holds sockets toward it now
	known bool
}

// twRow counts a destination's timewait sockets of one owner.
type twRow struct {
	d       *destState
	key     twKey
	tw, fw2 int
	id      uint32 // its index in twTable.rows
}

// row returns d's row of owner k, creating it. A row left empty is
// dropped once it is no longer the latest looked up (churn repeats it).
func (e *Engine) row(d *destState, k twKey) *twRow {
	if r := d.lastRow; r != nil && r.key == k {
		return r
	}
	r := d.rows[k]
	if r == nil {
		if d.rows == nil {
			d.rows = map[twKey]*twRow{}
		}
		r = &twRow{d: d, key: k}
		if n := len(e.tw.free); n > 0 {
			r.id, e.tw.free = e.tw.free[n-1], e.tw.free[:n-1]
			e.tw.rows[r.id] = r
		} else {
			r.id = uint32(len(e.tw.rows))
			e.tw.rows = append(e.tw.rows, r)
		}
		d.rows[k] = r
	}
	if o := d.lastRow; o != nil && o.tw+o.fw2 == 0 {
		e.dropRow(o)
	}
	d.lastRow = r
	return r
}

// dropRow forgets an empty row.
func (e *Engine) dropRow(r *twRow) {
	delete(r.d.rows, r.key)
	e.tw.rows[r.id] = nil
	e.tw.free = append(e.tw.free, r.id)
}

// rowOf returns the row of s.
func (e *Engine) rowOf(s *twSock) *twRow { return e.tw.rows[s.row] }

// TimeWait follows a timewait socket's step (a KindTimeWait event, its
// owner stamped by the tracker): TwStart and TwFound add it to the table,
// TwMove moves it to TIME_WAIT, the ends remove it. Moves and ends of the
// sockets it holds are reported to Options.Out.
func (e *Engine) TimeWait(ev *events.Event) {
	if ev == nil || ev.Kind != events.KindTimeWait {
		return
	}
	e.twEvents = true
	e.prune(ev.Time)
	t := &e.tw
	switch op := ev.TwOp; {
	case op == events.TwStart:
		if old, ok := t.socks.get(ev.Cookie); ok {
			e.unplace(&old) // its end was lost
			e.unlistDue(old.due)
			t.lost++
		}
		k := twKey{}
		if ev.OwnerKnown() {
			k = twKey{owner: ProcKey{ev.PID, ev.Comm}, known: true}
		}
		e.add(ev, k, ev.Flags&(events.FlagOwnerListener|events.FlagServer) != 0, false)
	case op == events.TwFound:
		if _, ok := t.socks.get(ev.Cookie); ok || t.ended.has(ev.Cookie, ev.Time) {
			return // known already, or ended before its read came
		}
		k := twKey{}
		if ev.Flags&events.FlagHint != 0 {
			k.hint = ProcKey{ev.PID, ev.Comm}
		}
		e.add(ev, k, ev.Flags&events.FlagServer != 0, true)
		e.ns(ev.Netns).tableRead = true
	case op == events.TwMove:
		s, ok := t.socks.get(ev.Cookie)
		if !ok {
			// Its start predates tracing or was lost: it is TIME_WAIT now.
			e.add(ev, twKey{}, false, true)
			return
		}
		old, r := s.sub, e.rowOf(&s)
		e.unplace(&s) // may drop its row: it is looked up again
		e.unlistDue(s.due)
		s.sub = events.TimeWait
		s.due = t.dueSec(ev.Time, TimeWaitLen)
		r = e.row(r.d, r.key)
		e.place(&s, r)
		e.listDue(s.due, ev.Cookie)
		t.socks.set(ev.Cookie, s)
		e.report(ev, &s, r, old, events.TimeWait)
	case op.Ends():
		s, ok := t.socks.get(ev.Cookie)
		if !ok {
			t.stray++
			t.ended.put(ev.Cookie, ev.Time)
			return
		}
		r := e.rowOf(&s)
		e.unplace(&s)
		e.unlistDue(s.due)
		t.socks.del(ev.Cookie)
		if s.sub == events.FinWait2 && ev.Old == events.TimeWait {
			s.sub = events.TimeWait // it moved, unseen: the kernel's end says so
		}
		e.stats.twEnded++
		e.report(ev, &s, r, s.sub, events.Close)
	}
}

// Holds reports whether the table holds the timewait socket of cookie:
// its later steps concern the diagnosis whatever they carry.
func (e *Engine) Holds(cookie uint64) bool {
	_, ok := e.tw.socks.get(cookie)
	return ok
}

// add files a new timewait socket of ev owned by k: toward the client
// side destination, unless server: then the server side's. A socket the
// start-up read found has its side from that read (ledger: the ephemeral
// range alone cannot tell); another one whose connection was not known as
// a server's is the server side's when its local port is outside the
// ephemeral range.
func (e *Engine) add(ev *events.Event, k twKey, server, found bool) {
	sys := e.sysctls(ev.Netns)
	key := Dest{Netns: ev.Netns, Saddr: ev.Saddr, Daddr: ev.Daddr, Dport: ev.Dport}
	if server || ev.TwOp != events.TwFound && !sys.InRange(ev.Sport) {
		key = Dest{Netns: ev.Netns, Saddr: ev.Saddr, Lport: ev.Sport}
	}
	s := twSock{took: ev.Time, sport: ev.Sport, sub: events.TimeWait, found: found}
	life := TimeWaitLen
	switch {
	case ev.TwOp == events.TwFound:
		life = time.Duration(ev.Remain) * time.Millisecond
		if ev.New == events.FinWait2 {
			s.sub = events.FinWait2
		}
	case ev.TwOp == events.TwStart && ev.New == events.FinWait2:
		s.sub, life = events.FinWait2, sys.orphanLife()
	}
	s.due = e.tw.dueSec(ev.Time, life)
	e.place(&s, e.row(e.dest(key, ev.Time), k))
	e.listDue(s.due, ev.Cookie)
	e.tw.socks.set(ev.Cookie, s)
	if s.sub == events.FinWait2 {
		e.orphan(ev.Netns, ev.Cookie, s.took)
	}
}

// orphan files an orphaned FIN_WAIT2 timewait socket of namespace netns
// that took over at took, for SettleOrphans. Those that move or end are
// not looked for: the queue drops them as it meets them.
func (e *Engine) orphan(netns uint32, cookie, took uint64) {
	v := e.ns(netns)
	v.orphans = append(v.orphans, orphanRec{cookie, took})
}

// isOrphan reports whether r is still the orphaned FIN_WAIT2 socket it was.
func (e *Engine) isOrphan(r orphanRec) bool {
	s, ok := e.tw.socks.get(r.cookie)
	return ok && s.sub == events.FinWait2 && s.took == r.took
}

// OrphanNamespaces returns the namespaces holding orphaned FIN_WAIT2
// timewait sockets that took over before time before.
func (e *Engine) OrphanNamespaces(before uint64) []uint32 {
	var out []uint32
	for ns, v := range e.netns {
		for len(v.orphans) > 0 && !e.isOrphan(v.orphans[0]) {
			v.orphans = v.orphans[1:]
		}
		if len(v.orphans) > 0 && v.orphans[0].took < before {
			out = append(out, ns)
		}
	}
	return out
}

// SettleOrphans returns the orphaned FIN_WAIT2 sockets of netns that the
// kernel's table, read at time at, no longer holds in FIN_WAIT2 (stillFW2
// lists those it does): they moved to TIME_WAIT unseen, as a move that
// leaves the timer in its timer-wheel bucket fires no tracepoint. Sockets
// younger than the read are left alone. Feeding each a TwMove applies it.
func (e *Engine) SettleOrphans(netns uint32, stillFW2 map[uint64]bool, at uint64) []uint64 {
	v := e.netns[netns]
	if v == nil {
		return nil
	}
	var moved []uint64
	kept := v.orphans[:0]
	for _, r := range v.orphans {
		switch {
		case !e.isOrphan(r):
		case r.took < at && !stillFW2[r.cookie]:
			moved = append(moved, r.cookie)
		default:
			kept = append(kept, r)
		}
	}
	clear(v.orphans[len(kept):])
	v.orphans = kept
	return moved
}

// settle files the timewait socket of a finished connection c under the
// destination its role gives (d) and its final owner, when its start had
// them otherwise (the start knows the local port, not the role).
func (e *Engine) settle(c *events.Conn, d *destState, owner ProcKey) {
	s, ok := e.tw.socks.get(c.Cookie)
	if !ok {
		return
	}
	r := e.rowOf(&s)
	k := r.key
	if c.Owner.Known() {
		k = twKey{owner: owner, known: true}
	}
	if r.d == d && r.key == k {
		return
	}
	e.unplace(&s)
	e.place(&s, e.row(d, k))
	e.tw.socks.set(c.Cookie, s)
}

// place counts s under row r.
func (e *Engine) place(s *twSock, r *twRow) {
	s.row = r.id
	r.d.exp.add(s.due, 1)
	tally(s, r, 1)
}

// unplace uncounts s, dropping its row once empty (unless the latest).
func (e *Engine) unplace(s *twSock) {
	r := e.rowOf(s)
	r.d.exp.add(s.due, -1)
	tally(s, r, -1)
	if r.tw+r.fw2 == 0 && r.d.lastRow != r {
		e.dropRow(r)
	}
}

// tally adds k (±1) to the counts of row r that s is in.
func tally(s *twSock, r *twRow, k int) {
	d, v := r.d, r.d.ns
	if s.sub == events.FinWait2 {
		r.fw2, d.finWait2, v.fw2 = r.fw2+k, d.finWait2+k, v.fw2+k
	} else {
		r.tw, d.timeWait, v.tw = r.tw+k, d.timeWait+k, v.tw+k
	}
	if s.found {
		v.found += k
	}
}

// report tells Options.Out of a step of s (of row r), from old to sub.
func (e *Engine) report(ev *events.Event, s *twSock, r *twRow, old, sub events.State) {
	if e.o.Out == nil {
		return
	}
	var held time.Duration
	if ev.Time > s.took {
		held = time.Duration(ev.Time - s.took)
	}
	st := &e.tw.step
	*st = TimeWaitStep{Time: ev.Time, Op: ev.TwOp, Old: old, New: sub, Cookie: ev.Cookie, Owner: r.key.owner,
		Known: r.key.known, Dest: r.d.dest, Sport: s.sport, Held: held}
	e.o.Out.TimeWait(st)
}

// orphanLife is how long an orphaned FIN_WAIT2 timewait socket lives: the
// kernel hands a socket to one after tcp_fin_timeout, or after what
// exceeds TimeWaitLen of it (the rest was spent as a full socket).
func (s Sysctls) orphanLife() time.Duration {
	t := s.FinTimeout
	if t <= 0 {
		t = DefaultFinTimeout
	}
	if t > TimeWaitLen {
		t -= TimeWaitLen
	}
	return t
}

// endedSet remembers the latest ends of sockets the table did not hold,
// bounded: a TwFound for one of them raced with its end.
type endedSet struct {
	at   map[uint64]uint64 // cookie → ns it ended
	ring []uint64          // the cookies, oldest replaced first
	next int
}

// put remembers cookie's end at time at.
func (s *endedSet) put(cookie, at uint64) {
	if s.at == nil {
		s.at, s.ring = map[uint64]uint64{}, make([]uint64, recentEnds)
	}
	if old := s.ring[s.next]; old != 0 {
		delete(s.at, old)
	}
	s.ring[s.next], s.next = cookie, (s.next+1)%recentEnds
	s.at[cookie] = at
}

// has reports whether cookie ended (without an entry) at most raceWindow before now.
func (s *endedSet) has(cookie, now uint64) bool {
	at, ok := s.at[cookie]
	return ok && at+uint64(raceWindow) >= now
}
