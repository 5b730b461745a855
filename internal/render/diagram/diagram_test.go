package diagram

import (
	"bytes"
	"math/rand"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/render/rendertest"
	"github.com/tcptrace/tcptrace/internal/render/style"
)

// diagramVariants are the layouts every fixture's diagram is checked in.
var diagramVariants = []struct {
	name string
	o    style.Options
}{
	{"text80", style.Options{Width: 80}},
	{"text120", style.Options{Width: 120}},
	{"ascii80", style.Options{Width: 80, ASCII: true}},
	{"ascii120", style.Options{Width: 120, ASCII: true}},
}

// drawFixture replays a fixture into a diagram Sink and returns its output.
func drawFixture(t *testing.T, path string, o style.Options, sel Select) string {
	t.Helper()
	var buf bytes.Buffer
	d := New(&buf, o, sel)
	rendertest.Replay(t, path, d)
	if err := d.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// TestGoldenDiagrams draws every recorded fixture (churn aggregated) in
// Unicode and ASCII at 80 and 120 columns.
func TestGoldenDiagrams(t *testing.T) {
	for _, path := range rendertest.Fixtures(t) {
		name := rendertest.Name(path)
		sel := Select{}
		if name == "churn" {
			sel.Mode = Aggregate
		}
		for _, v := range diagramVariants {
			t.Run(name+"/"+v.name, func(t *testing.T) {
				out := drawFixture(t, path, v.o, sel)
				rendertest.CheckWidth(t, out, v.o.Columns())
				checkForward(t, out)
				if v.o.ASCII && strings.IndexFunc(out, func(r rune) bool { return r > 126 }) >= 0 {
					t.Errorf("non-ASCII output in ASCII mode:\n%s", out)
				}
				rendertest.Golden(t, "diagram_"+name+"."+v.name+".golden", []byte(out))
			})
		}
	}
}

// TestGoldenDiagramReadme draws, from the kernel fixtures, the two kinds of
// diagram the README describes: one connection, and an aggregate.
func TestGoldenDiagramReadme(t *testing.T) {
	o := style.Options{Width: 80}
	out := drawFixture(t, rendertest.Fixture(t, "client_close"), o, Select{})
	rendertest.CheckWidth(t, out, 80)
	rendertest.Golden(t, "diagram_readme_client_close.txt", []byte(out))
	out = drawFixture(t, rendertest.Fixture(t, "churn"), o, Select{Mode: Aggregate})
	rendertest.CheckWidth(t, out, 80)
	rendertest.Golden(t, "diagram_readme_aggregate.txt", []byte(out))
}

// TestGoldenAggregateAll aggregates every fixture into one view.
func TestGoldenAggregateAll(t *testing.T) {
	var buf bytes.Buffer
	d := New(&buf, style.Options{Width: 120}, Select{Mode: Aggregate})
	for _, path := range rendertest.Fixtures(t) {
		rendertest.Replay(t, path, d)
	}
	if err := d.Flush(); err != nil {
		t.Fatal(err)
	}
	rendertest.CheckWidth(t, buf.String(), 120)
	rendertest.Golden(t, "diagram_all.aggregate120.golden", buf.Bytes())
}

var ansiRE = regexp.MustCompile("\x1b\\[[0-9;]*m")

// titleRE matches a diagram's first line: a connection's or a shape's.
var titleRE = regexp.MustCompile(`^(TCP |[×x][0-9,]+  )`)

// checkForward fails unless, in every diagram of out, the time column is
// labelled and its times only go forward.
func checkForward(t *testing.T, out string) {
	t.Helper()
	rows, labelled := false, 0
	var prev time.Duration
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, " ELAPSED  STATE") {
			rows, prev = true, 0
			labelled++
			continue
		}
		if !rows || len(line) < timeW {
			rows = rows && line != ""
			continue
		}
		tm := strings.TrimSpace(line[:timeW])
		if tm == "" {
			continue
		}
		d, err := time.ParseDuration(strings.ReplaceAll(tm, "us", "µs"))
		if err != nil { // the footer
			rows = false
			continue
		}
		if d < prev {
			t.Errorf("time goes back from %v to %v:\n%s\n%s", prev, d, line, out)
		}
		prev = d
	}
	want := 0
	for _, line := range strings.Split(out, "\n") {
		if titleRE.MatchString(line) {
			want++
		}
	}
	if labelled != want {
		t.Errorf("%d labelled time columns for %d diagrams:\n%s", labelled, want, out)
	}
	if strings.Contains(out, "out of order") {
		t.Errorf("times said to be out of order:\n%s", out)
	}
}

// TestTimesGoForward: every fixture's diagrams, alone and aggregated, in
// every layout, have a labelled time column that only goes forward.
func TestTimesGoForward(t *testing.T) {
	for _, path := range rendertest.Fixtures(t) {
		for _, v := range diagramVariants {
			for _, sel := range []Select{{}, {Mode: Aggregate}} {
				checkForward(t, drawFixture(t, path, v.o, sel))
			}
		}
	}
}

// TestDiagramPipe: off a terminal nothing is cut, however long: owners,
// endpoints and titles are whole, the line widened.
func TestDiagramPipe(t *testing.T) {
	path := rendertest.Fixture(t, "synthetic_gaps")
	out := drawFixture(t, path, style.Options{Width: 80, Pipe: true}, Select{})
	for _, want := range []string{"[2001:db8:ffff:1234:5678:9abc:def0:1]:443", "192.168.100.200:61234  reset"} {
		if !strings.Contains(out, want) {
			t.Errorf("lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "…") {
		t.Errorf("cut off a terminal:\n%s", out)
	}
	checkForward(t, out)
	rendertest.Golden(t, "diagram_synthetic_gaps.pipe80.golden", []byte(out))
}

// TestDiagramColor checks that colour only adds escapes, and that the
// inferred peer is italic.
func TestDiagramColor(t *testing.T) {
	for _, name := range []string{"client_close", "refused", "simultaneous"} {
		path := rendertest.Fixture(t, name)
		plain := drawFixture(t, path, style.Options{Width: 80}, Select{})
		color := drawFixture(t, path, style.Options{Width: 80, Color: true}, Select{})
		if !strings.Contains(color, "\x1b[") {
			t.Errorf("%s: no escapes with colour on", name)
		}
		if got := ansiRE.ReplaceAllString(color, ""); got != plain {
			t.Errorf("%s: colour changed the text:\n%s\nvs\n%s", name, got, plain)
		}
		if name == "refused" && !strings.Contains(color, ";3m") && !strings.Contains(color, "[3;") && !strings.Contains(color, "[3m") {
			t.Errorf("refused: inferred peer not italic:\n%q", color)
		}
	}
}

func TestParseSelect(t *testing.T) {
	for in, want := range map[string]Select{
		"": {}, "all": {}, "aggregate": {Mode: Aggregate}, "AGG": {Mode: Aggregate},
		"11272636": {Mode: Cookie, Cookie: 11272636}, "0x10": {Mode: Cookie, Cookie: 16},
	} {
		got, err := ParseSelect(in)
		if err != nil || got != want {
			t.Errorf("ParseSelect(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"0", "-3", "x", "aggregated", "18446744073709551616"} {
		if _, err := ParseSelect(in); err == nil {
			t.Errorf("ParseSelect(%q): no error", in)
		}
	}
}

// TestCookie draws only the selected connection.
func TestCookie(t *testing.T) {
	path := rendertest.Fixture(t, "client_close")
	evs := rendertest.Load(t, path)
	server := evs[len(evs)-2].Cookie // LAST_ACK→CLOSE of the accepted socket
	out := drawFixture(t, path, style.Options{Width: 80}, Select{Mode: Cookie, Cookie: server})
	if strings.Count(out, "TCP ") != 1 || !strings.Contains(out, "CLIENT") || !strings.Contains(out, "SERVER") {
		t.Errorf("cookie %d: want the pair's diagram:\n%s", server, out)
	}
	if out := drawFixture(t, path, style.Options{Width: 80}, Select{Mode: Cookie, Cookie: 1}); out != "" {
		t.Errorf("unknown cookie drew:\n%s", out)
	}
}

// TestDiagramPartnerNeverFinishes holds a half whose partner is open and
// draws it alone, with the peer inferred, at Flush or after Hold.
func TestDiagramPartnerNeverFinishes(t *testing.T) {
	evs := rendertest.Load(t, rendertest.Fixture(t, "client_close"))
	var keep []events.Event
	for _, ev := range evs {
		if ev.Old != events.LastAck { // the server never finishes
			keep = append(keep, ev)
		}
	}
	var buf bytes.Buffer
	d := New(&buf, style.Options{Width: 80}, Select{})
	tr := events.NewTracker(d, nil, 0)
	for i := range keep {
		tr.Observe(&keep[i])
	}
	if buf.Len() != 0 {
		t.Fatalf("drawn before the partner finished or Flush:\n%s", buf.String())
	}
	if err := d.Flush(); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if !strings.Contains(out, "SERVER (inferred)") || !strings.Contains(out, "active closer: CLIENT") {
		t.Errorf("want the client alone with an inferred server:\n%s", out)
	}

	// With a short hold, a later event draws it before Flush.
	buf.Reset()
	d = New(&buf, style.Options{Width: 80}, Select{})
	d.pairs.Hold = 1
	tr = events.NewTracker(d, nil, 0)
	for i := range keep {
		tr.Observe(&keep[i])
	}
	late := keep[len(keep)-1]
	late.Cookie, late.Old, late.New, late.Time = 99, events.Close, events.SynSent, late.Time+1e9
	tr.Observe(&late)
	if !strings.Contains(buf.String(), "SERVER (inferred)") {
		t.Errorf("not drawn after the hold:\n%s", buf.String())
	}
}

// TestDiagramBounds drives every bound and the spans fallback (the state
// they leave is checked in internal/ladder).
func TestDiagramBounds(t *testing.T) {
	var buf bytes.Buffer
	d := New(&buf, style.Options{Width: 80}, Select{Mode: Aggregate})
	d.pairs.MaxRecords, d.pairs.MaxPending, d.shapes.MaxShapes = 1, 1, 1
	for _, name := range []string{"churn", "client_close", "refused", "linger_reset"} {
		rendertest.Replay(t, rendertest.Fixture(t, name), d)
	}
	if err := d.Flush(); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if !strings.Contains(out, "past the limit of 1") {
		t.Errorf("no overflow line:\n%s", out)
	}
	rendertest.CheckWidth(t, out, 80)
}

// TestDiagramNoPanic feeds random streams and odd values in every mode.
func TestDiagramNoPanic(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	addrs := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1"), {}, netip.MustParseAddr("::ffff:10.0.0.1")}
	for _, sel := range []Select{{}, {Mode: Aggregate}, {Mode: Cookie, Cookie: 3}, {Mode: 9}} {
		for _, o := range []style.Options{{Width: 1}, {Width: 80, ASCII: true}, {Width: 300, Color: true}} {
			var buf bytes.Buffer
			d := New(&buf, o, sel)
			d.pairs.MaxRecords, d.pairs.MaxPending, d.shapes.MaxShapes = 8, 2, 4
			tr := events.NewTracker(d, nil, 16)
			for i := 0; i < 3000; i++ {
				ev := events.Event{Kind: events.KindTransition, Time: uint64(i) * uint64(rng.Intn(1e6)),
					Cookie: uint64(rng.Intn(12)), Saddr: addrs[rng.Intn(4)], Daddr: addrs[rng.Intn(4)],
					Sport: uint16(rng.Intn(3)), Dport: uint16(rng.Intn(3)), Old: events.State(rng.Intn(14)),
					New: events.State(rng.Intn(14)), Err: uint16(rng.Intn(120)), Flags: events.Flags(rng.Intn(32))}
				if rng.Intn(50) == 0 {
					ev.Kind = events.KindLoss
				}
				tr.Observe(&ev)
			}
			d.Transition(nil)
			d.Transition(&events.Transition{})
			d.Finished(nil)
			d.Loss(nil)
			d.Finished(&events.Conn{Cookie: 77, Role: 9, End: 99, Closer: 9, ResetBy: 9, State: 200,
				Spans: []events.Span{{State: 99, Dur: 5}, {State: events.FinWait1, Dur: 1 << 63}}})
			if err := d.Flush(); err != nil {
				t.Fatal(err)
			}
			if err := d.Aggregate(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestGoldenDiagramSingle draws each paired fixture with one socket's
// events removed: the other's peer must be inferred for every close shape.
func TestGoldenDiagramSingle(t *testing.T) {
	for _, name := range []string{"client_close", "server_close", "simultaneous", "linger_reset", "half_close", "preexisting"} {
		evs := rendertest.Load(t, rendertest.Fixture(t, name))
		var socks []uint64
		for _, ev := range evs {
			if ev.New == events.Listen || ev.Old == events.Listen && ev.New == events.Close {
				continue
			}
			if len(socks) == 0 || socks[len(socks)-1] != ev.Cookie && (len(socks) < 2 || socks[0] != ev.Cookie) {
				if len(socks) < 2 {
					socks = append(socks, ev.Cookie)
				}
			}
		}
		for i, keep := range socks {
			t.Run(name+"/"+itoa(uint64(i+1)), func(t *testing.T) {
				var buf bytes.Buffer
				d := New(&buf, style.Options{Width: 80}, Select{})
				tr := events.NewTracker(d, nil, 0)
				for _, ev := range evs {
					if ev.Cookie == keep {
						tr.Observe(&ev)
					}
				}
				if err := d.Flush(); err != nil {
					t.Fatal(err)
				}
				out := buf.String()
				if !strings.Contains(out, "(inferred)") || strings.Count(out, "TCP ") != 1 {
					t.Errorf("want one diagram with an inferred peer:\n%s", out)
				}
				rendertest.CheckWidth(t, out, 80)
				rendertest.Golden(t, "diagram_"+name+".only"+itoa(uint64(i+1))+".text80.golden", buf.Bytes())
			})
		}
	}
}

// TestDiagramReservoir aggregates more connections than the reservoir keeps.
func TestDiagramReservoir(t *testing.T) {
	var buf bytes.Buffer
	d := New(&buf, style.Options{Width: 80}, Select{Mode: Aggregate})
	for i := 0; i < 4; i++ {
		rendertest.Replay(t, rendertest.Fixture(t, "churn"), d)
	}
	if err := d.Flush(); err != nil {
		t.Fatal(err)
	}
	if out := buf.String(); !strings.Contains(out, "×200  ") || !strings.Contains(out, "in 100% (200 of 200)") {
		t.Errorf("want one shape of 200:\n%s", out)
	}
}
