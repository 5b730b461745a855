package diagram

import (
	"strconv"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/ladder"
	"github.com/tcptrace/tcptrace/internal/render/style"
)

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

// columnHead returns column x's head: role, endpoint, owner, marks.
func (d *drawer) columnHead(l *ladder.Ladder, x int, marks []string, w int) []string {
	h := l.Sides[x]
	role := sideWord(l, x)
	owner := "(inferred)"
	if h == nil {
		role += " (inferred)"
	} else {
		owner = d.ownerText(h.Owner, w)
	}
	return append([]string{role, endpointOf(l, x), owner}, marks...)
}

// connHeads returns both column heads of a single connection.
func (d *drawer) connHeads(l *ladder.Ladder, r ladder.Roles) []string {
	var marks [2][]string
	for x := 0; x < 2; x++ {
		marks[x] = []string{"", ""}
		if r.Active[x] {
			marks[x][0] = d.st.g.mark + " active closer"
		}
		if h := l.Sides[x]; h != nil && h.Partial {
			marks[x][1] = "open before trace"
		}
	}
	lw := d.g.rightAt() - timeW - gapW - 1
	rw := d.g.width - d.g.rightAt()
	return d.header(d.columnHead(l, 0, marks[0], lw), d.columnHead(l, 1, marks[1], rw))
}

// who names column x in prose: "CLIENT 127.0.0.1:45676 (curl pid 12)".
func who(l *ladder.Ladder, x int) string {
	s := sideWord(l, x) + " " + endpointOf(l, x)
	if h := l.Sides[x]; h == nil {
		s += " (inferred)"
	} else if h.Owner.Known() {
		s += " (" + style.Sanitize(h.Owner.Comm.String()) + " pid " + itoa(uint64(h.Owner.PID)) + ")"
	}
	return s
}

// anySide returns the left socket, or the right when the left is inferred.
func anySide(l *ladder.Ladder) *ladder.Half {
	if l.Sides[0] != nil {
		return l.Sides[0]
	}
	return l.Sides[1]
}

// verdictNotes explains the close: active closer, TIME_WAIT holders, resets.
func verdictNotes(l *ladder.Ladder, r ladder.Roles, st *styles) []style.Note {
	h := anySide(l)
	if h == nil {
		return nil
	}
	var ns []style.Note
	switch {
	case r.Active[0] && r.Active[1]:
		ns = append(ns, style.Note{Text: "active closer: both (simultaneous close: the FINs crossed)", Style: &st.Active})
	case r.Active[0] || r.Active[1]:
		ns = append(ns, style.Note{Text: "active closer: " + who(l, which(r.Active)) + " sent FIN first", Style: &st.Active})
	case h.End == events.EndRefused:
		x := 1 - l.Local
		if l.Sides[0] != nil && l.Sides[1] != nil {
			x = 1
		}
		ns = append(ns, style.Note{Text: "refused: the SYN was answered by RST (nothing listening on " + endpointOf(l, x) + ")", Style: &st.Reset})
	case h.End == events.EndReset:
		x := resetSender(l)
		ns = append(ns, style.Note{Text: "no FIN: aborted by RST from " + who(l, x) + resetWhy(l, x), Style: &st.Reset})
	default:
		ns = append(ns, style.Note{Text: "active closer: none (" + h.End.String() + errText(h.Err) + ")", Style: &st.Bold})
	}
	switch {
	case r.TimeWait[0] && r.TimeWait[1]:
		ns = append(ns, style.Note{Text: "TIME_WAIT: both sides hold it for " + style.TimeWaitHold, Style: &st.TimeWait})
	case r.TimeWait[0] || r.TimeWait[1]:
		x := which(r.TimeWait)
		hold := " holds it for " + style.TimeWaitHold
		if l.Sides[x] == nil {
			hold = " holds it (" + style.TimeWaitHold + " if Linux)"
		}
		ns = append(ns, style.Note{Text: "TIME_WAIT: " + who(l, x) + hold, Style: &st.TimeWait})
	case r.Orphan[0] || r.Orphan[1]:
		ns = append(ns, style.Note{Text: "TIME_WAIT: not yet: " + who(l, which(r.Orphan)) + " closed in FIN_WAIT2 before the peer's FIN;" +
			" a timewait socket holds it until that FIN, then TIME_WAIT " + style.TimeWaitHold, Style: &st.TimeWait})
	default:
		ns = append(ns, style.Note{Text: "TIME_WAIT: none", Style: &st.Faint})
	}
	return append(ns, extraNotes(l, st)...)
}

// which returns the right column when it is set, else the left.
func which(set [2]bool) int {
	if set[1] {
		return 1
	}
	return 0
}

// extraNotes says what is partial, inferred or filled in.
func extraNotes(l *ladder.Ladder, st *styles) []style.Note {
	var ns []style.Note
	partial, filled := false, false
	for _, h := range l.Sides {
		if h != nil && h.Partial {
			partial = true
		}
	}
	for _, r := range l.Rows {
		filled = filled || r.Filled
	}
	if partial {
		ns = append(ns, style.Note{Text: "already open when tracing started: drawn from the first transition seen", Style: &st.Faint})
	}
	if l.Sides[0] == nil || l.Sides[1] == nil {
		ns = append(ns, style.Note{Text: "the peer was not traced: its column is inferred from the local transitions", Style: &st.inferred})
	}
	if filled {
		ns = append(ns, style.Note{Text: "*: the kernel event was lost; the step was filled in", Style: &st.Faint})
	}
	return ns
}

// resetSender returns the column that sent the RST.
func resetSender(l *ladder.Ladder) int {
	for x, h := range l.Sides {
		if h != nil && h.End == events.EndReset && h.ResetBy == events.SideLocal {
			return x
		}
	}
	for x, h := range l.Sides {
		if h != nil && h.ResetBy == events.SidePeer {
			return 1 - x
		}
	}
	return 0
}

// resetWhy explains a local abort.
func resetWhy(l *ladder.Ladder, x int) string {
	if h := l.Sides[x]; h != nil && h.ResetBy == events.SideLocal {
		return " (SO_LINGER 0, unread data, or the listener went away)"
	}
	return ""
}

// errText formats an errno for prose.
func errText(e uint16) string {
	if e == 0 {
		return ""
	}
	return ", " + style.ErrnoName(e)
}

// connTitle is a connection's first line.
func (d *drawer) connTitle(l *ladder.Ladder) string {
	var start, end uint64 = ^uint64(0), 0
	var cookies string
	for _, h := range l.Sides {
		if h == nil {
			continue
		}
		start, end = min(start, h.Start), max(end, h.Last)
		if cookies != "" {
			cookies += "/"
		}
		cookies += itoa(h.Cookie)
	}
	h := anySide(l)
	s := "TCP " + endpointOf(l, 0) + d.st.g.arrow + endpointOf(l, 1) + "  " + h.End.String() +
		"  lifetime " + style.Dur(ladder.DiffNs(end, start), d.o.ASCII)
	if d.g.width >= wideAt {
		s += "  cookie " + cookies + "  netns " + itoa(uint64(h.Netns))
	}
	return d.st.Paint(d.st.title, d.fit(s, d.g.width))
}

// connNote is the remark on a row of one connection (wide layouts).
func connNote(l *ladder.Ladder, r ladder.Roles) func(w *ladder.Row) string {
	return func(w *ladder.Row) string {
		h := l.Sides[w.Side]
		switch {
		case w.Ahead && w.Sent == ladder.SegSYNACK:
			return "sent by the listener"
		case w.Ahead:
			return ""
		case w.Filled:
			return "event lost, filled in"
		case w.Sent == ladder.SegRST && w.Inferred && l.Sides[1-w.Side] != nil && l.Sides[1-w.Side].End == events.EndRefused:
			return "no listener: RST"
		case w.Sent == ladder.SegRST:
			return "abort: RST"
		case w.State == events.FinWait1 && r.Active[w.Side] && !(r.Active[0] && r.Active[1]):
			return "active close"
		case w.State == events.Closing:
			return "FINs crossed"
		case w.State == events.TimeWait:
			return "holds TIME_WAIT " + style.TimeWaitHold
		case w.State == events.FinWait2 && h != nil && h.Orphan && w.Step == len(h.Steps)-1:
			return "orphaned (timewait)"
		case w.State == events.CloseWait:
			return "app has yet to close"
		case w.State == events.SynRecv && h != nil:
			return "child made on the ACK"
		case w.Inferred:
			return "inferred"
		}
		return ""
	}
}

// drawConn renders one connection's diagram.
func (d *drawer) drawConn(l *ladder.Ladder) []string {
	r := ladder.RolesOf(l)
	out := []string{d.connTitle(l)}
	out = append(out, d.connHeads(l, r)...)
	out = append(out, d.rows(l, l, connNote(l, r))...)
	return append(out, d.footer(verdictNotes(l, r, d.st))...)
}
