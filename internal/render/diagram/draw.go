package diagram

import (
	"io"
	"strings"

	"github.com/charmbracelet/lipgloss"
	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/ladder"
	"github.com/tcptrace/tcptrace/internal/render/style"
)

// Diagram geometry: time column, gap, two state columns around the arrows,
// and from notesAt columns on, a column of remarks.
const (
	timeW   = 8
	gapW    = 2
	cellW   = 20
	wideW   = 22
	arrowW  = 40 // widest arrow; the rest goes to remarks
	wideAt  = 100
	notesAt = 110
	noteMin = 16
)

// geom is the column plan of a diagram for one width.
type geom struct {
	width, cell, arrow, notes int
}

func newGeom(o style.Options) geom {
	g := geom{width: o.Columns(), cell: cellW}
	if g.width >= wideAt {
		g.cell = wideW
	}
	g.arrow = g.width - timeW - gapW - 2*g.cell - 2
	if g.width >= notesAt && g.arrow > arrowW {
		g.arrow = arrowW
		g.notes = g.width - timeW - gapW - 2*g.cell - 2 - g.arrow - gapW
		if g.notes < noteMin {
			g.notes = 0
		}
	}
	return g
}

// rightAt is where the right column starts.
func (g geom) rightAt() int { return timeW + gapW + g.cell + 1 + g.arrow + 1 }

// times gives a ladder's times: at is ns since the first step, dur the time
// spent in the state entered; -1 when unknown. A Ladder gives its own, a
// Shape its medians.
type times interface {
	At(side, step int) int64
	Dur(side, step int) int64
}

// drawer renders ladders for one output.
type drawer struct {
	o  style.Options
	st *styles
	g  geom
}

func newDrawer(w io.Writer, o style.Options) *drawer {
	return &drawer{o: o, st: newStyles(w, o), g: newGeom(o)}
}

// fit cuts s to w cells on a terminal; off one (Options.Pipe) it keeps s
// whole, however wide, for grep.
func (d *drawer) fit(s string, w int) string {
	if d.o.Pipe {
		return s
	}
	return style.TruncRight(s, w, d.st.g.ell)
}

// stateText is a state's label and what follows it: the time spent in it
// (dur ns, -1 unknown; TIME_WAIT's hold), and * when the step was filled in.
func stateText(state events.State, dur int64, filled, ascii bool) (name, extra string) {
	name = state.String()
	if state == events.Close {
		name = "CLOSED"
	}
	switch {
	case state == events.TimeWait && dur == ladder.TimeWaitNs:
		extra = " " + style.TimeWaitHold
	case dur >= 0:
		extra = " " + style.Dur(dur, ascii)
	}
	if filled {
		extra += "*"
	}
	return name, extra
}

// cell renders a state cell of at most g.cell cells.
func (d *drawer) cell(state events.State, dur int64, inferred, filled bool) string {
	name, extra := stateText(state, dur, filled, d.o.ASCII)
	if style.Cells(name)+style.Cells(extra) > d.g.cell {
		name = d.fit(name, d.g.cell-style.Cells(extra))
	}
	pad := 0 // the times in state line up, under their label
	if extra != "" {
		pad = max(0, stateW-1-style.Cells(name))
		extra = strings.Repeat(" ", min(pad, d.g.cell-style.Cells(name)-style.Cells(extra))) + extra
	}
	out := d.st.Paint(d.st.stateStyle(state, inferred), name) + d.st.Paint(d.st.Faint, extra)
	return style.Pad(out, style.Cells(name)+style.Cells(extra), d.g.cell)
}

// stateW is the cells of a state's name and the space after it in a cell,
// before the time spent in it.
const stateW = len("ESTABLISHED ")

// labels is the line that names the time column and the state columns.
func (d *drawer) labels() string {
	col := style.Pad("STATE", len("STATE"), stateW) + "IN STATE"
	if style.Cells(col) > d.g.cell {
		col = "STATE"
	}
	return d.st.Paint(d.st.Faint, d.line("ELAPSED", style.Pad(col, style.Cells(col), d.g.cell), strings.Repeat(" ", d.g.arrow), col, ""))
}

// arrowText renders a segment from side from across g.arrow cells.
func (d *drawer) arrowText(s ladder.Seg, from int, inferred bool) string {
	if s.String() == "" {
		return strings.Repeat(" ", d.g.arrow)
	}
	gl := d.st.g
	label := " " + s.String() + " "
	if d.g.arrow < len(label)+4 {
		label = s.String()
	}
	shaft := gl.line
	if inferred {
		shaft = gl.dash
	}
	n := d.g.arrow - len(label) - 1
	if n < 0 {
		return style.TruncRight(s.String(), d.g.arrow, "")
	}
	a, b := n/2, n-n/2
	sty, lsty := d.st.arrow, d.st.label
	switch {
	case s == ladder.SegRST:
		sty, lsty = d.st.Reset, d.st.Reset
	case inferred:
		sty, lsty = d.st.inferred, d.st.inferred
	}
	p := d.st.Paint
	if from == 0 {
		return p(sty, strings.Repeat(shaft, a)) + p(lsty, label) + p(sty, strings.Repeat(shaft, b)+gl.right)
	}
	return p(sty, gl.left+strings.Repeat(shaft, b)) + p(lsty, label) + p(sty, strings.Repeat(shaft, a))
}

// line joins a row's parts and drops trailing blanks.
func (d *drawer) line(tm, left, arrow, right, note string) string {
	s := style.PadLeft(tm, style.Cells(tm), timeW) + strings.Repeat(" ", gapW) + left + " " + arrow + " " + right
	if d.g.notes > 0 && note != "" {
		if right == "" {
			s += strings.Repeat(" ", d.g.cell)
		}
		s += strings.Repeat(" ", gapW) + d.st.Paint(d.st.Faint, d.fit(note, d.g.notes))
	}
	return strings.TrimRight(s, " ")
}

// header renders a column head: lines of text for the left and right sides.
func (d *drawer) header(left, right []string) []string {
	var out []string
	lw := d.g.rightAt() - timeW - gapW - 1
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
		lt, rt := d.fit(l, lw), d.fit(r, rw)
		s := strings.Repeat(" ", timeW+gapW) + style.Pad(d.st.Paint(d.headStyle(lt, i), lt), style.Cells(lt), max(lw, style.Cells(lt))+1) +
			d.st.Paint(d.headStyle(rt, i), rt)
		out = append(out, strings.TrimRight(s, " "))
	}
	return out
}

// rows renders the labels and the ladder's rows with times tm and per-row
// remarks. The rows are in time order (see ladder.Ladder), so the times
// only go forward.
func (d *drawer) rows(l *ladder.Ladder, tm times, notes func(r *ladder.Row) string) []string {
	last := [2]int{-1, -1}
	for i, r := range l.Rows {
		last[r.Side] = i
	}
	blank := strings.Repeat(" ", d.g.cell)
	colLine := style.Pad(d.st.Paint(d.st.Faint, d.st.g.column), 1, d.g.cell)
	initCell := func(x int) string {
		if l.Init[x] == events.Unknown {
			return style.Pad("?", 1, d.g.cell)
		}
		return d.cell(l.Init[x], -1, l.Sides[x] == nil, false)
	}
	out := []string{d.labels(), d.line("", initCell(0), strings.Repeat(" ", d.g.arrow), strings.TrimRight(initCell(1), " "), "")}
	for i := range l.Rows {
		r := &l.Rows[i]
		var cs [2]string
		for x := 0; x < 2; x++ {
			switch {
			case x == r.Side && !r.Ahead:
				cs[x] = d.cell(r.State, tm.Dur(r.Side, r.Step), r.Inferred, r.Filled)
			case i < last[x]:
				cs[x] = colLine
			default:
				cs[x] = blank
			}
		}
		t := ""
		if !r.Inferred && !r.Ahead {
			switch at := tm.At(r.Side, r.Step); {
			case at == 0:
				t = "0"
			case at > 0:
				t = style.Dur(at, d.o.ASCII)
			}
		}
		note := ""
		if notes != nil {
			note = notes(r)
		}
		out = append(out, d.line(t, cs[0], d.arrowText(r.Sent, r.Side, r.Inferred), strings.TrimRight(cs[1], " "), note))
	}
	return out
}

// sideWord names column x: CLIENT, SERVER, LOCAL or PEER.
func sideWord(l *ladder.Ladder, x int) string {
	h := l.Sides[x]
	if h == nil {
		h = l.Sides[1-x]
		if h == nil {
			return "PEER"
		}
		switch h.Role {
		case events.RoleClient:
			return "SERVER"
		case events.RoleServer:
			return "CLIENT"
		}
		return "PEER"
	}
	switch h.Role {
	case events.RoleClient:
		return "CLIENT"
	case events.RoleServer:
		return "SERVER"
	}
	if l.Sides[1-x] == nil {
		return "LOCAL"
	}
	if x == 0 {
		return "CLIENT?"
	}
	return "SERVER?"
}

// endpointOf returns column x's address:port.
func endpointOf(l *ladder.Ladder, x int) string {
	if h := l.Sides[x]; h != nil {
		return style.Endpoint(h.Local.Addr(), h.Local.Port())
	}
	if h := l.Sides[1-x]; h != nil {
		return style.Endpoint(h.Remote.Addr(), h.Remote.Port())
	}
	return "*"
}

// ownerText returns "comm pid N" fitted in w cells.
func (d *drawer) ownerText(o events.Owner, w int) string {
	if !o.Known() {
		return "owner unknown"
	}
	pid := " pid " + itoa(uint64(o.PID))
	comm := style.Sanitize(o.Comm.String())
	return d.fit(comm, w-len(pid)) + pid
}

// headStyle is the style of line i of a column head reading text.
func (d *drawer) headStyle(text string, i int) lipgloss.Style {
	switch {
	case strings.Contains(text, "(inferred)"):
		return d.st.inferred
	case strings.HasPrefix(text, d.st.g.mark):
		return d.st.Active
	case i == 0:
		return d.st.Bold
	}
	return d.st.Faint
}
