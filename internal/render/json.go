package render

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/tcptrace/tcptrace/internal/events"
)

// JSON is a Sink that writes one JSON object per line: transitions,
// finished connections, loss notices and, at the end, a summary.
type JSON struct {
	w    io.Writer
	c    Clock
	lost events.Losses
	buf  []byte
	err  error
	tc   timeCache
	// Extra, when set, appends fields to each connection record (e.g. the
	// container that owns it).
	Extra func(b []byte, c *events.Conn) []byte
}

// NewJSON returns a JSON-lines view writing to w, one Write per object.
// Wrap w in a bufio.Writer for speed.
func NewJSON(w io.Writer, c Clock) *JSON {
	return &JSON{w: w, c: c, buf: make([]byte, 0, 512)}
}

// Err returns the first write error, if any.
func (j *JSON) Err() error { return j.err }

func (j *JSON) flush() {
	if j.err != nil {
		return
	}
	j.buf = append(j.buf, '}', '\n')
	if _, err := j.w.Write(j.buf); err != nil {
		j.err = fmt.Errorf("write json: %w", err)
	}
}

// Transition writes a {"type":"transition"} object.
func (j *JSON) Transition(t *events.Transition) {
	if t == nil || t.Event == nil {
		return
	}
	ev := t.Event
	b := append(j.buf[:0], `{"type":"transition","time":`...)
	b = j.appendTime(b, ev.Time)
	b = appendUint(b, "cookie", ev.Cookie)
	b = appendUint(b, "pid", uint64(ev.PID))
	b = appendComm(b, &ev.Comm)
	// tid and cgroup_id are in the connection record; owner_source only
	// when the owner was not seen in a syscall (a line's bytes cost CPU).
	src := events.OwnerUnknown
	if t.Conn != nil {
		src = t.Conn.Owner.Source
	}
	if src != events.OwnerSyscall {
		b = appendStr(b, "owner_source", sourceName(src))
	}
	b = appendStr(b, "family", familyName(ev.Family))
	b = appendAddr(b, "saddr", ev.Saddr)
	b = appendUint(b, "sport", uint64(ev.Sport))
	b = appendAddr(b, "daddr", ev.Daddr)
	b = appendUint(b, "dport", uint64(ev.Dport))
	b = appendUint(b, "netns", uint64(ev.Netns))
	b = appendStr(b, "old", t.Old.String())
	b = appendStr(b, "new", t.Shown().String())
	if t.TimeWait {
		b = appendStr(b, "kernel_new", t.New.String())
	}
	if t.InOld >= 0 {
		b = append(b, `,"old_us":`...)
		b = appendMicros(b, uint64(t.InOld))
	}
	b = appendTrue(b, "inferred", t.Inferred)
	b = appendTrue(b, "active_close", t.ActiveClose)
	b = appendTrue(b, "reset", t.Reset)
	b = appendTrue(b, "time_wait", t.TimeWait)
	j.buf = b
	j.flush()
}

// Finished writes a {"type":"connection"} object with the verdict.
func (j *JSON) Finished(c *events.Conn) {
	if c == nil {
		return
	}
	b := append(j.buf[:0], `{"type":"connection","time":`...)
	b = j.appendTime(b, c.Last)
	b = append(b, `,"start":`...)
	b = j.appendTime(b, c.Start)
	b = appendUint(b, "cookie", c.Cookie)
	b = appendUint(b, "pid", uint64(c.Owner.PID))
	b = appendUint(b, "tid", uint64(c.Owner.TID))
	b = appendComm(b, &c.Owner.Comm)
	b = appendStr(b, "owner_source", sourceName(c.Owner.Source))
	b = appendStr(b, "role", roleName(c.Role))
	b = appendStr(b, "family", familyName(c.Family))
	b = appendAddr(b, "saddr", c.Saddr)
	b = appendUint(b, "sport", uint64(c.Sport))
	b = appendAddr(b, "daddr", c.Daddr)
	b = appendUint(b, "dport", uint64(c.Dport))
	b = appendUint(b, "netns", uint64(c.Netns))
	b = appendUint(b, "cgroup_id", c.CgroupID)
	b = appendStr(b, "closer", closerName(c.Closer))
	b = appendStr(b, "end", endName(c.End))
	if c.End == events.EndReset && c.ResetBy != events.SideNone {
		b = appendStr(b, "reset_by", sideName(c.ResetBy))
	}
	b = append(b, `,"time_wait":`...)
	b = strconv.AppendBool(b, c.TimeWait)
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
		b = append(b, `{"state":"`...)
		b = append(b, s.State.String()...)
		b = append(b, `","us":`...)
		b = appendMicros(b, s.Dur)
		b = append(b, '}')
	}
	b = append(b, ']')
	b = appendTrue(b, "partial", c.Partial)
	if c.Inferred > 0 {
		b = append(b, `,"inferred":`...)
		b = strconv.AppendInt(b, int64(c.Inferred), 10)
	}
	if c.Err != 0 {
		b = appendStr(b, "err", errnoName(c.Err))
	}
	if j.Extra != nil {
		b = j.Extra(b, c)
	}
	j.buf = b
	j.flush()
}

// Loss writes a {"type":"lost"} object: count is the growth since the
// previous notice, the rest are totals.
func (j *JSON) Loss(ev *events.Event) {
	if ev == nil {
		return
	}
	d := delta(ev.Lost.Ring, j.lost.Ring) + delta(ev.Lost.Recursion, j.lost.Recursion)
	j.lost = ev.Lost
	b := append(j.buf[:0], `{"type":"lost","time":`...)
	b = j.appendTime(b, ev.Time)
	b = appendUint(b, "count", d)
	b = appendUint(b, "ring", ev.Lost.Ring)
	b = appendUint(b, "recursion", ev.Lost.Recursion)
	b = appendUint(b, "total", ev.Lost.Total())
	j.buf = b
	j.flush()
}

// Summary writes the final {"type":"summary"} object.
func (j *JSON) Summary(s *Summary) error {
	if j.err != nil {
		return j.err
	}
	if s == nil {
		s = &Summary{}
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

// appendTime appends the RFC 3339 time (as time.RFC3339Nano formats it) of a
// kernel timestamp, formatting date, clock and zone once per second.
func (j *JSON) appendTime(b []byte, mono uint64) []byte {
	ns := int64(mono) + j.c.Offset
	if ns < 0 {
		b = append(b, '"')
		b = j.c.Wall(mono).AppendFormat(b, time.RFC3339Nano)
		return append(b, '"')
	}
	sec, frac := ns/1e9, ns%1e9
	if !j.tc.ok || sec != j.tc.sec {
		t := j.c.Wall(uint64(sec*1e9 - j.c.Offset))
		j.tc.prefix = t.AppendFormat(append(j.tc.prefix[:0], '"'), "2006-01-02T15:04:05")
		j.tc.zone = t.AppendFormat(j.tc.zone[:0], "Z07:00")
		j.tc.sec, j.tc.ok = sec, true
	}
	b = append(b, j.tc.prefix...)
	if frac != 0 {
		var d [10]byte
		d[0] = '.'
		for i := 9; i >= 1; i-- {
			d[i] = byte('0' + frac%10)
			frac /= 10
		}
		n := 10
		for d[n-1] == '0' {
			n--
		}
		b = append(b, d[:n]...)
	}
	b = append(b, j.tc.zone...)
	return append(b, '"')
}

// timeCache holds the formatted second of the latest JSON time.
type timeCache struct {
	ok     bool
	sec    int64
	prefix []byte // `"2006-01-02T15:04:05`
	zone   []byte // "Z" or "+01:00"
}

func appendUint(b []byte, key string, v uint64) []byte {
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	return strconv.AppendUint(b, v, 10)
}

func appendTrue(b []byte, key string, v bool) []byte {
	if !v {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, key...)
	return append(b, `":true`...)
}

func appendStr(b []byte, key, v string) []byte {
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	return appendQuoted(b, v)
}

// appendComm appends a "comm" member without allocating for plain names.
func appendComm(b []byte, c *events.Comm) []byte {
	b = append(b, `,"comm":`...)
	start := len(b)
	b = append(b, '"')
	for _, ch := range c {
		switch {
		case ch == 0:
			return append(b, '"')
		case ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\':
			return appendQuoted(b[:start], c.String())
		}
		b = append(b, ch)
	}
	return append(b, '"')
}

// appendAddr appends an address as a string, "" when there is none.
func appendAddr(b []byte, key string, a netip.Addr) []byte {
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, `":"`...)
	if a.IsValid() {
		b = a.AppendTo(b)
	}
	return append(b, '"')
}

// appendMicros appends ns as microseconds with up to three decimals.
func appendMicros(b []byte, ns uint64) []byte {
	b = strconv.AppendUint(b, ns/1000, 10)
	if f := ns % 1000; f != 0 {
		b = append(b, '.', byte('0'+f/100), byte('0'+f/10%10), byte('0'+f%10))
		for b[len(b)-1] == '0' {
			b = b[:len(b)-1]
		}
	}
	return b
}

// appendQuoted appends s as a JSON string; invalid UTF-8 becomes U+FFFD.
func appendQuoted(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return append(b, '"')
}
