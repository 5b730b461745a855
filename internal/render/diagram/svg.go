package diagram

import (
	"fmt"
	"html"
	"strings"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/ladder"
	"github.com/tcptrace/tcptrace/internal/render/style"
)

// SVG geometry: the time column, the two state columns and the arrows
// between them, one row per ladder row.
const (
	svgW      = 640
	svgTimeX  = 8   // the time column's left edge
	svgLeftX  = 210 // the left column's line
	svgRightX = 470 // the right column's line
	svgHeadH  = 86  // the column heads
	svgRowH   = 30
)

// SVGClass is the CSS class of a state in the SVG ladders, for the page's
// style sheet: "st-established", "st-time-wait", ...
func SVGClass(s events.State) string {
	return "st-" + strings.ReplaceAll(strings.ToLower(s.String()), "_", "-")
}

// SVG draws a shape as an SVG ladder: the left column's process and the
// right's, each step at its median time, the segments as arrows between
// them, and the marks of the active closer and the TIME_WAIT holder. The
// page's style sheet colours it (SVGClass); data attributes name the
// active closer and the holder for tests and scripts. id makes the
// element ids unique in a page that holds several.
func SVG(sh *ladder.Shape, id string) string {
	l := sh.Medians()
	var b strings.Builder
	rows := len(l.Rows) + 1
	h := svgHeadH + rows*svgRowH + 12
	closer, holder := svgMarked(sh.Active, sh.Simul, sh.N), svgMarked(sh.TimeWait, 0, sh.N)
	fmt.Fprintf(&b, `<svg class="ladder" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d"`+
		` role="img" aria-label="%s" data-active-closer="%s" data-time-wait="%s">`,
		svgW, h, svgW, h, esc(svgTitle(sh)), esc(svgSideName(sh.Ladder, closer)), esc(svgSideName(sh.Ladder, holder)))
	fmt.Fprintf(&b, `<defs><marker id="arrow-%s" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">`+
		`<path d="M0,0 L10,5 L0,10 z"/></marker></defs>`, esc(id))
	for x, cx := range [2]int{svgLeftX, svgRightX} {
		svgHead(&b, sh, x, cx)
	}
	top := svgHeadH
	fmt.Fprintf(&b, `<text class="faint" x="%d" y="%d">elapsed</text>`, svgTimeX, top-6)
	for x, cx := range [2]int{svgLeftX, svgRightX} {
		fmt.Fprintf(&b, `<line class="column" x1="%d" y1="%d" x2="%d" y2="%d"/>`, cx, top, cx, top+rows*svgRowH-svgRowH/2)
		if l.Init[x] != events.Unknown {
			svgState(&b, x, cx, top+svgRowH/2, l.Init[x], -1, l.Sides[x] == nil, false)
		}
	}
	for i := range l.Rows {
		r := &l.Rows[i]
		y := top + (i+1)*svgRowH + svgRowH/2
		if !r.Ahead {
			cx := svgLeftX
			if r.Side == 1 {
				cx = svgRightX
			}
			svgState(&b, r.Side, cx, y, r.State, sh.Dur(r.Side, r.Step), r.Inferred, r.Filled)
			if at := sh.At(r.Side, r.Step); !r.Inferred && at >= 0 {
				fmt.Fprintf(&b, `<text class="time" x="%d" y="%d">%s</text>`, svgTimeX, y+4, esc(style.Dur(at, false)))
			}
		}
		if seg := r.Sent; seg != ladder.SegNone {
			svgArrow(&b, seg, r.Side, y, r.Inferred, id)
		}
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// svgMarked returns the column (0 or 1) most of n connections mark, 2 for
// both (simultaneous closes), -1 for none.
func svgMarked(by [2]uint64, both, n uint64) int {
	switch {
	case n == 0:
		return -1
	case both*2 > n:
		return 2
	case by[0] >= by[1] && by[0] > 0:
		return 0
	case by[1] > 0:
		return 1
	}
	return -1
}

// svgSideName names column x of l for the data attributes: "client",
// "server", "both" or "none".
func svgSideName(l *ladder.Ladder, x int) string {
	switch x {
	case 2:
		return "both"
	case 0, 1:
		return strings.ToLower(sideWord(l, x))
	}
	return "none"
}

// svgTitle is the shape's one-line description.
func svgTitle(sh *ladder.Shape) string {
	l := sh.Ladder
	return style.Grouped(sh.N) + " connections " + sideWord(l, 0) + " → " + sideWord(l, 1) + " " + endpointOf(l, 1) +
		", " + anySide(l).End.String()
}

// svgHead writes column x's head: role, endpoint, owner and its marks.
func svgHead(b *strings.Builder, sh *ladder.Shape, x, cx int) {
	l := sh.Ladder
	owner := "(inferred)"
	if s := l.Sides[x]; s != nil {
		owner = "owner unknown"
		if s.Owner.Known() {
			owner = style.Sanitize(s.Owner.Comm.String()) + " (" + itoa(uint64(s.Owner.PID)) + ")"
		}
	}
	lines := []string{sideWord(l, x), aggEndpoint(l, x), owner}
	for i, t := range lines {
		cls := "head"
		if i > 0 {
			cls = "faint"
		}
		fmt.Fprintf(b, `<text class="%s" x="%d" y="%d" text-anchor="middle">%s</text>`, cls, cx, 16+i*15, esc(t))
	}
	y := 16 + len(lines)*15
	if a := sh.Active[x] + sh.Simul; a > 0 {
		fmt.Fprintf(b, `<text class="mark active" x="%d" y="%d" text-anchor="middle">closed first %s</text>`, cx, y, pct(a, sh.N))
		y += 15
	}
	if t := sh.TimeWait[x]; t > 0 {
		fmt.Fprintf(b, `<text class="mark time-wait" x="%d" y="%d" text-anchor="middle">holds TIME_WAIT %s</text>`, cx, y, pct(t, sh.N))
	}
}

// svgState writes a state's label beside its column: left of the left
// column, right of the right one.
func svgState(b *strings.Builder, x, cx, y int, s events.State, dur int64, inferred, filled bool) {
	name, extra := stateText(s, dur, filled, false)
	cls := SVGClass(s)
	if inferred {
		cls += " inferred"
	}
	anchor, tx := "end", cx-8
	if x == 1 {
		anchor, tx = "start", cx+8
	}
	fmt.Fprintf(b, `<circle class="%s" cx="%d" cy="%d" r="4"/>`, cls, cx, y)
	fmt.Fprintf(b, `<text class="state %s" x="%d" y="%d" text-anchor="%s">%s<tspan class="faint">%s</tspan></text>`,
		cls, tx, y+4, anchor, esc(name), esc(extra))
}

// svgArrow writes segment seg sent by column from at row height y, sloping
// down toward the other column as it travels.
func svgArrow(b *strings.Builder, seg ladder.Seg, from, y int, inferred bool, id string) {
	x1, x2 := svgLeftX+6, svgRightX-6
	if from == 1 {
		x1, x2 = x2, x1
	}
	cls := "seg"
	switch {
	case seg == ladder.SegRST:
		cls += " rst"
	case inferred:
		cls += " inferred"
	}
	y2 := y + svgRowH*2/3
	fmt.Fprintf(b, `<line class="%s" x1="%d" y1="%d" x2="%d" y2="%d" marker-end="url(#arrow-%s)"/>`, cls, x1, y, x2, y2, esc(id))
	fmt.Fprintf(b, `<text class="%s label" x="%d" y="%d" text-anchor="middle">%s</text>`, cls, (x1+x2)/2, (y+y2)/2-4, esc(seg.String()))
}

// esc escapes text for SVG inside HTML.
func esc(s string) string { return html.EscapeString(s) }
