package report

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"strconv"
	"time"

	"github.com/tcptrace/tcptrace/internal/diagnosis"
	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/ladder"
	"github.com/tcptrace/tcptrace/internal/render/diagram"
	"github.com/tcptrace/tcptrace/internal/render/style"
)

// maxHTMLShapes bounds the connection shapes the HTML report draws.
const maxHTMLShapes = 6

//go:embed html.tmpl
var htmlTemplate string

//go:embed html.css
var htmlCSS string

var page = template.Must(template.New("report").Parse(htmlTemplate))

// HTMLInput is what the HTML report shows beside the diagnosis: where it
// comes from and the connection shapes.
type HTMLInput struct {
	Title     string
	Source    string // "live" or the capture's name
	Host      string
	Kernel    string
	Version   string // of tcptrace
	Wall      time.Time
	Refresh   int         // seconds between reloads (the live page); 0: a file
	Links     [][2]string // the live page's other pages: path, text
	Shapes    *ladder.Aggregator
	Stats     events.Stats  // the tracker's counts
	Lost      events.Losses // events lost in the kernel
	ProcLabel func(pid uint32) string
}

// htmlView is the template's data: text and trusted SVG.
type htmlView struct {
	Title, Source, Host, Kernel, Version, Span, Started string
	CSS                                                 template.CSS
	Refresh                                             int
	Links                                               [][2]string
	Headline                                            []string
	Charts                                              []htmlChart
	Closers                                             [][]string
	Failed                                              [][]string
	Shapes                                              []htmlShape
	MoreShapes                                          string
	Remedies                                            []htmlRemedy
	RemedyDest                                          string
	Netns                                               [][]string
	Facts                                               [][2]string
}

type htmlChart struct {
	Title, Caption string
	SVG            template.HTML
}

type htmlShape struct {
	Title, Example string
	SVG            template.HTML
}

type htmlRemedy struct{ Text, Effect string }

// WriteHTML writes r as one self-contained HTML page: no script, no fetch;
// the style sheet and the SVG charts and ladders are inline.
func WriteHTML(w io.Writer, in *HTMLInput, r *diagnosis.Report) error {
	if r == nil {
		r = &diagnosis.Report{}
	}
	label := in.ProcLabel
	if label == nil {
		label = func(uint32) string { return "" }
	}
	proc := func(k diagnosis.ProcKey) string {
		if l := label(k.PID); l != "" {
			return ProcText(k) + " " + l
		}
		return ProcText(k)
	}
	v := htmlView{Title: in.Title, CSS: template.CSS(htmlCSS), Source: in.Source, Host: in.Host, Kernel: in.Kernel, Version: in.Version,
		Refresh: in.Refresh, Links: in.Links, Span: r.Elapsed.Round(time.Millisecond).String()}
	if !in.Wall.IsZero() {
		v.Started = in.Wall.Add(-r.Elapsed).Format(time.RFC3339) + " to " + in.Wall.Format(time.RFC3339)
	}
	v.Headline = headline(r, proc)
	span := r.Elapsed.Seconds()
	tls := Timelines(r)
	for i := range tls {
		t := &tls[i]
		v.Charts = append(v.Charts, htmlChart{
			Title:   DestText(t.dest) + " from " + style.Addr(t.dest.Saddr) + " (netns " + itoa(uint64(t.dest.Netns)) + "), " + proc(t.owner),
			Caption: chartCaption(t),
			SVG:     template.HTML(chart(t, span, "t"+strconv.Itoa(i)))})
	}
	for _, c := range r.Closers {
		var dests string
		for i, d := range c.Dests {
			if i > 0 {
				dests += ", "
			}
			dests += DestText(d.Dest) + " ×" + itoa(d.Count)
		}
		v.Closers = append(v.Closers, []string{proc(c.Owner), itoa(c.ActiveCloses), itoa(c.Established),
			SharePct(c.ActiveCloses, c.Established), itoa(c.FailedConnects), dests})
	}
	for _, f := range r.Failed {
		v.Failed = append(v.Failed, []string{proc(f.Owner), DestText(f.Dest), f.Err, itoa(f.Count)})
	}
	v.shapes(in.Shapes)
	v.remedies(tls)
	for _, n := range r.Namespaces {
		s := n.Sysctls
		tw := "-"
		if n.TimeWait >= 0 {
			tw = strconv.Itoa(n.TimeWait)
		}
		v.Netns = append(v.Netns, []string{itoa(uint64(n.Netns)), fmt.Sprintf("%d-%d", s.PortLo, s.PortHi),
			strconv.Itoa(s.TwReuse), strconv.Itoa(s.Timestamps), strconv.Itoa(s.MaxTwBuckets), n.From, tw, n.Method})
	}
	v.Facts = [][2]string{
		{"transitions", itoa(in.Stats.Events)}, {"connections", itoa(in.Stats.Conns)},
		{"events lost in the kernel", itoa(in.Lost.Total()) + " (ring " + itoa(in.Lost.Ring) + ", recursion " + itoa(in.Lost.Recursion) + ")"},
		{"steps inferred from gaps", itoa(in.Stats.Inferred)}, {"connections evicted", itoa(in.Stats.Evicted)},
	}
	if r.LedgerNote != "" {
		v.Facts = append(v.Facts, [2]string{"TIME_WAIT counted", r.LedgerNote})
	}
	if err := page.Execute(w, &v); err != nil {
		return fmt.Errorf("write html report: %w", err)
	}
	return nil
}

// headline is the report in a few sentences: who closed first, who holds
// the TIME_WAIT, the nearest exhaustion, the failed connects.
func headline(r *diagnosis.Report, proc func(diagnosis.ProcKey) string) []string {
	var out []string
	if len(r.Closers) > 0 {
		c := r.Closers[0]
		out = append(out, proc(c.Owner)+" closed first "+itoa(c.ActiveCloses)+" of its "+itoa(c.Established)+
			" established connections ("+SharePct(c.ActiveCloses, c.Established)+"): it is the active closer.")
	}
	if len(r.TimeWait) > 0 {
		t := r.TimeWait[0]
		who := proc(t.Owner)
		if !t.Known {
			who = predatesText(t.Hint)
		}
		out = append(out, strconv.Itoa(t.Count+t.FinWait2)+" TIME_WAIT sockets toward "+DestText(t.Dest)+" are held by "+who+".")
	}
	if len(r.Forecasts) > 0 {
		f := r.Forecasts[0]
		when := "run out " + ETAText(&f.Forecast)
		if f.Forecast.Never {
			when = "do not run out at this rate"
		}
		out = append(out, "Ports toward "+DestText(f.Dest)+" "+when+" (new TIME_WAIT "+
			strconv.FormatFloat(round2(f.Inputs.Rate), 'f', -1, 64)+"/s, "+strconv.Itoa(f.Forecast.Left)+" of "+
			strconv.Itoa(f.Forecast.Usable)+" ports left).")
	}
	var failed uint64
	errs := map[string]uint64{}
	for _, f := range r.Failed {
		failed += f.Count
		errs[f.Err] += f.Count
	}
	if failed > 0 {
		s := itoa(failed) + " connects failed"
		if failed == 1 {
			s = "1 connect failed"
		}
		if n := errs["EADDRNOTAVAIL"]; n > 0 {
			s += ", " + itoa(n) + " of them with EADDRNOTAVAIL (no free local port)"
		}
		out = append(out, s+".")
	}
	if len(out) == 0 {
		out = append(out, "No connection closed, no TIME_WAIT and no failed connect were traced.")
	}
	return out
}

// chartCaption sums a timeline up under its chart.
func chartCaption(t *TimelineJSON) string {
	s := "peak " + strconv.Itoa(t.Peak) + " TIME_WAIT of " + strconv.Itoa(t.Ports) + " usable ports"
	if t.MaxTwBuckets > 0 {
		s += " (tcp_max_tw_buckets " + strconv.Itoa(t.MaxTwBuckets) + ")"
	}
	s += "; " + itoa(t.Failed) + " failed connects"
	if w := t.Worst; w != nil {
		s += "; worst forecast " + ETAText(&t.worst.Forecast) + " at " + fnum(w.T) + "s (" + fnum(w.Rate) + " new TIME_WAIT/s)"
	}
	return s + "; one point every " + fnum(t.StepS) + "s"
}

// shapes draws the most frequent connection shapes, each with its first
// connection as the example.
func (v *htmlView) shapes(a *ladder.Aggregator) {
	if a == nil {
		return
	}
	all := a.Shapes()
	for i, sh := range all[:min(len(all), maxHTMLShapes)] {
		v.Shapes = append(v.Shapes, htmlShape{Title: svgTitleOf(sh), Example: example(sh.Ladder),
			SVG: template.HTML(diagram.SVG(sh, "s"+strconv.Itoa(i)))})
	}
	if n := len(all) - maxHTMLShapes; n > 0 || a.Overflow() > 0 {
		v.MoreShapes = strconv.Itoa(max(n, 0)) + " more shapes not drawn; " + itoa(a.Overflow()) +
			" connections past the shape limit"
	}
}

// svgTitleOf is a shape's heading.
func svgTitleOf(sh *ladder.Shape) string {
	return style.Grouped(sh.N) + " connections, lifetime p50 " + style.Dur(sh.Lifetime(50), false) +
		", p99 " + style.Dur(sh.Lifetime(99), false)
}

// example describes a shape's first connection: a real one.
func example(l *ladder.Ladder) string {
	s := "example connection:"
	for _, h := range l.Sides {
		if h == nil {
			continue
		}
		s += " cookie " + itoa(h.Cookie) + " " + h.Local.String() + " → " + h.Remote.String() + " (" + h.Role.String() +
			", " + style.Sanitize(h.Owner.Comm.String()) + " pid " + itoa(uint64(h.Owner.PID)) + ", " + h.End.String() + ");"
	}
	return s + " lifetime " + style.Dur(l.Lifetime(), false)
}

// remedies lists the fixes, safest first, each with what it would have
// changed for the timeline with the worst forecast.
func (v *htmlView) remedies(tls []TimelineJSON) {
	var w *TimelineJSON
	for i := range tls {
		if tls[i].Worst != nil {
			w = &tls[i]
			break
		}
	}
	effects := make([]string, len(diagnosis.Remedies))
	if w != nil {
		v.RemedyDest = DestText(w.dest) + " (worst moment: " + fnum(w.Worst.T) + "s, " + strconv.Itoa(w.Worst.Held) +
			" TIME_WAIT, forecast " + ETAText(&w.worst.Forecast) + ")"
		was := w.worst
		effects[0] = "no new TIME_WAIT toward it: ports run out " + ETAText(&was.Pooled)
		effects[1] = "the TIME_WAIT lands on the server's service port: the client's ephemeral ports stay free"
		if was.Forecast.Reuse {
			effects[2] = "already applies here (tcp_tw_reuse=" + strconv.Itoa(was.Inputs.Sysctls.TwReuse) + "): ports run out " + ETAText(&was.Reuse)
		} else {
			effects[2] = "connect() takes the port of a TIME_WAIT older than the reuse delay: ports run out " + ETAText(&was.Reuse)
		}
		effects[3] = "with 1024-65535 (64512 ports): ports run out " + ETAText(&was.WideRange)
		effects[4] = "no TIME_WAIT at all, at the cost of aborting every connection with RST"
	}
	for i, r := range diagnosis.Remedies {
		v.Remedies = append(v.Remedies, htmlRemedy{Text: r, Effect: effects[i]})
	}
}
