// Package stream writes the tracker's transitions and finished connections
// as they happen: one line of text per transition for people (Text), one
// JSON object per line for programs (JSON).
package stream

import (
	"bytes"
	"io"
	"strconv"
	"strings"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/render/style"
)

// Text is a Sink that writes one human-readable line per transition. Each
// line is appended to a reused buffer and written at once.
type Text struct {
	w      io.Writer
	o      style.Options
	l      layout
	ink    inks
	times  stamps // "15:04:05"
	lost   events.Losses
	buf    []byte         // the line
	tmp    []byte         // a column, before it is fitted
	owners memo[owner]    // the PID and COMM columns of the latest connections
	ends   memo[ends]     // their COOKIE, NETNS and LOCAL→REMOTE columns
	said   []byte         // the texts of the line's remarks
	notes  [6]style.Inked // the line's remarks
	bare   events.Conn    // the connection of a transition that has none
	err    error
}

// inks are the palette as the text view paints it.
type inks struct {
	header, faint, reset, active, timeWait, loss, bold style.Ink
	state                                              [256]style.Ink // by events.State
}

// newInks renders the palette of st.
func newInks(st *style.Styles) inks {
	k := inks{header: st.Ink(st.Header), faint: st.Ink(st.Faint), reset: st.Ink(st.Reset),
		active: st.Ink(st.Active), timeWait: st.Ink(st.TimeWait), loss: st.Ink(st.Loss), bold: st.Ink(st.Bold)}
	for i := range k.state {
		k.state[i] = st.Ink(st.State(events.State(i)))
	}
	return k
}

// NewText returns a text view writing to w; it writes the header at once
// unless o.NoHeader. Wrap w in a bufio.Writer for speed when it is not a TTY.
func NewText(w io.Writer, o style.Options) *Text {
	t := &Text{w: w, o: o, l: newLayout(o), ink: newInks(style.New(w, o.Color)),
		times: newStamps(o.Clock, "15:04:05", "")}
	if !o.NoHeader {
		t.header()
	}
	return t
}

// Err returns the first write error, if any.
func (t *Text) Err() error { return t.err }

// write writes b, lines ended with a newline, and keeps it as the buffer.
func (t *Text) write(b []byte) {
	t.buf = b
	if t.err == nil {
		_, t.err = t.w.Write(b)
	}
}

func (t *Text) header() {
	l := &t.l
	var b strings.Builder
	b.WriteString(style.Pad("TIME", 4, timeW+1))
	b.WriteString(style.PadLeft("PID", 3, l.pid) + " ")
	b.WriteString(style.Pad("COMM", 4, l.comm+1))
	if l.cookie {
		b.WriteString(style.PadLeft("COOKIE", 6, cookieW) + " ")
		b.WriteString(style.Pad("NETNS", 5, netnsW+1))
	}
	conn := "LOCAL" + l.arrow + "REMOTE"
	b.WriteString(style.Pad(conn, style.Cells(conn), l.conn+1))
	b.WriteString(style.PadLeft("IN-OLD", 6, durW) + "  ")
	b.WriteString("OLD" + l.arrow + "NEW")
	t.write(append(t.ink.header.Paint(t.buf[:0], b.String()), '\n'))
}

// Transition writes one line for tr (and continuation lines when its
// remarks do not fit).
func (t *Text) Transition(tr *events.Transition) {
	if tr == nil || tr.Event == nil || t.err != nil {
		return
	}
	ev, l, ink := tr.Event, &t.l, &t.ink
	c := tr.Conn
	if c == nil {
		t.bare = events.Conn{Cookie: ev.Cookie, Family: ev.Family, Saddr: ev.Saddr, Daddr: ev.Daddr,
			Sport: ev.Sport, Dport: ev.Dport, Netns: ev.Netns}
		c = &t.bare
	}
	b := ink.faint.Open(t.buf[:0])
	b = append(ink.faint.Close(t.appendClock(b, ev.Time)), ' ')
	o := owner{pid: ev.PID, comm: ev.Comm, source: c.Owner.Source}
	b = append(b, t.owners.text(c.Cookie, &o, t.appendOwner)...)
	e := ends{cookie: c.Cookie, netns: c.Netns, saddr: c.Saddr, daddr: c.Daddr, sport: c.Sport, dport: c.Dport}
	b = append(b, t.ends.text(c.Cookie, &e, t.appendEnds)...)
	b = t.appendInOld(b, tr.InOld)
	switch {
	case tr.Reset:
		b = ink.reset.Paint(b, "!")
	case tr.ActiveClose:
		b = ink.active.Paint(b, "*")
	case tr.Inferred:
		b = ink.faint.Paint(b, "~")
	default:
		b = append(b, ' ')
	}
	shown := tr.Shown()
	old, neu := l.state(tr.Old), l.state(shown)
	b = ink.state[tr.Old].Paint(b, old)
	b = ink.state[shown].Paint(append(b, l.arrow...), neu)
	used := l.fixed + len(old) + l.arrowW + len(neu) // state names are ASCII

	notes := t.remarks(tr, c)
	inline := 0
	for _, n := range notes {
		inline += 2 + n.Cells()
	}
	switch {
	case len(notes) == 0:
		b = append(b, '\n')
	case l.pipe: // one line, however wide: key=value words one space apart
		for i, n := range notes {
			sep := " "
			if i == 0 {
				sep = "  "
			}
			b = n.Append(append(b, sep...))
		}
		b = append(b, '\n')
	case used+inline <= l.width: // they all fit on the line: keep its first
		b = append(b, "  "...)
		from := len(b)
		b = style.AppendWrap(b, from, 0, notes, "", l.width)
		if i := bytes.IndexByte(b[from:], '\n'); i >= 0 {
			b = b[:from+i+1]
		} else {
			b = append(b, '\n')
		}
	default:
		b = append(b, '\n')
		b = style.AppendWrap(append(b, l.cont...), len(b), l.contW, notes, l.contRest, l.width)
	}
	t.write(b)
}

// appendClock appends a kernel timestamp as the TIME column shows it,
// "15:04:05.000000".
func (t *Text) appendClock(b []byte, mono uint64) []byte {
	head, _, frac := t.times.split(mono)
	us := frac / 1000
	return append(append(b, head...), '.', byte('0'+us/1e5), byte('0'+us/1e4%10), byte('0'+us/1e3%10),
		byte('0'+us/100%10), byte('0'+us/10%10), byte('0'+us%10))
}

// owner is what the PID and COMM columns show: all they read.
type owner struct {
	pid    uint32
	comm   events.Comm
	source events.OwnerSource
}

// appendOwner appends the PID and COMM columns and the spaces after them,
// faint unless the owner was seen in a syscall.
func (t *Text) appendOwner(b []byte, o *owner) []byte {
	l := &t.l
	var d [10]byte
	pid := append(d[:0], '?')
	if o.pid != 0 {
		pid = strconv.AppendUint(d[:0], uint64(o.pid), 10)
	}
	faint := o.source != events.OwnerSyscall
	if faint {
		b = t.ink.faint.Open(b)
	}
	b = append(append(style.AppendSpaces(b, l.pid-len(pid)), pid...), ' ')
	comm := t.tmp[:0]
	if o.source == events.OwnerUnknown {
		comm = append(comm, '?')
	}
	name := o.comm[:]
	if i := bytes.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	comm = style.AppendSanitized(comm, name)
	t.tmp = comm
	w := l.comm - max(0, len(pid)-l.pid) // a long PID takes from the comm column
	if l.pipe {
		// The name whole: the line widens when it is longer.
		b = style.AppendSpaces(append(b, comm...), w-style.Cells(comm))
	} else {
		var n int
		b, n = style.AppendTruncRight(b, comm, w, l.ell)
		b = style.AppendSpaces(b, w-n)
	}
	if faint {
		b = t.ink.faint.Close(b)
	}
	return append(b, ' ')
}

// appendInOld appends the IN-OLD column and the space after it.
func (t *Text) appendInOld(b []byte, ns int64) []byte {
	var d [24]byte
	dur, n := style.AppendDur(d[:0], ns, t.o.ASCII)
	return append(append(style.AppendSpaces(b, durW-n), dur...), ' ')
}

// Remarks that do not change, on a terminal and (kv) off one.
var (
	inferredText      = []byte("(inferred)")
	activeCloseText   = []byte("active close")
	inferredKV        = []byte("inferred=true")
	activeCloseKV     = []byte("active_close=true")
	timeWaitKV        = []byte("time_wait=true")
	orphanKV          = []byte("orphan=true")
	resetKV, resetBy  = "reset_by=", "reset by "
	timeWaitHoldsText = "TIME_WAIT holds "
)

// remarks returns the remarks on tr: inference, active close, reset,
// TIME_WAIT (or an orphaned FIN_WAIT2 handed to a timewait socket), and on
// the step into CLOSE the connection's verdict; off a terminal each is a
// key=value word (the names of the JSON view). Their texts are in t.said
// until the next call.
func (t *Text) remarks(tr *events.Transition, c *events.Conn) []style.Inked {
	k, kv := &t.ink, t.l.pipe
	ns, said := t.notes[:0], t.said[:0]
	add := func(at int, ink style.Ink) {
		ns = append(ns, style.NewInked(said[at:len(said):len(said)], ink))
	}
	pick := func(term, pipe []byte) []byte {
		if kv {
			return pipe
		}
		return term
	}
	if tr.Inferred {
		ns = append(ns, style.NewInked(pick(inferredText, inferredKV), k.faint))
	}
	if tr.ActiveClose {
		ns = append(ns, style.NewInked(pick(activeCloseText, activeCloseKV), k.active))
	}
	if tr.Reset {
		at := len(said)
		if kv {
			said = append(said, resetKV...)
		} else {
			said = append(said, resetBy...)
		}
		said = append(said, c.ResetBy.String()...)
		add(at, k.reset)
	}
	if tr.TimeWait {
		if kv { // the holder is the line's local end, for TIME_WAIT's 60s
			ns = append(ns, style.NewInked(timeWaitKV, k.timeWait))
		} else {
			at := len(said)
			said = style.AppendEndpoint(append(said, timeWaitHoldsText...), c.Saddr, c.Sport)
			said = append(said, " for "+style.TimeWaitHold...)
			add(at, k.timeWait)
		}
	}
	if tr.Orphan {
		if kv {
			ns = append(ns, style.NewInked(orphanKV, k.timeWait))
		} else {
			at := len(said)
			said = style.AppendEndpoint(append(said, "orphaned FIN_WAIT2: a timewait socket holds "...), c.Saddr, c.Sport)
			said = append(said, " until the peer's FIN (then TIME_WAIT "+style.TimeWaitHold+")"...)
			add(at, k.timeWait)
		}
	}
	if tr.New == events.Close {
		at := len(said)
		said = append(append(said, "closer="...), c.Closer.String()...)
		said = append(append(said, " end="...), c.End.String()...)
		said = append(append(said, " role="...), c.Role.String()...)
		if c.Err != 0 {
			said = append(append(said, " err="...), style.ErrnoName(c.Err)...)
		}
		if t.o.Label != nil {
			if label := t.o.Label(c); label != "" {
				said = append(append(said, ' '), label...)
			}
		}
		add(at, k.bold)
	}
	t.said = said
	return ns
}

// Finished writes nothing: the verdict is shown on the step into CLOSE.
func (t *Text) Finished(*events.Conn) {}

// Loss writes a notice of the events lost since the previous one.
func (t *Text) Loss(ev *events.Event) {
	if ev == nil {
		return
	}
	ring, rec := delta(ev.Lost.Ring, t.lost.Ring), delta(ev.Lost.Recursion, t.lost.Recursion)
	t.lost = ev.Lost
	if ring+rec == 0 || t.err != nil {
		return
	}
	itoa := func(n uint64) string { return strconv.FormatUint(n, 10) }
	msg := "lost " + itoa(ring+rec) + " events in the kernel (ring buffer full: " + itoa(ring) +
		", recursion guard: " + itoa(rec) + "; " + itoa(ev.Lost.Total()) + " since start) " + t.l.dash +
		" connections around this time may show inferred steps"
	k := &t.ink
	b := append(k.loss.Paint(t.buf[:0], "!!"), ' ')
	b = append(k.faint.Close(t.appendClock(k.faint.Open(b), ev.Time)), ' ')
	if t.l.pipe { // one line
		t.write(append(k.loss.Paint(b, msg), '\n'))
		return
	}
	notes := []style.Inked{style.NewInked([]byte(msg), k.loss)}
	if b = style.AppendWrap(b, 0, 2+1+timeW+1, notes, "   ", t.l.width); len(b) > 0 {
		t.write(b)
	}
}

// delta returns how much a cumulative counter grew (all of it after a reset).
func delta(now, before uint64) uint64 {
	if now < before {
		return now
	}
	return now - before
}
