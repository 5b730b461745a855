package render

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"

	"github.com/tcptrace/tcptrace/internal/events"
)

// JSON is a Sink that writes one JSON object per line: transitions,
// finished connections, loss notices and, at the end, a summary.
type JSON struct {
	w       io.Writer
	bw      *bufio.Writer // w, when lines can be built in its buffer
	inBw    bool          // the line being built is in bw's buffer
	c       Clock
	lost    events.Losses
	buf     []byte
	scratch []byte // a segment's next text, while an edit builds it
	err     error
	tc      rfcClock
	hosts   hostCache           // the text of the latest addresses
	segs    segCache[jsonIdent] // the connection members of recent transitions
	// Extra, when set, appends fields to each connection record (e.g. the
	// container that owns it).
	Extra func(b []byte, c *events.Conn) []byte
}

// NewJSON returns a JSON-lines view writing to w, one Write per object.
// Wrap w in a bufio.Writer for speed.
func NewJSON(w io.Writer, c Clock) *JSON {
	bw, _ := w.(*bufio.Writer)
	return &JSON{w: w, bw: bw, buf: make([]byte, 0, 512), tc: rfcClock{c: c}}
}

// lineRoom is the free buffer a line is built in; a longer one is copied.
const lineRoom = 4096

// line returns the empty buffer to build the next line in: the bufio
// writer's free space when there is one, so that the line is not copied.
func (j *JSON) line() []byte {
	j.inBw = false
	if j.bw == nil || j.err != nil || j.bw.Size() < 2*lineRoom {
		return j.buf[:0]
	}
	if j.bw.Available() < lineRoom {
		if err := j.bw.Flush(); err != nil {
			j.err = fmt.Errorf("write json: %w", err)
			return j.buf[:0]
		}
	}
	j.inBw = true
	return j.bw.AvailableBuffer()
}

// Err returns the first write error, if any.
func (j *JSON) Err() error { return j.err }

// flush ends the line b (from line) and writes it.
func (j *JSON) flush(b []byte) {
	if j.err != nil {
		return
	}
	b = append(b, '}', '\n')
	if _, err := j.w.Write(b); err != nil {
		j.err = fmt.Errorf("write json: %w", err)
	}
	if !j.inBw {
		j.buf = b[:0] // keep the buffer, grown
	}
}

// Transition writes a {"type":"transition"} object.
func (j *JSON) Transition(t *events.Transition) {
	if t == nil || t.Event == nil {
		return
	}
	ev := t.Event
	b := append(j.line(), `{"type":"transition","time":`...)
	b = j.tc.appendTime(b, ev.Time)
	// tid and cgroup_id are in the connection record; owner_source only
	// when the owner was not seen in a syscall (a line's bytes cost CPU).
	src := events.OwnerUnknown
	if t.Conn != nil {
		src = t.Conn.Owner.Source
	}
	id := jsonIdent{cookie: ev.Cookie, pid: ev.PID, netns: ev.Netns, comm: ev.Comm, source: src,
		family: ev.Family, sport: ev.Sport, dport: ev.Dport, saddr: ev.Saddr, daddr: ev.Daddr}
	seg := j.segs.slot(id.cookie)
	if !seg.ok || !seg.key.same(&id) {
		j.identify(seg, &id)
	}
	b = append(b, seg.text...)
	b = append(b, jsonOld[t.Old]...)
	b = append(b, jsonNew[t.Shown()]...)
	if t.TimeWait {
		b = append(b, jsonKernelNew[t.New]...)
	}
	if t.InOld >= 0 {
		b = appendMicros(append(b, `,"old_us":`...), uint64(t.InOld))
	}
	b = appendFlag(b, `,"inferred":true`, t.Inferred)
	b = appendFlag(b, `,"active_close":true`, t.ActiveClose)
	b = appendFlag(b, `,"reset":true`, t.Reset)
	b = appendFlag(b, `,"time_wait":true`, t.TimeWait)
	b = appendFlag(b, `,"orphan":true`, t.Orphan)
	j.flush(b)
}

// jsonIdent is what a transition object says of its connection, the
// members from "cookie" to "netns": all they read.
type jsonIdent struct {
	cookie               uint64
	pid, netns           uint32
	comm                 events.Comm
	source               events.OwnerSource
	family, sport, dport uint16
	saddr, daddr         netip.Addr
}

// same reports whether k and o are equal (as ==, field by field).
func (k *jsonIdent) same(o *jsonIdent) bool {
	return k.sport == o.sport && k.sameHead(o) && k.sameEndsBut(o)
}

// sameHead reports whether k and o have the members from "cookie" to
// "owner_source" in common.
func (k *jsonIdent) sameHead(o *jsonIdent) bool {
	return k.cookie == o.cookie && k.pid == o.pid && k.source == o.source && k.comm == o.comm
}

// sameEndsBut reports whether k and o have the members from "family" to
// "netns" in common, but for "sport".
func (k *jsonIdent) sameEndsBut(o *jsonIdent) bool {
	return k.dport == o.dport && k.netns == o.netns && k.family == o.family &&
		k.saddr == o.saddr && k.daddr == o.daddr
}

// identify renders id's members into seg. A connection's later transitions
// change its local port (connect picks it) or its owner (an accepted
// socket's own close shows it): those edit the text rendered for the
// connection's earlier transitions instead of rendering it all again.
func (j *JSON) identify(seg *segment[jsonIdent], id *jsonIdent) {
	old := &seg.key
	ends := seg.ok && old.sameEndsBut(id) // all but the port
	switch {
	case ends && old.sameHead(id): // the port
		at, end := seg.span[0], seg.span[1]
		var d [5]byte
		port := appendDec(d[:0], uint64(id.sport))
		if len(port) == end-at {
			copy(seg.text[at:end], port)
		} else {
			j.scratch = append(append(append(j.scratch[:0], seg.text[:at]...), port...), seg.text[end:]...)
			seg.text, j.scratch = j.scratch, seg.text
			seg.span[1] = at + len(port)
		}
	case ends && old.sport == id.sport: // the owner (the same ends)
		j.scratch = j.appendHead(j.scratch[:0], id)
		shift := len(j.scratch) - seg.tail
		j.scratch = append(j.scratch, seg.text[seg.tail:]...)
		seg.text, j.scratch = j.scratch, seg.text
		seg.tail += shift
		seg.span[0], seg.span[1] = seg.span[0]+shift, seg.span[1]+shift
	default:
		seg.text = j.appendHead(seg.text[:0], id)
		seg.tail = len(seg.text)
		seg.text, seg.span = j.appendEnds(seg.text, id.family, id.saddr, id.sport, id.daddr, id.dport, id.netns)
	}
	seg.key, seg.ok = *id, true
}

// appendHead appends the members from "cookie" to "owner_source".
func (j *JSON) appendHead(b []byte, k *jsonIdent) []byte {
	b = appendNum(b, `,"cookie":`, k.cookie)
	b = appendNum(b, `,"pid":`, uint64(k.pid))
	b = appendComm(b, &k.comm)
	if k.source != events.OwnerSyscall {
		b = appendEnum(b, jsonSource, k.source, "owner_source", sourceName)
	}
	return b
}

// endsOf reports whether k's members from "family" to "netns" are those of
// connection c: its latest transition's, usually, which the connection
// object then copies instead of formatting them again.
func (k *jsonIdent) endsOf(c *events.Conn) bool {
	return k.cookie == c.Cookie && k.sport == c.Sport && k.dport == c.Dport && k.netns == c.Netns &&
		k.family == c.Family && k.saddr == c.Saddr && k.daddr == c.Daddr
}

// appendEnds appends the members from "family" to "netns", and returns
// where in b the local port's digits are.
func (j *JSON) appendEnds(b []byte, family uint16, saddr netip.Addr, sport uint16, daddr netip.Addr, dport uint16, netns uint32) ([]byte, [2]int) {
	b = appendFamily(b, family)
	b = appendAddr(b, `,"saddr":"`, saddr, &j.hosts)
	b = append(b, `,"sport":`...)
	at := len(b)
	b = appendDec(b, uint64(sport))
	port := [2]int{at, len(b)}
	b = appendAddr(b, `,"daddr":"`, daddr, &j.hosts)
	b = appendNum(b, `,"dport":`, uint64(dport))
	return appendNum(b, `,"netns":`, uint64(netns)), port
}

// Finished writes a {"type":"connection"} object with the verdict.
func (j *JSON) Finished(c *events.Conn) {
	if c == nil {
		return
	}
	b := append(j.line(), `{"type":"connection","time":`...)
	b = j.tc.appendTime(b, c.Last)
	b = append(b, `,"start":`...)
	b = j.tc.appendTime(b, c.Start)
	b = appendNum(b, `,"cookie":`, c.Cookie)
	b = appendNum(b, `,"pid":`, uint64(c.Owner.PID))
	b = appendNum(b, `,"tid":`, uint64(c.Owner.TID))
	b = appendComm(b, &c.Owner.Comm)
	b = appendEnum(b, jsonSource, c.Owner.Source, "owner_source", sourceName)
	b = appendEnum(b, jsonRole, c.Role, "role", roleName)
	if seg := j.segs.slot(c.Cookie); seg.ok && seg.key.endsOf(c) {
		b = append(b, seg.text[seg.tail:]...)
	} else {
		b, _ = j.appendEnds(b, c.Family, c.Saddr, c.Sport, c.Daddr, c.Dport, c.Netns)
	}
	b = appendNum(b, `,"cgroup_id":`, c.CgroupID)
	b = appendEnum(b, jsonCloser, c.Closer, "closer", closerName)
	b = appendEnum(b, jsonEnd, c.End, "end", endName)
	if c.End == events.EndReset && c.ResetBy != events.SideNone {
		b = appendEnum(b, jsonResetBy, c.ResetBy, "reset_by", sideName)
	}
	if c.TimeWait {
		b = append(b, `,"time_wait":true`...)
	} else {
		b = append(b, `,"time_wait":false`...)
	}
	if c.TwState != events.Unknown {
		b = appendEnum(b, jsonTwState, c.TwState, "timewait_state", events.State.String)
	}
	b = append(b, `,"duration_us":`...)
	if c.Last >= c.Start {
		b = appendMicros(b, c.Last-c.Start)
	} else {
		b = append(b, '0')
	}
	b = append(b, `,"states":[`...)
	for i, s := range c.Spans {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendMicros(append(b, jsonSpan[s.State]...), s.Dur)
		b = append(b, '}')
	}
	b = append(b, ']')
	b = appendFlag(b, `,"partial":true`, c.Partial)
	if c.Inferred > 0 {
		b = appendDec(append(b, `,"inferred":`...), uint64(c.Inferred))
	}
	if c.Err != 0 {
		b = appendStr(b, "err", errnoName(c.Err))
	}
	if j.Extra != nil {
		b = j.Extra(b, c)
	}
	j.flush(b)
}

// Loss writes a {"type":"lost"} object: count is the growth since the
// previous notice, the rest are totals.
func (j *JSON) Loss(ev *events.Event) {
	if ev == nil {
		return
	}
	d := delta(ev.Lost.Ring, j.lost.Ring) + delta(ev.Lost.Recursion, j.lost.Recursion)
	j.lost = ev.Lost
	b := append(j.line(), `{"type":"lost","time":`...)
	b = j.tc.appendTime(b, ev.Time)
	b = appendNum(b, `,"count":`, d)
	b = appendNum(b, `,"ring":`, ev.Lost.Ring)
	b = appendNum(b, `,"recursion":`, ev.Lost.Recursion)
	b = appendNum(b, `,"total":`, ev.Lost.Total())
	j.flush(b)
}

// Summary writes the final {"type":"summary"} object.
func (j *JSON) Summary(s *Summary) error {
	if j.err != nil {
		return j.err
	}
	if s == nil {
		s = &Summary{TimeWaitNow: -1, FinWait2Now: -1}
	}
	out, err := json.Marshal(struct {
		Type string `json:"type"`
		*Summary
	}{"summary", s})
	if err != nil {
		return fmt.Errorf("encode summary: %w", err)
	}
	if _, err := j.w.Write(append(out, '\n')); err != nil {
		j.err = fmt.Errorf("write json: %w", err)
	}
	return j.err
}
