package diagnosis

import (
	"time"

	"github.com/tcptrace/tcptrace/internal/ledger"
)

// Bounds of the join between the stream and the kernel's table.
const (
	maxByOwner  = 4096 // (destination, owner) rows kept per namespace
	staleLedger = 5 * time.Second
)

// nsView is what the latest snapshot said of one namespace.
type nsView struct {
	netns     uint32 // which
	sysctls   Sysctls
	live      bool   // sysctls were read with a snapshot
	at        uint64 // ns of the latest snapshot
	total     int    // TIME_WAIT (and orphaned FIN_WAIT2) sockets
	unknown   int    // of them, not traced (predate tracing): owner unknown
	truncated bool
	err       error
	byOwner   []TimeWaitRow // TIME_WAIT per destination and owner
	dumpTime  time.Duration // the ledger's latest dump of it took
	period    time.Duration // and the ledger waits this long between dumps
	gen       uint32        // Engine.gen of the latest snapshot
	seen      []seenRec     // traced TIME_WAIT sockets in the latest snapshot, in its order
	spare     []seenRec     // memory for the next snapshot's
	resets    uint64        // cookieTable.resets when seen was filled
	evicted   uint64        // cookieTable.evicted then
	inserts   uint64        // cookieTable.inserts then
	rewrites  uint64        // cookieTable.rewrites then
}

// peerJoin is one peer of the snapshot being joined.
type peerJoin struct {
	d       *destState // nil: an open-only peer nothing else knows
	exp     bool       // its TIME_WAIT expiries are kept (client side)
	unknown int        // TIME_WAIT sockets not traced
	owners  [4]uint32  // the first owners of traced ones (cookie table numbers)
	known   [4]int32   // and how many each; more owners go to Engine.owned
}

// count counts a traced TIME_WAIT socket of owner o toward peer.
func (e *Engine) count(p *peerJoin, peer, o uint32) {
	for i := range p.owners {
		if p.known[i] == 0 {
			p.owners[i] = o
		}
		if p.owners[i] == o {
			p.known[i]++
			return
		}
	}
	e.owned[uint64(peer)<<32|uint64(o)]++
}

// Ledger merges one namespace's snapshot of the kernel's table, then
// releases it. Traced TIME_WAIT sockets of the previous snapshot missing
// from this one are reported ended; one whose handover the cookie table
// forgot meanwhile (a fuller minute than it holds) is no longer followed.
func (e *Engine) Ledger(s *ledger.Snapshot) {
	if s == nil {
		return
	}
	defer s.Release()
	v := e.ns(s.Netns)
	v.err = s.Err
	if s.Err != nil {
		return
	}
	if len(s.Sysctls) > 0 {
		v.sysctls, v.live = ParseSysctls(s.Sysctls), true
	}
	if e.gen++; e.gen == 0 {
		e.gen = 1 // 0 is no snapshot
	}
	prevGen, prevAt := v.gen, v.at
	v.gen, v.at, v.total, v.truncated = e.gen, s.Time, len(s.TimeWait), s.Truncated
	v.dumpTime, v.period = s.DumpTime, s.Period
	peers := e.joinPeers(s)
	e.join(v, s, peers, prevAt, prevGen != 0)
	e.ownerRows(v, s, peers)
}

// joinPeers resolves the snapshot's peers to destinations, creating those
// with TIME_WAIT, and refreshes every ledger view of the namespace.
func (e *Engine) joinPeers(s *ledger.Snapshot) []peerJoin {
	if cap(e.peers) < len(s.Peers) {
		e.peers = make([]peerJoin, len(s.Peers))
	}
	peers := e.peers[:len(s.Peers)]
	for i := range s.Peers {
		p := &s.Peers[i]
		k := peerDest(s.Netns, p)
		var d *destState
		if p.TimeWait > 0 {
			d = e.dest(k, s.Time)
		} else {
			d = e.dests[k]
		}
		peers[i] = peerJoin{d: d, exp: d != nil && p.Lport == 0 && p.TimeWait > 0}
		if d != nil {
			n := 0
			if peers[i].exp {
				n = p.TimeWait
			}
			d.ledger = e.view(d, s, p.InUse, n)
		}
	}
	for _, d := range e.dests {
		if d.dest.Netns == s.Netns && d.ledger.gen != e.gen {
			d.ledger = e.view(d, s, 0, 0)
		}
	}
	return peers
}

// view is a destination's fresh share of snapshot s, with room for n
// expiries (the previous snapshot's memory when it fits).
func (e *Engine) view(d *destState, s *ledger.Snapshot, inUse, n int) ledgerView {
	var exp []uint32
	if n > 0 {
		exp = d.ledger.expiries[:0]
		if cap(exp) < n || cap(exp) > 4*n+1024 {
			exp = make([]uint32, 0, n+n/8+64)
		}
	}
	return ledgerView{at: s.Time, gen: e.gen, expiries: exp, inUse: inUse + s.Listeners, netnsTW: len(s.TimeWait)}
}

// peerDest is the destination a peer of a snapshot of netns stands for.
func peerDest(netns uint32, p *ledger.Peer) Dest {
	return Dest{Netns: netns, Saddr: p.Saddr, Daddr: p.Daddr, Dport: p.Dport, Lport: p.Lport}
}

// ownerRows fills v's TIME_WAIT per destination and owner from the join.
func (e *Engine) ownerRows(v *nsView, s *ledger.Snapshot, peers []peerJoin) {
	rows := v.byOwner[:0]
	add := func(peer uint32, owner ProcKey, known bool, n int) {
		if n > 0 && len(rows) < maxByOwner {
			rows = append(rows, TimeWaitRow{Dest: peerDest(s.Netns, &s.Peers[peer]), Owner: owner, Known: known, Count: n})
		}
	}
	v.unknown = 0
	for i := range peers {
		p := &peers[i]
		v.unknown += p.unknown
		add(uint32(i), ProcKey{}, false, p.unknown)
		for j, o := range p.owners {
			if p.known[j] > 0 {
				add(uint32(i), e.cookies.owners.vals[o], true, int(p.known[j]))
			}
		}
	}
	for k, n := range e.owned {
		add(uint32(k>>32), e.cookies.owners.vals[uint32(k)], true, n)
	}
	clear(e.owned)
	v.byOwner = rows
}

// ended reports a traced TIME_WAIT socket the kernel dropped: its timer ran
// out at expires, or before now.
func (e *Engine) ended(sl *slot, expires, now uint64) {
	e.stats.twEnded++
	if e.o.Out == nil {
		return
	}
	t := min(expires, now)
	rec := e.cookies.rec(sl)
	held := time.Duration(0)
	if rec.at != 0 && t > rec.at {
		held = time.Duration(t - rec.at)
	}
	e.twEnd = TimeWaitEnd{Time: t, Cookie: sl.cookie, Owner: rec.owner, Dest: rec.dest, Sport: rec.sport, Held: held}
	e.o.Out.TimeWaitEnd(&e.twEnd)
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
