package render

import (
	"bytes"
	"encoding/json"
	"github.com/charmbracelet/lipgloss"
	"io"
	"math/rand"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
	"golang.org/x/sys/unix"
)

func TestFormatDur(t *testing.T) {
	cases := []struct {
		ns   int64
		want string
	}{
		{-1, "-"}, {0, "0ns"}, {999, "999ns"}, {1000, "1.00µs"}, {5387, "5.39µs"},
		{9994, "9.99µs"}, {9995, "10.0µs"}, {27_349, "27.3µs"}, {99_950, "100µs"},
		{227_196, "227µs"}, {999_499, "999µs"}, {999_500, "1.00ms"}, {2_571_610, "2.57ms"},
		{100_139_516, "100ms"}, {999_600_000, "1.00s"}, {1_658_848_970, "1.66s"},
		{59_940_000_000, "59.9s"}, {59_960_000_000, "1m00s"}, {65e9, "1m05s"},
		{3599e9, "59m59s"}, {3600e9, "1h00m"}, {7380e9, "2h03m"}, {86400e9 * 3, "3d00h"},
		{1<<63 - 1, "106752d00h"},
	}
	for _, c := range cases {
		if got := formatDur(c.ns, false); got != c.want {
			t.Errorf("formatDur(%d) = %q, want %q", c.ns, got, c.want)
		}
	}
	if got := formatDur(5387, true); got != "5.39us" {
		t.Errorf("ascii: got %q", got)
	}
}

func TestEndpoint(t *testing.T) {
	cases := []struct {
		a    string
		port uint16
		want string
	}{
		{"127.0.0.1", 80, "127.0.0.1:80"}, {"::1", 443, "[::1]:443"}, {"0.0.0.0", 0, "*"},
		{"10.0.0.1", 0, "10.0.0.1:*"}, {"", 22, "*:22"},
	}
	for _, c := range cases {
		var a netip.Addr
		if c.a != "" {
			a = netip.MustParseAddr(c.a)
		}
		if got := endpoint(a, c.port); got != c.want {
			t.Errorf("endpoint(%s, %d) = %q, want %q", c.a, c.port, got, c.want)
		}
	}
}

func TestTrunc(t *testing.T) {
	if got := truncRight("ksoftirqd/1", 7, "…"); got != "ksofti…" {
		t.Errorf("truncRight = %q", got)
	}
	if got := truncLeft("192.168.100.200:61234", 12, "…"); got != "…0.200:61234" || cells(got) != 12 {
		t.Errorf("truncLeft = %q", got)
	}
	if got := truncRight("abc", 0, "…"); got != "" {
		t.Errorf("truncRight to 0 = %q", got)
	}
}

// TestWidths checks every layout from the narrowest to very wide fits.
func TestWidths(t *testing.T) {
	for _, path := range fixtures(t) {
		for w := minWidth; w <= 220; w += 7 {
			for _, ascii := range []bool{false, true} {
				var buf bytes.Buffer
				o := Options{Width: w, ASCII: ascii, Clock: testClock}
				replay(t, path, NewText(&buf, o))
				checkWidth(t, buf.String(), w)
				if ascii && strings.ContainsFunc(buf.String(), func(r rune) bool { return r > 0x7e }) {
					t.Errorf("width %d: non-ASCII output with ASCII set", w)
				}
			}
		}
	}
}

func TestColor(t *testing.T) {
	for _, color := range []bool{false, true} {
		var buf bytes.Buffer
		o := Options{Color: color, Clock: testClock}
		replay(t, "testdata/synthetic_gaps.jsonl", NewText(&buf, o))
		sum := NewSummarizer()
		st, lost := replay(t, "testdata/synthetic_gaps.jsonl", sum)
		if err := sum.Summary(st, lost, 0).WriteText(&buf, o); err != nil {
			t.Fatal(err)
		}
		if got := bytes.Contains(buf.Bytes(), []byte("\x1b[")); got != color {
			t.Errorf("Color=%v: escape codes present = %v", color, got)
		}
		if !bytes.Contains(buf.Bytes(), []byte("TIME_WAIT")) {
			t.Errorf("Color=%v: TIME_WAIT missing", color)
		}
	}
}

// TestNoPanic feeds nil pointers, out-of-range enums and random events.
func TestNoPanic(t *testing.T) {
	sinks := func(w io.Writer) []events.Sink {
		return []events.Sink{NewText(w, Options{}), NewText(w, Options{Width: 1000, ASCII: true}),
			NewText(w, Options{Width: -5, Color: true}), NewJSON(w, Clock{}), NewSummarizer()}
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
	var nilSum *Summary
	if err := nilSum.WriteText(&buf, Options{}); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(1))
	tee := events.Tee(sinks(&buf))
	tr := events.NewTracker(tee, nil, 8)
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

func TestAppendQuoted(t *testing.T) {
	for _, s := range []string{"", "plain", "q\"b\\s", "\x00\x1b[31m\x7f", "naïve", "\xff\xfe", "日本"} {
		b := appendQuoted(nil, s)
		var back string
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%q: %v (%s)", s, err, b)
		}
		std, _ := json.Marshal(s)
		if string(std) != string(b) && strings.ToValidUTF8(s, "\uFFFD") != back {
			t.Errorf("%q round-trips to %q", s, back)
		}
		c := events.MakeComm(s)
		if got := appendComm(nil, &c); !json.Valid([]byte("{" + string(got[1:]) + "}")) {
			t.Errorf("appendComm(%q) = %s", s, got)
		}
	}
}

func BenchmarkJSONTransition(b *testing.B) {
	evs, err := events.LoadJSONL("testdata/sample.jsonl")
	if err != nil {
		b.Fatal(err)
	}
	j := NewJSON(io.Discard, testClock)
	col := &events.Collector{}
	tr := events.NewTracker(col, nil, 0)
	for i := range evs {
		tr.Observe(&evs[i])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j.Transition(&col.Transitions[i%len(col.Transitions)])
	}
}

func BenchmarkJSONFinished(b *testing.B) {
	evs, err := events.LoadJSONL("testdata/sample.jsonl")
	if err != nil {
		b.Fatal(err)
	}
	j := NewJSON(io.Discard, testClock)
	col := &events.Collector{}
	tr := events.NewTracker(col, nil, 0)
	for i := range evs {
		tr.Observe(&evs[i])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j.Finished(&col.Conns[i%len(col.Conns)])
	}
}

func TestLiveClock(t *testing.T) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Skip(err)
	}
	got := LiveClock().Wall(uint64(ts.Nano()))
	if d := time.Since(got); d < -time.Second || d > time.Second {
		t.Errorf("LiveClock is off by %v", d)
	}
	if (Clock{}).Wall(0).Location() != time.Local {
		t.Error("nil Loc should mean time.Local")
	}
}

// TestCellsFastPath: the fast count agrees with lipgloss on the glyphs the
// views use, and falls back for anything else.
func TestCellsFastPath(t *testing.T) {
	for _, s := range []string{"", "abc", "ESTAB→FIN_WAIT1", "27.3µs", "└ active close", "×12,000", "─── SYN ──▶ │", "漢字", "e\u0301", "\x1b[1mbold\x1b[0m"} {
		if got, want := cells(s), lipgloss.Width(s); got != want {
			t.Errorf("cells(%q) = %d, lipgloss.Width = %d", s, got, want)
		}
	}
}
