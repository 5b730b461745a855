package events

import (
	"net/netip"
	"strconv"
	"syscall"
)

// Role is what a socket did to come into being.
type Role uint8

// Roles.
const (
	RoleUnknown  Role = iota // first seen already open
	RoleClient               // called connect
	RoleServer               // accepted from a listener
	RoleListener             // called listen
)

var roleNames = [...]string{"unknown", "client", "server", "listener"}

// String returns the role's lowercase name, "role<n>" for an unknown one.
func (r Role) String() string { return enumName(roleNames[:], int(r), "role") }

// Closer says which side sent the first FIN.
type Closer uint8

// Closers.
const (
	CloserNone         Closer = iota // never established, or reset before any FIN
	CloserLocal                      // this socket sent FIN first (ESTABLISHED→FIN_WAIT1)
	CloserPeer                       // the peer sent FIN first (ESTABLISHED→CLOSE_WAIT)
	CloserSimultaneous               // FINs crossed (FIN_WAIT1→CLOSING)
)

var closerNames = [...]string{"none", "local", "peer", "simultaneous"}

// String returns the closer's lowercase name, "closer<n>" for an unknown one.
func (c Closer) String() string { return enumName(closerNames[:], int(c), "closer") }

// End is how a connection ended.
type End uint8

// End kinds.
const (
	EndOpen     End = iota // not ended yet
	EndGraceful            // FIN exchange
	EndReset               // aborted with RST (sent or received)
	EndRefused             // SYN answered by RST (ECONNREFUSED)
	EndFailed              // connect never got a local port (EADDRNOTAVAIL) or failed locally
	EndTimeout             // retransmissions or keepalives ran out (ETIMEDOUT)
	EndAborted             // closed locally while connecting, before any answer
	EndClosed              // a listener stopped listening
)

var endNames = [...]string{"open", "graceful", "reset", "refused", "failed", "timeout", "aborted", "closed"}

// String returns the end kind's lowercase name, "end<n>" for an unknown one.
func (e End) String() string { return enumName(endNames[:], int(e), "end") }

// Side names the end of a connection that did something.
type Side uint8

// Sides.
const (
	SideNone  Side = iota
	SideLocal      // this socket
	SidePeer       // the remote socket
)

var sideNames = [...]string{"", "local", "peer"}

// String returns "local", "peer" or "" ("side<n>" for an unknown one).
func (s Side) String() string { return enumName(sideNames[:], int(s), "side") }

// OwnerSource says how an owner was learned.
type OwnerSource uint8

// Owner sources, most trustworthy first.
const (
	OwnerUnknown  OwnerSource = iota
	OwnerSyscall              // seen holding the socket in a syscall
	OwnerListener             // inherited from the listening socket
	OwnerProc                 // resolved from /proc (socket inode), as ss -p does
)

var ownerSourceNames = [...]string{"unknown", "syscall", "listener", "proc"}

// String returns the source's lowercase name, "source<n>" for an unknown one.
func (o OwnerSource) String() string { return enumName(ownerSourceNames[:], int(o), "source") }

// enumName returns names[i], or prefix and i for a value past the names
// (from a damaged capture or a newer kernel), so that no String panics.
func enumName(names []string, i int, prefix string) string {
	if i < len(names) {
		return names[i]
	}
	return prefix + strconv.Itoa(i)
}

// Owner is the process that owns a socket.
type Owner struct {
	PID    uint32
	TID    uint32
	Comm   Comm
	Source OwnerSource
}

// Known reports whether the owner was found at all.
func (o Owner) Known() bool { return o.Source != OwnerUnknown }

// Span is time spent in one state.
type Span struct {
	State State
	Dur   uint64 // ns
}

// Conn is one tracked socket, keyed by its cookie.
type Conn struct {
	Cookie   uint64
	Owner    Owner
	Role     Role
	Family   uint16
	Saddr    netip.Addr
	Daddr    netip.Addr
	Sport    uint16
	Dport    uint16
	Netns    uint32
	CgroupID uint64
	Start    uint64 // ns of the first transition seen
	Last     uint64 // ns of the latest transition
	State    State  // current state
	Spans    []Span // states left, in order, with time spent in each
	Closer   Closer
	End      End
	ResetBy  Side   // for EndReset: who sent the RST
	TimeWait bool   // handed over to a TIME_WAIT socket (an orphaned FIN_WAIT2 is TwState FinWait2, not this)
	TwState  State  // substate of the timewait socket that took it over (TimeWait, FinWait2), Unknown if none was seen
	Err      uint16 // sk_err at the end
	Partial  bool   // already open when first seen (or its start was lost)
	Inferred int    // transitions filled in from gaps

	prev, next *Conn // LRU list, most recent first
}

// Duration returns the time from the first to the latest transition in ns.
func (c *Conn) Duration() uint64 { return c.Last - c.Start }

// Copy returns a copy of c that outlives the Sink call it was passed to:
// its own Spans, detached from the tracker's table.
func (c *Conn) Copy() Conn {
	cp := *c
	cp.Spans = append([]Span(nil), c.Spans...)
	cp.prev, cp.next = nil, nil
	return cp
}

// Transition is one step of a connection, handed to views.
type Transition struct {
	Event       *Event // the kernel event; for inferred steps, the event that revealed the gap
	Conn        *Conn
	Old, New    State
	InOld       int64 // ns spent in Old, -1 when unknown
	Inferred    bool  // filled in from a gap, not reported by the kernel
	TimeWait    bool  // this CLOSE handed over to a timewait socket in TIME_WAIT
	Orphan      bool  // this CLOSE handed an orphaned FIN_WAIT2 over to a timewait socket (TIME_WAIT at the peer's FIN)
	ActiveClose bool  // this socket sent the first FIN
	Reset       bool  // this CLOSE was an abort (RST)
}

// Shown returns the state to display as New: TIME_WAIT when the kernel's
// CLOSE handed the connection to a timewait socket.
func (t *Transition) Shown() State {
	if t.TimeWait {
		return TimeWait
	}
	return t.New
}

// endOf classifies a transition into CLOSE from old with the socket's error.
func endOf(c *Conn, old State, ev *Event) (End, Side, bool) {
	switch syscall.Errno(ev.Err) {
	case syscall.ETIMEDOUT:
		return EndTimeout, SideNone, false
	case syscall.ECONNREFUSED:
		if old == SynSent {
			return EndRefused, SidePeer, false
		}
		return EndReset, SidePeer, false
	case syscall.ECONNRESET, syscall.EPIPE:
		return EndReset, SidePeer, false
	case syscall.ECONNABORTED:
		return EndReset, SideLocal, false
	case syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.EADDRNOTAVAIL:
		return EndFailed, SideNone, false
	}
	switch old {
	case Listen:
		return EndClosed, SideNone, false
	case SynSent:
		if c.Sport == 0 && ev.Sport == 0 {
			return EndFailed, SideNone, false
		}
		return EndAborted, SideNone, false
	case SynRecv, Established, CloseWait, FinWait1:
		// No error recorded: this side aborted (SO_LINGER 0, unread data,
		// or the listener went away under a child).
		return EndReset, SideLocal, false
	case FinWait2, Closing:
		return EndGraceful, SideNone, true
	}
	return EndGraceful, SideNone, false
}

// Established reports whether the connection was established: it passed
// ESTABLISHED, a FIN was exchanged, or it was open when first seen. A
// client socket that was not failed to connect.
func (c *Conn) Established() bool {
	if c.Partial || c.Closer != CloserNone {
		return true
	}
	for _, sp := range c.Spans {
		if sp.State == Established {
			return true
		}
	}
	return false
}
