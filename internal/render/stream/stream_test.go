package stream

import (
	"bytes"
	"encoding/json"
	"io"
	"math/rand"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/clock"
	"github.com/tcptrace/tcptrace/internal/diagnosis"
	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/events/eventstest"
	"github.com/tcptrace/tcptrace/internal/render/rendertest"
	"github.com/tcptrace/tcptrace/internal/render/report"
	"github.com/tcptrace/tcptrace/internal/render/style"
)

func TestGoldenText(t *testing.T) {
	variants := []struct {
		name string
		o    style.Options
	}{
		{"text80", style.Options{Width: 80}},
		{"text120", style.Options{Width: 120}},
		{"text160", style.Options{Width: 160}},
		{"ascii80", style.Options{Width: 80, ASCII: true}},
		{"pipe80", style.Options{Width: 80, Pipe: true}},
		{"pipe160", style.Options{Width: 160, Pipe: true}},
	}
	for _, path := range rendertest.Fixtures(t) {
		for _, v := range variants {
			t.Run(rendertest.Name(path)+"/"+v.name, func(t *testing.T) {
				var buf bytes.Buffer
				o := v.o
				o.Clock = rendertest.Clock
				txt := NewText(&buf, o)
				rendertest.Replay(t, path, txt)
				if err := txt.Err(); err != nil {
					t.Fatal(err)
				}
				if !o.Pipe { // off a terminal lines widen rather than cut
					rendertest.CheckWidth(t, buf.String(), o.Columns())
				}
				rendertest.Golden(t, rendertest.Name(path)+"."+v.name+".golden", buf.Bytes())
			})
		}
	}
}

// TestGoldenColor: the text view on a colour terminal, at a narrow width
// (remarks on continuation lines) and a wide one (remarks inline). Its
// escapes are the palette's as lipgloss renders it.
func TestGoldenColor(t *testing.T) {
	for _, path := range rendertest.Fixtures(t) {
		for _, width := range []int{80, 120} {
			name := rendertest.Name(path) + ".color" + strconv.Itoa(width)
			t.Run(name, func(t *testing.T) {
				var buf bytes.Buffer
				txt := NewText(&buf, style.Options{Width: width, Color: true, Clock: rendertest.Clock})
				rendertest.Replay(t, path, txt)
				for _, line := range strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n") {
					if n := style.Cells(line); n > width {
						t.Errorf("line is %d cells wide, over %d:\n%s", n, width, line)
					}
				}
				rendertest.Golden(t, name+".golden", buf.Bytes())
			})
		}
	}
}

// TestGoldenJSON writes each fixture's lines and, last, the summary line
// (its processes from the diagnosis, as tcptrace --json ends).
func TestGoldenJSON(t *testing.T) {
	for _, path := range rendertest.Fixtures(t) {
		t.Run(rendertest.Name(path), func(t *testing.T) {
			var buf bytes.Buffer
			j := NewJSON(&buf, rendertest.Clock)
			sum, eng := report.NewSummarizer(), diagnosis.New(diagnosis.Options{})
			st, lost, last := rendertest.Replay(t, path, events.Tee{j, sum, eng})
			s := sum.Summary(st, lost, 1500*time.Millisecond)
			s.SetReport(eng.Report(last, 0, ""))
			if err := s.WriteJSON(&buf); err != nil {
				t.Fatal(err)
			}
			if err := j.Err(); err != nil {
				t.Fatal(err)
			}
			rendertest.CheckJSONLines(t, buf.Bytes())
			rendertest.Golden(t, rendertest.Name(path)+".json.golden", buf.Bytes())
		})
	}
}

// TestWidths checks every layout from the narrowest to very wide fits.
func TestWidths(t *testing.T) {
	for _, path := range rendertest.Fixtures(t) {
		for w := style.MinWidth; w <= 220; w += 7 {
			for _, ascii := range []bool{false, true} {
				var buf bytes.Buffer
				o := style.Options{Width: w, ASCII: ascii, Clock: rendertest.Clock}
				rendertest.Replay(t, path, NewText(&buf, o))
				rendertest.CheckWidth(t, buf.String(), w)
				if ascii && strings.ContainsFunc(buf.String(), func(r rune) bool { return r > 0x7e }) {
					t.Errorf("width %d: non-ASCII output with ASCII set", w)
				}
			}
		}
	}
}

// TestPipe: off a terminal every transition is one line that holds its
// process name, both state names and both endpoints whole, at any width,
// so that grep finds them; columns line up where the texts fit.
func TestPipe(t *testing.T) {
	for _, path := range rendertest.Fixtures(t) {
		for _, w := range []int{style.MinWidth, 80, 120, 160} {
			var buf bytes.Buffer
			col := &eventstest.Collector{}
			txt := NewText(&buf, style.Options{Width: w, Pipe: true, Clock: rendertest.Clock})
			rendertest.Replay(t, path, events.Tee{txt, col})
			lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
			var recs []string
			for _, l := range lines[1:] {
				if !strings.HasPrefix(l, "!! ") { // loss notices: one line each too
					recs = append(recs, l)
				}
			}
			name := rendertest.Name(path) + "/" + strconv.Itoa(w)
			if len(recs) != len(col.Transitions) {
				t.Fatalf("%s: %d lines for %d transitions:\n%s", name, len(recs), len(col.Transitions), buf.String())
			}
			for i, tr := range col.Transitions {
				c, l := tr.Conn, recs[i]
				for _, want := range []string{style.Sanitize(tr.Event.Comm.String()), tr.Old.String(),
					tr.Shown().String(), style.Endpoint(c.Saddr, c.Sport), style.Endpoint(c.Daddr, c.Dport)} {
					if !strings.Contains(l+" ", want) {
						t.Errorf("%s: line %d lacks %q:\n%s", name, i+1, want, l)
					}
				}
				if strings.ContainsAny(l, "…└") {
					t.Errorf("%s: line %d cut or continued:\n%s", name, i+1, l)
				}
			}
		}
	}
}

// TestPipeColor: colour forced on off a terminal (--color always | less
// -R) only adds escapes to the one-line records.
func TestPipeColor(t *testing.T) {
	esc := regexp.MustCompile("\x1b\\[[0-9;]*m")
	for _, path := range rendertest.Fixtures(t) {
		var plain, color bytes.Buffer
		rendertest.Replay(t, path, NewText(&plain, style.Options{Width: 80, Pipe: true, Clock: rendertest.Clock}))
		rendertest.Replay(t, path, NewText(&color, style.Options{Width: 80, Pipe: true, Color: true, Clock: rendertest.Clock}))
		if !bytes.Contains(color.Bytes(), []byte("\x1b[")) {
			t.Errorf("%s: no escapes with colour on", rendertest.Name(path))
		}
		if got := esc.ReplaceAllString(color.String(), ""); got != plain.String() {
			t.Errorf("%s: colour changed the text:\n%s\nvs\n%s", rendertest.Name(path), got, plain.String())
		}
	}
}

// TestPipeWidens: a text longer than its column (here a name of an
// unknown owner, marked "?", and an IPv6 pair) widens its line, whole; the
// next line, whose texts fit, keeps the columns.
func TestPipeWidens(t *testing.T) {
	var buf bytes.Buffer
	txt := NewText(&buf, style.Options{Width: 80, Pipe: true, NoHeader: true, Clock: rendertest.Clock})
	v6 := &events.Conn{Cookie: 1, Saddr: netip.MustParseAddr("2001:db8::1"), Sport: 46236,
		Daddr: netip.MustParseAddr("2001:db8::2"), Dport: 6379}
	v4 := &events.Conn{Cookie: 2, Saddr: netip.MustParseAddr("127.0.0.1"), Sport: 46236,
		Daddr: netip.MustParseAddr("127.0.0.1"), Dport: 6379, Owner: events.Owner{Source: events.OwnerSyscall}}
	for _, c := range []*events.Conn{v6, v4} {
		comm := "kworker/u16:2ev"
		if c == v4 {
			comm = "nginx"
		}
		ev := &events.Event{Time: 780e9, PID: 5061, Comm: events.MakeComm(comm), Old: events.Established, New: events.CloseWait}
		txt.Transition(&events.Transition{Event: ev, Conn: c, Old: events.Established, New: events.CloseWait, InOld: 1500})
	}
	want := "12:00:00.000000    5061 ?kworker/u16:2ev [2001:db8::1]:46236→[2001:db8::2]:6379 1.50µs  ESTABLISHED→CLOSE_WAIT\n" +
		"12:00:00.000000    5061 nginx           127.0.0.1:46236→127.0.0.1:6379  1.50µs  ESTABLISHED→CLOSE_WAIT\n"
	if got := buf.String(); got != want {
		t.Errorf("got\n%swant\n%s", got, want)
	}
}

func TestColor(t *testing.T) {
	path := rendertest.Fixture(t, "synthetic_gaps")
	for _, color := range []bool{false, true} {
		var buf bytes.Buffer
		o := style.Options{Color: color, Clock: rendertest.Clock}
		rendertest.Replay(t, path, NewText(&buf, o))
		if got := bytes.Contains(buf.Bytes(), []byte("\x1b[")); got != color {
			t.Errorf("Color=%v: escape codes present = %v", color, got)
		}
		if !bytes.Contains(buf.Bytes(), []byte("TIME_WAIT")) {
			t.Errorf("Color=%v: TIME_WAIT missing", color)
		}
	}
}

// TestLabel: Options.Label names each connection's container on its
// verdict line.
func TestLabel(t *testing.T) {
	var buf bytes.Buffer
	o := style.Options{Width: 120, Clock: rendertest.Clock, Label: func(c *events.Conn) string {
		if c.Role == events.RoleClient {
			return "container=app/web-0"
		}
		return ""
	}}
	rendertest.Replay(t, rendertest.Fixture(t, "client_close"), NewText(&buf, o))
	var client, server bool
	for _, l := range strings.Split(buf.String(), "\n") {
		if strings.Contains(l, "role=client") {
			client = strings.Contains(l, "container=app/web-0")
		}
		if strings.Contains(l, "role=server") {
			server = !strings.Contains(l, "container=")
		}
	}
	if !client || !server {
		t.Errorf("client labelled %v, server unlabelled %v:\n%s", client, server, buf.String())
	}
}

// TestNoPanic feeds nil pointers, out-of-range enums and random events.
func TestNoPanic(t *testing.T) {
	sinks := func(w io.Writer) []events.Sink {
		return []events.Sink{NewText(w, style.Options{}), NewText(w, style.Options{Width: 1000, ASCII: true}),
			NewText(w, style.Options{Width: -5, Color: true}), NewJSON(w, clock.Wall{})}
	}
	var buf bytes.Buffer
	for _, s := range sinks(&buf) {
		s.Transition(nil)
		s.Transition(&events.Transition{})
		s.Transition(&events.Transition{Event: &events.Event{}, InOld: -7})
		s.Finished(nil)
		s.Finished(&events.Conn{Role: 200, Closer: 200, End: 200, ResetBy: 200, Owner: events.Owner{Source: 200}, Start: 5})
		s.Loss(nil)
		s.Loss(&events.Event{Kind: events.KindLoss, Lost: events.Losses{Ring: 1 << 63, Recursion: 1 << 63}})
	}
	rng := rand.New(rand.NewSource(1))
	tr := events.NewTracker(events.Tee(sinks(&buf)), nil, 8)
	for i := 0; i < 20000; i++ {
		ev := events.Event{Kind: events.Kind(rng.Intn(3)), Time: rng.Uint64() >> uint(rng.Intn(64)),
			Cookie: uint64(rng.Intn(20)), PID: rng.Uint32() >> uint(rng.Intn(32)), Family: uint16(rng.Intn(12)),
			Sport: uint16(rng.Intn(3)), Dport: uint16(rng.Intn(3)), Err: uint16(rng.Intn(120)),
			Old: events.State(rng.Intn(14)), New: events.State(rng.Intn(14)), Flags: events.Flags(rng.Intn(32))}
		rng.Read(ev.Comm[:])
		if rng.Intn(2) == 0 {
			ev.Saddr = netip.AddrFrom16([16]byte{15: byte(i)})
		}
		tr.Observe(&ev)
	}
	for _, line := range bytes.Split(buf.Bytes(), []byte("\n")) {
		if bytes.HasPrefix(line, []byte(`{"type"`)) && !json.Valid(line) {
			t.Fatalf("invalid JSON: %s", line)
		}
	}
}

// TestJSONEscapes: names are escaped as encoding/json escapes them, <, >
// and & included.
func TestJSONEscapes(t *testing.T) {
	var buf bytes.Buffer
	j := NewJSON(&buf, rendertest.Clock)
	ev := &events.Event{Comm: events.MakeComm(`a<b>&"c"` + "\x01")}
	j.Transition(&events.Transition{Event: ev, InOld: -1})
	want, _ := json.Marshal(ev.Comm.String())
	if !bytes.Contains(buf.Bytes(), append([]byte(`"comm":`), want...)) {
		t.Errorf("comm not as encoding/json writes it (%s):\n%s", want, buf.Bytes())
	}
}

// memoCheck is a Sink that writes each object with long-lived views and
// with new ones, which remember nothing, and fails when they differ.
type memoCheck struct {
	t          *testing.T
	o          style.Options
	text       *Text
	json       *JSON
	long, new_ bytes.Buffer
}

func (m *memoCheck) compare(what string, long, fresh func()) {
	m.long.Reset()
	m.new_.Reset()
	long()
	fresh()
	if !bytes.Equal(m.long.Bytes(), m.new_.Bytes()) {
		m.t.Fatalf("%s: a view that remembers wrote\n%q\na new one\n%q", what, m.long.Bytes(), m.new_.Bytes())
	}
}

func (m *memoCheck) Transition(tr *events.Transition) {
	m.compare("text", func() { m.text.Transition(tr) }, func() { NewText(&m.new_, m.o).Transition(tr) })
	m.compare("json", func() { m.json.Transition(tr) }, func() { NewJSON(&m.new_, m.o.Clock).Transition(tr) })
}

func (m *memoCheck) Finished(c *events.Conn) {
	m.compare("json", func() { m.json.Finished(c) }, func() { NewJSON(&m.new_, m.o.Clock).Finished(c) })
}

func (m *memoCheck) Loss(*events.Event) {}

// TestMemo: views that have written many connections write each line as
// new views write it, whatever changed: what they remember of a connection
// is never stale, and connections sharing a memo slot do not mix.
func TestMemo(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	addrs := []netip.Addr{{}, netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"),
		netip.MustParseAddr("::1"), netip.MustParseAddr("fe80::1%eth0")}
	comms := []string{"curl", "nginx", "ksoftirqd/1", "a long task name"}
	for _, o := range []style.Options{{Width: 160}, {Width: 80, Color: true}, {Width: 120, ASCII: true}, {Width: 80, Pipe: true}, {Width: 160, Pipe: true, Color: true}} {
		o.NoHeader, o.Clock = true, rendertest.Clock
		m := &memoCheck{t: t, o: o}
		m.text, m.json = NewText(&m.long, o), NewJSON(&m.long, o.Clock)
		tr := events.NewTracker(m, nil, 8)
		mono := uint64(780e9)
		for range 1500 {
			mono += uint64(rng.Int63n(2e9))
			ev := events.Event{Kind: events.Kind(rng.Intn(2)), Time: mono,
				Cookie: uint64(rng.Intn(4)*64 + rng.Intn(2)), PID: uint32(rng.Intn(3)), Family: 2 + 8*uint16(rng.Intn(2)),
				Saddr: addrs[rng.Intn(len(addrs))], Daddr: addrs[rng.Intn(len(addrs))],
				Sport: uint16(rng.Intn(3)), Dport: uint16(rng.Intn(3)), Netns: uint32(rng.Intn(2)),
				Old: events.State(rng.Intn(13)), New: events.State(rng.Intn(13)), Flags: events.Flags(rng.Intn(32)),
				Comm: events.MakeComm(comms[rng.Intn(len(comms))])}
			tr.Observe(&ev)
		}
	}
}
