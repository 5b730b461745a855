// Package pipeline runs one event stream, from the kernel (Live) or from a
// capture (Replay), through the connection tracker and the TIME_WAIT
// diagnosis to the sinks a mode chose. The periodic work (the source's feed
// of what it read beside the stream, forecasts, the sinks' ticks, flushes)
// has one home, tick, driven by the source's clock, so a replay runs as the
// live run did.
package pipeline

import (
	"errors"
	"fmt"
	"io"
	"syscall"
	"time"

	"github.com/tcptrace/tcptrace/internal/capture"
	"github.com/tcptrace/tcptrace/internal/container"
	"github.com/tcptrace/tcptrace/internal/diagnosis"
	"github.com/tcptrace/tcptrace/internal/events"
)

// tickEvery bounds how often a busy stream runs the periodic work: a write
// per event would cost more than the rest together.
const tickEvery = 25 * time.Millisecond

// tickCheckEvery is how many events pass between looks at the source's
// clock and, live, at the ring's producer position (a cache line the kernel
// keeps writing). A live stream too slow to reach it gets its ticks from
// the reader's idle polls.
const tickCheckEvery = 64

// captureFlushEvery bounds how much of a recording waits in memory.
const captureFlushEvery = 200 * time.Millisecond

// Config is what a mode chooses: its filters, its sinks, its output and
// its recording.
type Config struct {
	// Filter selects the connections the diagnosis follows (--pid,
	// --comm, --port, --host); its States are ignored: they select what a
	// view shows, and the mode filters its views itself.
	Filter events.Filter
	// Containers selects connections by namespace and container for the
	// diagnosis and every sink; Resolver names containers (live only).
	Containers container.Filter
	Resolver   *container.Resolver
	// MaxConns bounds the tracker's table (events.DefaultMaxConns if 0).
	MaxConns int
	// Diagnosis configures the diagnosis (its Out receives the warnings).
	Diagnosis diagnosis.Options
	// Sinks receive the tracker's transitions and connections after the
	// diagnosis, in order.
	Sinks []events.Sink
	// Out is the output the sinks write to, flushed at every tick and at
	// the end. Once it is closed (EPIPE: `| head`) the run ends quietly,
	// unless it records: the recording goes on until the run ends. Nil if
	// none.
	Out *Output
	// Record records every event, those the source feeds at ticks
	// included; Run closes it. Once its reader is gone (EPIPE: a capture
	// written to a pipe) the run ends quietly. Nil if none.
	Record *capture.Writer
	// Log receives a line when the output closes while recording, how
	// much the recording then holds at the end, and when a recording's
	// reader goes away (stderr); nil discards them.
	Log io.Writer
}

// Pipeline is one run: a source, the tracker, the diagnosis and the sinks.
// It is not safe for concurrent use.
type Pipeline struct {
	src      Source
	tracker  *events.Tracker
	engine   *diagnosis.Engine
	filter   events.Filter // the connection filter of the diagnosis
	out      *Output
	rec      *capture.Writer
	log      io.Writer
	outShut  bool // the output's close was seen
	outGone  bool // the output was closed while recording
	jobs     []job
	atEnd    []func()
	lastTick uint64 // the source's clock at the latest tick
	recFlush uint64 // the source's clock when the recording was last flushed
	end      uint64 // the source's clock when the stream ended
	lost     events.Losses
	err      error // the first error of the periodic work: it ends the run
	ev       events.Event
}

// job is periodic work of a mode, run at ticks at most every every ns.
type job struct {
	every, last uint64
	fn          func(now uint64)
}

// New builds the pipeline of src with c.
func New(src Source, c Config) *Pipeline {
	p := &Pipeline{src: src, filter: c.Filter, out: c.Out, rec: c.Record, log: c.Log}
	if p.log == nil {
		p.log = io.Discard
	}
	p.filter.States = nil
	p.engine = diagnosis.New(c.Diagnosis)
	tee := events.Tee{
		// First: it sets the error of port-less failed connects for the others.
		&events.Filtered{Filter: p.filter, Sink: p.engine},
	}
	tee = append(tee, c.Sinks...)
	var sink events.Sink = tee
	if c.Containers.Active() {
		sink = container.Filtered(c.Containers, c.Resolver, tee)
	}
	maxConns := c.MaxConns
	if maxConns <= 0 {
		maxConns = events.DefaultMaxConns
	}
	p.tracker = events.NewTracker(sink, src.resolver(), maxConns)
	p.tracker.SetTimeWaitEvents(src.timeWaitEvents())
	src.attach(p)
	return p
}

// Every runs fn at the ticks, at most every d of the source's clock (at
// every tick if d is 0), with the source's clock.
func (p *Pipeline) Every(d time.Duration, fn func(now uint64)) {
	p.jobs = append(p.jobs, job{every: uint64(d), fn: fn})
}

// AtEnd runs fn once the stream has ended cleanly, before the output's
// last flush.
func (p *Pipeline) AtEnd(fn func()) { p.atEnd = append(p.atEnd, fn) }

// Run feeds the stream through until the source ends or is stopped (a
// closed output stops it: the run then ends quietly), runs the sinks' end
// work and closes the recording with the source's losses.
func (p *Pipeline) Run() error {
	err := p.loop()
	p.end = p.src.Now()
	if err == nil {
		for _, fn := range p.atEnd {
			fn()
		}
	}
	if p.out != nil {
		_ = p.out.Flush() // a closed output (EPIPE) ends the run quietly
	}
	lost, lerr := p.src.Losses()
	p.lost = lost
	if p.rec != nil {
		if lerr == nil {
			p.rec.SetLosses(lost)
		}
		p.rec.SetEnd(p.end)
		cerr := p.rec.Close()
		if err == nil {
			err = cerr
		}
		if cerr == nil && p.outGone {
			fmt.Fprintf(p.log, "tcptrace: the capture holds %d events\n", p.rec.Written())
		}
		p.rec = nil // what the source feeds from now on (a report's) is not recorded
	}
	if err == nil {
		err = lerr
	}
	return err
}

// loop feeds the stream through until it ends.
func (p *Pipeline) loop() error {
	ev := &p.ev
	for n := 1; ; n++ {
		if err := p.src.Next(ev); err != nil {
			if errors.Is(err, io.EOF) {
				return p.err
			}
			return err
		}
		if err := p.step(ev); err != nil {
			p.src.Stop()
			return err
		}
		p.engine.Tick(ev.Time) // forecasts follow event time, as on replay
		if n%tickCheckEvery == 0 {
			if now := p.src.Now(); now-p.lastTick >= uint64(tickEvery) && p.src.drained() {
				p.tick(now)
			}
		}
		if p.err != nil {
			return p.err
		}
		p.outClosed()
	}
}

// outClosed stops the source, once, when the output has been closed (e.g.
// piped into head: the run finishes quietly), unless a recording goes on.
func (p *Pipeline) outClosed() {
	if p.outShut || p.out == nil || p.out.Err() == nil {
		return
	}
	p.outShut = true
	if p.rec == nil {
		p.src.Stop()
		return
	}
	p.outGone = true
	fmt.Fprintf(p.log, "tcptrace: the output was closed; the capture records on until the run ends\n")
}

// step passes one event, from the stream or fed by the source, to the
// tracker, to the diagnosis when it is a timewait step, and to the
// recording (after the tracker, which stamps its owner).
func (p *Pipeline) step(ev *events.Event) error {
	p.tracker.Observe(ev)
	if ev.Kind == events.KindTimeWait {
		p.timeWait(ev)
	}
	if p.rec != nil {
		return p.recorded(p.rec.Write(ev))
	}
	return nil
}

// recorded returns err, the recording's, unless the recording's reader
// has gone (EPIPE: a capture written to a pipe whose reader quit): then
// recording stops, the source too, and the run ends quietly.
func (p *Pipeline) recorded(err error) error {
	if err == nil || !errors.Is(err, syscall.EPIPE) {
		return err
	}
	fmt.Fprintf(p.log, "tcptrace: the capture's reader went away (broken pipe) after %d events: stopping\n", p.rec.Written())
	p.rec = nil
	p.src.Stop()
	return nil
}

// timeWait passes a timewait step the tracker has seen to the diagnosis.
// The connection filter picks the sockets the diagnosis follows (at their
// start, or when found at start): their later steps carry no owner once
// the connection has ended, and the diagnosis knows them by cookie.
// A later step of a socket the diagnosis does not follow (its start was
// filtered out, lost, or predates tracing) passes only as its start would
// have: a move would file it, an end count it as a stray.
func (p *Pipeline) timeWait(ev *events.Event) {
	switch {
	case ev.TwOp == events.TwStart || ev.TwOp == events.TwFound:
		if !p.filter.MatchEvent(ev) {
			return
		}
	case !p.engine.Holds(ev.Cookie) && !p.filter.MatchEvent(ev):
		return
	}
	p.engine.TimeWait(ev)
}

// idle runs the periodic work when the live source finds nothing to read.
func (p *Pipeline) idle() {
	if p.err == nil {
		p.tick(p.src.Now())
	}
}

// tick is the periodic work, at most every tickEvery while events flow and
// at each idle poll of a live source: the source's feed, the forecasts, the
// modes' jobs (diagram ticks, metrics, the memory limit), then the
// recording's and the output's flushes.
func (p *Pipeline) tick(now uint64) {
	p.lastTick = now
	if err := p.src.tick(p, now); err != nil && p.err == nil {
		p.err = err // the recording failed while the source fed it
		p.src.Stop()
	}
	p.engine.Tick(now)
	for i := range p.jobs {
		j := &p.jobs[i]
		if j.last == 0 || now-j.last >= j.every {
			j.last = now
			j.fn(now)
		}
	}
	if p.rec != nil && now-p.recFlush >= uint64(captureFlushEvery) {
		p.recFlush = now
		// An error stays in the writer (the next Write returns it); a
		// gone reader ends the run now, idle or not.
		_ = p.recorded(p.rec.Flush())
	}
	if p.out != nil {
		_ = p.out.Flush()
		p.outClosed() // idle, no event would tell
	}
}

// Stats returns the tracker's counters.
func (p *Pipeline) Stats() events.Stats { return p.tracker.Stats() }

// Losses returns the source's loss counters as read when the stream ended.
func (p *Pipeline) Losses() events.Losses { return p.lost }

// Elapsed returns how long the stream ran, by the source's clock.
func (p *Pipeline) Elapsed() time.Duration { return p.since(p.end) }

// since returns the source's clock now less its start.
func (p *Pipeline) since(now uint64) time.Duration {
	if start := p.src.Start(); now > start {
		return time.Duration(now - start)
	}
	return 0
}

// ReportAt returns the diagnosis at now, by the source's clock.
func (p *Pipeline) ReportAt(now uint64) *diagnosis.Report {
	return p.engine.Report(now, p.since(now), p.src.ledgerNote())
}

// Report returns the diagnosis now, for a report at exit. A live source
// first completes its start-up read of the namespaces (waiting for it a
// bounded time), so a report shows the pile even when the run was shorter
// than the read.
func (p *Pipeline) Report() *diagnosis.Report {
	p.src.settle(p)
	return p.ReportAt(p.src.Now())
}
