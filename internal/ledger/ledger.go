// Package ledger reads the kernel's own table of TIME_WAIT sockets (and
// orphaned FIN_WAIT2 ones) through netlink sock_diag, as `ss -tan state
// time-wait -o` does, in every network namespace it is asked to watch.
package ledger

import (
	"net/netip"
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
)

// Bounds of one namespace's snapshot, so a huge table cannot exhaust memory.
const (
	MaxTimeWait = 1 << 19 // TIME_WAIT and orphaned FIN_WAIT2 sockets kept per dump
	MaxPeers    = 1 << 16 // distinct peers per dump
)

// timerTimeWait is idiag_timer for a timewait socket's timer.
const timerTimeWait = 3

// Socket is one socket of the kernel's table, as Listening returns it.
type Socket struct {
	Cookie  uint64 // socket cookie: the traced socket's, for a timewait socket
	State   events.State
	Family  uint16 // the socket's own (a v6 socket stays AF_INET6)
	Saddr   netip.Addr
	Daddr   netip.Addr
	Sport   uint16
	Dport   uint16
	Expires time.Duration // remaining timer (TIME_WAIT: until the kernel drops it)
	Inode   uint32        // 0 for timewait and orphaned sockets
}

// Snapshot is one namespace's table at one moment, compact: a TIME_WAIT
// socket takes 16 bytes, what it points to is interned in Peers, and other
// sockets are only counted. A snapshot from Poller.Take is recycled by the
// poller: use it only until its Release or the next Take.
type Snapshot struct {
	Netns     uint32
	Time      uint64            // CLOCK_MONOTONIC ns of the dump
	TimeWait  []TimeWait        // TIME_WAIT, and FIN_WAIT2 sockets no process holds
	Peers     []Peer            // what TimeWait and open sockets on range ports point to
	Listeners int               // listening sockets on range ports
	Open      int               // other sockets
	PortLo    uint16            // the ephemeral range that sorts sockets into client and server side
	PortHi    uint16            // (ip_local_port_range, or the kernel's default)
	Sysctls   map[string]string // net.ipv4.<name> as read inside the namespace
	Truncated bool              // a bound was hit: counts are lower bounds
	Err       error             // why the namespace could not be read
	DumpTime  time.Duration     // wall time the dump took
	Period    time.Duration     // wait before the namespace's next dump: max(period, 200×(every watched namespace's latest DumpTime + its previous snapshot's join))

	owner   *Poller // nil when not the poller's
	lent    bool    // handed out by Take, not yet released
	index   map[peerKey]uint32
	lastKey peerKey // the latest peer looked up, and its index
	lastIdx uint32
}

// Peer is where a group of sockets points. Client side (local port in the
// ephemeral range) it is a destination: Saddr, Daddr and Dport. Server side
// it is the local port its sockets hold: Saddr and Lport.
type Peer struct {
	Saddr    netip.Addr
	Daddr    netip.Addr // invalid server side
	Dport    uint16     // 0 server side
	Lport    uint16     // 0 client side
	TimeWait int        // its sockets in Snapshot.TimeWait
	InUse    int        // open sockets on range ports toward it
}

// TimeWait is one TIME_WAIT (or orphaned FIN_WAIT2) socket.
type TimeWait struct {
	Cookie  uint64 // the socket cookie, the traced socket's
	Peer    uint32 // index in Snapshot.Peers
	Expires uint32 // ms left on its timer
}

// peerKey is a Peer as the dump reads it: v4 addresses v4-mapped.
type peerKey struct {
	saddr, daddr [16]byte
	dport, lport uint16
}

// Kernel TCP states (events.State values) the dump sorts by.
const (
	stFinWait2 = uint8(events.FinWait2)
	stTimeWait = uint8(events.TimeWait)
	stListen   = uint8(events.Listen)
)

// reset empties s for a dump, keeping its memory unless a much smaller
// table left most of it idle.
func (s *Snapshot) reset() {
	if cap(s.TimeWait) > 4*len(s.TimeWait)+1<<14 {
		s.TimeWait = nil
	}
	if s.index == nil {
		s.index = map[peerKey]uint32{}
	}
	clear(s.index)
	s.TimeWait, s.Peers = s.TimeWait[:0], s.Peers[:0]
	s.Listeners, s.Open, s.Truncated, s.Err, s.Sysctls, s.Time = 0, 0, false, nil, nil, 0
	s.DumpTime, s.Period, s.lastIdx = 0, 0, ^uint32(0)
}

// inRange reports whether port is in the snapshot's ephemeral range.
func (s *Snapshot) inRange(port uint16) bool { return port >= s.PortLo && port <= s.PortHi }

// add files one struct inet_diag_msg of a dump into the snapshot, reading
// only the bytes it needs.
func (s *Snapshot) add(m []byte) {
	_ = m[diagMsgLen-1]
	state, sport := m[1], uint16(m[4])<<8|uint16(m[5])
	switch {
	case state == stTimeWait, state == stFinWait2 && (m[2] == timerTimeWait || ne.Uint32(m[68:]) == 0):
		if len(s.TimeWait) >= MaxTimeWait {
			s.Truncated = true
			return
		}
		p, ok := s.peer(m, sport)
		if !ok {
			return
		}
		s.Peers[p].TimeWait++
		if len(s.TimeWait) == cap(s.TimeWait) {
			// Double: append's 1.25× would leave 4× the table in garbage.
			s.TimeWait = append(make([]TimeWait, 0, max(2*cap(s.TimeWait), 1024)), s.TimeWait...)
		}
		s.TimeWait = append(s.TimeWait, TimeWait{
			Cookie:  uint64(ne.Uint32(m[44:])) | uint64(ne.Uint32(m[48:]))<<32,
			Peer:    p,
			Expires: ne.Uint32(m[52:]),
		})
	case state == stListen:
		if s.inRange(sport) {
			s.Listeners++
		}
	default:
		s.Open++
		if s.inRange(sport) {
			if p, ok := s.peer(m, sport); ok {
				s.Peers[p].InUse++
			}
		}
	}
}

// v4mapped is the prefix of a v4-mapped v6 address.
var v4mapped = [12]byte{10: 0xff, 11: 0xff}

// peer returns the index of the socket's peer in Peers, interning it; false
// when MaxPeers are interned already.
func (s *Snapshot) peer(m []byte, sport uint16) (uint32, bool) {
	var k peerKey
	if m[0] == afInet {
		copy(k.saddr[:], v4mapped[:])
		copy(k.saddr[12:], m[8:12])
	} else {
		copy(k.saddr[:], m[8:24])
	}
	if s.inRange(sport) {
		if m[0] == afInet {
			copy(k.daddr[:], v4mapped[:])
			copy(k.daddr[12:], m[24:28])
		} else {
			copy(k.daddr[:], m[24:40])
		}
		k.dport = uint16(m[6])<<8 | uint16(m[7])
	} else {
		k.lport = sport
	}
	if s.lastIdx != ^uint32(0) && k == s.lastKey {
		return s.lastIdx, true
	}
	i, ok := s.index[k]
	if !ok {
		if len(s.Peers) >= MaxPeers {
			s.Truncated = true
			return 0, false
		}
		i = uint32(len(s.Peers))
		s.index[k] = i
		p := Peer{Saddr: netip.AddrFrom16(k.saddr).Unmap(), Dport: k.dport, Lport: k.lport}
		if k.lport == 0 {
			p.Daddr = netip.AddrFrom16(k.daddr).Unmap()
		}
		s.Peers = append(s.Peers, p)
	}
	s.lastKey, s.lastIdx = k, i
	return i, true
}
