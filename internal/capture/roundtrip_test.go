package capture

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/events/eventstest"
)

// fixtures returns every recorded kernel sequence, by file name.
func fixtures(t testing.TB) map[string][]events.Event {
	t.Helper()
	paths, err := filepath.Glob("../events/testdata/*.jsonl")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	m := map[string][]events.Event{}
	for _, p := range paths {
		evs, err := eventstest.LoadJSONL(p)
		if err != nil {
			t.Fatal(err)
		}
		m[filepath.Base(p)] = evs
	}
	return m
}

// fakeLookup records namespaces without reading /proc.
func fakeLookup(ns uint32, _ ...uint32) *Netns {
	return &Netns{Inode: ns, Via: "test", Sysctls: map[string]string{"tcp_tw_reuse": "2"}}
}

func testOptions() Options {
	return Options{Tool: "test", ClockOffset: 1_700_000_000_000_000_000, Lookup: fakeLookup}
}

// encodeAll writes evs to a capture in memory.
func encodeAll(t testing.TB, evs []events.Event, opts Options) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range evs {
		if err := w.Write(&evs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// readAll replays a capture, returning its events and the error that ended it.
func readAll(b []byte) (*Reader, []events.Event, error) {
	r, err := NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, nil, err
	}
	var out []events.Event
	for {
		var ev events.Event
		err := r.Next(&ev)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			return r, out, err
		}
		out = append(out, ev)
	}
}

func sameEvents(t testing.TB, got, want []events.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d events, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("event %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
}

func TestRoundTripFixtures(t *testing.T) {
	for name, evs := range fixtures(t) {
		t.Run(name, func(t *testing.T) {
			b := encodeAll(t, evs, testOptions())
			r, got, err := readAll(b)
			if err != nil {
				t.Fatal(err)
			}
			sameEvents(t, got, evs)
			if r.Truncated() != nil || r.Trailer() == nil || r.Trailer().Events != uint64(len(evs)) {
				t.Fatalf("truncated %v trailer %+v", r.Truncated(), r.Trailer())
			}
			h := r.Header()
			if h.ClockOffset != testOptions().ClockOffset || h.Tool != "test" || h.Format != Version || len(h.Netns) == 0 {
				t.Fatalf("header %+v", h)
			}
			t.Logf("%s: %d events, %.1f bytes/event", name, len(evs), float64(len(b))/float64(len(evs)))
		})
	}
}

// TestRoundTripOddValues covers values the kernel rarely produces: zones,
// mapped addresses, states past 14, unknown kinds, loss notices, reused cookies.
func TestRoundTripOddValues(t *testing.T) {
	z := netip.MustParseAddr("fe80::1%eth0")
	m := netip.MustParseAddr("::ffff:10.0.0.1")
	long := events.Comm{'a', 0, 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o'}
	evs := []events.Event{
		{Kind: events.KindLoss, Time: 5, Lost: events.Losses{Ring: 3, Recursion: 1}},
		{Time: 4, Cookie: 1, Saddr: z, Daddr: m, Family: 10, Old: 200, New: 15, Comm: long, TaskComm: long, PID: 1<<32 - 1},
		{Time: 1 << 63, Cookie: 1, Saddr: z, Daddr: netip.IPv6Unspecified(), Old: events.Close, New: events.Close, Err: 111},
		{Time: 0, Cookie: 1, Old: events.Close, New: events.SynSent, Netns: 7, Inode: 1 << 60},
		{Kind: 9, Time: 3, Cookie: 2, Flags: 255},
		{Time: 3, Cookie: 0, Sport: 65535, Dport: 1, TaskPID: 4, TaskTID: 5},
	}
	_, got, err := readAll(encodeAll(t, evs, testOptions()))
	if err != nil {
		t.Fatal(err)
	}
	sameEvents(t, got, evs)
}

// TestRoundTripManyConns reaches past the connection table and the task-name
// table: old connections are sent again in full.
func TestRoundTripManyConns(t *testing.T) {
	var evs []events.Event
	for i := range 3 * connSlots {
		c := uint64(i % (connSlots + 100))
		evs = append(evs, events.Event{Time: uint64(i) * 1000, Cookie: c, Sport: uint16(i), Comm: events.MakeComm(string(rune('a'+i%26)) + string(rune(i))), Old: events.Established, New: events.FinWait1})
	}
	_, got, err := readAll(encodeAll(t, evs, testOptions()))
	if err != nil {
		t.Fatal(err)
	}
	sameEvents(t, got, evs)
}
