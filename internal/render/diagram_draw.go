package render

import (
	"strings"

	"github.com/charmbracelet/lipgloss"
	"github.com/tcptrace/tcptrace/internal/events"
)

// Diagram geometry: time column, gap, two state columns around the arrows,
// and from notesAt columns on, a column of remarks.
const (
	dTimeW   = 8
	dGap     = 2
	dCellW   = 20
	dWideW   = 22
	dArrowW  = 40 // widest arrow; the rest goes to remarks
	dNotesAt = 110
	dNoteMin = 16
)

// geom is the column plan of a diagram for one width.
type geom struct {
	width, cell, arrow, notes int
}

func newGeom(o Options) geom {
	g := geom{width: o.width(), cell: dCellW}
	if g.width >= wideAt {
		g.cell = dWideW
	}
	g.arrow = g.width - dTimeW - dGap - 2*g.cell - 2
	if g.width >= dNotesAt && g.arrow > dArrowW {
		g.arrow = dArrowW
		g.notes = g.width - dTimeW - dGap - 2*g.cell - 2 - g.arrow - dGap
		if g.notes < dNoteMin {
			g.notes = 0
		}
	}
	return g
}

// rightAt is where the right column starts.
func (g geom) rightAt() int { return dTimeW + dGap + g.cell + 1 + g.arrow + 1 }

// times gives a ladder's times: at is ns since the first step, dur the time
// spent in the state entered; -1 when unknown.
type times interface {
	at(side, step int) int64
	dur(side, step int) int64
}

// connTimes are one connection's own times.
type connTimes struct{ l *ladder }

func (c connTimes) at(side, step int) int64 {
	h := c.l.sides[side]
	if h == nil || step < 0 || step >= len(h.steps) {
		return -1
	}
	return diffNs(h.steps[step].T, c.l.t0)
}

func (c connTimes) dur(side, step int) int64 {
	if h := c.l.sides[side]; h != nil {
		return durOf(h, step)
	}
	return -1
}

// drawer renders ladders for one output.
type drawer struct {
	o  Options
	st *dstyles
	g  geom
}

// cell renders a state cell of at most g.cell cells.
func (d *drawer) cell(state events.State, dur int64, inferred, filled bool) string {
	name := state.String()
	if state == events.Close {
		name = "CLOSED"
	}
	extra := ""
	switch {
	case state == events.TimeWait && dur == timeWaitNs:
		extra = " " + TimeWaitHold
	case dur >= 0:
		extra = " " + formatDur(dur, d.o.ASCII)
	}
	if filled {
		extra += "*"
	}
	if cells(name)+cells(extra) > d.g.cell {
		name = truncRight(name, d.g.cell-cells(extra), d.st.g.ell)
	}
	st := d.st.stateStyle(state, inferred)
	out := d.st.paint(st, name) + d.st.paint(d.st.faint, extra)
	return pad(out, cells(name)+cells(extra), d.g.cell)
}

// arrowText renders a segment from side from across g.arrow cells.
func (d *drawer) arrowText(s seg, from int, inferred bool) string {
	if s == segNone || int(s) >= len(segNames) {
		return strings.Repeat(" ", d.g.arrow)
	}
	gl := d.st.g
	label := " " + segNames[s] + " "
	if d.g.arrow < len(label)+4 {
		label = segNames[s]
	}
	shaft := gl.line
	if inferred {
		shaft = gl.dash
	}
	n := d.g.arrow - len(label) - 1
	if n < 0 {
		return truncRight(segNames[s], d.g.arrow, "")
	}
	a, b := n/2, n-n/2
	sty, lsty := d.st.arrow, d.st.label
	switch {
	case s == segRST:
		sty, lsty = d.st.reset, d.st.reset
	case inferred:
		sty, lsty = d.st.inferred, d.st.inferred
	}
	p := func(st lipgloss.Style, t string) string { return d.st.paint(st, t) }
	if from == 0 {
		return p(sty, strings.Repeat(shaft, a)) + p(lsty, label) + p(sty, strings.Repeat(shaft, b)+gl.right)
	}
	return p(sty, gl.left+strings.Repeat(shaft, b)) + p(lsty, label) + p(sty, strings.Repeat(shaft, a))
}

// line joins a row's parts and drops trailing blanks.
func (d *drawer) line(tm, left, arrow, right, note string) string {
	s := padLeft(tm, cells(tm), dTimeW) + strings.Repeat(" ", dGap) + left + " " + arrow + " " + right
	if d.g.notes > 0 && note != "" {
		if right == "" {
			s += strings.Repeat(" ", d.g.cell)
		}
		s += strings.Repeat(" ", dGap) + d.st.paint(d.st.faint, truncRight(note, d.g.notes, d.st.g.ell))
	}
	return strings.TrimRight(s, " ")
}

// header renders a column head: lines of text for the left and right sides.
func (d *drawer) header(left, right []string) []string {
	var out []string
	lw := d.g.rightAt() - dTimeW - dGap - 1
	rw := d.g.width - d.g.rightAt()
	for i := 0; i < len(left) || i < len(right); i++ {
		var l, r string
		if i < len(left) {
			l = left[i]
		}
		if i < len(right) {
			r = right[i]
		}
		if l == "" && r == "" {
			continue
		}
		lt, rt := truncRight(l, lw, d.st.g.ell), truncRight(r, rw, d.st.g.ell)
		s := strings.Repeat(" ", dTimeW+dGap) + pad(d.st.paint(d.headStyle(lt, i), lt), cells(lt), lw+1) +
			d.st.paint(d.headStyle(rt, i), rt)
		out = append(out, strings.TrimRight(s, " "))
	}
	return out
}

// rows renders the ladder's rows with times tm and per-row remarks.
func (d *drawer) rows(l *ladder, tm times, notes func(r *drow) string) []string {
	gl := d.st.g
	last := [2]int{-1, -1}
	for i, r := range l.rows {
		last[r.side] = i
	}
	blank := strings.Repeat(" ", d.g.cell)
	colLine := pad(d.st.paint(d.st.faint, gl.column), 1, d.g.cell)
	inferredSide := func(x int) bool { return l.sides[x] == nil }
	initCell := func(x int) string {
		if l.init[x] == events.Unknown {
			return pad("?", 1, d.g.cell)
		}
		return d.cell(l.init[x], -1, inferredSide(x), false)
	}
	out := []string{d.line("", initCell(0), strings.Repeat(" ", d.g.arrow), strings.TrimRight(initCell(1), " "), "")}
	for i := range l.rows {
		r := &l.rows[i]
		var cs [2]string
		for x := 0; x < 2; x++ {
			switch {
			case x == r.side:
				cs[x] = d.cell(r.state, tm.dur(r.side, r.step), r.inferred, r.filled)
			case i < last[x]:
				cs[x] = colLine
			default:
				cs[x] = blank
			}
		}
		t := ""
		if !r.inferred {
			switch at := tm.at(r.side, r.step); {
			case at == 0:
				t = "0"
			case at > 0:
				t = formatDur(at, d.o.ASCII)
			}
		}
		note := ""
		if notes != nil {
			note = notes(r)
		}
		out = append(out, d.line(t, cs[0], d.arrowText(r.sent, r.side, r.inferred), strings.TrimRight(cs[1], " "), note))
	}
	return out
}

// sideWord names column x: CLIENT, SERVER, LOCAL or PEER.
func sideWord(l *ladder, x int) string {
	h := l.sides[x]
	if h == nil {
		h = l.sides[1-x]
		if h == nil {
			return "PEER"
		}
		switch h.role {
		case events.RoleClient:
			return "SERVER"
		case events.RoleServer:
			return "CLIENT"
		}
		return "PEER"
	}
	switch h.role {
	case events.RoleClient:
		return "CLIENT"
	case events.RoleServer:
		return "SERVER"
	}
	if l.sides[1-x] == nil {
		return "LOCAL"
	}
	if x == 0 {
		return "CLIENT?"
	}
	return "SERVER?"
}

// endpointOf returns column x's address:port.
func endpointOf(l *ladder, x int) string {
	if h := l.sides[x]; h != nil {
		return endpoint(h.local.Addr(), h.local.Port())
	}
	if h := l.sides[1-x]; h != nil {
		return endpoint(h.remote.Addr(), h.remote.Port())
	}
	return "*"
}

// ownerText returns "comm pid N" fitted in w cells.
func ownerText(o events.Owner, w int, ell string) string {
	if !o.Known() {
		return "owner unknown"
	}
	pid := " pid " + itoa(uint64(o.PID))
	comm := sanitize(o.Comm.String())
	return truncRight(comm, w-len(pid), ell) + pid
}

// headStyle is the style of line i of a column head reading text.
func (d *drawer) headStyle(text string, i int) lipgloss.Style {
	switch {
	case strings.Contains(text, "(inferred)"):
		return d.st.inferred
	case strings.HasPrefix(text, d.st.g.mark):
		return d.st.active
	case i == 0:
		return d.st.bold
	}
	return d.st.faint
}
