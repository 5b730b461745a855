package top

import (
	"net/netip"
	"sync/atomic"

	"github.com/tcptrace/tcptrace/internal/clock"
	"github.com/tcptrace/tcptrace/internal/diagnosis"
	"github.com/tcptrace/tcptrace/internal/ladder"
	"github.com/tcptrace/tcptrace/internal/pipeline"
	"github.com/tcptrace/tcptrace/internal/render/diagram"
	"github.com/tcptrace/tcptrace/internal/render/style"
)

// Feeder makes the model's snapshots from a running pipeline. Snapshot
// runs on the pipeline's goroutine (from its Every work); Open may be
// called from the model's.
type Feeder struct {
	P        *pipeline.Pipeline
	Src      pipeline.Source
	Wall     clock.Wall
	Shapes   *ladder.Collector   // the pipeline's connections as ladders; nil: no ladders
	Style    style.Options       // the ladders' drawing
	Label    func(uint32) string // a process's container; nil: none
	RingFill func() float64      // nil: not live
	open     atomic.Pointer[diagnosis.Dest]
	asked    chan struct{}
}

// Open asks for a destination's ladders in the next snapshots (nil: none).
func (f *Feeder) Open(d *diagnosis.Dest) {
	f.open.Store(d)
	select {
	case f.Asked() <- struct{}{}:
	default:
	}
}

// Opened returns the destination whose ladders are asked for, nil if none.
func (f *Feeder) Opened() *diagnosis.Dest { return f.open.Load() }

// Asked is signalled when Open is called: once the pipeline has ended, the
// caller answers with a Snapshot of its own.
func (f *Feeder) Asked() chan struct{} {
	if f.asked == nil {
		f.asked = make(chan struct{}, 1)
	}
	return f.asked
}

// Snapshot is the state at the source's clock now; done says the source
// ended.
func (f *Feeder) Snapshot(done bool) *Snapshot {
	now := f.Src.Now()
	rep := f.P.ReportAt(now)
	s := &Snapshot{Wall: f.Wall.Time(now), Mono: now, Elapsed: rep.Elapsed, Events: f.P.Stats().Events,
		RingFill: -1, Report: rep, Done: done, Label: f.Label}
	if lost, err := f.Src.Losses(); err == nil {
		s.Lost = lost
	}
	if f.RingFill != nil {
		s.RingFill = f.RingFill()
	}
	if d := f.open.Load(); d != nil && f.Shapes != nil {
		s.Open, s.Ladders = d, f.ladders(*d)
	}
	return s
}

// ladders draws a destination's shapes and its latest connection.
func (f *Feeder) ladders(d diagnosis.Dest) *Ladders {
	l := &Ladders{}
	key := ladder.Dest{Netns: d.Netns, Local: d.Saddr, Remote: netip.AddrPortFrom(d.Daddr, d.Dport)}
	for _, sh := range f.Shapes.Agg.Shapes() {
		if k, ok := ladder.ClientDest(sh.Ladder); ok && k == key {
			l.Aggregate = append(append(l.Aggregate, diagram.ShapeText(sh, f.Style)...), "")
		}
	}
	if r := f.Shapes.Latest(key); r != nil {
		l.Example = diagram.LadderText(r, f.Style)
	}
	return l
}
