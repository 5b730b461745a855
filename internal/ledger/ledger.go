// Package ledger reads, once, what predates tracing in the kernel's own
// socket tables: every network namespace's timewait sockets (TIME_WAIT and
// orphaned FIN_WAIT2), through netlink sock_diag as `ss -tan -e` does, as
// events.TwFound events with a hint of who still talks to their destinations,
// and each namespace's TIME_WAIT sysctls (ReadSysctls: the one reader of
// them, for the live diagnosis and for captures).
package ledger

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/tcptrace/tcptrace/internal/clock"
	"github.com/tcptrace/tcptrace/internal/events"
)

// Bounds of one namespace's pile, so a huge table cannot exhaust memory.
const (
	MaxPile  = 1 << 20 // timewait sockets kept per namespace (an events.Event each, ~184 B)
	maxDests = 1 << 18 // destinations of open sockets remembered for hints
)

// procRoot is where ReadPile finds sysctls and socket owners.
const procRoot = "/proc"

// Netns is a network namespace: its inode and a path that opens it.
type Netns struct {
	Inode uint32
	Path  string // /proc/self/ns/net, /run/netns/NAME or /proc/PID/ns/net
}

// Pile is what one namespace's table held when tracing started.
type Pile struct {
	Netns     uint32
	Time      uint64            // CLOCK_MONOTONIC ns of the dump
	Found     []Found           // the timewait sockets that pass the filter (Event gives each as a TwFound event)
	Hints     []Hint            // the processes Found's hints name
	Sysctls   map[string]string // SysctlNames as read inside the namespace
	Sockets   int               // all sockets the dump read, filtered or not
	Truncated bool              // more than MaxPile timewait sockets: Found holds the first MaxPile
	Took      time.Duration     // wall time of the whole read: sysctls, dump and hints
}

// Found is one timewait socket of a pile, kept compact and free of
// pointers (a pile may hold hundreds of thousands): 64 bytes.
type Found struct {
	Cookie       uint64
	Saddr, Daddr [16]byte // v4-mapped for IPv4
	Remain       uint32   // ms left on its timer
	Hint         int32    // index in Pile.Hints, -1 for none
	Sport, Dport uint16
	State        events.State // TIME_WAIT or FIN_WAIT2
	V6           bool         // a real IPv6 pair (not v4-mapped)
	Server       bool         // its local port is listened on: the server side
}

// Hint is a process that holds an open socket toward a destination.
type Hint struct {
	PID  uint32
	Comm events.Comm
}

// Event fills ev with the i-th found socket as a KindTimeWait TwFound
// event: its substate in New, the process of its hint (events.FlagHint),
// events.FlagServer for the server side.
func (p *Pile) Event(i int, ev *events.Event) {
	f := &p.Found[i]
	*ev = events.Event{Kind: events.KindTimeWait, TwOp: events.TwFound, Time: p.Time, Cookie: f.Cookie,
		Netns: p.Netns, New: f.State, Sport: f.Sport, Dport: f.Dport, Remain: f.Remain, Family: afInet6,
		Saddr: netip.AddrFrom16(f.Saddr), Daddr: netip.AddrFrom16(f.Daddr)}
	if !f.V6 {
		ev.Family, ev.Saddr, ev.Daddr = afInet, ev.Saddr.Unmap(), ev.Daddr.Unmap()
	}
	if f.Hint >= 0 {
		h := &p.Hints[f.Hint]
		ev.PID, ev.Comm, ev.Flags = h.PID, h.Comm, events.FlagHint
	}
	if f.Server {
		ev.Flags |= events.FlagServer
	}
}

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

// ReadPile dumps every TCP socket of the namespace once and returns its
// timewait sockets that pass f's Ports and Hosts (they have no owner for its
// PID and Comm), each as a TwFound event; those toward a
// destination that a process still holds an open socket toward name it
// (PID, Comm, events.FlagHint). Run it off the event path: it costs a few
// µs per socket, and a scan of /proc/*/fd when there are hints to find.
func ReadPile(ns Netns, f events.Filter) (Pile, error) {
	return readPile(procRoot, ns, f, MaxPile)
}

// readPile is ReadPile with its /proc root and bound.
func readPile(proc string, ns Netns, f events.Filter, limit int) (Pile, error) {
	start := time.Now()
	pile := Pile{Netns: ns.Inode}
	h, err := openNetns(ns)
	if err != nil {
		return pile, err
	}
	defer h.Close()
	if pile.Sysctls, err = readSysctls(proc, h); err != nil {
		return pile, fmt.Errorf("netns %d: %w", ns.Inode, err)
	}
	d, err := openDiag(h)
	if err != nil {
		return pile, fmt.Errorf("netns %d: %w", ns.Inode, err)
	}
	defer d.Close()
	b := newBuilder(&pile, f, limit, pile.Sysctls)
	pile.Time = clock.Mono()
	if err := d.dumpAll(make([]byte, recvBufLen), allStates, b); err != nil {
		return pile, fmt.Errorf("netns %d: %w", ns.Inode, err)
	}
	b.sides()
	b.hint(proc)
	pile.Took = time.Since(start)
	return pile, nil
}
