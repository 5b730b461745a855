package render

import (
	"time"

	"github.com/tcptrace/tcptrace/internal/diagnosis"
	"github.com/tcptrace/tcptrace/internal/events"
)

// fastTimeWaitEnd reports whether appendTimeWaitEnd can write e's line.
func fastTimeWaitEnd(e *diagnosis.TimeWaitEnd) bool {
	return e.Held >= 0 && plainComm(&e.Owner.Comm)
}

// plainComm reports whether c needs neither sanitizing for text nor
// escaping for JSON (encoding/json escapes <, > and &): printable ASCII
// other than those and the quote and backslash.
func plainComm(c *events.Comm) bool {
	for _, ch := range c {
		switch {
		case ch == 0:
			return true
		case ch < 0x20 || ch > 0x7e, ch == '"', ch == '\\', ch == '<', ch == '>', ch == '&':
			return false
		}
	}
	return true
}

// commBytes is c up to its NUL.
func commBytes(c *events.Comm) []byte {
	for i, ch := range c {
		if ch == 0 {
			return c[:i]
		}
	}
	return c[:]
}

// appendTimeWaitEnd appends TimeWaitEnd's line for an owner with a plain
// comm, byte for byte what its general path writes.
func (v *Warnings) appendTimeWaitEnd(b []byte, e *diagnosis.TimeWaitEnd) []byte {
	comm := commBytes(&e.Owner.Comm)
	if v.json {
		b = append(b, `{"type":"time_wait_end","time":"`...)
		b = v.o.Clock.Wall(e.Time).AppendFormat(b, time.RFC3339Nano)
		b = appendNum(append(b, '"'), `,"cookie":`, e.Cookie)
		b = appendNum(b, `,"pid":`, uint64(e.Owner.PID))
		b = append(append(append(b, `,"comm":"`...), comm...), '"')
		b = appendNum(b, `,"netns":`, uint64(e.Dest.Netns))
		b = appendAddr(b, `,"saddr":"`, e.Dest.Saddr, nil)
		b = appendNum(b, `,"sport":`, uint64(e.Sport))
		b = appendAddr(b, `,"daddr":"`, e.Dest.Daddr, nil)
		b = appendNum(b, `,"dport":`, uint64(e.Dest.Dport))
		return append(appendDec(append(b, `,"held_us":`...), uint64(e.Held.Microseconds())), '}', '\n')
	}
	var ts [32]byte
	b = v.st.ink.faint.paintBytes(b, v.o.Clock.Wall(e.Time).AppendFormat(ts[:0], "15:04:05.000000"))
	b = append(b, "    TIME_WAIT over: "...)
	if e.Owner.PID == 0 && len(comm) == 0 {
		b = append(b, '?')
	} else {
		b = append(appendDec(append(append(b, comm...), " ("...), uint64(e.Owner.PID)), ')')
	}
	b = appendEndpoint(append(b, ' '), e.Dest.Saddr, e.Sport, nil)
	b = append(append(append(b, ' '), arrow(v.o)...), ' ')
	if e.Dest.Lport != 0 {
		b = appendDec(append(b, "clients of local :"...), uint64(e.Dest.Lport))
	} else {
		b = appendEndpoint(b, e.Dest.Daddr, e.Dest.Dport, nil)
	}
	b = appendDur(append(b, " after "...), e.Held.Nanoseconds(), v.o.ASCII)
	return append(b, '\n')
}
