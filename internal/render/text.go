package render

import (
	"io"
	"strings"

	"github.com/tcptrace/tcptrace/internal/events"
)

// TimeWaitHold is how long Linux keeps a TIME_WAIT socket (TCP_TIMEWAIT_LEN).
const TimeWaitHold = "60s"

// Text is a Sink that writes one human-readable line per transition.
type Text struct {
	w    io.Writer
	o    Options
	st   *styles
	l    layout
	lost events.Losses
	buf  []byte
	err  error
}

// NewText returns a text view writing to w; it writes the header at once
// unless o.NoHeader. Wrap w in a bufio.Writer for speed when it is not a TTY.
func NewText(w io.Writer, o Options) *Text {
	t := &Text{w: w, o: o, st: newStyles(w, o.Color), l: newLayout(o)}
	if !o.NoHeader {
		t.header()
	}
	return t
}

// Err returns the first write error, if any.
func (t *Text) Err() error { return t.err }

func (t *Text) write(lines ...string) {
	if t.err != nil {
		return
	}
	t.buf = t.buf[:0]
	for _, s := range lines {
		t.buf = append(t.buf, s...)
		t.buf = append(t.buf, '\n')
	}
	_, t.err = t.w.Write(t.buf)
}

func (t *Text) header() {
	l := &t.l
	var b strings.Builder
	b.WriteString(pad("TIME", 4, timeW+1))
	b.WriteString(padLeft("PID", 3, l.pid) + " ")
	b.WriteString(pad("COMM", 4, l.comm+1))
	if l.cookie {
		b.WriteString(padLeft("COOKIE", 6, cookieW) + " ")
		b.WriteString(pad("NETNS", 5, netnsW+1))
	}
	conn := "LOCAL" + l.arrow + "REMOTE"
	b.WriteString(pad(conn, cells(conn), l.conn+1))
	b.WriteString(padLeft("IN-OLD", 6, durW) + "  ")
	b.WriteString("OLD" + l.arrow + "NEW")
	t.write(t.st.paint(t.st.header, b.String()))
}

// Transition writes one line for tr (and a continuation line when its
// remarks do not fit).
func (t *Text) Transition(tr *events.Transition) {
	if tr == nil || tr.Event == nil {
		return
	}
	ev, st, l := tr.Event, t.st, &t.l
	c := tr.Conn
	if c == nil {
		c = &events.Conn{Cookie: ev.Cookie, Family: ev.Family, Saddr: ev.Saddr, Daddr: ev.Daddr,
			Sport: ev.Sport, Dport: ev.Dport, Netns: ev.Netns}
	}
	var b strings.Builder
	b.WriteString(st.paint(st.faint, string(t.o.Clock.Wall(ev.Time).AppendFormat(t.buf[:0], "15:04:05.000000"))))
	b.WriteByte(' ')

	pid, comm := "?", sanitize(ev.Comm.String())
	if ev.PID != 0 {
		pid = itoa(uint64(ev.PID))
	}
	if !c.Owner.Known() {
		comm = "?" + comm
	}
	commW := l.comm - max(0, len(pid)-l.pid)
	comm = truncRight(comm, commW, l.ell)
	who := padLeft(pid, len(pid), l.pid) + " " + pad(comm, cells(comm), commW)
	if c.Owner.Source != events.OwnerSyscall {
		who = st.paint(st.faint, who)
	}
	b.WriteString(who + " ")
	if l.cookie {
		ck := itoa(c.Cookie)
		b.WriteString(padLeft(ck, len(ck), cookieW) + " ")
		ns := itoa(uint64(c.Netns))
		b.WriteString(pad(ns, len(ns), netnsW+1))
	}
	conn := l.endpoints(endpoint(c.Saddr, c.Sport), portText(c.Sport), endpoint(c.Daddr, c.Dport))
	b.WriteString(pad(conn, cells(conn), l.conn+1))
	dur := string(appendDur(t.buf[:0], tr.InOld, t.o.ASCII))
	b.WriteString(padLeft(dur, cells(dur), durW) + " ")

	switch {
	case tr.Reset:
		b.WriteString(st.paint(st.reset, "!"))
	case tr.ActiveClose:
		b.WriteString(st.paint(st.active, "*"))
	case tr.Inferred:
		b.WriteString(st.paint(st.faint, "~"))
	default:
		b.WriteByte(' ')
	}
	shown := tr.Shown()
	oldName, newName := tr.Old.String(), shown.String()
	if l.narrow {
		oldName, newName = shortState(tr.Old), shortState(shown)
	}
	b.WriteString(st.paint(st.state(tr.Old), oldName) + l.arrow + st.paint(st.state(shown), newName))
	used := timeW + 1 + l.pid + 1 + l.comm + 1 + l.conn + 1 + durW + 1 + 1 + cells(oldName+l.arrow+newName)
	if l.cookie {
		used += cookieW + netnsW + 2
	}

	notes := t.notes(tr, c)
	if len(notes) == 0 {
		t.write(b.String())
		return
	}
	inline := 0
	for _, n := range notes {
		inline += 2 + cells(n.text)
	}
	if used+inline <= l.width {
		lines := wrap(st, notes, "", "", l.width)
		t.write(b.String() + "  " + lines[0])
		return
	}
	indent := strings.Repeat(" ", l.contIndent)
	lines := wrap(st, notes, indent+l.branch, indent+strings.Repeat(" ", cells(l.branch)), l.width)
	t.write(append([]string{b.String()}, lines...)...)
}

// notes returns the remarks on tr: active close, reset, TIME_WAIT, inference,
// and on the step into CLOSE the connection's verdict.
func (t *Text) notes(tr *events.Transition, c *events.Conn) []note {
	st := t.st
	var ns []note
	if tr.Inferred {
		ns = append(ns, note{"(inferred)", &st.faint})
	}
	if tr.ActiveClose {
		ns = append(ns, note{"active close", &st.active})
	}
	if tr.Reset {
		ns = append(ns, note{"reset by " + sideName(c.ResetBy), &st.reset})
	}
	if tr.TimeWait {
		ns = append(ns, note{"TIME_WAIT holds " + endpoint(c.Saddr, c.Sport) + " for " + TimeWaitHold, &st.timeWait})
	}
	if tr.New == events.Close {
		v := "closer=" + closerName(c.Closer) + " end=" + endName(c.End) + " role=" + roleName(c.Role)
		if c.Err != 0 {
			v += " err=" + errnoName(c.Err)
		}
		if t.o.Label != nil {
			if l := t.o.Label(c); l != "" {
				v += " " + l
			}
		}
		ns = append(ns, note{v, &st.bold})
	}
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
	if ring+rec == 0 {
		return
	}
	msg := "lost " + itoa(ring+rec) + " events in the kernel (ring buffer full: " + itoa(ring) +
		", recursion guard: " + itoa(rec) + "; " + itoa(ev.Lost.Total()) + " since start) " + t.l.dash +
		" connections around this time may show inferred steps"
	when := string(t.o.Clock.Wall(ev.Time).AppendFormat(t.buf[:0], "15:04:05.000000"))
	first := t.st.paint(t.st.loss, "!!") + " " + t.st.paint(t.st.faint, when)
	lines := wrap(t.st, []note{{msg, &t.st.loss}}, first+" ", "   ", t.l.width)
	t.write(lines...)
}

// delta returns how much a cumulative counter grew (all of it after a reset).
func delta(now, before uint64) uint64 {
	if now < before {
		return now
	}
	return now - before
}
