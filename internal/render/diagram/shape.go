package diagram

import (
	"strings"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/ladder"
	"github.com/tcptrace/tcptrace/internal/render/style"
)

// pct formats part of n as a percentage, never rounding to 0 or 100.
func pct(part, n uint64) string {
	if n == 0 {
		return "0%"
	}
	p := (part*100 + n/2) / n
	switch {
	case part > 0 && p == 0:
		return "<1%"
	case part < n && p == 100:
		return ">99%"
	}
	return itoa(p) + "%"
}

// drawShapes renders every shape, most frequent first, then what was not drawn.
func (d *drawer) drawShapes(a *ladder.Aggregator, lost events.Losses) [][]string {
	var out [][]string
	shapes := a.Shapes()
	for _, sh := range shapes {
		out = append(out, d.drawShape(sh))
	}
	var tail []style.Note
	if a.Total() == 0 {
		tail = append(tail, style.Note{Text: "no finished connections to aggregate", Style: &d.st.Faint})
	}
	if a.Overflow() > 0 {
		tail = append(tail, style.Note{Text: style.Grouped(a.Overflow()) + " more connections in shapes past the limit of " +
			itoa(uint64(len(shapes))) + " (not drawn)", Style: &d.st.Loss})
	}
	if lost.Total() > 0 {
		tail = append(tail, style.Note{Text: style.Grouped(lost.Total()) + " events lost in the kernel: some steps were filled in", Style: &d.st.Loss})
	}
	if len(tail) > 0 {
		out = append(out, d.footer(tail))
	}
	return out
}

// footer wraps each note on lines of its own.
func (d *drawer) footer(ns []style.Note) []string {
	var out []string
	for _, n := range ns {
		out = append(out, style.Wrap(d.st.Styles, []style.Note{n}, "  ", "    ", d.g.width)...)
	}
	return out
}

// drawShape renders one shape's diagram with its counts and percentiles.
func (d *drawer) drawShape(sh *ladder.Shape) []string {
	l, st, ascii := sh.Ladder, d.st, d.o.ASCII
	h := anySide(l)
	title := st.g.times + style.Grouped(sh.N) + "  " + sideWord(l, 0) + st.g.arrow + sideWord(l, 1) + " " +
		endpointOf(l, 1) + "  " + h.End.String()
	q := "lifetime p50 " + style.Dur(sh.Lifetime(50), ascii) + "  p90 " + style.Dur(sh.Lifetime(90), ascii) +
		"  p99 " + style.Dur(sh.Lifetime(99), ascii) + "  max " + style.Dur(sh.MaxLife, ascii) + "  (times: p50)"
	out := []string{st.Paint(st.title, d.fit(title, d.g.width)), st.Paint(st.Bold, d.fit(q, d.g.width))}
	var heads [2][]string
	for x := 0; x < 2; x++ {
		role, owner := sideWord(l, x), "(inferred)"
		if s := l.Sides[x]; s == nil {
			role += " (inferred)"
		} else if s.Owner.Known() {
			owner = style.Sanitize(s.Owner.Comm.String())
		} else {
			owner = "owner unknown"
		}
		mark := ""
		if a := sh.Active[x] + sh.Simul; a > 0 {
			mark = st.g.mark + " active closer " + pct(a, sh.N)
		}
		heads[x] = []string{role, aggEndpoint(l, x), owner, mark}
	}
	out = append(out, d.header(heads[0], heads[1])...)
	out = append(out, d.rows(sh.Medians(), sh, nil)...)
	var ns []style.Note
	for x := 0; x < 2; x++ {
		if sh.Active[x] > 0 {
			ns = append(ns, style.Note{Text: "active closer: " + sideWord(l, x) + " " + aggEndpoint(l, x) + " in " +
				pct(sh.Active[x], sh.N) + " (" + style.Grouped(sh.Active[x]) + " of " + style.Grouped(sh.N) + ")", Style: &st.Active})
		}
	}
	if sh.Simul > 0 {
		ns = append(ns, style.Note{Text: "active closer: both (simultaneous close) in " + pct(sh.Simul, sh.N), Style: &st.Active})
	}
	if sh.NoFIN > 0 {
		ns = append(ns, style.Note{Text: "no FIN exchange (" + h.End.String() + ") in " + pct(sh.NoFIN, sh.N), Style: &st.Reset})
	}
	tw := false
	for x := 0; x < 2; x++ {
		if sh.TimeWait[x] > 0 {
			tw = true
			ns = append(ns, style.Note{Text: "TIME_WAIT: " + sideWord(l, x) + " holds it in " + pct(sh.TimeWait[x], sh.N) +
				", " + style.TimeWaitHold + " each", Style: &st.TimeWait})
		}
	}
	for x := 0; x < 2; x++ {
		if sh.Orphan[x] > 0 {
			tw = true
			ns = append(ns, style.Note{Text: "orphaned FIN_WAIT2: " + sideWord(l, x) + " in " + pct(sh.Orphan[x], sh.N) +
				", held by a timewait socket until the peer's FIN", Style: &st.TimeWait})
		}
	}
	if !tw {
		ns = append(ns, style.Note{Text: "TIME_WAIT: none", Style: &st.Faint})
	}
	return append(out, d.footer(append(ns, extraNotes(l, st)...))...)
}

// aggEndpoint is column x's endpoint in a shape: the client's port varies.
func aggEndpoint(l *ladder.Ladder, x int) string {
	ep := endpointOf(l, x)
	if x == 0 {
		if i := strings.LastIndexByte(ep, ':'); i >= 0 {
			ep = ep[:i] + ":*"
		}
	}
	return ep
}
