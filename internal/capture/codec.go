package capture

import (
	"encoding/binary"
	"errors"
	"net/netip"

	"github.com/tcptrace/tcptrace/internal/events"
)

// Sizes of the coder tables (part of the format: both sides must agree).
const (
	connSlots = 1 << 14 // connections a reference can reach back
	commSlots = 1 << 12 // distinct task names per file
	addrSlots = 8       // recently used addresses
)

// Field bits of an event's mask, most often set first (one varint byte).
const (
	mStates   = 1 << iota // Old and New
	mFlags                // Flags
	mTaskSame             // TaskPID, TaskTID, TaskComm = PID, TID, Comm
	mTaskPID
	mTaskTID
	mTaskComm
	mSport
	mNew // a connection's first event: base is the zero Event, gets the next id
	mDport
	mInode
	mErr
	mPID
	mTID
	mComm
	mAlone // not a transition: base is the zero Event, no id
	mKind
	mCookie
	mCgroup
	mNetns
	mFamily
	mSaddr
	mDaddr
	mLost
	mTwOp   // format 2: TwOp
	mRemain // format 2: Remain
	mAllV1  = mLost<<1 - 1
	mAll    = mRemain<<1 - 1
)

// Address tags.
const (
	aZero = iota
	aV4
	aV6
	aV6Zone
	aRecent // aRecent+k: the k-th recent address
)

var errEncoding = errors.New("bad event encoding")

// coder is the state shared by encoder and decoder: the previous time, the
// last event of each recent connection, the task names and recent addresses.
type coder struct {
	prevTime uint64
	nextID   uint64
	conns    []events.Event // by id % connSlots
	comms    []events.Comm
	addrs    [addrSlots]netip.Addr
	addrNext int
}

func (c *coder) reset() {
	c.prevTime, c.nextID, c.addrNext = 0, 0, 0
	c.conns = c.conns[:0]
	c.comms = c.comms[:0]
	c.addrs = [addrSlots]netip.Addr{}
}

// grow returns the slot of the new connection id, growing the table.
func (c *coder) grow(id uint64) int {
	slot := int(id % connSlots)
	if slot == len(c.conns) {
		c.conns = append(c.conns, events.Event{})
	}
	return slot
}

func (c *coder) pushAddr(a netip.Addr) {
	c.addrs[c.addrNext] = a
	c.addrNext = (c.addrNext + 1) % addrSlots
}

// encoder appends events to a block.
type encoder struct {
	coder
	ids    map[uint64]uint64 // cookie → id of its open connection
	commID map[events.Comm]uint64
}

func newEncoder() *encoder {
	e := &encoder{}
	e.reset()
	return e
}

func (e *encoder) reset() {
	e.coder.reset()
	e.ids = make(map[uint64]uint64)
	e.commID = make(map[events.Comm]uint64)
}

// encode appends ev to b.
func (e *encoder) encode(b []byte, ev *events.Event) []byte {
	var base *events.Event
	var zero events.Event
	var mask uint64
	var ref uint64
	slot := -1
	if ev.Kind != events.KindTransition {
		mask, base = mAlone, &zero
	} else if id, ok := e.ids[ev.Cookie]; ok && e.nextID-id <= connSlots {
		ref = e.nextID - 1 - id
		slot = int(id % connSlots)
		base = &e.conns[slot]
	} else {
		id := e.nextID
		e.nextID++
		slot = e.grow(id)
		if old := &e.conns[slot]; id >= connSlots && e.ids[old.Cookie] == id-connSlots {
			delete(e.ids, old.Cookie)
		}
		e.ids[ev.Cookie] = id
		mask, base = mNew, &zero
	}
	mask |= diff(ev, base)
	b = binary.AppendUvarint(b, mask)
	if mask&(mNew|mAlone) == 0 {
		b = binary.AppendUvarint(b, ref)
	}
	d := int64(ev.Time - e.prevTime)
	b = binary.AppendUvarint(b, uint64(d<<1^d>>63))
	e.prevTime = ev.Time
	b = e.fields(b, mask, ev)
	if slot >= 0 {
		e.conns[slot] = *ev
		if ev.New == events.Close {
			delete(e.ids, ev.Cookie)
		}
	}
	return b
}

// diff returns the mask of ev's fields that differ from base.
func diff(ev, base *events.Event) uint64 {
	var m uint64
	set := func(bit uint64, changed bool) {
		if changed {
			m |= bit
		}
	}
	set(mStates, ev.Old != base.Old || ev.New != base.New)
	set(mFlags, ev.Flags != base.Flags)
	set(mSport, ev.Sport != base.Sport)
	set(mDport, ev.Dport != base.Dport)
	set(mInode, ev.Inode != base.Inode)
	set(mErr, ev.Err != base.Err)
	set(mPID, ev.PID != base.PID)
	set(mTID, ev.TID != base.TID)
	set(mComm, ev.Comm != base.Comm)
	set(mKind, ev.Kind != base.Kind)
	set(mCookie, ev.Cookie != base.Cookie)
	set(mCgroup, ev.CgroupID != base.CgroupID)
	set(mNetns, ev.Netns != base.Netns)
	set(mFamily, ev.Family != base.Family)
	set(mSaddr, ev.Saddr != base.Saddr)
	set(mDaddr, ev.Daddr != base.Daddr)
	set(mLost, ev.Lost != base.Lost)
	set(mTwOp, ev.TwOp != base.TwOp)
	set(mRemain, ev.Remain != base.Remain)
	if ev.TaskPID != base.TaskPID || ev.TaskTID != base.TaskTID || ev.TaskComm != base.TaskComm {
		if ev.TaskPID == ev.PID && ev.TaskTID == ev.TID && ev.TaskComm == ev.Comm {
			m |= mTaskSame
		} else {
			set(mTaskPID, ev.TaskPID != base.TaskPID)
			set(mTaskTID, ev.TaskTID != base.TaskTID)
			set(mTaskComm, ev.TaskComm != base.TaskComm)
		}
	}
	return m
}

// fields appends the fields of mask in decoding order.
func (e *encoder) fields(b []byte, m uint64, ev *events.Event) []byte {
	u := binary.AppendUvarint
	if m&mKind != 0 {
		b = append(b, byte(ev.Kind))
	}
	if m&mCookie != 0 {
		b = u(b, ev.Cookie)
	}
	if m&mCgroup != 0 {
		b = u(b, ev.CgroupID)
	}
	if m&mInode != 0 {
		b = u(b, ev.Inode)
	}
	if m&mNetns != 0 {
		b = u(b, uint64(ev.Netns))
	}
	if m&mPID != 0 {
		b = u(b, uint64(ev.PID))
	}
	if m&mTID != 0 {
		b = u(b, uint64(ev.TID))
	}
	if m&mComm != 0 {
		b = e.comm(b, ev.Comm)
	}
	if m&mTaskPID != 0 {
		b = u(b, uint64(ev.TaskPID))
	}
	if m&mTaskTID != 0 {
		b = u(b, uint64(ev.TaskTID))
	}
	if m&mTaskComm != 0 {
		b = e.comm(b, ev.TaskComm)
	}
	if m&mFamily != 0 {
		b = u(b, uint64(ev.Family))
	}
	if m&mSaddr != 0 {
		b = e.addr(b, ev.Saddr)
	}
	if m&mDaddr != 0 {
		b = e.addr(b, ev.Daddr)
	}
	if m&mSport != 0 {
		b = u(b, uint64(ev.Sport))
	}
	if m&mDport != 0 {
		b = u(b, uint64(ev.Dport))
	}
	if m&mErr != 0 {
		b = u(b, uint64(ev.Err))
	}
	if m&mStates != 0 {
		if ev.Old < 15 && ev.New < 15 {
			b = append(b, byte(ev.Old)<<4|byte(ev.New))
		} else {
			b = append(b, 0xff, byte(ev.Old), byte(ev.New))
		}
	}
	if m&mFlags != 0 {
		b = append(b, byte(ev.Flags))
	}
	if m&mLost != 0 {
		b = u(b, ev.Lost.Ring)
		b = u(b, ev.Lost.Recursion)
	}
	if m&mTwOp != 0 {
		b = append(b, byte(ev.TwOp))
	}
	if m&mRemain != 0 {
		b = u(b, uint64(ev.Remain))
	}
	return b
}

// comm appends a task name: 0 then a literal (added to the table while it
// has room), or 1+its index in the table.
func (e *encoder) comm(b []byte, c events.Comm) []byte {
	if id, ok := e.commID[c]; ok {
		return binary.AppendUvarint(b, id+1)
	}
	n := len(c)
	for n > 0 && c[n-1] == 0 {
		n--
	}
	b = append(b, 0, byte(n))
	b = append(b, c[:n]...)
	if len(e.comms) < commSlots {
		e.commID[c] = uint64(len(e.comms))
		e.comms = append(e.comms, c)
	}
	return b
}

// addr appends an address: a recent one's tag, or a literal.
func (e *encoder) addr(b []byte, a netip.Addr) []byte {
	for k := range e.addrs {
		if e.addrs[k] == a {
			return append(b, byte(aRecent+k))
		}
	}
	e.pushAddr(a)
	switch {
	case !a.IsValid():
		return append(b, aZero)
	case a.Is4():
		v := a.As4()
		return append(append(b, aV4), v[:]...)
	case a.Zone() == "":
		v := a.As16()
		return append(append(b, aV6), v[:]...)
	default:
		v := a.As16()
		b = append(append(b, aV6Zone), v[:]...)
		b = binary.AppendUvarint(b, uint64(len(a.Zone())))
		return append(b, a.Zone()...)
	}
}
