// Package events defines the decoded TCP state-change stream and the tracker
// that turns it into connections with verdicts.
package events

import (
	"bytes"
	"fmt"
	"net/netip"
)

// State is a TCP state numbered as the kernel's include/net/tcp_states.h.
type State uint8

// TCP states as the kernel numbers them. TimeWait never appears in a kernel
// event: it is the timewait socket that takes over after CLOSE.
const (
	Unknown     State = 0
	Established State = 1
	SynSent     State = 2
	SynRecv     State = 3
	FinWait1    State = 4
	FinWait2    State = 5
	TimeWait    State = 6
	Close       State = 7
	CloseWait   State = 8
	LastAck     State = 9
	Listen      State = 10
	Closing     State = 11
	NewSynRecv  State = 12
)

var stateNames = [...]string{
	Unknown: "UNKNOWN", Established: "ESTABLISHED", SynSent: "SYN_SENT", SynRecv: "SYN_RECV",
	FinWait1: "FIN_WAIT1", FinWait2: "FIN_WAIT2", TimeWait: "TIME_WAIT", Close: "CLOSE",
	CloseWait: "CLOSE_WAIT", LastAck: "LAST_ACK", Listen: "LISTEN", Closing: "CLOSING",
	NewSynRecv: "NEW_SYN_RECV",
}

// String returns the state's name as tcp_states.h spells it (without TCP_),
// "STATE_<n>" for a number it does not define.
func (s State) String() string {
	return enumName(stateNames[:], int(s), "STATE_")
}

// MarshalText returns the state's name.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText parses a state name.
func (s *State) UnmarshalText(b []byte) error {
	st, ok := ParseState(string(b))
	if !ok {
		return fmt.Errorf("unknown TCP state %q", b)
	}
	*s = st
	return nil
}

// ParseState parses a state name as String prints it (case-insensitive, an
// optional TCP_ prefix and '-' for '_' accepted).
func ParseState(name string) (State, bool) {
	n := bytes.ToUpper([]byte(name))
	n = bytes.TrimPrefix(n, []byte("TCP_"))
	n = bytes.ReplaceAll(n, []byte("-"), []byte("_"))
	for i, s := range stateNames {
		if string(n) == s {
			return State(i), true
		}
	}
	if string(n) == "CLOSED" {
		return Close, true
	}
	return Unknown, false
}

// Source yields the stream in time order: the live kernel or a capture.
// Next returns io.EOF at the end of the stream.
type Source interface {
	Next(ev *Event) error
}

// Flags say how an event's owner was found and what the socket reported.
type Flags uint8

// Event flags, as bpf/tcptrace.h defines them (FlagResolved is userspace's).
const (
	FlagTaskOwns      Flags = 1  // the current task held the socket lock: a syscall
	FlagOwnerKnown    Flags = 2  // the owner came from the kernel's owner map
	FlagOwnerListener Flags = 4  // owner inherited from the listening socket
	FlagFinRcvd       Flags = 8  // the peer's FIN had been received
	FlagResolved      Flags = 16 // owner resolved in userspace (/proc, listener table)
	// FlagHint marks a TwFound event whose PID and Comm name a process
	// that holds sockets toward the same destination now: a hint, not the
	// owner (the socket predates tracing).
	FlagHint Flags = 64
	// FlagServer marks a KindTimeWait event of the server side of its
	// connection (accepted from a listener, or its local port is listened
	// on): its TIME_WAIT holds the service port, not an ephemeral one.
	FlagServer Flags = 128
)

// Kind tells a transition from a loss notice in the stream.
type Kind uint8

// Kinds of record in the stream.
const (
	KindTransition Kind = iota // a kernel state transition
	KindLoss                   // cumulative loss counters changed
	KindTimeWait               // a step of a timewait socket's life (Event.TwOp)
)

// TwOp is a step in the life of a timewait socket: the kernel's
// inet_timewait_sock that takes over a connection after its CLOSE, holding
// its 4-tuple in substate TIME_WAIT or, for an orphaned socket whose peer has
// not sent its FIN yet, FIN_WAIT2. It carries the connection's cookie.
type TwOp uint8

// Timewait steps. Start and Found have the substate in New; Move goes from
// FIN_WAIT2 to TIME_WAIT; the ends go from the substate (Old) to CLOSE.
const (
	TwNone   TwOp = iota
	TwStart       // a timewait socket took the connection over
	TwMove        // the peer's FIN arrived: an orphaned FIN_WAIT2 is TIME_WAIT now
	TwExpire      // its timer ran out and the kernel dropped it
	TwKill        // dropped early: a RST or a new SYN for its 4-tuple
	TwReuse       // dropped early: connect() took its port (tcp_tw_reuse)
	TwFound       // predates tracing: read from the kernel's table (Remaining)
)

var twOpNames = [...]string{"", "start", "move", "expire", "kill", "reuse", "found"}

// String returns the step's lowercase name ("" for TwNone, "op_<n>" for an
// unknown one).
func (o TwOp) String() string {
	return enumName(twOpNames[:], int(o), "op_")
}

// Ends reports whether the step ends the timewait socket.
func (o TwOp) Ends() bool { return o == TwExpire || o == TwKill || o == TwReuse }

// Comm is a task name as the kernel stores it (NUL-padded).
type Comm [16]byte

// String returns the name up to its first NUL.
func (c Comm) String() string {
	if i := bytes.IndexByte(c[:], 0); i >= 0 {
		return string(c[:i])
	}
	return string(c[:])
}

// MarshalText returns the comm as text.
func (c Comm) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// UnmarshalText sets the comm from text.
func (c *Comm) UnmarshalText(b []byte) error { *c = MakeComm(string(b)); return nil }

// MakeComm builds a Comm from a string, truncated to 15 bytes as the kernel does.
func MakeComm(s string) Comm {
	var c Comm
	copy(c[:15], s)
	return c
}

// Losses are cumulative counts of events the kernel could not deliver.
type Losses struct {
	Ring      uint64 // ring-buffer reserve failures (per-CPU counters, summed)
	Recursion uint64 // program runs skipped by the kernel's recursion guard
}

// Total returns all lost events.
func (l Losses) Total() uint64 { return l.Ring + l.Recursion }

// Event is one record of the stream: a decoded kernel transition or a loss notice.
type Event struct {
	Kind     Kind
	Time     uint64 // kernel CLOCK_MONOTONIC ns
	Cookie   uint64 // socket cookie
	CgroupID uint64
	Inode    uint64 // socket inode, 0 if none
	Netns    uint32
	PID      uint32 // owner tgid, 0 when unknown
	TID      uint32 // owner thread
	TaskPID  uint32 // current task when the transition ran (may be unrelated in softirq)
	TaskTID  uint32
	Comm     Comm // owner comm
	TaskComm Comm
	Family   uint16 // 2 (AF_INET) or 10 (AF_INET6)
	Saddr    netip.Addr
	Daddr    netip.Addr
	Sport    uint16
	Dport    uint16
	Err      uint16 // sk_err (errno) at the transition
	Old      State
	New      State
	Flags    Flags
	Lost     Losses // KindLoss: cumulative totals at Time
	TwOp     TwOp   // KindTimeWait: which step
	Remain   uint32 // KindTimeWait, TwFound: ms left on the timewait socket's timer
}

// OwnerKnown reports whether the event carries its socket's owner.
func (e *Event) OwnerKnown() bool {
	return e.Flags&(FlagTaskOwns|FlagOwnerKnown|FlagResolved) != 0
}
