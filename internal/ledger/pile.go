package ledger

import (
	"net/netip"

	"github.com/tcptrace/tcptrace/internal/events"
)

// timerTimeWait is idiag_timer for a timewait socket's timer.
const timerTimeWait = 3

// isOrphanFinWait2 reports whether struct inet_diag_msg m is a FIN_WAIT2
// socket held by a timewait socket (its timer, or no inode: orphaned).
func isOrphanFinWait2(m []byte) bool {
	return m[1] == stFinWait2 && (m[2] == timerTimeWait || ne.Uint32(m[68:]) == 0)
}

// Kernel TCP states (events.State values) the dump sorts by.
const (
	stFinWait2 = uint8(events.FinWait2)
	stTimeWait = uint8(events.TimeWait)
	stListen   = uint8(events.Listen)
)

// v4mapped is the prefix of a v4-mapped v6 address.
var v4mapped = [12]byte{10: 0xff, 11: 0xff}

// destKey is where sockets point, for hints. Client side (local port in the
// ephemeral range) it is a destination: saddr, daddr and dport, addresses
// v4-mapped. Server side (a listening port, or outside the range) it is the
// local port alone.
type destKey struct {
	saddr, daddr [16]byte
	dport, lport uint16
}

// holder is an open socket toward a destination.
type holder struct {
	inode  uint32
	listen bool
}

// builder files the sockets of one dump into a pile: timewait sockets as
// events, open ones by destination for the hints.
type builder struct {
	pile   *Pile
	filter events.Filter
	limit  int
	lo, hi uint16              // the namespace's ephemeral range
	dests  map[destKey]holder  // an open socket per destination, a listener preferred
	listen map[uint16]struct{} // listening ports
}

func newBuilder(p *Pile, f events.Filter, limit int, sysctls map[string]string) *builder {
	b := &builder{pile: p, filter: f, limit: limit, dests: map[destKey]holder{}, listen: map[uint16]struct{}{}}
	b.lo, b.hi = portRange(sysctls)
	return b
}

// add files one struct inet_diag_msg.
func (b *builder) add(m []byte) {
	_ = m[diagMsgLen-1]
	b.pile.Sockets++
	state, ino := m[1], ne.Uint32(m[68:])
	switch {
	case state == stTimeWait, isOrphanFinWait2(m):
		ev := events.Event{
			Kind:   events.KindTimeWait,
			TwOp:   events.TwFound,
			Time:   b.pile.Time,
			Cookie: diagCookie(m),
			Netns:  b.pile.Netns,
			New:    events.State(state),
			Sport:  uint16(m[4])<<8 | uint16(m[5]),
			Dport:  uint16(m[6])<<8 | uint16(m[7]),
			Remain: ne.Uint32(m[52:]),
		}
		ev.Family, ev.Saddr, ev.Daddr = addrs(m)
		if !b.filter.MatchEvent(&ev) {
			return
		}
		if len(b.pile.Found) >= b.limit {
			b.pile.Truncated = true
			return
		}
		if fs := b.pile.Found; len(fs) == cap(fs) {
			// Double: append's 1.25× for large slices copies each socket
			// about five times over.
			b.pile.Found = append(make([]Found, 0, min(max(2*cap(fs), 1024), b.limit)), fs...)
		}
		b.pile.Found = append(b.pile.Found, Found{Cookie: ev.Cookie, Saddr: ev.Saddr.As16(), Daddr: ev.Daddr.As16(),
			Remain: ev.Remain, Hint: -1, Sport: ev.Sport, Dport: ev.Dport, State: ev.New, V6: ev.Family == afInet6})
	case ino != 0:
		sport := uint16(m[4])<<8 | uint16(m[5])
		var k destKey
		if state == stListen {
			b.listen[sport] = struct{}{}
			k.lport = sport
		} else {
			k = b.key(m, sport)
		}
		h, ok := b.dests[k]
		if !ok && len(b.dests) >= maxDests {
			return // hints are best effort
		}
		if !ok || !h.listen && state == stListen {
			b.dests[k] = holder{inode: ino, listen: state == stListen}
		}
	}
}

// key is the destination of an open socket, client or server side by the
// ephemeral range.
func (b *builder) key(m []byte, sport uint16) destKey {
	if sport < b.lo || sport > b.hi {
		return destKey{lport: sport}
	}
	k := destKey{dport: uint16(m[6])<<8 | uint16(m[7])}
	if m[0] == afInet {
		copy(k.saddr[:], v4mapped[:])
		copy(k.saddr[12:], m[8:12])
		copy(k.daddr[:], v4mapped[:])
		copy(k.daddr[12:], m[24:28])
	} else {
		copy(k.saddr[:], m[8:24])
		copy(k.daddr[:], m[24:40])
	}
	return k
}

// foundKey is the destination of a timewait socket: server side when its
// local port is listened on or outside the ephemeral range.
func (b *builder) foundKey(f *Found) destKey {
	if _, ok := b.listen[f.Sport]; ok || f.Sport < b.lo || f.Sport > b.hi {
		return destKey{lport: f.Sport}
	}
	return destKey{saddr: f.Saddr, daddr: f.Daddr, dport: f.Dport}
}

// addrs decodes the family and addresses of struct inet_diag_msg, a
// v4-mapped pair as AF_INET as the probe reports it.
func addrs(m []byte) (uint16, netip.Addr, netip.Addr) {
	if m[0] == afInet {
		return afInet, netip.AddrFrom4([4]byte(m[8:12])), netip.AddrFrom4([4]byte(m[24:28]))
	}
	s, d := netip.AddrFrom16([16]byte(m[8:24])), netip.AddrFrom16([16]byte(m[24:40]))
	if s.Is4In6() && d.Is4In6() {
		return afInet, s.Unmap(), d.Unmap()
	}
	return uint16(m[0]), s, d
}

// sides marks the found sockets of the server side: their local port is
// listened on (the dump comes in hash order: listeners may follow their
// timewait sockets), or, when nothing listens on it any more, their local
// end is shared by more timewait sockets than their remote end is (a
// server's port faces many clients; a client's port faces one server, and
// many client ports face the same server). The ephemeral range alone
// cannot tell where it covers the service ports too.
func (b *builder) sides() {
	type end struct {
		addr [16]byte
		port uint16
	}
	local, remote := map[end]int{}, map[end]int{}
	for i := range b.pile.Found {
		f := &b.pile.Found[i]
		local[end{f.Saddr, f.Sport}]++
		remote[end{f.Daddr, f.Dport}]++
	}
	for i := range b.pile.Found {
		f := &b.pile.Found[i]
		_, listened := b.listen[f.Sport]
		f.Server = listened || local[end{f.Saddr, f.Sport}] > remote[end{f.Daddr, f.Dport}]
	}
}

// hint names, on each timewait socket toward a destination some open socket
// points to, the process holding that socket.
func (b *builder) hint(proc string) {
	fs := b.pile.Found
	if len(fs) == 0 || len(b.dests) == 0 {
		return
	}
	want := map[uint32]*events.Owner{}
	for i := range fs {
		if h, ok := b.dests[b.foundKey(&fs[i])]; ok {
			want[h.inode] = nil
		}
	}
	if len(want) == 0 {
		return
	}
	socketOwners(proc, want)
	index := map[uint32]int32{}
	for i := range fs {
		f := &fs[i]
		h, ok := b.dests[b.foundKey(f)]
		if !ok || want[h.inode] == nil {
			continue
		}
		k, ok := index[h.inode]
		if !ok {
			o := want[h.inode]
			k = int32(len(b.pile.Hints))
			b.pile.Hints = append(b.pile.Hints, Hint{PID: o.PID, Comm: o.Comm})
			index[h.inode] = k
		}
		f.Hint = k
	}
}
