package capture

import (
	"bytes"
	"io"
	"testing"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/events/eventstest"
)

// churnStream repeats the recorded churn fixture n times, each copy with its
// cookies and inodes shifted and its times moved past the previous copy's.
func churnStream(b testing.TB, n int) []events.Event {
	base, err := eventstest.LoadJSONL("../events/testdata/churn.jsonl")
	if err != nil {
		b.Fatal(err)
	}
	span := base[len(base)-1].Time - base[0].Time + 1000
	out := make([]events.Event, 0, n*len(base))
	for i := range n {
		for _, ev := range base {
			ev.Time += uint64(i) * span
			ev.Cookie += uint64(i) << 24
			if ev.Inode != 0 {
				ev.Inode += uint64(i) << 24
			}
			out = append(out, ev)
		}
	}
	return out
}

func BenchmarkWrite(b *testing.B) {
	evs := churnStream(b, 40)
	var buf bytes.Buffer
	w, err := NewWriter(&buf, testOptions())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ev := evs[i%len(evs)]
		ev.Time += uint64(i/len(evs)) * (evs[len(evs)-1].Time - evs[0].Time)
		ev.Cookie += uint64(i/len(evs)) << 32
		if err := w.Write(&ev); err != nil {
			b.Fatal(err)
		}
		if buf.Len() > 64<<20 {
			buf.Reset()
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	size := len(encodeAll(b, evs, testOptions()))
	b.ReportMetric(float64(size)/float64(len(evs)), "bytes/event")
}

func BenchmarkRead(b *testing.B) {
	evs := churnStream(b, 2000)
	data := encodeAll(b, evs, testOptions())
	b.SetBytes(int64(len(data)) / int64(len(evs)))
	b.ReportAllocs()
	b.ResetTimer()
	var ev events.Event
	var r *Reader
	for i := 0; i < b.N; i++ {
		if r == nil {
			var err error
			if r, err = NewReader(bytes.NewReader(data)); err != nil {
				b.Fatal(err)
			}
		}
		if err := r.Next(&ev); err == io.EOF {
			r = nil
		} else if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(len(data))/float64(len(evs)), "bytes/event")
}
