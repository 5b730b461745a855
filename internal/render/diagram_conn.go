package render

import "github.com/tcptrace/tcptrace/internal/events"

// roles says, per column, who closed first, who holds TIME_WAIT and who
// an orphaned FIN_WAIT2 (a timewait socket waiting for the peer's FIN).
type roles struct {
	active, timeWait, orphan [2]bool
}

// rolesOf reads the verdicts of a ladder's sockets into its columns.
func rolesOf(l *ladder) roles {
	var r roles
	for x, h := range l.sides {
		if h == nil {
			continue
		}
		switch h.closer {
		case events.CloserLocal:
			r.active[x] = true
		case events.CloserSimultaneous:
			r.active[0], r.active[1] = true, true
		case events.CloserPeer:
			if l.sides[1-x] == nil {
				r.active[1-x] = true
			}
		}
		r.timeWait[x] = r.timeWait[x] || h.timeWait
		r.orphan[x] = r.orphan[x] || h.orphan
		if l.sides[1-x] == nil && peerTimeWait(h) {
			r.timeWait[1-x] = true
		}
	}
	return r
}

// columnHead returns column x's head: role, endpoint, owner, marks.
func (d *drawer) columnHead(l *ladder, x int, marks []string, w int) []string {
	h := l.sides[x]
	role := sideWord(l, x)
	owner := "(inferred)"
	if h == nil {
		role += " (inferred)"
	} else {
		owner = ownerText(h.owner, w, d.st.g.ell)
	}
	return append([]string{role, endpointOf(l, x), owner}, marks...)
}

// connHeads returns both column heads of a single connection.
func (d *drawer) connHeads(l *ladder, r roles) []string {
	var marks [2][]string
	for x := 0; x < 2; x++ {
		marks[x] = []string{"", ""}
		if r.active[x] {
			marks[x][0] = d.st.g.mark + " active closer"
		}
		if h := l.sides[x]; h != nil && h.partial {
			marks[x][1] = "open before trace"
		}
	}
	lw := d.g.rightAt() - dTimeW - dGap - 1
	rw := d.g.width - d.g.rightAt()
	return d.header(d.columnHead(l, 0, marks[0], lw), d.columnHead(l, 1, marks[1], rw))
}

// who names column x in prose: "CLIENT 127.0.0.1:45676 (curl pid 12)".
func who(l *ladder, x int) string {
	s := sideWord(l, x) + " " + endpointOf(l, x)
	if h := l.sides[x]; h == nil {
		s += " (inferred)"
	} else if h.owner.Known() {
		s += " (" + sanitize(h.owner.Comm.String()) + " pid " + itoa(uint64(h.owner.PID)) + ")"
	}
	return s
}

// verdictNotes explains the close: active closer, TIME_WAIT holders, resets.
func verdictNotes(l *ladder, r roles, st *dstyles) []note {
	var ns []note
	h := l.sides[0]
	if h == nil {
		h = l.sides[1]
	}
	if h == nil {
		return nil
	}
	switch {
	case r.active[0] && r.active[1]:
		ns = append(ns, note{"active closer: both (simultaneous close: the FINs crossed)", &st.active})
	case r.active[0] || r.active[1]:
		x := 0
		if r.active[1] {
			x = 1
		}
		ns = append(ns, note{"active closer: " + who(l, x) + " sent FIN first", &st.active})
	case h.end == events.EndRefused:
		x := 1 - l.local
		if l.sides[0] != nil && l.sides[1] != nil {
			x = 1
		}
		ns = append(ns, note{"refused: the SYN was answered by RST (nothing listening on " + endpointOf(l, x) + ")", &st.reset})
	case h.end == events.EndReset:
		x := resetSender(l)
		ns = append(ns, note{"no FIN: aborted by RST from " + who(l, x) + resetWhy(l, x), &st.reset})
	default:
		ns = append(ns, note{"active closer: none (" + endName(h.end) + errText(h.err()) + ")", &st.bold})
	}
	switch {
	case r.timeWait[0] && r.timeWait[1]:
		ns = append(ns, note{"TIME_WAIT: both sides hold it for " + TimeWaitHold, &st.timeWait})
	case r.timeWait[0] || r.timeWait[1]:
		x := 0
		if r.timeWait[1] {
			x = 1
		}
		hold := " holds it for " + TimeWaitHold
		if l.sides[x] == nil {
			hold = " holds it (" + TimeWaitHold + " if Linux)"
		}
		ns = append(ns, note{"TIME_WAIT: " + who(l, x) + hold, &st.timeWait})
	case r.orphan[0] || r.orphan[1]:
		x := 0
		if r.orphan[1] {
			x = 1
		}
		ns = append(ns, note{"TIME_WAIT: not yet: " + who(l, x) + " closed in FIN_WAIT2 before the peer's FIN;" +
			" a timewait socket holds it until that FIN, then TIME_WAIT " + TimeWaitHold, &st.timeWait})
	default:
		ns = append(ns, note{"TIME_WAIT: none", &st.faint})
	}
	return append(ns, extraNotes(l, st)...)
}

// extraNotes says what is partial, inferred or filled in.
func extraNotes(l *ladder, st *dstyles) []note {
	var ns []note
	partial, filled := false, false
	for _, h := range l.sides {
		if h != nil && h.partial {
			partial = true
		}
	}
	for _, r := range l.rows {
		filled = filled || r.filled
	}
	if partial {
		ns = append(ns, note{"already open when tracing started: drawn from the first transition seen", &st.faint})
	}
	if l.sides[0] == nil || l.sides[1] == nil {
		ns = append(ns, note{"the peer was not traced: its column is inferred from the local transitions", &st.inferred})
	}
	if backwards(l) {
		ns = append(ns, note{"times out of order: rows put each send before its receipt", &st.faint})
	}
	if filled {
		ns = append(ns, note{"*: the kernel event was lost; the step was filled in", &st.faint})
	}
	return ns
}

// resetSender returns the column that sent the RST.
func resetSender(l *ladder) int {
	for x, h := range l.sides {
		if h != nil && h.end == events.EndReset && h.resetBy == events.SideLocal {
			return x
		}
	}
	for x, h := range l.sides {
		if h != nil && h.resetBy == events.SidePeer {
			return 1 - x
		}
	}
	return 0
}

// resetWhy explains a local abort.
func resetWhy(l *ladder, x int) string {
	if h := l.sides[x]; h != nil && h.resetBy == events.SideLocal {
		return " (SO_LINGER 0, unread data, or the listener went away)"
	}
	return ""
}

// err returns the errno a half ended with (kept in its end's verdict).
func (h *half) err() uint16 { return h.errno }

// errText formats an errno for prose.
func errText(e uint16) string {
	if e == 0 {
		return ""
	}
	return ", " + errnoName(e)
}

// connTitle is a connection's first line.
func (d *drawer) connTitle(l *ladder) string {
	var start, end uint64 = ^uint64(0), 0
	var cookies string
	for _, h := range l.sides {
		if h == nil {
			continue
		}
		if h.start < start {
			start = h.start
		}
		if h.last > end {
			end = h.last
		}
		if cookies != "" {
			cookies += "/"
		}
		cookies += itoa(h.cookie)
	}
	h := l.sides[0]
	if h == nil {
		h = l.sides[1]
	}
	s := "TCP " + endpointOf(l, 0) + d.st.g.arrow + endpointOf(l, 1) + "  " + endName(h.end) +
		"  lifetime " + formatDur(diffNs(end, start), d.o.ASCII)
	if d.g.width >= wideAt {
		s += "  cookie " + cookies + "  netns " + itoa(uint64(h.netns))
	}
	return d.st.paint(d.st.title, truncRight(s, d.g.width, d.st.g.ell))
}

// connNote is the remark on a row of one connection (wide layouts).
func connNote(l *ladder, r roles) func(r *drow) string {
	return func(w *drow) string {
		h := l.sides[w.side]
		switch {
		case w.filled:
			return "event lost, filled in"
		case w.sent == segRST && w.inferred && l.sides[1-w.side] != nil && l.sides[1-w.side].end == events.EndRefused:
			return "no listener: RST"
		case w.sent == segRST:
			return "abort: RST"
		case w.state == events.FinWait1 && r.active[w.side] && !(r.active[0] && r.active[1]):
			return "active close"
		case w.state == events.Closing:
			return "FINs crossed"
		case w.state == events.TimeWait:
			return "holds TIME_WAIT " + TimeWaitHold
		case w.state == events.FinWait2 && h != nil && h.orphan && w.step == len(h.steps)-1:
			return "orphaned (timewait)"
		case w.state == events.CloseWait:
			return "app has yet to close"
		case w.sent == segSYNACK && h != nil:
			return "child made on the ACK"
		case w.inferred:
			return "inferred"
		}
		return ""
	}
}

// drawConn renders one connection's diagram.
func (d *drawer) drawConn(l *ladder) []string {
	r := rolesOf(l)
	out := []string{d.connTitle(l)}
	out = append(out, d.connHeads(l, r)...)
	out = append(out, d.rows(l, connTimes{l}, connNote(l, r))...)
	return append(out, d.footer(verdictNotes(l, r, d.st))...)
}

// backwards reports whether a pair's rows go back in time.
func backwards(l *ladder) bool {
	var prev uint64
	for _, r := range l.rows {
		h := l.sides[r.side]
		if h == nil || r.step < 0 || r.step >= len(h.steps) {
			continue
		}
		t := h.steps[r.step].T
		if t < prev {
			return true
		}
		prev = t
	}
	return false
}
