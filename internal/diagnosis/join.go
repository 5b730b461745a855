package diagnosis

import (
	"time"

	"github.com/tcptrace/tcptrace/internal/ledger"
)

// Bounds of the join's work.
const (
	lookahead  = 8       // entries of the previous snapshot's list searched past the expected one
	resync     = 512     // and for a socket found in the index, to get back in step
	recentLog2 = 16      // size of the table of the entries put since a namespace's previous join
	recentMax  = 1 << 15 // at most this many (half full)
)

// seenRec is a traced TIME_WAIT socket of a snapshot.
type seenRec struct {
	cookie uint64
	ref    ref    // its slot and owner in the cookie table
	left   uint32 // ms left on its timer at the snapshot
}

// join files the TIME_WAIT sockets of snapshot s of namespace v: their
// expiries and their counts per peer and owner, then reports ended the
// traced ones of the previous snapshot (at prevAt; if ended) it lacks.
//
// The kernel dumps its table in hash order, and a socket keeps its place
// from dump to dump: the previous snapshot's traced sockets, in order, are
// mostly the next traced ones of this one. A socket that is the one
// expected (or a few past it) is known without looking its cookie up. Most
// others are new, put since the previous join: they are looked up among
// those only, in a small table made for the join. The rest go to the
// index. So the join's cache misses follow the table's changes, not its
// size.
func (e *Engine) join(v *nsView, s *ledger.Snapshot, peers []peerJoin, prevAt uint64, ended bool) {
	t := &e.cookies
	t.refresh()
	if t.index == nil {
		t.grow()
	}
	if t.held == nil {
		t.held = make([]uint64, maxCookies/64)
	}
	var prev, align []seenRec // the previous snapshot's traced sockets: for the ends, for the lookups
	if ended = ended && v.resets == t.resets; ended {
		prev = v.seen
		if v.rewrites == t.rewrites && !e.plain {
			align = prev // their owners are still the table's
		}
	}
	recent := ended && !e.plain && t.indexRecent(v.inserts)
	next, j := v.spare[:0], 0 // align[j] is the traced socket expected next
	for i := range s.TimeWait {
		k := &s.TimeWait[i]
		p := &peers[k.Peer]
		if p.exp {
			p.d.ledger.expiries = append(p.d.ledger.expiries, k.Expires)
		}
		r, ok := t.locate(k.Cookie, align, &j, recent, v.evicted)
		if !ok {
			p.unknown++
			continue
		}
		if sl := r.slot(); t.held[sl>>6]&(1<<(sl&63)) == 0 {
			t.held[sl>>6] |= 1 << (sl & 63)
			next = append(next, seenRec{cookie: k.Cookie, ref: r, left: k.Expires})
		}
		e.count(p, k.Peer, r.owner())
	}
	// The previous snapshot's traced sockets whose slot holds them still
	// (the table did not forget them) and that this one lacks have ended.
	for i := range prev {
		r := &prev[i]
		if sl := r.ref.slot(); t.held[sl>>6]&(1<<(sl&63)) == 0 && !t.recycled(sl, v.evicted) {
			e.ended(&t.slots[sl], prevAt+uint64(r.left)*uint64(time.Millisecond), s.Time)
		}
	}
	for i := range next {
		sl := next[i].ref.slot()
		t.held[sl>>6] &^= 1 << (sl & 63)
	}
	if recent {
		clear(t.recent)
	}
	v.seen, v.spare = next, v.seen[:0]
	v.resets, v.evicted, v.rewrites, v.inserts = t.resets, t.evicted, t.rewrites, t.inserts
}

// expected returns the index of cookie c in list from j on, looking at
// most far entries past j, or -1.
func expected(list []seenRec, j int, c uint64, far int) int {
	for m := j; m < min(j+1+far, len(list)); m++ {
		if list[m].cookie == c {
			return m
		}
	}
	return -1
}

// recycled reports whether slot sl was given to a newer handover since the
// table had evicted since entries.
func (t *cookieTable) recycled(sl int, since uint64) bool {
	n := t.evicted - since
	return n >= maxCookies || (uint64(sl)-since)%maxCookies < n
}

// indexRecent fills t.recent with the entries put since the table had
// inserts of them, unless there are too many; it reports whether it did.
func (t *cookieTable) indexRecent(since uint64) bool {
	if n := t.inserts - since; n == 0 || n > recentMax {
		return false
	}
	if t.recent == nil {
		t.recent = make([]uint32, 1<<recentLog2)
	}
	for k := since; k < t.inserts; k++ {
		sl := uint32(k % maxCookies)
		i := recentHash(t.slots[sl].cookie)
		for t.recent[i] != 0 {
			i = (i + 1) & (1<<recentLog2 - 1)
		}
		t.recent[i] = sl + 1
	}
	return true
}

// recentSlot returns the slot of cookie c among the entries indexRecent
// filed, or -1.
func (t *cookieTable) recentSlot(c uint64) int32 {
	for i := recentHash(c); ; i = (i + 1) & (1<<recentLog2 - 1) {
		sl := t.recent[i]
		if sl == 0 {
			return -1
		}
		if t.slots[sl-1].cookie == c {
			return int32(sl - 1)
		}
	}
}

// recentHash is the place of cookie c in cookieTable.recent.
func recentHash(c uint64) uint64 { return c * 0x9e3779b97f4a7c15 >> (64 - recentLog2) }

// locate finds the entry of cookie c: the socket expected next of the
// previous snapshot (align[*j] or a few past it), else among the recent
// entries, else in the index, getting back in step with align (*j) when
// it is found further on. It reports false for a socket not traced.
func (t *cookieTable) locate(c uint64, align []seenRec, j *int, recent bool, evicted uint64) (ref, bool) {
	if !t.maybe(c) {
		return 0, false
	}
	if m := expected(align, *j, c, lookahead); m >= 0 && !t.recycled(align[m].ref.slot(), evicted) {
		*j = m + 1
		return align[m].ref, true
	}
	if recent {
		if sl := t.recentSlot(c); sl >= 0 {
			return makeRef(int(sl), uint32(t.slots[sl].owner)), true
		}
	}
	en, ok := t.find(c)
	if !ok {
		return 0, false
	}
	if m := expected(align, *j, c, resync); m >= 0 {
		*j = m + 1 // back in step, past the sockets gone
	}
	return en.ref, true
}
