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
	m       map[uint64]uint32 // cookie → slot
	slots   []slot
	head    int
	dests   []Dest
	destIdx map[Dest]uint32
	owners  []ProcKey
	ownIdx  map[ProcKey]uint32
	resets  uint64   // times the interned values ran out and the table restarted (slot numbers changed)
	filter  []uint64 // a bit per hash of the cookies put since the last refresh: no bit, no entry
	stale   int      // cookies forgotten since, whose bits are still set
	// The latest interned destination and owner: churn repeats them, and
	// comparing costs less than hashing them again.
	lastDest  Dest
	lastD     uint32
	lastOwner ProcKey
	lastO     uint32
	haveLast  bool
}

type slot struct {
	cookie      uint64
	at          uint64
	dest, owner uint32
	seen        uint32 // Engine.gen of the latest snapshot that held the socket, 0 if none
	sport       uint16
}

func newCookieTable() cookieTable {
	return cookieTable{m: map[uint64]uint32{}, destIdx: map[Dest]uint32{}, ownIdx: map[ProcKey]uint32{}}
}

// put remembers r under cookie, forgetting the oldest entry when full.
func (t *cookieTable) put(cookie uint64, r cookieRec) {
	d, o := t.intern(&r)
	if len(t.dests) > maxInterned || len(t.owners) > maxInterned {
		clear(t.filter)
		*t = cookieTable{m: map[uint64]uint32{}, destIdx: map[Dest]uint32{}, ownIdx: map[ProcKey]uint32{},
			resets: t.resets + 1, filter: t.filter}
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

// intern returns the indexes of r's destination and owner, adding them.
func (t *cookieTable) intern(r *cookieRec) (d, o uint32) {
	if t.haveLast && r.dest == t.lastDest {
		d = t.lastD
	} else {
		var ok bool
		if d, ok = t.destIdx[r.dest]; !ok {
			d = uint32(len(t.dests))
			t.dests = append(t.dests, r.dest)
			t.destIdx[r.dest] = d
		}
	}
	if t.haveLast && r.owner == t.lastOwner {
		o = t.lastO
	} else {
		var ok bool
		if o, ok = t.ownIdx[r.owner]; !ok {
			o = uint32(len(t.owners))
			t.owners = append(t.owners, r.owner)
			t.ownIdx[r.owner] = o
		}
	}
	t.lastDest, t.lastD, t.lastOwner, t.lastO, t.haveLast = r.dest, d, r.owner, o, true
	return d, o
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
	return cookieRec{owner: t.owners[sl.owner], dest: t.dests[sl.dest], sport: sl.sport, at: sl.at}
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
