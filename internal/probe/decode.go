package probe

import (
	"fmt"
	"net/netip"
	"unsafe"

	"github.com/tcptrace/tcptrace/internal/events"
)

// EventSize is the size of one kernel record (struct event).
const EventSize = int(unsafe.Sizeof(tcptraceEvent{}))

// Decode fills ev from one ring-buffer record without allocating.
func Decode(raw []byte, ev *events.Event) error {
	if len(raw) < EventSize {
		return fmt.Errorf("decoding event: record of %d bytes, want %d", len(raw), EventSize)
	}
	r := (*tcptraceEvent)(unsafe.Pointer(&raw[0]))
	*ev = events.Event{
		Kind:     events.KindTransition,
		Time:     r.TsNs,
		Cookie:   r.Cookie,
		CgroupID: r.CgroupId,
		Inode:    r.Ino,
		Netns:    r.Netns,
		PID:      r.Pid,
		TID:      r.Tid,
		TaskPID:  r.TaskPid,
		TaskTID:  r.TaskTid,
		Comm:     *(*events.Comm)(unsafe.Pointer(&r.Comm)),
		TaskComm: *(*events.Comm)(unsafe.Pointer(&r.TaskComm)),
		Family:   r.Family,
		Sport:    r.Sport,
		Dport:    r.Dport,
		Err:      r.Err,
		Old:      events.State(r.Oldstate),
		New:      events.State(r.Newstate),
		Flags:    events.Flags(r.Flags),
	}
	if r.Family == afInet {
		ev.Saddr = netip.AddrFrom4([4]byte(r.Saddr[:4]))
		ev.Daddr = netip.AddrFrom4([4]byte(r.Daddr[:4]))
	} else {
		ev.Saddr = netip.AddrFrom16(r.Saddr)
		ev.Daddr = netip.AddrFrom16(r.Daddr)
	}
	return nil
}

const (
	afInet  = 2
	afInet6 = 10
)
