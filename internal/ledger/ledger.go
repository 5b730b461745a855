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
	MaxOpen     = 1 << 17 // other sockets kept per dump
)

// timerTimeWait is idiag_timer for a timewait socket's timer.
const timerTimeWait = 3

// Socket is one socket of the kernel's table.
type Socket struct {
	Cookie  uint64 // socket cookie: the traced socket's, for a timewait socket
	State   events.State
	Family  uint16
	Saddr   netip.Addr
	Daddr   netip.Addr
	Sport   uint16
	Dport   uint16
	Expires time.Duration // remaining timer (TIME_WAIT: until the kernel drops it)
	Inode   uint32        // 0 for timewait and orphaned sockets
	timer   uint8         // idiag_timer
}

// Snapshot is one namespace's table at one moment.
type Snapshot struct {
	Netns     uint32
	Time      uint64            // CLOCK_MONOTONIC ns of the dump
	TimeWait  []Socket          // TIME_WAIT, and FIN_WAIT2 sockets no process holds
	Open      []Socket          // every other non-listening socket
	Listening []Socket          // listening sockets
	Sysctls   map[string]string // net.ipv4.<name> as read inside the namespace
	Truncated bool              // a bound was hit: counts are lower bounds
	Err       error             // why the namespace could not be read
}

// add files one socket of a dump into the snapshot.
func add(s *Snapshot, so Socket) {
	switch {
	case so.State == events.TimeWait,
		so.State == events.FinWait2 && (so.timer == timerTimeWait || so.Inode == 0):
		if len(s.TimeWait) >= MaxTimeWait {
			s.Truncated = true
			return
		}
		s.TimeWait = append(s.TimeWait, so)
	case so.State == events.Listen:
		if len(s.Listening) >= MaxOpen {
			s.Truncated = true
			return
		}
		s.Listening = append(s.Listening, so)
	default:
		if len(s.Open) >= MaxOpen {
			s.Truncated = true
			return
		}
		s.Open = append(s.Open, so)
	}
}
