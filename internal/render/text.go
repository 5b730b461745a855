package render

import (
	"bytes"
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
	buf  []byte // the lines being written
	tmp  []byte // scratch for a column
	rs   [5]remark
	nb   noteBufs
	err  error

	hosts hostCache
	segs  segCache[whoConn]
	clock clockText
}

// NewText returns a text view writing to w; it writes the header at once
// unless o.NoHeader. Wrap w in a bufio.Writer for speed when it is not a TTY.
func NewText(w io.Writer, o Options) *Text {
	t := &Text{w: w, o: o, st: newStyles(w, o.Color), l: newLayout(o), clock: clockText{c: o.Clock}}
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
	if tr == nil || tr.Event == nil || t.err != nil {
		return
	}
	ev, ik, l := tr.Event, &t.st.ink, &t.l
	c := tr.Conn
	if c == nil {
		c = &events.Conn{Cookie: ev.Cookie, Family: ev.Family, Saddr: ev.Saddr, Daddr: ev.Daddr,
			Sport: ev.Sport, Dport: ev.Dport, Netns: ev.Netns}
	}
	b := ik.faint.begin(t.buf[:0])
	b = append(ik.faint.end(t.clock.appendTime(b, ev.Time), 0), ' ')

	wc := newWhoConn(ev, c)
	seg := t.segs.slot(wc.cookie)
	if !seg.ok || !seg.key.same(&wc) {
		seg.key, seg.ok = wc, true
		seg.text = t.appendWhoConn(seg.text[:0], &wc)
	}
	b = append(b, seg.text...)
	b = t.appendInOld(b, tr.InOld)

	switch {
	case tr.Reset:
		b = ik.reset.paint(b, "!")
	case tr.ActiveClose:
		b = ik.active.paint(b, "*")
	case tr.Inferred:
		b = ik.faint.paint(b, "~")
	default:
		b = append(b, ' ')
	}
	shown, form := tr.Shown(), 0
	if l.narrow {
		form = 1
	}
	old, neu := &stateTexts[tr.Old], &stateTexts[shown]
	b = t.st.stateInk(tr.Old).paint(b, old.name[form])
	b = t.st.stateInk(shown).paint(append(b, l.arrow...), neu.name[form])
	used := l.fixed + old.cells[form] + l.arrowW + neu.cells[form]

	rs := t.notes(tr, c)
	inline := 0
	for _, r := range rs {
		inline += 2 + r.cells
	}
	switch {
	case len(rs) == 0:
		b = append(b, '\n')
	case used+inline <= l.width:
		b = append(b, "  "...)
		from := len(b)
		b = appendWrap(b, from, 0, "", 0, l.width, rs)
		if i := bytes.IndexByte(b[from:], '\n'); i >= 0 {
			b = b[:from+i+1] // the first line: they all fit in it
		} else {
			b = append(b, '\n')
		}
	default:
		b = append(b, '\n')
		from := len(b)
		b = appendWrap(append(b, l.cont...), from, l.contW, l.contRest, l.contRestW, l.width, rs)
	}
	t.buf = b
	_, t.err = t.w.Write(b)
}

// Remarks shown after a transition, when they apply, measured once.
var (
	inferredRemark    = newRemark([]byte("(inferred)"), nil)
	activeCloseRemark = newRemark([]byte("active close"), nil)
)

// inked returns r in k.
func inked(r remark, k *ink) remark {
	r.ink = k
	return r
}

// notes returns the remarks on tr: active close, reset, TIME_WAIT (or an
// orphaned FIN_WAIT2 handed to a timewait socket), inference, and on the
// step into CLOSE the connection's verdict.
func (t *Text) notes(tr *events.Transition, c *events.Conn) []remark {
	ik, nb := &t.st.ink, &t.nb
	rs := t.rs[:0]
	if tr.Inferred {
		rs = append(rs, inked(inferredRemark, &ik.faint))
	}
	if tr.ActiveClose {
		rs = append(rs, inked(activeCloseRemark, &ik.active))
	}
	if tr.Reset {
		nb.reset = append(append(nb.reset[:0], "reset by "...), sideName(c.ResetBy)...)
		rs = append(rs, newRemark(nb.reset, &ik.reset))
	}
	if tr.TimeWait {
		b := appendEndpoint(append(nb.timeWait[:0], "TIME_WAIT holds "...), c.Saddr, c.Sport, &t.hosts)
		nb.timeWait = append(b, " for "+TimeWaitHold...)
		rs = append(rs, newRemark(nb.timeWait, &ik.timeWait))
	}
	if tr.Orphan {
		b := appendEndpoint(append(nb.timeWait[:0], "orphaned FIN_WAIT2: a timewait socket holds "...), c.Saddr, c.Sport, &t.hosts)
		nb.timeWait = append(b, " until the peer's FIN (then TIME_WAIT "+TimeWaitHold+")"...)
		rs = append(rs, newRemark(nb.timeWait, &ik.timeWait))
	}
	if tr.New == events.Close {
		v := append(append(nb.verdict[:0], "closer="...), closerName(c.Closer)...)
		v = append(append(v, " end="...), endName(c.End)...)
		v = append(append(v, " role="...), roleName(c.Role)...)
		if c.Err != 0 {
			v = append(append(v, " err="...), errnoName(c.Err)...)
		}
		if t.o.Label != nil {
			if l := t.o.Label(c); l != "" {
				v = append(append(v, ' '), l...)
			}
		}
		nb.verdict = v
		rs = append(rs, newRemark(v, &ik.bold))
	}
	return rs
}

// noteBufs hold the text of the remarks that are not constant.
type noteBufs struct {
	reset, timeWait, verdict []byte
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
	msg := "lost " + itoa(ring+rec) + " events in the kernel (ring buffer full: " + itoa(ring) +
		", recursion guard: " + itoa(rec) + "; " + itoa(ev.Lost.Total()) + " since start) " + t.l.dash +
		" connections around this time may show inferred steps"
	ik := &t.st.ink
	b := append(ik.loss.paint(t.buf[:0], "!!"), ' ')
	from := len(b)
	b = ik.faint.begin(b)
	at := len(b)
	b = t.clock.appendTime(b, ev.Time)
	when := len(b) - at
	b = append(ik.faint.end(b, from), ' ')
	rs := [1]remark{newRemark([]byte(msg), &ik.loss)}
	b = appendWrap(b, 0, 2+1+when+1, "   ", 3, t.l.width, rs[:])
	t.buf = b
	_, t.err = t.w.Write(b)
}

// delta returns how much a cumulative counter grew (all of it after a reset).
func delta(now, before uint64) uint64 {
	if now < before {
		return now
	}
	return now - before
}
