package diagnosis

import (
	"math/bits"
)

// maxCookies bounds the traced TIME_WAIT handovers remembered for the join.
const maxCookies = 1 << 17

// maxInterned bounds the distinct destinations and owners in the table.
const maxInterned = 1 << 14

// filterLog2 sizes the table's filter: 2^21 bits (256 KiB), a few percent
// of false positives for a full table.
const filterLog2 = 21

// indexMin is the first size of the table's index, which doubles as
// entries come, up to twice maxCookies: it is never more than half full.
const indexMin = 1 << 10

// cookieRec is a traced TIME_WAIT handover.
type cookieRec struct {
	owner ProcKey
	dest  Dest
	sport uint16
	at    uint64
}

// cookieTable remembers recent handovers by socket cookie, FIFO-bounded.
// Entries are compact (destination and owner interned), so the table holds
// a minute of heavy churn in a few MiB.
//
// The index from cookie to slot is open addressing with linear probing
// (Robin Hood) on a flat array. The kernel hands out cookies from per-CPU
// batches of consecutive values, so handovers come in nearly increasing
// cookie order: the hash keeps sixteen consecutive cookies on four
// consecutive cache lines, so that the puts (and the removals of the
// oldest) walk the index a few lines at a time instead of jumping.
type cookieTable struct {
	index    []entry // 2^k entries
	shift    uint    // 64 - (k-runLog2): the hash's bits of a run of entries
	n        int     // entries in index
	slots    []slot  // FIFO ring of handovers
	head     int
	dests    interned[Dest]
	owners   interned[ProcKey]
	resets   uint64   // times the interned values ran out and the table restarted (slot numbers changed)
	inserts  uint64   // new entries put: the k-th (from 0) went to slot k modulo maxCookies
	evicted  uint64   // oldest entries forgotten for new ones (head is this modulo maxCookies)
	rewrites uint64   // handovers put again under a cookie already there
	filter   []uint64 // a bit per hash of the cookies put since the last refresh: no bit, no entry
	stale    int      // cookies forgotten since, whose bits are still set
	held     []uint64 // a bit per slot: its socket is in the snapshot being joined
	recent   []uint32 // for a join: slot + 1 of the latest entries, by a hash of their cookie
}

// entry is a cookie of the index.
type entry struct {
	cookie uint64
	ref    ref    // 0: empty
	dist   uint32 // how far past its home it lies (in what was padding)
}

// ref packs a slot number (plus 1, so that 0 is none) and its owner's number.
type ref uint32

const slotBits = 18 // maxCookies + 1 fits

func makeRef(slot int, owner uint32) ref { return ref(slot+1) | ref(owner)<<slotBits }

// slot returns the slot number.
func (r ref) slot() int { return int(r&(1<<slotBits-1)) - 1 }

// owner returns the owner's number.
func (r ref) owner() uint32 { return uint32(r >> slotBits) }

// interned numbers distinct values in the order first seen. It remembers
// the latest value numbered: churn repeats it, and comparing costs less than
// hashing it again.
type interned[K comparable] struct {
	vals  []K // by number
	idx   map[K]uint32
	last  K
	lastN uint32
	have  bool
}

// number returns k's number, adding k.
func (in *interned[K]) number(k K) uint32 {
	if in.have && k == in.last {
		return in.lastN
	}
	n, ok := in.idx[k]
	if !ok {
		if in.idx == nil {
			in.idx = map[K]uint32{}
		}
		n = uint32(len(in.vals))
		in.vals = append(in.vals, k)
		in.idx[k] = n
	}
	in.last, in.lastN, in.have = k, n, true
	return n
}

type slot struct {
	cookie      uint64
	at          uint64
	dest, owner uint16 // interned numbers (< maxInterned)
	sport       uint16
}

func newCookieTable() cookieTable {
	return cookieTable{}
}

// len returns the handovers remembered.
func (t *cookieTable) len() int { return t.n }

// runLog2: 2^runLog2 consecutive cookies have consecutive homes (16-byte
// entries, 4 a line).
const runLog2 = 4

// home is the first index position probed for cookie: a multiplicative
// hash of cookie/2^runLog2, with the low runLog2 bits kept.
func (t *cookieTable) home(cookie uint64) int {
	return int(((cookie>>runLog2)*0x9e3779b97f4a7c15)>>t.shift<<runLog2 | cookie&(1<<runLog2-1))
}

// lookup returns the position of cookie in the index. Robin Hood order
// (along a cluster, entries farther from home first) ends a search at the
// first entry nearer its home than cookie would be.
func (t *cookieTable) lookup(cookie uint64) (int, bool) {
	mask := len(t.index) - 1
	for i, d := t.home(cookie), uint32(0); ; i, d = (i+1)&mask, d+1 {
		e := &t.index[i]
		if e.ref == 0 || e.dist < d {
			return i, false
		}
		if e.cookie == cookie {
			return i, true
		}
	}
}

// insert adds e, absent from the index: past the entries at least as far
// from their homes, displacing the first nearer one, which goes on.
func (t *cookieTable) insert(e entry) {
	mask := len(t.index) - 1
	for i, d := t.home(e.cookie), uint32(0); ; i, d = (i+1)&mask, d+1 {
		r := &t.index[i]
		if r.ref == 0 {
			e.dist = d
			*r = e
			t.n++
			return
		}
		if r.dist < d {
			e.dist = d
			*r, e, d = e, *r, r.dist
		}
	}
}

// remove takes the entry at position i out of the index, shifting back the
// entries after it up to one at its home.
func (t *cookieTable) remove(i int) {
	mask := len(t.index) - 1
	for j := (i + 1) & mask; t.index[j].ref != 0 && t.index[j].dist != 0; j = (j + 1) & mask {
		t.index[i] = t.index[j]
		t.index[i].dist--
		i = j
	}
	t.index[i] = entry{}
	t.n--
}

// grow doubles the index (or makes its first), re-placing every entry.
func (t *cookieTable) grow() {
	old := t.index
	t.index = make([]entry, max(2*len(old), indexMin))
	t.shift = 64 + runLog2 - uint(bits.Len(uint(len(t.index)))-1)
	t.n = 0
	for _, e := range old {
		if e.ref != 0 {
			t.insert(e)
		}
	}
}

// put remembers r under cookie, forgetting the oldest entry when full.
func (t *cookieTable) put(cookie uint64, r cookieRec) {
	d, o := t.dests.lastN, t.owners.lastN // churn repeats them: compare, not hash
	if !t.dests.have || !r.dest.same(&t.dests.last) {
		d = t.dests.number(r.dest)
	}
	if !t.owners.have || r.owner != t.owners.last {
		o = t.owners.number(r.owner)
	}
	if len(t.dests.vals) > maxInterned || len(t.owners.vals) > maxInterned {
		t.restart()
		t.put(cookie, r)
		return
	}
	sl := slot{cookie: cookie, at: r.at, dest: uint16(d), owner: uint16(o), sport: r.sport}
	if t.index == nil {
		t.grow()
	}
	if i, ok := t.lookup(cookie); ok {
		e := &t.index[i] // the same socket: its place stays
		t.slots[e.ref.slot()], e.ref = sl, makeRef(e.ref.slot(), o)
		t.rewrites++
		return
	}
	t.mark(cookie)
	var s int
	if len(t.slots) < maxCookies {
		if 2*(t.n+1) > len(t.index) {
			t.grow()
		}
		s = len(t.slots)
		t.slots = append(t.slots, sl)
	} else {
		s = t.head
		if i, ok := t.lookup(t.slots[s].cookie); ok {
			t.remove(i)
		}
		t.stale++
		t.evicted++
		t.slots[s] = sl
		t.head = (t.head + 1) % maxCookies
	}
	t.insert(entry{cookie: cookie, ref: makeRef(s, o)})
	t.inserts++
}

// restart empties the table when the interned values ran out, keeping its memory.
func (t *cookieTable) restart() {
	clear(t.index)
	clear(t.filter)
	*t = cookieTable{index: t.index, shift: t.shift, slots: t.slots[:0], resets: t.resets + 1, filter: t.filter, held: t.held, recent: t.recent}
}

// get returns the handover remembered under cookie.
func (t *cookieTable) get(cookie uint64) (cookieRec, bool) {
	if t.index == nil {
		return cookieRec{}, false
	}
	i, ok := t.lookup(cookie)
	if !ok {
		return cookieRec{}, false
	}
	return t.rec(&t.slots[t.index[i].ref.slot()]), true
}

// rec expands a slot.
func (t *cookieTable) rec(sl *slot) cookieRec {
	return cookieRec{owner: t.owners.vals[sl.owner], dest: t.dests.vals[sl.dest], sport: sl.sport, at: sl.at}
}

// find returns the index entry of cookie, checking the filter first: most
// sockets of a big table are not traced, and the filter is cheaper to miss.
func (t *cookieTable) find(cookie uint64) (*entry, bool) {
	if !t.maybe(cookie) || t.index == nil {
		return nil, false
	}
	i, ok := t.lookup(cookie)
	return &t.index[i], ok
}

// maybe reports whether cookie may be in the table: its filter bit is set
// (or there is no filter).
func (t *cookieTable) maybe(cookie uint64) bool {
	h := filterHash(cookie)
	return t.filter == nil || t.filter[h>>6]&(1<<(h&63)) != 0
}

// refresh rebuilds the filter when it is missing or stale bits make it
// leaky. The sockets of forgotten cookies stay in the kernel's table for
// the rest of their minute, each a lookup per join while its bit stays:
// a rebuild (a fraction of a millisecond) every maxCookies/8 forgotten
// costs less.
func (t *cookieTable) refresh() {
	if t.filter != nil && t.stale < maxCookies/8 {
		return
	}
	if t.filter == nil {
		t.filter = make([]uint64, 1<<filterLog2/64)
	}
	clear(t.filter)
	for i := range t.slots {
		t.mark(t.slots[i].cookie)
	}
	t.stale = 0
}

// mark sets cookie's bit in the filter, if there is one.
func (t *cookieTable) mark(cookie uint64) {
	if t.filter != nil {
		h := filterHash(cookie)
		t.filter[h>>6] |= 1 << (h & 63)
	}
}

// filterHash is the filter bit of a cookie: a multiplicative hash of
// cookie/512 with the low 9 bits kept, so that 512 consecutive cookies
// share a cache line of the filter, which nearly increasing puts reuse.
func filterHash(cookie uint64) uint64 {
	return (cookie>>9)*0x9e3779b97f4a7c15>>(64-filterLog2+9)<<9 | cookie&511
}
