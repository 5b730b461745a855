package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcptrace/tcptrace/internal/container"
	"github.com/tcptrace/tcptrace/internal/diagnosis"
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
	filter  events.Filter // the connection filter: --pid, --comm, --port, --host
	ev      events.Event
	engine  *diagnosis.Engine // forecasts, churn, failed connects, the TIME_WAIT ledger
	warns   *render.Warnings
	report  func() *diagnosis.Report // the diagnosis for the exit summary
	// procLabel names a process's container in the diagnosis (live only).
	procLabel func(uint32) string
}

// newPipeline builds the views for f on stdout, with times shown by wall.
// resolver finds owners the kernel did not see (nil on replay: recorded).
func newPipeline(f *flags, wall render.Clock, resolver events.Resolver) (*pipeline, error) {
	_, uf, err := f.filter()
	if err != nil {
		return nil, err
	}
	cf, err := f.containerFilter()
	if err != nil {
		return nil, err
	}
	// Containers are named from this host's cgroups: live only. A replay
	// has the recorded netns of each connection, not the recording host's
	// cgroup tree.
	var conts *container.Resolver
	if resolver != nil {
		conts = container.New(container.Options{})
	} else if cf.Container != "" {
		return nil, fmt.Errorf("--container needs the live host's cgroups; on a replay filter with --netns")
	}
	color, err := useColor(f.color, os.Stdout)
	if err != nil {
		return nil, err
	}
	pl := &pipeline{out: &errWriter{w: os.Stdout}}
	growPipe(os.Stdout)
	pl.bw = bufio.NewWriterSize(pl.out, 256<<10)
	pl.opts = render.Options{Color: color, Width: f.width, Clock: wall, ASCII: f.ascii}
	if pl.opts.Width == 0 {
		pl.opts.Width = termWidth(os.Stdout)
	}
	if conts != nil {
		pl.procLabel = containerLabel(conts)
		pl.opts.Label = func(c *events.Conn) string {
			if l := conts.Conn(c).Label(); l != "" {
				return "container=" + l
			}
			return ""
		}
	}
	connOnly := events.Filter{PID: uf.PID, Comm: uf.Comm, Port: uf.Port, Host: uf.Host}
	pl.filter = connOnly
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
		pl.json = render.NewJSON(pl.bw, wall)
		view = &events.Filtered{Filter: uf, Sink: pl.json}
	default:
		view = &events.Filtered{Filter: uf, Sink: render.NewText(pl.bw, pl.opts)}
	}
	pl.summ = render.NewSummarizer()
	pl.warns = render.NewWarnings(pl.bw, pl.opts, f.json)
	do := diag.options()
	do.Out = pl.warns
	pl.engine = diagnosis.New(do)
	if pl.json != nil && conts != nil {
		pl.json.Extra = func(b []byte, c *events.Conn) []byte { return container.AppendJSON(b, conts.Conn(c)) }
	}
	var sinks events.Sink = events.Tee{
		// First: it sets the error of port-less failed connects for the views.
		&events.Filtered{Filter: connOnly, Sink: pl.engine},
		view,
		&events.Filtered{Filter: connOnly, Sink: pl.summ},
	}
	if cf.Active() {
		sinks = &container.Filtered{Filter: cf, Resolver: conts, Sink: sinks}
	}
	pl.tracker = events.NewTracker(sinks, resolver, f.maxConns)
	return pl, nil
}

// tickEvery bounds how often a busy live run flushes its output and runs its
// periodic work: a write per event would cost more than the rest together.
const tickEvery = 25 * time.Millisecond

// tickCheckEvery is how many events pass between looks at the clock and at
// the ring's producer position (a cache line the kernel keeps writing). A
// stream too slow to reach it gets its ticks from the reader's idle polls.
const tickCheckEvery = 64

// drive feeds src through the tracker until io.EOF. after runs for every
// event once the tracker has stamped its owner (the recorder, the diagnosis
// clock). drained, when not nil (live), says whether the source has nothing
// buffered: then, at most every tickEvery, tick flushes the output and runs
// the periodic work. Without it (replay) output is flushed when full and at
// the end.
func (pl *pipeline) drive(src events.Source, after func(*events.Event) error, drained func() bool, tick func(), stop func()) error {
	ev := &pl.ev
	lastTick := time.Now()
	n := 0
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
		diagnoseTimeWait(pl.engine, &pl.filter, ev)
		if after != nil {
			if err := after(ev); err != nil {
				if stop != nil {
					stop()
				}
				_ = pl.bw.Flush()
				return err
			}
		}
		n++
		if drained != nil && n%tickCheckEvery == 0 && time.Since(lastTick) >= tickEvery && drained() {
			lastTick = time.Now()
			tick()
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
	var rep *diagnosis.Report
	if pl.report != nil {
		rep = pl.report()
		sum.SetTimeWaitNow(rep) // the exit line counts TIME_WAIT as the kernel holds it now
	}
	if pl.json != nil {
		if rep != nil && noteworthy(rep) {
			if err := render.WriteReportJSON(pl.bw, pl.opts.Clock, rep); err != nil {
				return err
			}
		}
		if err := pl.json.Summary(sum); err != nil {
			return fmt.Errorf("writing summary: %w", err)
		}
		return pl.bw.Flush()
	}
	if rep != nil {
		// Before the summary, so the summary stays the last thing printed.
		if err := writeDiagnosis(os.Stderr, pl.opts, rep, pl.procLabel); err != nil {
			return err
		}
	}
	return sum.WriteText(os.Stderr, pl.opts)
}

// summary assembles the run's summary.
func (pl *pipeline) summary(lost events.Losses, elapsed time.Duration) *render.Summary {
	return pl.summ.Summary(pl.tracker.Stats(), lost, elapsed)
}

// growPipe enlarges f's buffer to 1 MiB when f is a pipe, best effort.
func growPipe(f *os.File) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		var st unix.Stat_t
		if unix.Fstat(int(fd), &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFIFO {
			// A 64 KiB pipe would take several reader wakeups per 256 KiB flush.
			_, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, 1<<20)
		}
	})
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
