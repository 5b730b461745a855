package probe

import (
	"fmt"
	"net/netip"
	"unsafe"

	"github.com/tcptrace/tcptrace/internal/events"
)

// Record sizes (bpf/tcptrace.h, struct record): an IPv4 transition without
// a known owner is the head alone; one with an owner adds its comm; an IPv6
// one carries the comm slot and both addresses.
const (
	headSize   = int(unsafe.Sizeof(tcptraceEvent{}))
	commSize   = headSize + 16
	RecordSize = int(unsafe.Sizeof(tcptraceRecord{})) // the longest record
)

// Wire flags that are not events.Flags.
const (
	flagComm      = 32  // EVENT_COMM: the record carries the owner's comm
	flagTwConnect = 128 // EVENT_TW_CONNECT: a cancel inside connect() (tcp_tw_reuse)
)

// Record kinds (enum event_kind).
const (
	kindState    = 0 // a state transition
	kindTwStart  = 1 // a timewait socket's timer armed
	kindTwCancel = 2 // ... stopped
	kindTwExpire = 3 // ... ran out
)

// Decode fills ev from one ring-buffer record without allocating.
func Decode(raw []byte, ev *events.Event) error {
	if len(raw) < headSize {
		return fmt.Errorf("decoding event: record of %d bytes, want at least %d", len(raw), headSize)
	}
	h := (*tcptraceEvent)(unsafe.Pointer(&raw[0]))
	need := headSize
	switch {
	case h.Family == afInet6:
		need = RecordSize
	case h.Flags&flagComm != 0:
		need = commSize
	}
	if len(raw) < need {
		return fmt.Errorf("decoding event: record of %d bytes, want %d", len(raw), need)
	}
	flags := events.Flags(h.Flags &^ (flagComm | flagTwConnect))
	*ev = events.Event{
		Kind:     events.KindTransition,
		Time:     h.TsNs,
		Cookie:   h.Cookie,
		CgroupID: h.CgroupId,
		Inode:    h.Ino,
		Netns:    h.Netns,
		Family:   uint16(h.Family),
		Sport:    h.Sport,
		Dport:    h.Dport,
		Err:      h.Err,
		Old:      events.State(h.Oldstate),
		New:      events.State(h.Newstate),
		Flags:    flags,
	}
	// pid/tid are the owner's when the kernel knew it, else the current
	// (interrupted) task's.
	switch {
	case flags&events.FlagTaskOwns != 0:
		ev.PID, ev.TID, ev.TaskPID, ev.TaskTID = h.Pid, h.Tid, h.Pid, h.Tid
	case flags&events.FlagOwnerKnown != 0:
		ev.PID, ev.TID = h.Pid, h.Tid
	default:
		ev.TaskPID, ev.TaskTID = h.Pid, h.Tid
	}
	if h.Flags&flagComm != 0 {
		ev.Comm = *(*events.Comm)(unsafe.Pointer(&raw[headSize]))
		if flags&events.FlagTaskOwns != 0 {
			ev.TaskComm = ev.Comm
		}
	}
	if h.Family == afInet6 {
		r := (*tcptraceRecord)(unsafe.Pointer(&raw[0]))
		ev.Saddr = netip.AddrFrom16(r.Saddr6)
		ev.Daddr = netip.AddrFrom16(r.Daddr6)
	} else {
		ev.Saddr = netip.AddrFrom4(h.Saddr)
		ev.Daddr = netip.AddrFrom4(h.Daddr)
	}
	if h.Kind != kindState {
		return decodeTimeWait(h, ev)
	}
	return nil
}

// decodeTimeWait makes a timer record a timewait step, as the kernel saw
// it: a cancel is a kill (or a reuse) until Next pairs it with the start or
// the expire that follows it.
func decodeTimeWait(h *tcptraceEvent, ev *events.Event) error {
	sub := events.State(h.Newstate)
	ev.Kind = events.KindTimeWait
	ev.Old, ev.New = sub, events.Close
	switch h.Kind {
	case kindTwStart:
		ev.TwOp, ev.Old, ev.New = events.TwStart, events.Unknown, sub
	case kindTwCancel:
		ev.TwOp = events.TwKill
		if h.Flags&flagTwConnect != 0 {
			ev.TwOp = events.TwReuse
		}
	case kindTwExpire:
		ev.TwOp = events.TwExpire
	default:
		return fmt.Errorf("decoding event: unknown record kind %d", h.Kind)
	}
	return nil
}

const (
	afInet  = 2
	afInet6 = 10
)
