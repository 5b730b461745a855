package diagnosis

// maxCookies bounds the traced TIME_WAIT handovers remembered for the join.
const maxCookies = 1 << 17

// maxInterned bounds the distinct destinations and owners in the table.
const maxInterned = 1 << 14

// filterLog2 sizes the table's filter: 2^21 bits (256 KiB), a few percent
// of false positives for a full table.
const filterLog2 = 21

// cookieRec is a traced TIME_WAIT handover.
type cookieRec struct {
	owner ProcKey
	dest  Dest
	sport uint16
	at    uint64
}

// cookieTable remembers recent handovers by socket cookie, FIFO-bounded.
// Entries are compact (destination and owner interned), so the table holds
// a minute of heavy churn in a few MiB. A slot also records the latest
// snapshot that held its socket, for the ledger's join.
type cookieTable struct {
	m      map[uint64]uint32 // cookie → slot
	slots  []slot
	head   int
	dests  interned[Dest]
	owners interned[ProcKey]
	resets uint64   // times the interned values ran out and the table restarted (slot numbers changed)
	filter []uint64 // a bit per hash of the cookies put since the last refresh: no bit, no entry
	stale  int      // cookies forgotten since, whose bits are still set
}

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
	dest, owner uint32
	seen        uint32 // Engine.gen of the latest snapshot that held the socket, 0 if none
	sport       uint16
}

func newCookieTable() cookieTable {
	return cookieTable{m: map[uint64]uint32{}}
}

// put remembers r under cookie, forgetting the oldest entry when full.
func (t *cookieTable) put(cookie uint64, r cookieRec) {
	d, o := t.dests.number(r.dest), t.owners.number(r.owner)
	if len(t.dests.vals) > maxInterned || len(t.owners.vals) > maxInterned {
		clear(t.filter)
		*t = cookieTable{m: map[uint64]uint32{}, resets: t.resets + 1, filter: t.filter}
		t.put(cookie, r)
		return
	}
	sl := slot{cookie: cookie, at: r.at, dest: d, owner: o, sport: r.sport}
	if i, ok := t.m[cookie]; ok {
		sl.seen = t.slots[i].seen // the same socket
		t.slots[i] = sl
		return
	}
	t.mark(cookie)
	if len(t.slots) < maxCookies {
		t.m[cookie] = uint32(len(t.slots))
		t.slots = append(t.slots, sl)
		return
	}
	delete(t.m, t.slots[t.head].cookie)
	t.stale++
	t.slots[t.head] = sl
	t.m[cookie] = uint32(t.head)
	t.head = (t.head + 1) % maxCookies
}

// get returns the handover remembered under cookie.
func (t *cookieTable) get(cookie uint64) (cookieRec, bool) {
	i, ok := t.m[cookie]
	if !ok {
		return cookieRec{}, false
	}
	return t.rec(&t.slots[i]), true
}

// rec expands a slot.
func (t *cookieTable) rec(sl *slot) cookieRec {
	return cookieRec{owner: t.owners.vals[sl.owner], dest: t.dests.vals[sl.dest], sport: sl.sport, at: sl.at}
}

// find returns the slot of cookie, checking the filter first: most
// sockets of a big table are not traced, and the filter is cheaper to miss.
func (t *cookieTable) find(cookie uint64) (uint32, bool) {
	if h := filterHash(cookie); t.filter != nil && t.filter[h>>6]&(1<<(h&63)) == 0 {
		return 0, false
	}
	i, ok := t.m[cookie]
	return i, ok
}

// refresh rebuilds the filter when it is missing or stale bits make it leaky.
func (t *cookieTable) refresh() {
	if t.filter != nil && t.stale <= maxCookies/2 {
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

// filterHash is the filter bit of a cookie.
func filterHash(cookie uint64) uint64 { return cookie * 0x9e3779b97f4a7c15 >> (64 - filterLog2) }
