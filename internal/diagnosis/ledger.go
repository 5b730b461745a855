package diagnosis

import (
	"time"

	"github.com/tcptrace/tcptrace/internal/ledger"
)

// Bounds of the join between the stream and the kernel's table.
const (
	maxCookies  = 1 << 17 // traced TIME_WAIT handovers remembered for the join
	maxByOwner  = 4096    // (destination, owner) rows kept per namespace
	staleLedger = 5 * time.Second
)

// nsView is what the latest snapshot said of one namespace.
type nsView struct {
	sysctls   *Sysctls
	at        uint64 // ns of the latest snapshot
	total     int    // TIME_WAIT (and orphaned FIN_WAIT2) sockets
	unknown   int    // of them, not traced (predate tracing): owner unknown
	truncated bool
	err       error
	byOwner   map[destOwner]int
	prev      map[uint64]uint64 // traced TIME_WAIT sockets in the previous snapshot: cookie → ns its timer runs out
}

type destOwner struct {
	dest  Dest
	owner ProcKey
	known bool
}

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
type cookieTable struct {
	m       map[uint64]uint32 // cookie → slot
	slots   []slot
	head    int
	dests   []Dest
	destIdx map[Dest]uint32
	owners  []ProcKey
	ownIdx  map[ProcKey]uint32
	resets  uint64 // times the interned values ran out and the table restarted
}

type slot struct {
	cookie      uint64
	at          uint64
	dest, owner uint32
	sport       uint16
}

// maxInterned bounds the distinct destinations and owners in the table.
const maxInterned = 1 << 14

func newCookieTable() cookieTable {
	return cookieTable{m: map[uint64]uint32{}, destIdx: map[Dest]uint32{}, ownIdx: map[ProcKey]uint32{}}
}

// put remembers r under cookie, forgetting the oldest entry when full.
func (t *cookieTable) put(cookie uint64, r cookieRec) {
	d, ok := t.destIdx[r.dest]
	if !ok {
		d = uint32(len(t.dests))
		t.dests = append(t.dests, r.dest)
		t.destIdx[r.dest] = d
	}
	o, ok := t.ownIdx[r.owner]
	if !ok {
		o = uint32(len(t.owners))
		t.owners = append(t.owners, r.owner)
		t.ownIdx[r.owner] = o
	}
	if len(t.dests) > maxInterned || len(t.owners) > maxInterned {
		*t = cookieTable{m: map[uint64]uint32{}, destIdx: map[Dest]uint32{}, ownIdx: map[ProcKey]uint32{}, resets: t.resets + 1}
		t.put(cookie, r)
		return
	}
	sl := slot{cookie: cookie, at: r.at, dest: d, owner: o, sport: r.sport}
	if i, ok := t.m[cookie]; ok {
		t.slots[i] = sl
		return
	}
	if len(t.slots) < maxCookies {
		t.m[cookie] = uint32(len(t.slots))
		t.slots = append(t.slots, sl)
		return
	}
	delete(t.m, t.slots[t.head].cookie)
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
	sl := &t.slots[i]
	return cookieRec{owner: t.owners[sl.owner], dest: t.dests[sl.dest], sport: sl.sport, at: sl.at}, true
}

// Ledger merges one namespace's snapshot of the kernel's table.
func (e *Engine) Ledger(s *ledger.Snapshot) {
	if s == nil {
		return
	}
	v := e.ns(s.Netns)
	v.err = s.Err
	if s.Err != nil {
		return
	}
	if len(s.Sysctls) > 0 {
		p := ParseSysctls(s.Sysctls)
		v.sysctls = &p
	}
	sy := e.sysctls(s.Netns)
	v.at, v.total, v.unknown, v.truncated = s.Time, len(s.TimeWait), 0, s.Truncated
	v.byOwner = make(map[destOwner]int)
	type agg struct{ exp []time.Duration }
	per := map[Dest]*agg{}
	next := make(map[uint64]uint64, len(v.prev))
	for i := range s.TimeWait {
		k := &s.TimeWait[i]
		d := Dest{Netns: s.Netns, Saddr: k.Saddr, Daddr: k.Daddr, Dport: k.Dport}
		if !sy.InRange(k.Sport) {
			d = Dest{Netns: s.Netns, Saddr: k.Saddr, Lport: k.Sport}
		}
		a := per[d]
		if a == nil {
			a = &agg{}
			per[d] = a
		}
		a.exp = append(a.exp, k.Expires)
		rec, known := e.cookies.get(k.Cookie)
		if known {
			next[k.Cookie] = s.Time + uint64(k.Expires)
		} else {
			v.unknown++
		}
		do := destOwner{dest: d, owner: rec.owner, known: known}
		if _, ok := v.byOwner[do]; ok || len(v.byOwner) < maxByOwner {
			v.byOwner[do]++
		}
	}
	e.ended(v, next, s.Time)
	v.prev = next
	inUse := map[Dest]int{}
	listeners := 0
	for _, k := range s.Listening {
		if sy.InRange(k.Sport) {
			listeners++
		}
	}
	for _, k := range s.Open {
		if sy.InRange(k.Sport) {
			inUse[Dest{Netns: s.Netns, Saddr: k.Saddr, Daddr: k.Daddr, Dport: k.Dport}]++
		}
	}
	for k, a := range per {
		d := e.dest(k, s.Time)
		d.ledger = ledgerView{at: s.Time, expiries: a.exp, inUse: inUse[k] + listeners, netnsTW: v.total}
	}
	for k, d := range e.dests {
		if k.Netns == s.Netns && per[k] == nil {
			d.ledger = ledgerView{at: s.Time, inUse: inUse[k] + listeners, netnsTW: v.total}
		}
	}
}

// ended reports the traced TIME_WAIT sockets of prev that the kernel dropped.
func (e *Engine) ended(v *nsView, next map[uint64]uint64, now uint64) {
	for cookie, expires := range v.prev {
		if _, ok := next[cookie]; ok {
			continue
		}
		t := min(expires, now)
		rec, _ := e.cookies.get(cookie) // gone only after many newer handovers
		e.stats.twEnded++
		if e.o.Out != nil {
			held := time.Duration(0)
			if rec.at != 0 && t > rec.at {
				held = time.Duration(t - rec.at)
			}
			e.o.Out.TimeWaitEnd(&TimeWaitEnd{Time: t, Cookie: cookie, Owner: rec.owner,
				Dest: rec.dest, Sport: rec.sport, Held: held})
		}
	}
}

// inputs gathers the forecast's inputs for d at now: from the kernel's table
// when a fresh snapshot has it, else from the handovers traced in the last
// TIME_WAIT period.
func (e *Engine) inputs(d *destState, s Sysctls, now uint64) Inputs {
	in := Inputs{Sysctls: s, Loopback: d.dest.Loopback(), Rate: d.rate(&d.tw, now)}
	// The engine's buffers, reused evaluation after evaluation: the
	// slices live until the next call.
	in.Expiries, in.Scratch = e.expBuf[:0], e.sortBuf[:0]
	defer func() {
		if cap(in.Expiries) > cap(e.expBuf) {
			e.expBuf = in.Expiries[:0]
		}
		if cap(e.sortBuf) < len(in.Expiries) {
			e.sortBuf = make([]time.Duration, 0, 2*len(in.Expiries))
		}
	}()
	l := &d.ledger
	if l.at != 0 && now >= l.at && now-l.at < uint64(staleLedger) {
		age := time.Duration(now - l.at)
		for _, x := range l.expiries {
			if x > age {
				in.Expiries = append(in.Expiries, x-age)
			}
		}
		for range l.traced {
			in.Expiries = append(in.Expiries, TimeWaitLen-age)
		}
		in.InUse, in.NetnsTW = l.inUse, l.netnsTW+int(l.traced)
	} else {
		nowSec := int64(now / 1e9)
		d.tw.advance(nowSec)
		for a := int64(0); a < int64(TimeWaitLen/time.Second); a++ {
			n := d.tw.counts[(nowSec-a+window)%window]
			if nowSec-a < 0 {
				continue
			}
			for range n {
				in.Expiries = append(in.Expiries, TimeWaitLen-time.Duration(a)*time.Second)
			}
		}
		in.NetnsTW = -1
	}
	in.Held = len(in.Expiries)
	if in.NetnsTW < 0 {
		in.NetnsTW = in.Held
	}
	return in
}

// failKey groups failed connects.
type failKey struct {
	owner ProcKey
	dest  Dest
	err   uint16
}

type failCount struct {
	total, fresh uint64
	noticed      uint64 // ns of the latest notice
}

// failedTable counts failed connects per process, destination and error.
type failedTable struct {
	m     map[failKey]*failCount
	other uint64
}

func (t *failedTable) add(o ProcKey, d Dest, err uint16, now uint64) {
	k := failKey{o, d, err}
	c := t.m[k]
	if c == nil {
		if len(t.m) >= MaxDests {
			t.other++
			return
		}
		c = &failCount{}
		t.m[k] = c
	}
	c.total++
	c.fresh++
}

// notices reports, at most once a second per group, the connects that failed since.
func (t *failedTable) notices(now uint64, out func(*FailedNotice)) {
	for k, c := range t.m {
		if c.fresh == 0 || (c.noticed != 0 && now < c.noticed+uint64(time.Second)) {
			continue
		}
		out(&FailedNotice{Time: now, Owner: k.owner, Dest: k.dest, Err: k.err, New: c.fresh, Total: c.total})
		c.fresh, c.noticed = 0, now
	}
}
