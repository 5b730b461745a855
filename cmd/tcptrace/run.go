package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/render"
)

// pipeline is one stream's consumers: the tracker and the views the flags
// ask for. Live tracing and replay build it the same way, so a replay prints
// what the live run printed.
type pipeline struct {
	out     *errWriter
	bw      *bufio.Writer
	opts    render.Options
	json    *render.JSON
	diag    *render.Diagrams
	summ    *render.Summarizer
	tracker *events.Tracker
	ev      events.Event
}

// newPipeline builds the views for f on stdout, with times shown by clock.
// resolver finds owners the kernel did not see (nil on replay: recorded).
func newPipeline(f *flags, clock render.Clock, resolver events.Resolver) (*pipeline, error) {
	_, uf, err := f.filter()
	if err != nil {
		return nil, err
	}
	color, err := useColor(f.color, os.Stdout)
	if err != nil {
		return nil, err
	}
	pl := &pipeline{out: &errWriter{w: os.Stdout}}
	pl.bw = bufio.NewWriterSize(pl.out, 64<<10)
	pl.opts = render.Options{Color: color, Width: f.width, Clock: clock, ASCII: f.ascii}
	if pl.opts.Width == 0 {
		pl.opts.Width = termWidth(os.Stdout)
	}
	connOnly := events.Filter{PID: uf.PID, Comm: uf.Comm, Port: uf.Port, Host: uf.Host}
	var view events.Sink
	switch {
	case f.diagram != "" && f.json:
		return nil, fmt.Errorf("--diagram draws text: it does not combine with --json")
	case f.diagram != "":
		sel, err := render.ParseDiagramFlag(f.diagram)
		if err != nil {
			return nil, fmt.Errorf("--diagram: %w", err)
		}
		// A ladder needs every step: --state does not apply to diagrams.
		pl.diag = render.NewDiagrams(pl.bw, pl.opts, sel)
		view = &events.Filtered{Filter: connOnly, Sink: pl.diag}
	case f.json:
		pl.json = render.NewJSON(pl.bw, clock)
		view = &events.Filtered{Filter: uf, Sink: pl.json}
	default:
		view = &events.Filtered{Filter: uf, Sink: render.NewText(pl.bw, pl.opts)}
	}
	pl.summ = render.NewSummarizer()
	pl.tracker = events.NewTracker(events.Tee{
		view,
		&events.Filtered{Filter: connOnly, Sink: pl.summ},
	}, resolver, f.maxConns)
	return pl, nil
}

// drive feeds src through the tracker until io.EOF. after runs for every
// event once the tracker has stamped its owner (the recorder); idle reports
// whether the source has nothing buffered, the moment to flush output.
func (pl *pipeline) drive(src events.Source, after func(*events.Event) error, idle func() bool, stop func()) error {
	ev := &pl.ev
	for {
		err := src.Next(ev)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			_ = pl.bw.Flush()
			return err
		}
		pl.tracker.Observe(ev)
		if after != nil {
			if err := after(ev); err != nil {
				stop()
				_ = pl.bw.Flush()
				return err
			}
		}
		if idle == nil || idle() {
			if pl.diag != nil && idle != nil {
				pl.diag.Tick(ev.Time) // draw halves whose partner is overdue
			}
			_ = pl.bw.Flush()
		}
		if pl.out.err != nil && stop != nil {
			stop() // output closed (e.g. piped into head): finish quietly
			stop = nil
		}
	}
	if pl.diag != nil {
		pl.diag.Flush() // partners that never came, and the aggregate
	}
	if err := pl.bw.Flush(); err != nil && pl.out.err == nil {
		return err
	}
	return nil // a closed output (EPIPE) ends the run quietly
}

// finish prints the summary (stderr for text, the last JSON line for --json)
// unless the output is gone or the flags say not to.
func (pl *pipeline) finish(f *flags, sum *render.Summary) error {
	if f.noSummary || pl.out.err != nil {
		return nil
	}
	if pl.json != nil {
		if err := pl.json.Summary(sum); err != nil {
			return fmt.Errorf("writing summary: %w", err)
		}
		return pl.bw.Flush()
	}
	return sum.WriteText(os.Stderr, pl.opts)
}

// summary assembles the run's summary.
func (pl *pipeline) summary(lost events.Losses, elapsed time.Duration) *render.Summary {
	return pl.summ.Summary(pl.tracker.Stats(), lost, elapsed)
}

// errWriter remembers the first write error (EPIPE from a closed pipe).
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(b []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(b)
	if err != nil {
		e.err = err
	}
	return n, err
}
