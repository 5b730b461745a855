package pipeline

import (
	"io"

	"github.com/tcptrace/tcptrace/internal/capture"
	"github.com/tcptrace/tcptrace/internal/diagnosis"
	"github.com/tcptrace/tcptrace/internal/events"
)

// Source is where a run's events come from: the kernel (Live) or a capture
// (Replay). A mode may wrap one by embedding it and replacing Next.
type Source interface {
	events.Source
	// Now returns the source's clock (CLOCK_MONOTONIC ns): the kernel's
	// now when live, the latest event's time (or the recording's end) on
	// replay.
	Now() uint64
	// Start returns the source's clock when the stream began.
	Start() uint64
	// Losses returns the events the kernel could not deliver.
	Losses() (events.Losses, error)
	// Stop makes Next return io.EOF once what is buffered has been read.
	Stop()

	resolver() events.Resolver // owners of sockets the kernel did not see, or nil
	timeWaitEvents() bool      // the stream reports timewait sockets
	attach(p *Pipeline)        // seeds p: listeners, sysctls, hooks
	drained() bool             // nothing is buffered: a tick now delays no event
	tick(p *Pipeline, now uint64) error
	settle(p *Pipeline) // before a report at exit
	ledgerNote() string // how the report counts TIME_WAIT, when not from live events
}

// Replay is a capture as a source: the stream as it was recorded, with the
// sysctls recorded for each namespace. It needs no privileges.
type Replay struct {
	r       *capture.Reader
	last    uint64 // the latest event's time
	stopped bool
	stream  bool   // read from a stream, which may wait for its writer
	onWait  func() // before a read that may wait (a stream's)
}

// OpenReplay opens the capture at path.
func OpenReplay(path string) (*Replay, error) {
	r, err := capture.Open(path)
	if err != nil {
		return nil, err
	}
	return &Replay{r: r}, nil
}

// NewReplay reads a capture from in, a stream that need not seek
// (standard input, a pipe from a recording run). It reads as a file is
// read, front to back: the end record comes last, as with a file, and a
// stream that ends without it was cut short. The views' output is flushed
// whenever the next read may wait for the writer.
func NewReplay(in io.Reader) (*Replay, error) {
	r, err := capture.NewReader(in)
	if err != nil {
		return nil, err
	}
	return &Replay{r: r, stream: true}, nil
}

// Capture returns the capture read.
func (s *Replay) Capture() *capture.Reader { return s.r }

// Close closes the capture.
func (s *Replay) Close() error { return s.r.Close() }

// Next reads the next recorded event.
func (s *Replay) Next(ev *events.Event) error {
	if s.stopped {
		return io.EOF
	}
	if s.onWait != nil && !s.r.Buffered() {
		s.onWait()
	}
	err := s.r.Next(ev)
	if err == nil && ev.Time > s.last {
		s.last = ev.Time
	}
	return err
}

// Now returns the latest event's time, or the recording's end once read.
func (s *Replay) Now() uint64 {
	if t := s.r.Trailer(); t != nil && t.EndMono > s.last {
		return t.EndMono
	}
	return s.last
}

// Start returns when the recording began.
func (s *Replay) Start() uint64 { return s.r.Header().StartMono }

// Losses returns the recorded loss counters.
func (s *Replay) Losses() (events.Losses, error) { return s.r.Losses(), nil }

// Stop ends the replay at the next event.
func (s *Replay) Stop() { s.stopped = true }

func (s *Replay) resolver() events.Resolver { return nil } // owners were recorded
func (s *Replay) timeWaitEvents() bool      { return s.r.Header().TimeWaitEvents }
func (s *Replay) drained() bool             { return true }
func (s *Replay) tick(*Pipeline, uint64) error {
	return nil // what the live run fed at its ticks was recorded in the stream
}
func (s *Replay) settle(*Pipeline) {}

// attach gives the diagnosis the sysctls recorded for each namespace and,
// reading a stream, has p's output flushed before each read that may wait.
func (s *Replay) attach(p *Pipeline) {
	if s.stream && p.out != nil {
		s.onWait = func() { _ = p.out.Flush() }
	}
	// Parsed once per namespace, a namespace without usable settings
	// (recorded "unknown") included; those not recorded yet are looked
	// for again once the stream has recorded more.
	cache := map[uint32]*diagnosis.Sysctls{}
	recorded := 0
	p.engine.SetSysctls(func(ns uint32) *diagnosis.Sysctls {
		if c, ok := cache[ns]; ok {
			return c
		}
		all := s.r.Header().Netns
		if len(all) == recorded {
			return nil
		}
		for _, n := range all {
			if _, ok := cache[n.Inode]; ok {
				continue
			}
			var c *diagnosis.Sysctls
			if v := diagnosis.ParseSysctls(n.Sysctls); v.Known {
				c = &v
			}
			cache[n.Inode] = c
		}
		recorded = len(all)
		return cache[ns]
	})
}

// ledgerNote says what a replayed report knows of TIME_WAIT.
func (s *Replay) ledgerNote() string {
	if s.r.Header().TimeWaitEvents {
		return "replayed from a capture: TIME_WAIT as the kernel reported each timewait socket while recording, " +
			"with those that predated it as read at its start; sysctls are the ones recorded per namespace"
	}
	return "replayed from a capture recorded without timewait events: TIME_WAIT counts are the handovers traced " +
		"in the last 60 s (sockets that predate the capture are missing); sysctls are the ones recorded per namespace"
}
