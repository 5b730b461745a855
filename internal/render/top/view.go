package top

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tcptrace/tcptrace/internal/diagnosis"
	"github.com/tcptrace/tcptrace/internal/render/report"
	"github.com/tcptrace/tcptrace/internal/render/style"
)

// Screen bounds.
const (
	MinWidth   = 80
	MinHeight  = 24
	wideAt     = 145         // the wide layout's width
	sparkSpan  = time.Minute // the sparkline's history
	maxProcs   = 8           // process rows at most
	maxWarns   = 3           // warning lines
	fixedLines = 9           // header 2, blank, titles and headers 4, keys 1, blank 1
)

// View draws the screen.
func (m *Model) View() string {
	if m.quit {
		return ""
	}
	if m.w < MinWidth || m.h < MinHeight {
		return fmt.Sprintf("tcptrace top needs a terminal of at least %dx%d; this one is %dx%d.\nq quits.",
			MinWidth, MinHeight, m.w, m.h)
	}
	var out []string
	out = append(out, m.header()...)
	if m.open != nil {
		out = append(out, m.ladders()...)
	} else {
		out = append(out, m.tables()...)
	}
	for len(out) < m.h-1 {
		out = append(out, "")
	}
	out = append(out[:m.h-1], m.keys())
	for i, l := range out {
		out[i] = m.fit(l)
	}
	return strings.Join(out, "\n")
}

// fit cuts a line to the screen's width.
func (m *Model) fit(l string) string {
	if style.Cells(l) <= m.w || strings.Contains(l, "\x1b") {
		return l
	}
	return style.TruncRight(l, m.w, m.ell())
}

func (m *Model) ell() string {
	if m.o.Style.ASCII {
		return "~"
	}
	return "…"
}

// header is the first two lines: where, when, how much, what was lost.
func (m *Model) header() []string {
	title := "tcptrace top" + m.sep() + m.o.Source
	if m.o.Host != "" {
		title += m.sep() + m.o.Host
	}
	if m.o.Kernel != "" {
		title += m.sep() + "kernel " + m.o.Kernel
	}
	s := m.snap
	if s == nil {
		return []string{m.st.Paint(m.st.Header, title), "waiting for the first refresh...", ""}
	}
	switch {
	case m.paused:
		title += "  [paused]"
	case s.Done:
		title += "  [ended]"
	}
	rate := "-"
	if p := m.prev; p != nil && s.Mono > p.Mono {
		rate = strconv.FormatFloat(float64(s.Events-p.Events)/time.Duration(s.Mono-p.Mono).Seconds(), 'f', 0, 64)
	}
	stats := s.Wall.Format("15:04:05") + m.sep() + s.Elapsed.Round(time.Second).String() + m.sep() + rate + " events/s" + m.sep() +
		style.Grouped(s.Events) + " events" + m.sep()
	if s.Lost.Total() > 0 {
		stats += m.st.Paint(m.st.Loss, "lost "+style.Grouped(s.Lost.Total())+" (ring "+style.Grouped(s.Lost.Ring)+
			", recursion "+style.Grouped(s.Lost.Recursion)+")")
	} else {
		stats += "lost 0"
	}
	if s.RingFill >= 0 {
		stats += m.sep() + "ring " + strconv.FormatFloat(s.RingFill*100, 'f', 0, 64) + "% full"
	}
	return []string{m.st.Paint(m.st.Header, title), stats, ""}
}

// keys is the bottom line: what the keys do, or the filter being typed.
func (m *Model) keys() string {
	if m.editing {
		return "filter (as the flags: --port 8080 --host 10.0.0.0/8 --pid 42 --comm curl; empty clears): " + m.edit + "_"
	}
	if m.ferr != "" {
		return m.st.Paint(m.st.Loss, "filter: "+m.ferr) + "  (/ to edit)"
	}
	if m.open != nil {
		return m.st.Paint(m.st.Faint, "esc/enter back"+m.sep()+"p pause"+m.sep()+"q quit")
	}
	if m.o.Style.ASCII {
		return "up/down select | enter ladders | s sort | / filter | p pause | q quit"
	}
	return m.st.Paint(m.st.Faint, "↑↓ select · enter ladders · s sort · / filter · p pause · q quit")
}

// tables draws the destinations, the processes and the warnings.
func (m *Model) tables() []string {
	wide := m.w >= wideAt
	rows := m.dests()
	m.cursor = min(m.cursor, max(len(rows)-1, 0))
	procs := m.procs()
	warns := m.warnings()
	nProcs := min(len(procs), maxProcs)
	room := m.h - fixedLines - nProcs - len(warns) - 2
	title := "DESTINATIONS, by " + sortNames[m.sortBy]
	if m.ftext != "" {
		title += m.sep() + "filter: " + m.ftext
	}
	out := []string{m.st.Paint(m.st.Bold, title), m.st.Paint(m.st.Faint, destHead(wide))}
	if len(rows) == 0 {
		out = append(out, m.st.Paint(m.st.Faint, "  no destination with TIME_WAIT, connects or failures yet"))
	}
	first := max(0, m.cursor-max(room, 1)+1)
	for i := first; i < len(rows) && i < first+max(room, 1); i++ {
		out = append(out, m.destRow(&rows[i], i == m.cursor, wide))
	}
	out = append(out, "", m.st.Paint(m.st.Bold, "PROCESSES CLOSING FIRST"), m.st.Paint(m.st.Faint, procHead(wide)))
	if len(procs) == 0 {
		out = append(out, m.st.Paint(m.st.Faint, "  none yet"))
	}
	for _, p := range procs[:nProcs] {
		out = append(out, p)
	}
	if len(warns) > 0 {
		out = append(out, "", m.st.Paint(m.st.Bold, "WARNINGS"))
		out = append(out, warns...)
	}
	return out
}

// Column widths of the destinations: compact (80 columns) and wide.
func destHead(wide bool) string {
	if wide {
		return "  " + pad("NETNS", 11) + pad("FROM", 16) + pad("DESTINATION", 24) + lpad("CONN/S", 7) + lpad("LOCAL", 6) +
			"  " + pad("TIME_WAIT / USABLE PORTS", 34) + pad("LAST MINUTE", 22) + pad("RUNS OUT", 11) + lpad("FAILED", 7)
	}
	return "  " + pad("DESTINATION", 22) + lpad("CONN/S", 6) + lpad("LOCAL", 6) + " " + pad("TIME_WAIT/PORTS", 19) +
		pad("LAST MIN", 9) + pad("RUNS OUT", 9) + lpad("FAILED", 6)
}

// destRow draws one destination.
func (m *Model) destRow(f *diagnosis.ForecastRow, sel, wide bool) string {
	mark := "  "
	if sel {
		mark = m.st.Paint(m.st.Bold, "> ")
	}
	usable := max(f.Forecast.Usable, 1)
	held := f.Inputs.Held
	barW, sparkW := 8, 8
	if wide {
		barW, sparkW = 20, 20
	}
	// The bar is the ports TIME_WAIT blocks now: with tcp_tw_reuse, those
	// younger than the reuse delay; the count is every one held.
	bar := m.st.Paint(m.st.TimeWait, m.bar(f.Forecast.Blocking, usable, barW))
	count := strconv.Itoa(held) + "/" + strconv.Itoa(f.Forecast.Usable)
	eta := etaShort(&f.Forecast)
	if !f.Forecast.Never && f.Forecast.ETA < time.Minute {
		eta = m.st.Paint(m.st.Loss, pad(eta, 8)) + " "
	} else {
		eta = pad(eta, 9)
	}
	failed := lpad(style.Grouped(f.Failed), 6)
	if f.Failed > 0 {
		failed = m.st.Paint(m.st.Reset, failed)
	}
	spark := m.spark(f.Dest, usable, sparkW)
	dest := report.DestText(f.Dest)
	local := "-"
	if f.Conns > 0 {
		local = strconv.Itoa(int(f.Local*100+0.5)) + "%"
	}
	conns := strconv.FormatFloat(f.Conns, 'f', 1, 64)
	if wide {
		return mark + pad(strconv.FormatUint(uint64(f.Dest.Netns), 10), 11) + pad(trunc(style.Addr(f.Dest.Saddr), 15), 16) +
			pad(trunc(dest, 23), 24) + lpad(conns, 7) + lpad(local, 6) + "  " + bar + " " + pad(count, 13) +
			spark + "  " + pad(etaShort(&f.Forecast), 11) + " " + failed
	}
	return mark + pad(trunc(dest, 21), 22) + lpad(conns, 6) + lpad(local, 6) + " " + bar + " " + pad(trunc(count, 10), 10) +
		spark + " " + eta + failed
}

// bar draws n of of as a bar w cells wide.
func (m *Model) bar(n, of, w int) string {
	full := min(w, (n*w+of-1)/of)
	if n == 0 {
		full = 0
	}
	on, off := "█", "░"
	if m.o.Style.ASCII {
		on, off = "#", "."
	}
	return strings.Repeat(on, full) + strings.Repeat(off, w-full)
}

// spark draws a destination's TIME_WAIT over the last minute, w cells,
// each the most held in its slice of time, against the usable ports.
func (m *Model) spark(d diagnosis.Dest, usable, w int) string {
	levels := []rune("▁▂▃▄▅▆▇█")
	if m.o.Style.ASCII {
		levels = []rune("_.-:=+*#")
	}
	cells := make([]rune, w)
	for i := range cells {
		cells[i] = ' '
	}
	h := m.hist[d]
	if m.snap == nil || len(h) == 0 {
		return string(cells)
	}
	end := m.snap.Mono
	slice := uint64(sparkSpan) / uint64(w)
	best := make([]int, w)
	for i := range best {
		best[i] = -1
	}
	for _, p := range h {
		if p.mono > end || end-p.mono >= uint64(sparkSpan) {
			continue
		}
		i := w - 1 - int((end-p.mono)/slice)
		best[i] = max(best[i], p.held)
	}
	for i, v := range best {
		if v >= 0 {
			cells[i] = levels[min(len(levels)-1, v*(len(levels)-1)/usable)]
		}
	}
	return string(cells)
}

// etaShort says when the ports run out, in a few cells.
func etaShort(f *diagnosis.Forecast) string {
	switch {
	case f.Never:
		return "never"
	case f.ETA <= 0:
		return "now!"
	case f.ETA < time.Minute:
		return strconv.FormatFloat(f.ETA.Seconds(), 'f', 1, 64) + "s"
	}
	return f.ETA.Round(time.Second).String()
}

// procHead and procs: the processes closing first.
func procHead(wide bool) string {
	w := 36
	if wide {
		w = 60
	}
	return "  " + pad("PROCESS", w) + lpad("CLOSES/S", 9) + lpad("SHARE", 7) + lpad("TIME_WAIT", 10) + lpad("FAILED", 8)
}

// procs draws each process that closed first, most closes first.
func (m *Model) procs() []string {
	if m.snap == nil {
		return nil
	}
	w := 36
	if m.w >= wideAt {
		w = 60
	}
	held := map[diagnosis.ProcKey]int{}
	for _, r := range m.snap.Report.TimeWait {
		if r.Known {
			held[r.Owner] += r.Count + r.FinWait2
		}
	}
	before := map[diagnosis.ProcKey]uint64{}
	var secs float64
	if p := m.prev; p != nil && m.snap.Mono > p.Mono {
		secs = time.Duration(m.snap.Mono - p.Mono).Seconds()
		for _, c := range p.Report.Closers {
			before[c.Owner] = c.ActiveCloses
		}
	}
	var out []string
	for _, c := range m.snap.Report.Closers {
		if !m.matchProc(c.Owner) {
			continue
		}
		name := report.ProcText(c.Owner)
		if m.snap.Label != nil {
			if l := m.snap.Label(c.Owner.PID); l != "" {
				name += " " + l
			}
		}
		rate := "-"
		if secs > 0 {
			rate = strconv.FormatFloat(float64(c.ActiveCloses-min(before[c.Owner], c.ActiveCloses))/secs, 'f', 1, 64)
		}
		out = append(out, "  "+pad(trunc(name, w-1), w)+lpad(rate, 9)+lpad(report.SharePct(c.ActiveCloses, c.Established), 7)+
			lpad(strconv.Itoa(held[c.Owner]), 10)+lpad(style.Grouped(c.FailedConnects), 8))
	}
	return out
}

// warnings draws the latest warnings, one line each.
func (m *Model) warnings() []string {
	if m.snap == nil {
		return nil
	}
	ws := m.snap.Report.Warnings
	var out []string
	for i := max(0, len(ws)-maxWarns); i < len(ws); i++ {
		w := &ws[i]
		at := m.snap.Wall.Add(-time.Duration(m.snap.Mono - min(w.Time, m.snap.Mono)))
		out = append(out, "  "+m.st.Paint(m.st.Loss, at.Format("15:04:05")+" "+report.WarningLine(w, m.o.Style)))
	}
	return out
}

// ladders draws the open destination's ladders.
func (m *Model) ladders() []string {
	out := []string{m.st.Paint(m.st.Bold, "LADDERS TOWARD "+report.DestText(*m.open))}
	s := m.snap
	if s == nil || s.Ladders == nil || s.Open == nil || *s.Open != *m.open {
		return append(out, m.st.Paint(m.st.Faint, "  drawing at the next refresh..."))
	}
	if len(s.Ladders.Aggregate) == 0 {
		out = append(out, m.st.Paint(m.st.Faint, "  no connection toward it finished yet (live: since it was opened)"))
	}
	out = append(out, s.Ladders.Aggregate...)
	if len(s.Ladders.Example) > 0 {
		out = append(out, "", m.st.Paint(m.st.Bold, "ITS LATEST CONNECTION"))
		out = append(out, s.Ladders.Example...)
	}
	return out
}

// pad and lpad fill s to w cells, left- and right-aligned; trunc cuts it.
func pad(s string, w int) string  { return style.Pad(s, style.Cells(s), w) }
func lpad(s string, w int) string { return style.PadLeft(s, style.Cells(s), w) }
func trunc(s string, w int) string {
	if style.Cells(s) <= w {
		return s
	}
	return style.TruncRight(s, w, "~")
}

// sep separates the parts of a line.
func (m *Model) sep() string {
	if m.o.Style.ASCII {
		return " | "
	}
	return " · "
}
