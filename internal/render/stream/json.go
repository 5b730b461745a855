package stream

import (
	"bytes"
	"fmt"
	"io"
	"net/netip"
	"strconv"

	"github.com/tcptrace/tcptrace/internal/clock"
	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/render/jsonstr"
	"github.com/tcptrace/tcptrace/internal/render/style"
)

// JSON is a Sink that writes one JSON object per line: transitions,
// finished connections and loss notices. Its lines are appended by hand,
// member by member (the --json stream is the busiest output), with strings
// escaped as encoding/json escapes them.
type JSON struct {
	w     io.Writer
	times stamps // "2006-01-02T15:04:05" and "Z07:00"
	lost  events.Losses
	buf   []byte
	heads memo[head]     // the owner members of the latest connections
	ends  memo[jsonEnds] // and their ends
	err   error
	// Extra, when set, appends members to each connection record (e.g. the
	// container that owns it).
	Extra func(b []byte, c *events.Conn) []byte
}

// NewJSON returns a JSON-lines view writing to w, one Write per object.
// Wrap w in a bufio.Writer for speed.
func NewJSON(w io.Writer, c clock.Wall) *JSON {
	return &JSON{w: w, times: newStamps(c, "2006-01-02T15:04:05", "Z07:00")}
}

// Err returns the first write error, if any.
func (j *JSON) Err() error { return j.err }

// start begins a line with its type and time: `{"type":"transition","time":`
// (as typ) and the time of mono.
func (j *JSON) start(typ string, mono uint64) []byte {
	return j.appendTime(append(j.buf[:0], typ...), mono)
}

// appendTime appends the wall-clock time of mono, quoted, as
// time.RFC3339Nano formats it.
func (j *JSON) appendTime(b []byte, mono uint64) []byte {
	head, tail, frac := j.times.split(mono)
	b = append(append(b, '"'), head...)
	if frac != 0 { // nine decimals, less the trailing zeros
		b = append(b, '.', byte('0'+frac/1e8), byte('0'+frac/1e7%10), byte('0'+frac/1e6%10),
			byte('0'+frac/1e5%10), byte('0'+frac/1e4%10), byte('0'+frac/1e3%10),
			byte('0'+frac/100%10), byte('0'+frac/10%10), byte('0'+frac%10))
		for b[len(b)-1] == '0' {
			b = b[:len(b)-1]
		}
	}
	return append(append(b, tail...), '"')
}

// end closes the object b and writes it as a line.
func (j *JSON) end(b []byte) {
	b = append(b, '}', '\n')
	j.buf = b
	if j.err != nil {
		return
	}
	if _, err := j.w.Write(b); err != nil {
		j.err = fmt.Errorf("write json: %w", err)
	}
}

// Transition writes a {"type":"transition"} object. Its owner and
// addresses are the event's; tid and cgroup_id are left to the connection
// record, and owner_source is only there when the owner was not seen in a
// syscall.
func (j *JSON) Transition(t *events.Transition) {
	if t == nil || t.Event == nil {
		return
	}
	ev := t.Event
	h := head{cookie: ev.Cookie, pid: ev.PID, comm: ev.Comm, source: events.OwnerUnknown}
	if t.Conn != nil {
		h.source = t.Conn.Owner.Source
	}
	e := jsonEnds{family: ev.Family, saddr: ev.Saddr, sport: ev.Sport, daddr: ev.Daddr, dport: ev.Dport, netns: ev.Netns}
	b := j.start(`{"type":"transition","time":`, ev.Time)
	b = append(b, j.heads.text(ev.Cookie, &h, appendHead)...)
	b = append(b, j.ends.text(ev.Cookie, &e, appendEnds)...)
	b = appendName(b, `,"old":"`, t.Old.String())
	b = appendName(b, `,"new":"`, t.Shown().String())
	if t.TimeWait {
		b = appendName(b, `,"kernel_new":"`, t.New.String())
	}
	if t.InOld >= 0 {
		b = appendMicros(append(b, `,"old_us":`...), uint64(t.InOld))
	}
	b = appendTrue(b, `,"inferred":true`, t.Inferred)
	b = appendTrue(b, `,"active_close":true`, t.ActiveClose)
	b = appendTrue(b, `,"reset":true`, t.Reset)
	b = appendTrue(b, `,"time_wait":true`, t.TimeWait)
	b = appendTrue(b, `,"orphan":true`, t.Orphan)
	j.end(b)
}

// head is what a transition object says of its connection's owner, the
// members from "cookie" to "owner_source": all they read.
type head struct {
	cookie uint64
	pid    uint32
	comm   events.Comm
	source events.OwnerSource
}

// appendHead appends the members from "cookie" to "owner_source", this
// one only when the owner was not seen in a syscall.
func appendHead(b []byte, h *head) []byte {
	b = appendNum(b, `,"cookie":`, h.cookie)
	b = appendNum(b, `,"pid":`, uint64(h.pid))
	b = appendComm(b, &h.comm)
	if h.source != events.OwnerSyscall {
		b = appendName(b, `,"owner_source":"`, h.source.String())
	}
	return b
}

// Finished writes a {"type":"connection"} object with the verdict.
func (j *JSON) Finished(c *events.Conn) {
	if c == nil {
		return
	}
	b := j.start(`{"type":"connection","time":`, c.Last)
	b = j.appendTime(append(b, `,"start":`...), c.Start)
	b = appendNum(b, `,"cookie":`, c.Cookie)
	b = appendNum(b, `,"pid":`, uint64(c.Owner.PID))
	b = appendNum(b, `,"tid":`, uint64(c.Owner.TID))
	b = appendComm(b, &c.Owner.Comm)
	b = appendName(b, `,"owner_source":"`, c.Owner.Source.String())
	b = appendName(b, `,"role":"`, c.Role.String())
	e := jsonEnds{family: c.Family, saddr: c.Saddr, sport: c.Sport, daddr: c.Daddr, dport: c.Dport, netns: c.Netns}
	b = append(b, j.ends.text(c.Cookie, &e, appendEnds)...)
	b = appendNum(b, `,"cgroup_id":`, c.CgroupID)
	b = appendName(b, `,"closer":"`, c.Closer.String())
	b = appendName(b, `,"end":"`, c.End.String())
	if c.End == events.EndReset && c.ResetBy != events.SideNone {
		b = appendName(b, `,"reset_by":"`, c.ResetBy.String())
	}
	b = strconv.AppendBool(append(b, `,"time_wait":`...), c.TimeWait)
	if c.TwState != events.Unknown {
		b = appendName(b, `,"timewait_state":"`, c.TwState.String())
	}
	b = appendMicros(append(b, `,"duration_us":`...), c.Last-min(c.Start, c.Last))
	b = append(b, `,"states":[`...)
	for i, s := range c.Spans {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendName(b, `{"state":"`, s.State.String())
		b = append(appendMicros(append(b, `,"us":`...), s.Dur), '}')
	}
	b = append(b, ']')
	b = appendTrue(b, `,"partial":true`, c.Partial)
	if c.Inferred > 0 {
		b = appendNum(b, `,"inferred_steps":`, uint64(c.Inferred))
	}
	if c.Err != 0 {
		b = appendName(b, `,"err":"`, style.ErrnoName(c.Err))
	}
	if j.Extra != nil {
		b = j.Extra(b, c)
	}
	j.end(b)
}

// Loss writes a {"type":"lost"} object: count is the growth since the
// previous notice, the rest are totals.
func (j *JSON) Loss(ev *events.Event) {
	if ev == nil {
		return
	}
	d := delta(ev.Lost.Ring, j.lost.Ring) + delta(ev.Lost.Recursion, j.lost.Recursion)
	j.lost = ev.Lost
	b := j.start(`{"type":"lost","time":`, ev.Time)
	b = appendNum(b, `,"count":`, d)
	b = appendNum(b, `,"ring":`, ev.Lost.Ring)
	b = appendNum(b, `,"recursion":`, ev.Lost.Recursion)
	b = appendNum(b, `,"total":`, ev.Lost.Total())
	j.end(b)
}

// jsonEnds is what an object says of its connection's ends, the members
// from "family" to "netns": all they read.
type jsonEnds struct {
	family, sport, dport uint16
	netns                uint32
	saddr, daddr         netip.Addr
}

// appendEnds appends the members from "family" to "netns".
func appendEnds(b []byte, e *jsonEnds) []byte {
	b = appendName(b, `,"family":"`, style.FamilyName(e.family))
	b = appendAddr(b, `,"saddr":"`, e.saddr)
	b = appendNum(b, `,"sport":`, uint64(e.sport))
	b = appendAddr(b, `,"daddr":"`, e.daddr)
	b = appendNum(b, `,"dport":`, uint64(e.dport))
	return appendNum(b, `,"netns":`, uint64(e.netns))
}

// The members below are given up to their value: `,"key":` for a number,
// `,"key":"` for a string, the whole member for a flag.

// appendNum appends a member with a number.
func appendNum(b []byte, member string, v uint64) []byte {
	return strconv.AppendUint(append(b, member...), v, 10)
}

// appendName appends a member with a name of tcptrace's own (a state, a
// role, an errno…): letters, digits and underscores, nothing to escape.
func appendName(b []byte, member, name string) []byte {
	return append(append(append(b, member...), name...), '"')
}

// appendAddr appends a member with an address, "" when there is none
// (addresses from the kernel carry no zone: nothing to escape).
func appendAddr(b []byte, member string, a netip.Addr) []byte {
	b = append(b, member...)
	if a.IsValid() {
		b = a.AppendTo(b)
	}
	return append(b, '"')
}

// appendComm appends the "comm" member: the task name up to its NUL.
func appendComm(b []byte, c *events.Comm) []byte {
	name := c[:]
	if i := bytes.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	return jsonstr.Append(append(b, `,"comm":`...), name)
}

// appendTrue appends a flag member when it is set.
func appendTrue(b []byte, member string, set bool) []byte {
	if !set {
		return b
	}
	return append(b, member...)
}

// appendMicros appends ns as microseconds with up to three decimals.
func appendMicros(b []byte, ns uint64) []byte {
	b = strconv.AppendUint(b, ns/1000, 10)
	if f := ns % 1000; f != 0 { // three decimals, less the trailing zeros
		b = append(b, '.', byte('0'+f/100), byte('0'+f/10%10), byte('0'+f%10))
		for b[len(b)-1] == '0' {
			b = b[:len(b)-1]
		}
	}
	return b
}
