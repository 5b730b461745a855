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
const flagComm = 32 // EVENT_COMM: the record carries the owner's comm

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
	flags := events.Flags(h.Flags &^ flagComm)
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
	return nil
}

const (
	afInet  = 2
	afInet6 = 10
)
