package main

// The sinks that draw: every use of internal/render is in this file.

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/mattn/go-isatty"
	"golang.org/x/sys/unix"

	"github.com/tcptrace/tcptrace/internal/capture"
	"github.com/tcptrace/tcptrace/internal/clock"
	"github.com/tcptrace/tcptrace/internal/container"
	"github.com/tcptrace/tcptrace/internal/diagnosis"
	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/pipeline"
	"github.com/tcptrace/tcptrace/internal/probe"
	"github.com/tcptrace/tcptrace/internal/render/diagram"
	"github.com/tcptrace/tcptrace/internal/render/report"
	"github.com/tcptrace/tcptrace/internal/render/stream"
	"github.com/tcptrace/tcptrace/internal/render/style"
)

// wallClock shows kernel times as wall-clock times.
type wallClock = clock.Wall

// liveClock returns the running kernel's wall clock.
func liveClock() wallClock { return clock.Live() }

// replayClock returns the clock that shows a capture's events at the times
// they were recorded.
func replayClock(h *capture.Header) wallClock {
	return wallClock{Offset: h.ClockOffset, Loc: time.Local}
}

// views are the sinks of live tracing and replay: one view of the stream
// (text, JSON or diagrams), the warnings, and the summary with the
// diagnosis at exit.
type views struct {
	out       *pipeline.Output
	opts      style.Options
	json      *stream.JSON
	diag      *diagram.Sink
	cookie    *cookieSeen // --diagram=COOKIE: whether that socket came
	summ      *report.Summarizer
	warns     *report.Warnings
	sinks     []events.Sink
	procLabel func(uint32) string // a process's container, for the diagnosis (live only)
}

// newViews builds the views f asks for on stdout, with times shown by
// wall. conts, when not nil (live), names containers. With noView (-w -:
// standard output carries the capture) there is no view of the stream and
// the warnings go to stderr.
func newViews(f *flags, uf events.Filter, wall wallClock, conts *container.Resolver, noView bool) (*views, error) {
	to := os.Stdout
	if noView {
		to = os.Stderr
	}
	color, err := useColor(f.color, to)
	if err != nil {
		return nil, err
	}
	var sel diagram.Select
	if f.diagram != "" { // checked with the flags
		sel, _ = diagram.ParseSelect(f.diagram)
	}
	v := &views{out: pipeline.NewOutput(to, 256<<10)}
	v.opts = style.Options{Color: color, Width: f.width, Clock: wall, ASCII: f.ascii, Pipe: !isatty.IsTerminal(to.Fd())}
	if v.opts.Width == 0 {
		v.opts.Width = termWidth(to)
	}
	if conts != nil {
		v.procLabel = containerLabel(conts)
		v.opts.Label = func(c *events.Conn) string {
			if l := conts.Conn(c).Label(); l != "" {
				return "container=" + l
			}
			return ""
		}
	}
	var view events.Sink
	switch {
	case noView:
		view = events.Tee{}
	case f.diagram != "":
		// A ladder needs every step: --state does not apply to diagrams.
		v.diag = diagram.New(v.out.Writer, v.opts, sel)
		var ds events.Sink = v.diag
		if sel.Mode == diagram.Cookie {
			v.cookie = &cookieSeen{cookie: sel.Cookie}
			ds = events.Tee{v.diag, v.cookie}
		}
		view = &events.Filtered{Filter: connOnly(uf), Sink: ds}
	case f.json:
		v.json = newJSONView(v.out, wall, conts)
		view = &events.Filtered{Filter: uf, Sink: v.json}
	default:
		view = &events.Filtered{Filter: uf, Sink: stream.NewText(v.out.Writer, v.opts)}
	}
	v.summ = report.NewSummarizer()
	v.warns = report.NewWarnings(v.out.Writer, v.opts, f.json)
	v.sinks = []events.Sink{view, &events.Filtered{Filter: connOnly(uf), Sink: v.summ}}
	return v, nil
}

// newJSONView returns the JSON lines view on out; conts, when not nil,
// adds each connection's container.
func newJSONView(out *pipeline.Output, wall wallClock, conts *container.Resolver) *stream.JSON {
	js := stream.NewJSON(out.Writer, wall)
	if conts != nil {
		js.Extra = func(b []byte, c *events.Conn) []byte { return container.AppendJSON(b, conts.Conn(c)) }
	}
	return js
}

// warnings returns the diagnosis options with the views' warnings.
func (v *views) warnings(o diagnosis.Options) diagnosis.Options {
	o.Out = v.warns
	return o
}

// attach gives the diagrams their periodic and final work: partners that
// never came are drawn once overdue, and the aggregate at the end.
func (v *views) attach(p *pipeline.Pipeline) {
	if v.diag == nil {
		return
	}
	p.Every(0, func(now uint64) { _ = v.diag.Tick(now) })
	p.AtEnd(func() { _ = v.diag.Flush() })
}

// finish prints the summary (stderr for text, the last JSON line for
// --json) unless the output is gone or the flags say not to. kp, when not
// nil (live), adds the kernel program's cost.
func (v *views) finish(f *flags, p *pipeline.Pipeline, kp *probe.Probe) error {
	if v.out.Err() != nil {
		return nil
	}
	if v.cookie != nil {
		_ = v.out.Flush()
		if note := v.cookie.note(); note != "" {
			fmt.Fprintln(os.Stderr, note)
		}
	}
	if f.noSummary {
		return nil
	}
	sum := v.summ.Summary(p.Stats(), p.Losses(), p.Elapsed())
	if kp != nil {
		if runs, rt, err := kp.ProgramStats(); err == nil && runs > 0 {
			sum.KernelRuns, sum.KernelNs = runs, uint64(rt)
		}
	}
	rep := p.Report()
	sum.SetReport(rep) // the exit line counts TIME_WAIT as the kernel holds it now, and the closers
	if v.json != nil {
		if noteworthy(rep) {
			if err := report.WriteJSON(v.out.Writer, v.opts.Clock, rep); err != nil {
				return err
			}
		}
		if err := v.json.Err(); err != nil {
			return err
		}
		if err := sum.WriteJSON(v.out.Writer); err != nil {
			return fmt.Errorf("writing summary: %w", err)
		}
		return v.out.Flush()
	}
	// What the report's last tick wrote to the stream (the last
	// failed-connect notice) comes out before the diagnosis and the
	// summary, which stay the last things printed.
	_ = v.out.Flush() // a closed output keeps its first error; the summary still goes to stderr
	if err := writeDiagnosis(os.Stderr, v.opts, rep, v.procLabel); err != nil {
		return err
	}
	return sum.WriteText(os.Stderr, v.opts)
}

// cookieSeen notes whether the socket --diagram=COOKIE selects was seen,
// and its connection finished, so that an empty output is explained.
type cookieSeen struct {
	cookie         uint64
	seen, finished bool
}

// Transition notes the socket when it is the one.
func (c *cookieSeen) Transition(t *events.Transition) { c.seen = c.seen || t.Conn.Cookie == c.cookie }

// Finished notes the socket's end.
func (c *cookieSeen) Finished(conn *events.Conn) { c.finished = c.finished || conn.Cookie == c.cookie }

// Loss is not about a socket.
func (c *cookieSeen) Loss(*events.Event) {}

// note says why nothing was drawn, or "" when the ladder was.
func (c *cookieSeen) note() string {
	switch {
	case !c.seen && !c.finished:
		return fmt.Sprintf("tcptrace: --diagram=%d: no socket with this cookie was traced (with the filters given); nothing drawn", c.cookie)
	case !c.finished:
		return fmt.Sprintf("tcptrace: --diagram=%d: the socket was still open at the end; its ladder is drawn when its connection ends", c.cookie)
	}
	return ""
}

// reportPrinter writes a report to stdout as --json or text asks.
type reportPrinter struct {
	json  bool
	opts  style.Options
	label func(uint32) string // a process's container (live only)
}

// newReportPrinter checks the flags of a report's output.
func newReportPrinter(f *flags, wall wallClock, conts *container.Resolver) (*reportPrinter, error) {
	color, err := useColor(f.color, os.Stdout)
	if err != nil {
		return nil, err
	}
	rp := &reportPrinter{json: f.json, opts: style.Options{Color: color, Width: f.width, Clock: wall, ASCII: f.ascii,
		Pipe: !isatty.IsTerminal(os.Stdout.Fd())}}
	if conts != nil {
		rp.label = containerLabel(conts)
	}
	return rp, nil
}

// print writes rep under title.
func (rp *reportPrinter) print(rep *diagnosis.Report, title string) error {
	if rp.json {
		return report.WriteJSON(os.Stdout, rp.opts.Clock, rep)
	}
	return report.WriteText(os.Stdout, rp.opts, report.Options{Title: title, ProcLabel: rp.label}, rep)
}

// containerLabel names the container a process runs in, for the report's
// tables: "[container <short id or namespace/pod>]", "" on the host.
func containerLabel(res *container.Resolver) func(uint32) string {
	return func(pid uint32) string {
		if l := res.PID(pid).Label(); l != "" {
			return "[container " + l + "]"
		}
		return ""
	}
}

// noteworthy reports whether the diagnosis found something to show on exit.
func noteworthy(r *diagnosis.Report) bool {
	return len(r.Warnings) > 0 || len(r.Failed) > 0
}

// writeDiagnosis writes the exit summary's diagnosis: the forecast, TIME_WAIT
// and failed connects when something is at risk, else one line.
func writeDiagnosis(w io.Writer, o style.Options, r *diagnosis.Report, label func(uint32) string) error {
	if noteworthy(r) {
		return report.WriteText(w, o, report.Options{Title: "tcptrace diagnosis", Short: true, ProcLabel: label}, r)
	}
	held, fw2, spaces := 0, 0, 0
	for _, n := range r.Namespaces {
		if n.TimeWait >= 0 {
			held, fw2, spaces = held+n.TimeWait, fw2+n.FinWait2, spaces+1
		}
	}
	orphans := ""
	if fw2 > 0 {
		orphans = " and " + strconv.Itoa(fw2) + " orphaned FIN_WAIT2"
	}
	_, err := fmt.Fprintf(w, "tcptrace diagnosis: no port exhaustion forecast, no failed connects (%d TIME_WAIT%s now in %d namespaces)\n",
		held, orphans, spaces)
	return err
}

// useColor decides colour: never off a terminal, never with NO_COLOR.
func useColor(mode string, f *os.File) (bool, error) {
	switch mode {
	case "always":
		return true, nil
	case "never":
		return false, nil
	case "auto", "":
		_, noColor := os.LookupEnv("NO_COLOR")
		return !noColor && isatty.IsTerminal(f.Fd()), nil
	}
	return false, badValue("color", mode)
}

// termWidth returns the terminal's width, or 80.
func termWidth(f *os.File) int {
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil || ws.Col == 0 {
		return 80
	}
	return int(ws.Col)
}
