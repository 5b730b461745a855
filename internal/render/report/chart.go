package report

import (
	"fmt"
	"html"
	"math"
	"strconv"
	"strings"
)

// Chart geometry: the TIME_WAIT panel above the connects panel, the y
// labels left of both.
const (
	chartW     = 760
	chartLeft  = 64
	chartRight = 16
	pileTop    = 28
	pileH      = 200
	rateTop    = pileTop + pileH + 34
	rateH      = 70
	chartH     = rateTop + rateH + 30
	plotW      = chartW - chartLeft - chartRight
)

// chart draws one destination's timeline as SVG: TIME_WAIT held against
// the usable ports (and tcp_max_tw_buckets when it is below them), the
// forecast from the last point, the connects per second, and the failed
// connects marked on the time axis. span is the report's length in
// seconds; the last fifth of the time axis is the forecast's. Each series
// carries its values (data-values), as the JSON report gives them.
func chart(t *TimelineJSON, span float64, id string) string {
	xmax := max(span, 1e-3) * 1.25
	x := func(s float64) float64 { return chartLeft + s/xmax*plotW }
	// The usable ports are on the chart unless the pile never came near
	// them (under a quarter): then the chart zooms on the pile and says
	// how far off they are.
	top := float64(max(t.Peak, 1))
	near := t.Peak*4 >= t.Ports
	if near {
		top = float64(max(t.Peak, t.Ports))
	}
	capped := t.MaxTwBuckets > 0 && t.MaxTwBuckets < t.Ports && (near || t.Peak*4 >= t.MaxTwBuckets)
	ymax := niceCeil(top * 1.08)
	y := func(v float64) float64 { return pileTop + pileH - v/ymax*pileH }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="timeline" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d"`+
		` role="img" aria-label="%s" data-dest="%s" data-ports="%d" data-span="%s">`,
		chartW, chartH, chartW, chartH, esc("TIME_WAIT toward "+DestText(t.dest)), esc(DestText(t.dest)),
		t.Ports, fnum(span))
	fmt.Fprintf(&b, `<defs><clipPath id="plot-%s"><rect x="%d" y="%d" width="%d" height="%d"/></clipPath></defs>`,
		esc(id), chartLeft, pileTop, plotW, pileH)
	// The forecast's part of the time axis.
	fmt.Fprintf(&b, `<rect class="future" x="%s" y="%d" width="%s" height="%d"/>`, fnum(x(span)), pileTop, fnum(x(xmax)-x(span)), pileH)
	axes(&b, ymax, xmax, span, y, x)
	if near {
		limit(&b, "ports", float64(t.Ports), fmt.Sprintf("usable ports %d (%d-%d)", t.Ports, t.PortRange[0], t.PortRange[1]), y)
	} else {
		fmt.Fprintf(&b, `<text class="limit-label ports" x="%d" y="%d">usable ports %d (%d-%d), off the chart: the peak held %s%%</text>`,
			chartLeft+6, pileTop+12, t.Ports, t.PortRange[0], t.PortRange[1], fnum(float64(t.Peak)*100/float64(max(t.Ports, 1))))
	}
	if capped {
		limit(&b, "buckets", float64(t.MaxTwBuckets), fmt.Sprintf("tcp_max_tw_buckets %d", t.MaxTwBuckets), y)
	}
	pile := make([]float64, len(t.Points))
	rate := make([]float64, len(t.Points))
	ts := make([]float64, len(t.Points))
	for i, p := range t.Points {
		pile[i], rate[i], ts[i] = float64(p.TimeWait), p.Rate, p.T
	}
	series(&b, "time-wait", ts, pile, x, y)
	forecastLine(&b, t, x, y, id)
	// Connects per second, on a scale of their own.
	rmax := 1.0
	for _, r := range rate {
		rmax = max(rmax, r)
	}
	rmax = niceCeil(rmax * 1.08)
	ry := func(v float64) float64 { return rateTop + rateH - v/rmax*rateH }
	fmt.Fprintf(&b, `<text class="panel" x="%d" y="%d">connects/s</text>`, chartLeft, rateTop-8)
	fmt.Fprintf(&b, `<line class="axis" x1="%d" y1="%d" x2="%d" y2="%d"/>`, chartLeft, rateTop+rateH, chartW-chartRight, rateTop+rateH)
	fmt.Fprintf(&b, `<text class="tick" x="%d" y="%s" text-anchor="end">%s</text>`, chartLeft-6, fnum(ry(rmax)+4), fnum(rmax))
	fmt.Fprintf(&b, `<text class="tick" x="%d" y="%d" text-anchor="end">0</text>`, chartLeft-6, rateTop+rateH+4)
	series(&b, "connects", ts, rate, x, ry)
	for _, p := range t.Points {
		if p.Failed > 0 {
			fmt.Fprintf(&b, `<line class="failed" data-t="%s" data-n="%d" x1="%s" y1="%d" x2="%s" y2="%d"><title>%d connects failed</title></line>`,
				fnum(p.T), p.Failed, fnum(x(p.T)), pileTop, fnum(x(p.T)), rateTop+rateH, p.Failed)
		}
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// axes draws the TIME_WAIT panel's axes, its y ticks and the time ticks.
func axes(b *strings.Builder, ymax, xmax, span float64, y, x func(float64) float64) {
	fmt.Fprintf(b, `<text class="panel" x="%d" y="%d">TIME_WAIT held</text>`, chartLeft, pileTop-10)
	fmt.Fprintf(b, `<line class="axis" x1="%d" y1="%d" x2="%d" y2="%d"/>`, chartLeft, pileTop, chartLeft, pileTop+pileH)
	fmt.Fprintf(b, `<line class="axis" x1="%d" y1="%d" x2="%d" y2="%d"/>`, chartLeft, pileTop+pileH, chartW-chartRight, pileTop+pileH)
	for _, v := range []float64{0, ymax / 2, ymax} {
		fmt.Fprintf(b, `<text class="tick" x="%d" y="%s" text-anchor="end">%s</text>`, chartLeft-6, fnum(y(v)+4), fnum(v))
		if v > 0 {
			fmt.Fprintf(b, `<line class="grid" x1="%d" y1="%s" x2="%d" y2="%s"/>`, chartLeft, fnum(y(v)), chartW-chartRight, fnum(y(v)))
		}
	}
	step := niceCeil(xmax / 6)
	for s := 0.0; s <= xmax; s += step {
		fmt.Fprintf(b, `<text class="tick" x="%s" y="%d" text-anchor="middle">%ss</text>`, fnum(x(s)), chartH-10, fnum(s))
	}
	fmt.Fprintf(b, `<text class="tick future-label" x="%s" y="%d">forecast</text>`, fnum(x(span)+4), pileTop+12)
}

// limit draws a horizontal limit line with its label.
func limit(b *strings.Builder, class string, v float64, label string, y func(float64) float64) {
	fmt.Fprintf(b, `<line class="limit %s" x1="%d" y1="%s" x2="%d" y2="%s"/>`, class, chartLeft, fnum(y(v)), chartW-chartRight, fnum(y(v)))
	fmt.Fprintf(b, `<text class="limit-label %s" x="%d" y="%s" text-anchor="end">%s</text>`, class, chartW-chartRight-4, fnum(y(v)-5), esc(label))
}

// series draws values over times as a polyline carrying its values.
func series(b *strings.Builder, class string, ts, vs []float64, x, y func(float64) float64) {
	var pts, vals strings.Builder
	for i := range vs {
		if i > 0 {
			pts.WriteByte(' ')
			vals.WriteByte(' ')
		}
		pts.WriteString(fnum(x(ts[i])) + "," + fnum(y(vs[i])))
		vals.WriteString(fnum(vs[i]))
	}
	fmt.Fprintf(b, `<polyline class="series %s" data-values="%s" data-times="%s" points="%s"/>`,
		class, vals.String(), esc(joinNums(ts)), pts.String())
	if len(vs) <= maxDots { // few points: each one shown
		for i := range vs {
			fmt.Fprintf(b, `<circle class="dot %s" cx="%s" cy="%s" r="2.5"/>`, class, fnum(x(ts[i])), fnum(y(vs[i])))
		}
	}
}

// maxDots is the most points a series marks each of.
const maxDots = 60

// forecastLine draws the forecast from the last point, or a note that the
// ports never run out. When the last point has no future to forecast (out
// of ports, or never) it also draws the latest forecast that saw the ports
// run out, to set against what happened: a dashed line from its point to
// the usable ports at the time it gave.
func forecastLine(b *strings.Builder, t *TimelineJSON, x, y func(float64) float64, id string) {
	if len(t.Points) == 0 {
		return
	}
	if last := t.Points[len(t.Points)-1].ETA; last != nil && *last > 0 {
		// the last point's own forecast is drawn below
	} else {
		for i := len(t.Points) - 2; i >= 0; i-- {
			p := t.Points[i]
			if p.ETA == nil || *p.ETA <= 0 {
				continue
			}
			end := p.T + *p.ETA
			fmt.Fprintf(b, `<line class="forecast first" clip-path="url(#plot-%s)" data-t="%s" data-eta="%s" x1="%s" y1="%s" x2="%s" y2="%s"/>`,
				esc(id), fnum(p.T), fnum(*p.ETA), fnum(x(p.T)), fnum(y(float64(p.TimeWait))), fnum(x(end)), fnum(y(float64(t.Ports))))
			fmt.Fprintf(b, `<text class="forecast-label first" x="%s" y="%s">forecast at %ss: out of ports at %ss</text>`,
				fnum(x(p.T)+8), fnum(y(float64(p.TimeWait))+18), fnum(p.T), fnum(end))
			break
		}
	}
	p := t.Points[len(t.Points)-1]
	if p.ETA == nil {
		fmt.Fprintf(b, `<text class="forecast-label" x="%d" y="%d" text-anchor="end">never runs out at this rate</text>`, chartW-chartRight-4, pileTop+28)
		return
	}
	end := p.T + *p.ETA
	fmt.Fprintf(b, `<line class="forecast" clip-path="url(#plot-%s)" data-eta="%s" x1="%s" y1="%s" x2="%s" y2="%s"/>`,
		esc(id), fnum(*p.ETA), fnum(x(p.T)), fnum(y(float64(p.TimeWait))), fnum(x(end)), fnum(y(float64(t.Ports))))
	label := "ports run out in " + fnum(*p.ETA) + "s"
	if *p.ETA <= 0 {
		label = "out of ports: connect() fails"
	}
	fmt.Fprintf(b, `<text class="forecast-label" x="%d" y="%d" text-anchor="end">%s</text>`, chartW-chartRight-4, pileTop+28, esc(label))
}

// esc escapes text for HTML and SVG.
func esc(s string) string { return html.EscapeString(s) }

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// fnum formats v with at most three decimals, as the JSON report rounds.
func fnum(v float64) string { return strconv.FormatFloat(math.Round(v*1000)/1000, 'f', -1, 64) }

// joinNums formats values separated by spaces.
func joinNums(vs []float64) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = fnum(v)
	}
	return strings.Join(s, " ")
}
