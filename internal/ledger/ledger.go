// Package ledger reads, once, what predates tracing in the kernel's own
// socket tables: every network namespace's timewait sockets (TIME_WAIT and
// orphaned FIN_WAIT2), through netlink sock_diag as `ss -tan -e` does, as
// events.TwFound events with a hint of who still talks to their destinations.
package ledger

import (
	"fmt"
	"net/netip"
	"time"

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

// Filter selects the timewait sockets of a pile. Zero fields match all.
type Filter struct {
	Port uint16     // either end
	Host netip.Addr // either end
}

// match reports whether the timewait socket of ev passes the filter.
func (f Filter) match(ev *events.Event) bool {
	if f.Port != 0 && ev.Sport != f.Port && ev.Dport != f.Port {
		return false
	}
	if f.Host.IsValid() {
		h := f.Host.Unmap()
		if ev.Saddr.Unmap() != h && ev.Daddr.Unmap() != h {
			return false
		}
	}
	return true
}

// Pile is what one namespace's table held when tracing started.
type Pile struct {
	Netns     uint32
	Time      uint64            // CLOCK_MONOTONIC ns of the dump
	TimeWait  []events.Event    // one KindTimeWait TwFound event per timewait socket that passes the filter
	Sysctls   map[string]string // SysctlNames as read inside the namespace
	Sockets   int               // all sockets the dump read, filtered or not
	Truncated bool              // more than MaxPile timewait sockets: TimeWait holds the first MaxPile
	Took      time.Duration     // wall time of the whole read: sysctls, dump and hints
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
// timewait sockets that pass f, each as a TwFound event; those toward a
// destination that a process still holds an open socket toward name it
// (PID, Comm, events.FlagHint). Run it off the event path: it costs a few
// µs per socket, and a scan of /proc/*/fd when there are hints to find.
func ReadPile(ns Netns, f Filter) (Pile, error) {
	return readPile(procRoot, ns, f, MaxPile)
}

// readPile is ReadPile with its /proc root and bound.
func readPile(proc string, ns Netns, f Filter, limit int) (Pile, error) {
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
	pile.Time = monoNow()
	if err := d.dumpAll(make([]byte, recvBufLen), allStates, b); err != nil {
		return pile, fmt.Errorf("netns %d: %w", ns.Inode, err)
	}
	b.hint(proc)
	pile.Took = time.Since(start)
	return pile, nil
}
