package main

// The HTML report in a real headless browser: for the shipped sample and
// for a live 64-port EADDRNOTAVAIL incident, the page loads with no
// console error and no request, its charts hold the JSON report's numbers,
// its ladders name the active closer, and a screenshot is kept.

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/tcptrace/tcptrace/internal/testutil"
	"github.com/tcptrace/tcptrace/internal/testutil/browser"
)

// pageData is what the test reads from the page's DOM.
type pageData struct {
	Title  string `json:"title"`
	Charts []struct {
		Dest   string `json:"dest"`
		Ports  string `json:"ports"`
		Width  float64
		Series map[string]struct {
			Values string `json:"values"`
			Times  string `json:"times"`
			Points string `json:"points"`
		} `json:"series"`
		Failed   [][2]string `json:"failed"`
		Forecast string      `json:"forecast"`
	} `json:"charts"`
	Ladders []struct {
		Closer string `json:"closer"`
		Label  string `json:"label"`
		Text   string `json:"text"`
		Width  float64
	} `json:"ladders"`
	Remedies []string `json:"remedies"`
}

const pageJS = `(() => ({
  title: document.title,
  charts: [...document.querySelectorAll('svg.timeline')].map(s => ({
    dest: s.dataset.dest, ports: s.dataset.ports, Width: s.getBoundingClientRect().width,
    series: Object.fromEntries([...s.querySelectorAll('polyline.series')].map(p =>
      [p.classList[1], {values: p.dataset.values, times: p.dataset.times, points: p.getAttribute('points')}])),
    failed: [...s.querySelectorAll('line.failed')].map(l => [l.dataset.t, l.dataset.n]),
    forecast: (s.querySelector('.forecast-label') || {}).textContent || '',
  })),
  ladders: [...document.querySelectorAll('svg.ladder')].map(s => ({
    closer: s.dataset.activeCloser, label: s.getAttribute('aria-label'), text: s.textContent,
    Width: s.getBoundingClientRect().width})),
  remedies: [...document.querySelectorAll('#remedies li')].map(l => l.textContent),
}))()`

// jsonReport is the part of `report --json` the page is checked against.
type jsonReport struct {
	Closers []struct {
		Comm string `json:"comm"`
	} `json:"active_closers"`
	Timelines []struct {
		Daddr  string `json:"daddr"`
		Dport  int    `json:"dport"`
		Ports  int    `json:"ports"`
		Points []struct {
			T        float64  `json:"t_s"`
			TimeWait int      `json:"time_wait_sockets"`
			Rate     float64  `json:"connects_per_s"`
			Failed   uint64   `json:"failed_connects"`
			ETA      *float64 `json:"seconds_to_exhaustion"`
		} `json:"points"`
	} `json:"timelines"`
}

// checkPage loads the HTML report at path beside its JSON report and
// checks the page against it; the screenshot goes to png.
func checkPage(t *testing.T, path string, rep *jsonReport, png string) pageData {
	t.Helper()
	url := "file://" + path
	p := browser.Open(t, url, 1000, 760)
	var d pageData
	p.Eval(t, pageJS, &d)
	p.Screenshot(t, png)
	p.ScreenshotView(t, strings.TrimSuffix(png, ".png")+"-top.png")
	t.Logf("screenshots: %s, and its top", png)
	if c := p.Console(); len(c) > 0 {
		t.Errorf("console: %q", c)
	}
	if r := p.Requests(); len(r) > 0 {
		t.Errorf("the page fetched %q: it must be self-contained", r)
	}
	if len(d.Charts) != len(rep.Timelines) {
		t.Fatalf("%d charts, the JSON report has %d timelines", len(d.Charts), len(rep.Timelines))
	}
	for i, c := range d.Charts {
		tl := rep.Timelines[i]
		if c.Width < 100 {
			t.Errorf("chart %d is %.0f px wide: not drawn", i, c.Width)
		}
		if want := net.JoinHostPort(tl.Daddr, strconv.Itoa(tl.Dport)); !strings.Contains(c.Dest, want) || c.Ports != strconv.Itoa(tl.Ports) {
			t.Errorf("chart %d: dest %q ports %s, the JSON report's timeline %d is %s with %d ports", i, c.Dest, c.Ports, i, want, tl.Ports)
		}
		var tw, rate, ts, failed []string
		for _, pt := range tl.Points {
			tw = append(tw, strconv.Itoa(pt.TimeWait))
			rate = append(rate, strconv.FormatFloat(pt.Rate, 'f', -1, 64))
			ts = append(ts, strconv.FormatFloat(pt.T, 'f', -1, 64))
			if pt.Failed > 0 {
				failed = append(failed, strconv.FormatFloat(pt.T, 'f', -1, 64)+"/"+strconv.FormatUint(pt.Failed, 10))
			}
		}
		s := c.Series
		if got, want := s["time-wait"].Values, strings.Join(tw, " "); got != want {
			t.Errorf("chart %d: TIME_WAIT series %q, the JSON report's %q", i, got, want)
		}
		if got, want := s["connects"].Values, strings.Join(rate, " "); got != want {
			t.Errorf("chart %d: connects/s series %q, the JSON report's %q", i, got, want)
		}
		if got, want := s["time-wait"].Times, strings.Join(ts, " "); got != want {
			t.Errorf("chart %d: times %q, the JSON report's %q", i, got, want)
		}
		if n := len(strings.Fields(s["time-wait"].Points)); n != len(tl.Points) {
			t.Errorf("chart %d: %d points drawn for %d values", i, n, len(tl.Points))
		}
		var marks []string
		for _, f := range c.Failed {
			marks = append(marks, f[0]+"/"+f[1])
		}
		if strings.Join(marks, " ") != strings.Join(failed, " ") {
			t.Errorf("chart %d: failed connects marked at %q, the JSON report's %q", i, marks, failed)
		}
	}
	if len(d.Ladders) == 0 {
		t.Fatal("no ladder drawn")
	}
	for i, l := range d.Ladders {
		if l.Width < 100 {
			t.Errorf("ladder %d is %.0f px wide: not drawn", i, l.Width)
		}
	}
	if len(d.Remedies) != 5 {
		t.Errorf("%d remedies, want 5", len(d.Remedies))
	}
	return d
}

// reportWithHTML runs `tcptrace report args --json --html FILE` and returns
// the JSON report and the page's path.
func parseReport(t *testing.T, out []byte) *jsonReport {
	t.Helper()
	var rep jsonReport
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("report --json: %v: %s", err, out)
	}
	return &rep
}

// TestHTMLReportSample: the shipped sample's page, in the browser.
func TestHTMLReportSample(t *testing.T) {
	page := filepath.Join(t.TempDir(), "sample.html")
	out, err := exec.Command(binary, "report", "-r", sample, "--json", "--html", page).Output()
	if err != nil {
		t.Fatalf("report --html: %v", err)
	}
	rep := parseReport(t, out)
	d := checkPage(t, page, rep, filepath.Join(t.ArtifactDir(), "sample.png"))
	// The sample's one shape with TIME_WAIT: app-worker's client closes first.
	top := d.Ladders[0]
	if top.Closer != "client" || !strings.Contains(top.Text, "app-worker") || !strings.Contains(top.Text, "closed first") {
		t.Errorf("first ladder: active closer %q, text %q; want the client, app-worker, closed first", top.Closer, top.Text)
	}
	if len(rep.Closers) == 0 || rep.Closers[0].Comm != "app-worker" {
		t.Errorf("JSON report's top closer: %+v", rep.Closers)
	}
}

// TestHTMLReportIncident: a live report of the 64-port incident (client
// closes first, connect() fails with EADDRNOTAVAIL) draws the pile
// reaching the port range, the failed connects, a forecast that ran out,
// the client as the active closer and the remedies' effect.
// TCPTRACE_UPDATE_SCREENSHOT=1 also writes the top of its screenshot to
// docs/report.png, the README's picture.
func TestHTMLReportIncident(t *testing.T) {
	testutil.RequirePrivileged(t)
	h := newHosts(t, 4)
	py := filepath.Join(t.TempDir(), "incident.py")
	if err := os.WriteFile(py, []byte(incidentPy), 0o644); err != nil {
		t.Fatal(err)
	}
	page := filepath.Join(t.TempDir(), "incident.html")
	rep := startTracer(t, "report", "--json", "--port", "8080", "--html", page)
	startIncidentServer(t, h, py, "client-close")
	run(t, "ip", "netns", "exec", h.cli, "python3", py, "client-close", h.srvAddr, "8080", "20", "6")
	rep.stop(t, syscall.SIGINT)
	jr := parseReport(t, rep.stdout.Bytes())
	png := filepath.Join(t.ArtifactDir(), "incident.png")
	d := checkPage(t, page, jr, png)
	if len(jr.Timelines) == 0 || jr.Timelines[0].Daddr != h.srvAddr || jr.Timelines[0].Ports != 64 {
		t.Fatalf("first timeline: %+v, want %s:8080 with 64 ports", jr.Timelines, h.srvAddr)
	}
	tl, c := jr.Timelines[0], d.Charts[0]
	peak := 0
	for _, p := range tl.Points {
		peak = max(peak, p.TimeWait)
	}
	if peak < 60 || len(c.Failed) == 0 {
		t.Errorf("chart: peak %d TIME_WAIT (want near 64), %d failed-connect marks", peak, len(c.Failed))
	}
	l := d.Ladders[0]
	if l.Closer != "client" || !strings.Contains(l.Text, "python3") || !strings.Contains(l.Text, "closed first") {
		t.Errorf("first ladder: active closer %q, text %q; want the client, python3, closed first", l.Closer, l.Text)
	}
	if !strings.Contains(strings.Join(d.Remedies, "\n"), "tcp_tw_reuse=1") {
		t.Errorf("remedies: %q", d.Remedies)
	}
	if os.Getenv("TCPTRACE_UPDATE_SCREENSHOT") == "1" {
		b, err := os.ReadFile(strings.TrimSuffix(png, ".png") + "-top.png")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile("../../docs/report.png", b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
