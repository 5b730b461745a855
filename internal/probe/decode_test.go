package probe

import (
	"net/netip"
	"testing"
	"unsafe"

	"github.com/tcptrace/tcptrace/internal/events"
)

// record returns the first n bytes of r as the ring would hold them.
func record(r *tcptraceRecord, n int) []byte {
	return append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(r)), n)...)
}

// TestDecodeShapes: the three record lengths the program writes (64, 80,
// 112 bytes) decode to the fields they carry, and who the pid belongs to
// follows the flags.
func TestDecodeShapes(t *testing.T) {
	if headSize != 64 || commSize != 80 || RecordSize != 112 {
		t.Fatalf("record sizes %d/%d/%d, want 64/80/112 (bpf/tcptrace.h)", headSize, commSize, RecordSize)
	}
	var r tcptraceRecord
	r.E = tcptraceEvent{TsNs: 7, Cookie: 42, CgroupId: 9, Ino: 1234, Netns: 4026531840, Pid: 100, Tid: 101,
		Saddr: [4]uint8{10, 0, 0, 1}, Daddr: [4]uint8{10, 0, 0, 2}, Sport: 5000, Dport: 6379, Err: 111,
		Family: afInet, Oldstate: 4, Newstate: 5}
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&r.Comm[0])), 16), "redis-cli")

	// Softirq, owner unknown to the kernel: the pid is the interrupted task's.
	var ev events.Event
	if err := Decode(record(&r, headSize), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.PID != 0 || ev.TaskPID != 100 || ev.TaskTID != 101 || ev.Comm != (events.Comm{}) {
		t.Errorf("softirq record: pid %d task %d/%d comm %q", ev.PID, ev.TaskPID, ev.TaskTID, ev.Comm.String())
	}
	if ev.Time != 7 || ev.Cookie != 42 || ev.CgroupID != 9 || ev.Inode != 1234 || ev.Netns != 4026531840 ||
		ev.Saddr != netip.MustParseAddr("10.0.0.1") || ev.Daddr != netip.MustParseAddr("10.0.0.2") ||
		ev.Sport != 5000 || ev.Dport != 6379 || ev.Err != 111 || ev.Old != events.FinWait1 || ev.New != events.FinWait2 {
		t.Errorf("softirq record decoded as %+v", ev)
	}

	// A syscall: owner and task, with the comm; the wire-only comm flag
	// does not leak into the event's flags.
	r.E.Flags = uint8(events.FlagTaskOwns) | flagComm
	if err := Decode(record(&r, commSize), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.PID != 100 || ev.TID != 101 || ev.TaskPID != 100 || ev.Comm.String() != "redis-cli" ||
		ev.TaskComm != ev.Comm || ev.Flags != events.FlagTaskOwns {
		t.Errorf("syscall record: pid %d/%d task %d comm %q/%q flags %v", ev.PID, ev.TID, ev.TaskPID,
			ev.Comm.String(), ev.TaskComm.String(), ev.Flags)
	}

	// Owner from the kernel's map: owner, no task.
	r.E.Flags = uint8(events.FlagOwnerKnown|events.FlagOwnerListener) | flagComm
	if err := Decode(record(&r, commSize), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.PID != 100 || ev.TaskPID != 0 || ev.Comm.String() != "redis-cli" || ev.TaskComm != (events.Comm{}) {
		t.Errorf("owner-map record: pid %d task %d comm %q task comm %q", ev.PID, ev.TaskPID, ev.Comm.String(), ev.TaskComm.String())
	}

	// IPv6: the full addresses after the comm slot.
	r.E.Family, r.E.Flags = afInet6, 0
	r.Saddr6 = netip.MustParseAddr("2001:db8::1").As16()
	r.Daddr6 = netip.MustParseAddr("2001:db8::2").As16()
	if err := Decode(record(&r, RecordSize), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Family != afInet6 || ev.Saddr != netip.MustParseAddr("2001:db8::1") || ev.Daddr != netip.MustParseAddr("2001:db8::2") || ev.Comm != (events.Comm{}) {
		t.Errorf("IPv6 record: family %d %v → %v comm %q", ev.Family, ev.Saddr, ev.Daddr, ev.Comm.String())
	}
}

// TestDecodeShort: a record shorter than its flags say is an error, never
// a read past its end.
func TestDecodeShort(t *testing.T) {
	var r tcptraceRecord
	for _, c := range []struct {
		family, flags uint8
		need          int
	}{{afInet, 0, headSize}, {afInet, flagComm, commSize}, {afInet6, 0, RecordSize}} {
		r.E.Family, r.E.Flags = c.family, c.flags
		for n := 0; n < c.need; n++ {
			var ev events.Event
			if err := Decode(record(&r, n), &ev); err == nil {
				t.Errorf("family %d flags %#x: %d bytes decoded, want an error below %d", c.family, c.flags, n, c.need)
			}
		}
		var ev events.Event
		if err := Decode(record(&r, c.need), &ev); err != nil {
			t.Errorf("family %d flags %#x, %d bytes: %v", c.family, c.flags, c.need, err)
		}
	}
}
