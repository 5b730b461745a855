package stream

import (
	"io"
	"path/filepath"
	"testing"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/events/eventstest"
	"github.com/tcptrace/tcptrace/internal/render/rendertest"
	"github.com/tcptrace/tcptrace/internal/render/style"
)

// viewStream is the recorded kernel sequences under internal/events/testdata,
// laid end to end in time, replayed over and over with every repetition's
// cookies and times moved on so the tracker sees fresh connections.
type viewStream struct {
	evs    []events.Event
	span   uint64 // time one repetition covers
	cookie uint64 // cookie offset between repetitions
	ev     events.Event
}

// loadViewStream reads the fixtures once per benchmark.
func loadViewStream(b *testing.B) *viewStream {
	b.Helper()
	s := &viewStream{cookie: 1 << 32}
	var end uint64
	paths, err := filepath.Glob(filepath.Join(rendertest.Dirs[1], "*.jsonl"))
	if err != nil || len(paths) == 0 {
		b.Fatalf("no fixtures: %v", err)
	}
	for _, p := range paths {
		evs := rendertest.Load(b, p)
		if len(evs) == 0 {
			continue
		}
		shift := end + 1000 - evs[0].Time // 1µs after the previous fixture
		for i := range evs {
			evs[i].Time += shift
			end = max(end, evs[i].Time)
		}
		s.evs = append(s.evs, evs...)
	}
	s.span = end + 1000 - s.evs[0].Time
	return s
}

// next returns event i of the endless stream, valid until the next call.
func (s *viewStream) next(i int) *events.Event {
	rep := uint64(i / len(s.evs))
	s.ev = s.evs[i%len(s.evs)]
	s.ev.Cookie += rep * s.cookie
	s.ev.Time += rep * s.span
	return &s.ev
}

// benchView feeds the stream through a tracker into sink, one event per
// iteration, after two warm-up repetitions that fill buffers.
func benchView(b *testing.B, sink events.Sink) {
	s := loadViewStream(b)
	tr := events.NewTracker(sink, nil, 0)
	warm := 2 * len(s.evs)
	for i := range warm {
		tr.Observe(s.next(i))
	}
	tracked := tr.Stats().Tracked
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		tr.Observe(s.next(warm + i))
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/event")
	if st := tr.Stats(); st.Tracked > tracked+len(s.evs) {
		b.Fatalf("tracker grows: %d connections tracked after warm-up, %d now", tracked, st.Tracked)
	}
}

// nopView is a Sink that does nothing: the tracker's own cost.
type nopView struct{}

func (nopView) Transition(*events.Transition) {}
func (nopView) Finished(*events.Conn)         {}
func (nopView) Loss(*events.Event)            {}

// BenchmarkTrackerOnly is the baseline: subtract it from the views' ns/event.
func BenchmarkTrackerOnly(b *testing.B) { benchView(b, nopView{}) }

// BenchmarkTextView is the default view piped or redirected: 80 columns,
// no colour, nothing cut, one line per transition.
func BenchmarkTextView(b *testing.B) {
	benchView(b, NewText(io.Discard, style.Options{Width: 80, Pipe: true, Clock: rendertest.Clock}))
}

// BenchmarkTextViewTerm is the default view on an 80-column terminal
// without colour: names cut to fit, remarks on continuation lines.
func BenchmarkTextViewTerm(b *testing.B) {
	benchView(b, NewText(io.Discard, style.Options{Width: 80, Clock: rendertest.Clock}))
}

// BenchmarkTextViewWide is the text view with the cookie and netns columns.
func BenchmarkTextViewWide(b *testing.B) {
	benchView(b, NewText(io.Discard, style.Options{Width: 160, Clock: rendertest.Clock}))
}

// BenchmarkTextViewColor is the text view on a colour terminal.
func BenchmarkTextViewColor(b *testing.B) {
	benchView(b, NewText(io.Discard, style.Options{Width: 120, Color: true, Clock: rendertest.Clock}))
}

// BenchmarkJSONView is the --json view.
func BenchmarkJSONView(b *testing.B) {
	benchView(b, NewJSON(io.Discard, rendertest.Clock))
}

// benchRecorded replays the sample fixture into a collector for the
// per-object benchmarks.
func benchRecorded(b *testing.B) *eventstest.Collector {
	col := &eventstest.Collector{}
	rendertest.Replay(b, rendertest.Fixture(b, "sample"), col)
	return col
}

func BenchmarkJSONTransition(b *testing.B) {
	col := benchRecorded(b)
	j := NewJSON(io.Discard, rendertest.Clock)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j.Transition(&col.Transitions[i%len(col.Transitions)])
	}
}

func BenchmarkJSONFinished(b *testing.B) {
	col := benchRecorded(b)
	j := NewJSON(io.Discard, rendertest.Clock)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j.Finished(&col.Conns[i%len(col.Conns)])
	}
}
