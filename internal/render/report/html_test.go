package report

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/diagnosis"
	"github.com/tcptrace/tcptrace/internal/render/rendertest"
)

// withTimeline adds to the incident's report its destination's timeline:
// 10 connects a second from 0.5 s, the pile reaching the 64 ports at 6.5 s,
// then connects failing.
func withTimeline() *diagnosis.Report {
	r := incidentReport()
	r.End = 787_000_000_000
	start := r.End - uint64(r.Elapsed)
	tl := diagnosis.Timeline{Dest: r.Forecasts[0].Dest, Owner: r.Forecasts[0].Owner, Sysctls: r.Namespaces[0].Sysctls,
		Step: time.Second, Peak: 64, Failed: 6}
	for s := 1; s <= 7; s++ {
		p := diagnosis.Point{T: start + uint64(s)*1e9, Dur: time.Second, TimeWait: min(10*s, 64), Connects: 10,
			ETA: time.Duration(64-min(10*s, 64)) * time.Second / 10}
		if s == 7 {
			p.Failed, p.ETA = 6, 0
		}
		tl.Points = append(tl.Points, p)
	}
	tl.Worst = diagnosis.WhatIf{T: tl.Points[6].T, Inputs: diagnosis.Inputs{Sysctls: tl.Sysctls, Held: 64, Rate: 10},
		Forecast: diagnosis.Forecast{Ports: 64, Usable: 64, Blocking: 64}, Reuse: diagnosis.Forecast{Never: true},
		WideRange: diagnosis.Forecast{ETA: 6385 * time.Second}, Pooled: diagnosis.Forecast{Never: true}}
	r.Timelines = []diagnosis.Timeline{tl}
	return r
}

// TestGoldenChart: the timeline chart of fixed points is well-formed SVG
// whose series carry the JSON report's numbers.
func TestGoldenChart(t *testing.T) {
	r := withTimeline()
	tls := Timelines(r)
	svg := chart(&tls[0], r.Elapsed.Seconds(), "c0")
	rendertest.CheckXML(t, svg)
	for _, want := range []string{`data-values="10 20 30 40 50 60 64"`, `data-values="10 10 10 10 10 10 10"`,
		`data-t="7" data-n="6"`, `usable ports 64 (40000-40063)`, `out of ports: connect() fails`} {
		if !strings.Contains(svg, want) {
			t.Errorf("chart lacks %q", want)
		}
	}
	rendertest.Golden(t, "incident.chart.svg.golden", []byte(svg+"\n"))
	var b bytes.Buffer
	if err := WriteJSON(&b, rendertest.Clock, r); err != nil {
		t.Fatal(err)
	}
	rendertest.Golden(t, "incident.timeline.report.json.golden", b.Bytes())
}

// TestGoldenHTML: the whole page of the incident's report.
func TestGoldenHTML(t *testing.T) {
	var b bytes.Buffer
	in := &HTMLInput{Title: "tcptrace report", Source: "live", Host: "vm", Kernel: "6.18.0", Version: "test",
		Wall: rendertest.Clock.Time(787_000_000_000).UTC()}
	if err := WriteHTML(&b, in, withTimeline()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"python3 (4242) closed first 64 of its 64 established connections",
		"Ports toward 10.201.1.2:8080 run out now", "56 connects failed, 56 of them with EADDRNOTAVAIL",
		"with 1024-65535 (64512 ports): ports run out in 6385.0s", "<svg class=\"timeline\""} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(b.String(), "<script") || strings.Contains(b.String(), "http://") && !strings.Contains(b.String(), "http://www.w3.org/2000/svg") {
		t.Error("the page has a script or a link out")
	}
	rendertest.Golden(t, "incident.report.html.golden", b.Bytes())
	// Nothing to show still makes a page.
	b.Reset()
	if err := WriteHTML(&b, &HTMLInput{Title: "empty"}, nil); err != nil || !strings.Contains(b.String(), "No connection closed") {
		t.Errorf("empty report: %v\n%s", err, b.String())
	}
}
