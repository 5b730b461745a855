package render

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/lipgloss/table"

	"github.com/tcptrace/tcptrace/internal/diagnosis"
)

// ReportOptions choose what a text report shows.
type ReportOptions struct {
	Title string // first line, e.g. "tcptrace report (live, 10s)"
	Short bool   // the exit summary's part: forecast, TIME_WAIT, failed connects
	// ProcLabel, when set, names where a process runs (e.g. its container)
	// after it in the tables; "" adds nothing.
	ProcLabel func(pid uint32) string
}

// WriteReportText writes the report as lipgloss tables.
func WriteReportText(w io.Writer, o Options, ro ReportOptions, r *diagnosis.Report) error {
	if r == nil {
		r = &diagnosis.Report{}
	}
	st := newStyles(w, o.Color)
	proc := func(k diagnosis.ProcKey) string {
		s := procText(k)
		if ro.ProcLabel != nil {
			if l := ro.ProcLabel(k.PID); l != "" {
				s += " " + l
			}
		}
		return s
	}
	var b strings.Builder
	section := func(title string) { b.WriteString("\n" + st.paint(st.header, title) + "\n") }
	tbl := func(headers []string, rows [][]string) {
		if len(rows) == 0 {
			b.WriteString("  none\n")
			return
		}
		border := lipgloss.RoundedBorder()
		if o.ASCII {
			border = lipgloss.ASCIIBorder()
		}
		cell := lipgloss.NewStyle().Padding(0, 1)
		t := table.New().Border(border).Headers(headers...).Rows(rows...).
			StyleFunc(func(int, int) lipgloss.Style { return cell })
		b.WriteString(t.String() + "\n")
	}
	if ro.Title != "" {
		b.WriteString(st.paint(st.header, ro.Title) + "\n")
	}
	if r.LedgerNote != "" {
		b.WriteString("note: " + r.LedgerNote + "\n")
	}
	if !ro.Short {
		section("Active closers (closed first, holding the TIME_WAIT)")
		var rows [][]string
		for _, c := range r.Closers {
			var ds []string
			for _, d := range c.Dests {
				ds = append(ds, destText(d.Dest)+" ×"+itoa(d.Count))
			}
			rows = append(rows, []string{proc(c.Owner), itoa(c.ActiveCloses), itoa(c.Finished),
				sharePct(c.ActiveCloses, c.Finished), strings.Join(ds, ", ")})
		}
		tbl([]string{"PROCESS", "CLOSED FIRST", "FINISHED", "SHARE", "DESTINATIONS"}, rows)
	}
	section("TIME_WAIT by destination and owner")
	var rows [][]string
	for _, t := range r.TimeWait {
		owner := proc(t.Owner)
		if !t.Known {
			owner = predatesText(t.Hint)
		}
		rows = append(rows, []string{destText(t.Dest), addrText(t.Dest.Saddr), itoa(uint64(t.Dest.Netns)), owner,
			strconv.Itoa(t.Count), strconv.Itoa(t.FinWait2)})
	}
	tbl([]string{"DESTINATION", "FROM", "NETNS", "OWNER", "TIME_WAIT", "FIN_WAIT2"}, rows)
	section("Failed connects")
	rows = nil
	for _, f := range r.Failed {
		rows = append(rows, []string{proc(f.Owner), destText(f.Dest), orDash(f.Err), itoa(f.Count)})
	}
	tbl([]string{"PROCESS", "DESTINATION", "ERROR", "COUNT"}, rows)
	section("Port-exhaustion forecast")
	rows = nil
	for _, f := range r.Forecasts {
		rows = append(rows, []string{destText(f.Dest), proc(f.Owner), strconv.FormatFloat(f.Inputs.Rate, 'f', 1, 64),
			strconv.Itoa(f.Inputs.Held), strconv.Itoa(f.Inputs.InUse), strconv.Itoa(f.Forecast.Left) + "/" + strconv.Itoa(f.Forecast.Ports),
			holdText(f.Forecast.Hold), strings.TrimPrefix(etaText(&f.Forecast), "in "), itoa(f.Failed)})
	}
	tbl([]string{"DESTINATION", "OWNER", "NEW TW/S", "HELD", "IN USE", "LEFT", "HOLD", "EXHAUSTED", "FAILED"}, rows)
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
	b.WriteString("inputs per namespace:\n")
	tbl([]string{"NETNS", "PORT RANGE", "TW_REUSE", "TIMESTAMPS", "MAX_TW_BUCKETS", "SYSCTLS FROM", "TIME_WAIT", "FIN_WAIT2", "PREDATING", "METHOD"}, rows)
	if !ro.Short {
		section("End kinds")
		var ends []string
		for _, e := range r.Ends {
			ends = append(ends, e.End+" "+itoa(e.Count))
		}
		if len(ends) == 0 {
			ends = []string{"none finished"}
		}
		b.WriteString("  " + strings.Join(ends, ", ") + "\n")
		section("Lifetime and time in state")
		rows = [][]string{percentRow("lifetime", r.Lifetime, o.ASCII)}
		for _, s := range r.States {
			rows = append(rows, percentRow(s.State, s.Time, o.ASCII))
		}
		tbl([]string{"", "COUNT", "P50", "P90", "P99", "MAX"}, rows)
	}
	section("Warnings")
	if len(r.Warnings) == 0 {
		b.WriteString("  none\n")
	}
	for _, wn := range r.Warnings {
		b.WriteString("  " + o.Clock.Wall(wn.Time).Format("15:04:05.000") + " " + warningLine(&wn, o) + "\n")
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// warningLine is a warning in one line.
func warningLine(w *diagnosis.Warning, o Options) string {
	who := procText(w.Owner) + " " + arrow(o) + " " + destText(w.Dest)
	if w.Kind == diagnosis.KindChurn {
		return fmt.Sprintf("churn: %s: %.1f connects/s shorter than %v", who, w.Rate, w.Lifetime)
	}
	return fmt.Sprintf("ports run out %s: %s: %.1f TIME_WAIT/s, %d held, %d of %d ports left",
		etaText(&w.Forecast), who, w.Rate, w.Held, w.Forecast.Left, w.Forecast.Ports)
}

func percentRow(name string, p diagnosis.Percentiles, ascii bool) []string {
	d := func(x time.Duration) string { return formatDur(x.Nanoseconds(), ascii) }
	return []string{name, itoa(p.Count), d(p.P50), d(p.P90), d(p.P99), d(p.Max)}
}

func sharePct(n, of uint64) string {
	if of == 0 {
		return "-"
	}
	return strconv.FormatUint((n*100+of/2)/of, 10) + "%"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
