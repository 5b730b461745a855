// Package report draws what the diagnosis finds: the report's tables (text
// and JSON), its warnings as they come in the stream (Warnings), and the
// summary printed on exit.
package report

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/tcptrace/tcptrace/internal/diagnosis"
	"github.com/tcptrace/tcptrace/internal/render/style"
)

// Options choose what a text report shows.
type Options struct {
	Title string // first line, e.g. "tcptrace report (live, 10s)"
	Short bool   // the exit summary's part: forecast, TIME_WAIT, failed connects
	// ProcLabel, when set, names where a process runs (e.g. its container)
	// after it in the tables; "" adds nothing.
	ProcLabel func(pid uint32) string
}

// textReport is one text report being written.
type textReport struct {
	b     strings.Builder
	o     style.Options
	ro    Options
	st    *style.Styles
	ascii bool
}

// WriteText writes the report as boxed tables and prose fitted to o's
// width: columns wrap, or a table splits into several, and no cell is cut.
func WriteText(w io.Writer, o style.Options, ro Options, r *diagnosis.Report) error {
	if r == nil {
		r = &diagnosis.Report{}
	}
	t := &textReport{o: o, ro: ro, st: style.New(w, o.Color), ascii: o.ASCII}
	if ro.Title != "" {
		t.b.WriteString(t.st.Paint(t.st.Header, ro.Title) + "\n")
	}
	if r.LedgerNote != "" {
		t.para("note: ", r.LedgerNote)
	}
	if !ro.Short {
		t.closers(r)
	}
	t.timeWait(r)
	t.failed(r)
	t.forecasts(r)
	if !ro.Short {
		t.lifetimes(r)
	}
	t.section("Warnings")
	if len(r.Warnings) == 0 {
		t.b.WriteString("  none\n")
	}
	for _, wn := range r.Warnings {
		t.para("  "+o.Clock.Time(wn.Time).Format("15:04:05.000")+" ", WarningLine(&wn, o))
	}
	if _, err := io.WriteString(w, t.b.String()); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// proc names a process with its label.
func (t *textReport) proc(k diagnosis.ProcKey) string {
	s := ProcText(k)
	if t.ro.ProcLabel != nil {
		if l := t.ro.ProcLabel(k.PID); l != "" {
			s += " " + l
		}
	}
	return s
}

// times is the sign before a count: "×", "x" in ASCII.
func (t *textReport) times() string {
	if t.ascii {
		return "x"
	}
	return "×"
}

// section starts a section titled title.
func (t *textReport) section(title string) {
	t.b.WriteString("\n" + t.st.Paint(t.st.Header, title) + "\n")
}

// table writes rows under cols, fitted to the width, or "none".
func (t *textReport) table(cols []column, rows [][]string) {
	if len(rows) == 0 {
		t.b.WriteString("  none\n")
		return
	}
	t.b.WriteString(fitTable(cols, rows, t.o.Columns(), t.ascii, t.o.Pipe))
}

// para writes s wrapped to the width after first, the rest indented.
func (t *textReport) para(first, s string) {
	t.b.WriteString(wrapPara(first, strings.Repeat(" ", style.Cells(first)), s, t.o.Columns()))
}

func (t *textReport) closers(r *diagnosis.Report) {
	t.section("Active closers (closed first, holding the TIME_WAIT)")
	var rows [][]string
	for _, c := range r.Closers {
		var ds []string
		for _, d := range c.Dests {
			ds = append(ds, DestText(d.Dest)+" "+t.times()+itoa(d.Count))
		}
		rows = append(rows, []string{t.proc(c.Owner), itoa(c.ActiveCloses), itoa(c.Established),
			SharePct(c.ActiveCloses, c.Established), itoa(c.FailedConnects), strings.Join(ds, ", ")})
	}
	// The share is of its established connections: a failed connect is
	// not a connection it could have closed.
	t.table([]column{text("PROCESS"), num("CLOSED FIRST"), num("ESTABLISHED"), num("SHARE"), num("FAILED CONNECTS"),
		text("DESTINATIONS")}, rows)
}

func (t *textReport) timeWait(r *diagnosis.Report) {
	t.section("TIME_WAIT by destination and owner")
	var rows [][]string
	for _, x := range r.TimeWait {
		owner := t.proc(x.Owner)
		if !x.Known {
			owner = predatesText(x.Hint)
		}
		rows = append(rows, []string{DestText(x.Dest), style.Addr(x.Dest.Saddr), itoa(uint64(x.Dest.Netns)), owner,
			strconv.Itoa(x.Count), strconv.Itoa(x.FinWait2)})
	}
	t.table([]column{text("DESTINATION"), text("FROM"), num("NETNS"), text("OWNER"), num("TIME_WAIT"), num("FIN_WAIT2")}, rows)
}

func (t *textReport) failed(r *diagnosis.Report) {
	t.section("Failed connects")
	var rows [][]string
	for _, f := range r.Failed {
		rows = append(rows, []string{t.proc(f.Owner), DestText(f.Dest), orDash(f.Err), itoa(f.Count)})
	}
	t.table([]column{text("PROCESS"), text("DESTINATION"), text("ERROR"), num("COUNT")}, rows)
}

func (t *textReport) forecasts(r *diagnosis.Report) {
	t.section("Port-exhaustion forecast")
	var rows [][]string
	for _, f := range r.Forecasts {
		rows = append(rows, []string{DestText(f.Dest), t.proc(f.Owner), strconv.FormatFloat(f.Inputs.Rate, 'f', 1, 64),
			strconv.Itoa(f.Inputs.Held), strconv.Itoa(f.Inputs.InUse), strconv.Itoa(f.Forecast.Left) + "/" + strconv.Itoa(f.Forecast.Ports),
			holdText(f.Forecast.Hold), strings.TrimPrefix(ETAText(&f.Forecast), "in "), itoa(f.Failed)})
	}
	t.table([]column{text("DESTINATION"), text("OWNER"), num("NEW TW/S"), num("HELD"), num("IN USE"), num("LEFT"),
		num("HOLD"), text("EXHAUSTED"), num("FAILED")}, rows)
	rows = nil
	for _, n := range r.Namespaces {
		tw, fw, unk := "-", "-", "-"
		if n.TimeWait >= 0 {
			tw, fw, unk = strconv.Itoa(n.TimeWait), strconv.Itoa(n.FinWait2), strconv.Itoa(n.Unknown)
		}
		s := n.Sysctls
		rows = append(rows, []string{itoa(uint64(n.Netns)), strconv.Itoa(s.PortLo) + "-" + strconv.Itoa(s.PortHi),
			strconv.Itoa(s.TwReuse), strconv.Itoa(s.Timestamps), strconv.Itoa(s.MaxTwBuckets), n.From, tw, fw, unk, orDash(n.Method)})
	}
	t.b.WriteString("inputs per namespace:\n")
	t.table([]column{num("NETNS"), num("PORT RANGE"), num("TW_REUSE"), num("TIMESTAMPS"), num("MAX_TW_BUCKETS"),
		text("SYSCTLS FROM"), num("TIME_WAIT"), num("FIN_WAIT2"), num("PREDATING"), text("METHOD")}, rows)
}

func (t *textReport) lifetimes(r *diagnosis.Report) {
	t.section("End kinds")
	var ends []string
	for _, e := range r.Ends {
		ends = append(ends, e.End+" "+itoa(e.Count))
	}
	if len(ends) == 0 {
		ends = []string{"none finished"}
	}
	t.para("  ", strings.Join(ends, ", "))
	t.section("Lifetime and time in state")
	rows := [][]string{t.percentRow("lifetime", r.Lifetime)}
	for _, s := range r.States {
		rows = append(rows, t.percentRow(s.State, s.Time))
	}
	t.table([]column{text(""), num("COUNT"), num("P50"), num("P90"), num("P99"), num("MAX")}, rows)
}

func (t *textReport) percentRow(name string, p diagnosis.Percentiles) []string {
	d := func(x time.Duration) string { return style.Dur(x.Nanoseconds(), t.ascii) }
	return []string{name, itoa(p.Count), d(p.P50), d(p.P90), d(p.P99), d(p.Max)}
}

// WarningLine is a warning in one line.
func WarningLine(w *diagnosis.Warning, o style.Options) string {
	who := ProcText(w.Owner) + " " + o.Arrow() + " " + DestText(w.Dest)
	if w.Kind == diagnosis.KindChurn {
		return fmt.Sprintf("churn: %s: %.1f connects/s shorter than %v", who, w.Rate, w.Lifetime)
	}
	return fmt.Sprintf("ports run out %s: %s: %.1f TIME_WAIT/s, %d held, %d of %d ports left",
		ETAText(&w.Forecast), who, w.Rate, w.Held, w.Forecast.Left, w.Forecast.Ports)
}

// SharePct is n of of in percent, rounded, but 100% only when all and 0%
// only when none.
func SharePct(n, of uint64) string {
	if of == 0 {
		return "-"
	}
	p := (n*100 + of/2) / of
	switch {
	case p == 100 && n < of:
		p = 99
	case p == 0 && n > 0:
		p = 1
	}
	return strconv.FormatUint(p, 10) + "%"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
