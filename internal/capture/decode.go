package capture

import (
	"fmt"
	"net/netip"

	"github.com/tcptrace/tcptrace/internal/events"
)

// decoder reads events from blocks written by encoder.
type decoder struct {
	coder
	b    []byte // rest of the block
	err  error
	bits uint64 // the field bits the file's format version has
}

// newDecoder returns a decoder of a file in format version v.
func newDecoder(v int) *decoder {
	d := &decoder{bits: mAll}
	if v < 2 {
		d.bits = mAllV1
	}
	d.reset()
	return d
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", errEncoding, what)
	}
	d.b = nil
}

func (d *decoder) uvarint() uint64 {
	b := d.b
	if len(b) > 0 && b[0] < 0x80 {
		d.b = b[1:]
		return uint64(b[0])
	}
	var x uint64
	var s uint
	for i, c := range b {
		if i == 10 || i == 9 && c > 1 {
			break
		}
		if c < 0x80 {
			d.b = b[i+1:]
			return x | uint64(c)<<s
		}
		x |= uint64(c&0x7f) << s
		s += 7
	}
	d.fail("bad varint")
	return 0
}

func (d *decoder) u32(what string) uint32 {
	v := d.uvarint()
	if v > 1<<32-1 {
		d.fail(what + " out of range")
	}
	return uint32(v)
}

func (d *decoder) u16(what string) uint16 {
	v := d.uvarint()
	if v > 1<<16-1 {
		d.fail(what + " out of range")
	}
	return uint16(v)
}

func (d *decoder) byte1() byte {
	if len(d.b) == 0 {
		d.fail("event cut short")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) bytes(n int) []byte {
	if n > len(d.b) {
		d.fail("event cut short")
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

// decode fills ev with the next event of the block.
func (d *decoder) decode(ev *events.Event) error {
	mask := d.uvarint()
	if mask&^d.bits != 0 || mask&(mNew|mAlone) == mNew|mAlone {
		d.fail("unknown field bits")
	}
	slot := -1
	switch {
	case mask&mAlone != 0:
		*ev = events.Event{}
	case mask&mNew != 0:
		slot = d.grow(d.nextID)
		d.nextID++
		*ev = events.Event{}
	default:
		ref := d.uvarint()
		if ref >= d.nextID || ref >= connSlots {
			d.fail("reference to an unknown connection")
			return d.err
		}
		slot = int((d.nextID - 1 - ref) % connSlots)
		*ev = d.conns[slot]
	}
	dt := d.uvarint()
	ev.Time = d.prevTime + uint64(int64(dt>>1)^-int64(dt&1))
	d.prevTime = ev.Time
	d.fields(mask, ev)
	if d.err != nil {
		return d.err
	}
	if slot >= 0 {
		d.conns[slot] = *ev
	}
	return nil
}

func (d *decoder) fields(m uint64, ev *events.Event) {
	if m&mKind != 0 {
		ev.Kind = events.Kind(d.byte1())
	}
	if m&mCookie != 0 {
		ev.Cookie = d.uvarint()
	}
	if m&mCgroup != 0 {
		ev.CgroupID = d.uvarint()
	}
	if m&mInode != 0 {
		ev.Inode = d.uvarint()
	}
	if m&mNetns != 0 {
		ev.Netns = d.u32("netns")
	}
	if m&mPID != 0 {
		ev.PID = d.u32("pid")
	}
	if m&mTID != 0 {
		ev.TID = d.u32("tid")
	}
	if m&mComm != 0 {
		ev.Comm = d.comm()
	}
	if m&mTaskSame != 0 {
		ev.TaskPID, ev.TaskTID, ev.TaskComm = ev.PID, ev.TID, ev.Comm
	}
	if m&mTaskPID != 0 {
		ev.TaskPID = d.u32("task pid")
	}
	if m&mTaskTID != 0 {
		ev.TaskTID = d.u32("task tid")
	}
	if m&mTaskComm != 0 {
		ev.TaskComm = d.comm()
	}
	if m&mFamily != 0 {
		ev.Family = d.u16("family")
	}
	if m&mSaddr != 0 {
		ev.Saddr = d.addr()
	}
	if m&mDaddr != 0 {
		ev.Daddr = d.addr()
	}
	if m&mSport != 0 {
		ev.Sport = d.u16("port")
	}
	if m&mDport != 0 {
		ev.Dport = d.u16("port")
	}
	if m&mErr != 0 {
		ev.Err = d.u16("err")
	}
	if m&mStates != 0 {
		s := d.byte1()
		if s == 0xff {
			ev.Old, ev.New = events.State(d.byte1()), events.State(d.byte1())
		} else {
			ev.Old, ev.New = events.State(s>>4), events.State(s&15)
		}
	}
	if m&mFlags != 0 {
		ev.Flags = events.Flags(d.byte1())
	}
	if m&mLost != 0 {
		ev.Lost.Ring = d.uvarint()
		ev.Lost.Recursion = d.uvarint()
	}
	if m&mTwOp != 0 {
		ev.TwOp = events.TwOp(d.byte1())
	}
	if m&mRemain != 0 {
		ev.Remain = d.u32("remain")
	}
}

func (d *decoder) comm() events.Comm {
	var c events.Comm
	id := d.uvarint()
	if id > 0 {
		if id > uint64(len(d.comms)) {
			d.fail("unknown task name")
			return c
		}
		return d.comms[id-1]
	}
	n := int(d.byte1())
	if n > len(c) {
		d.fail("task name too long")
		return c
	}
	copy(c[:], d.bytes(n))
	if d.err == nil && len(d.comms) < commSlots {
		d.comms = append(d.comms, c)
	}
	return c
}

func (d *decoder) addr() netip.Addr {
	tag := d.byte1()
	var a netip.Addr
	switch {
	case tag >= aRecent && tag < aRecent+addrSlots:
		return d.addrs[tag-aRecent]
	case tag == aZero:
	case tag == aV4:
		if v := d.bytes(4); v != nil {
			a = netip.AddrFrom4([4]byte(v))
		}
	case tag == aV6 || tag == aV6Zone:
		if v := d.bytes(16); v != nil {
			a = netip.AddrFrom16([16]byte(v))
		}
		if tag == aV6Zone {
			n := d.uvarint()
			if n == 0 || n > 1024 {
				d.fail("bad zone")
				return a
			}
			a = a.WithZone(string(d.bytes(int(n))))
		}
	default:
		d.fail("bad address tag")
	}
	d.pushAddr(a)
	return a
}
