package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"golang.org/x/sys/unix"

	"github.com/tcptrace/tcptrace/internal/clock"
	"github.com/tcptrace/tcptrace/internal/diagnosis"
	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/owners"
	"github.com/tcptrace/tcptrace/internal/probe"
	"github.com/tcptrace/tcptrace/internal/render"
)

// captureFlushEvery bounds how much of a recording waits in memory.
const captureFlushEvery = 200 * time.Millisecond

// pileWait bounds how long a report at exit waits for the start-up read of
// the namespaces' tables to complete: a report must not miss a namespace
// because the run was shorter than the read (each namespace's read walks
// the kernel's whole connection table: seconds for dozens of namespaces
// beside a big pile).
const pileWait = 30 * time.Second

// liveMemoryLimit is the floor of the Go runtime's soft memory limit for
// live tracing (memLimit) unless GOMEMLIMIT is set.
const liveMemoryLimit = 24 << 20

// oneCPU runs Go code on one CPU at a time unless GOMAXPROCS is set: the
// pipeline is one goroutine, and a garbage collector spreading over every
// CPU would take them from the very workload being traced.
func oneCPU() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
}

// runLive traces the running kernel until a signal, --duration or a closed
// output, then prints the summary.
func runLive(ctx context.Context, f *flags, cf *captureFlags) error {
	if err := cf.check(); err != nil {
		return err
	}
	kf, _, err := f.filter()
	if err != nil {
		return err
	}
	ring, err := f.ring()
	if err != nil {
		return err
	}
	if _, err := useColor(f.color, os.Stdout); err != nil {
		return err
	}
	memLim := newMemLimit(liveMemoryLimit)
	oneCPU()

	p, err := probe.Open(probe.Options{RingSize: ring, PollInterval: f.poll, Filter: kf, SkipSelfTest: !f.selfTest, DropEvery: f.dropEvery})
	if err != nil {
		return err
	}
	defer p.Close()
	startMono := clock.Mono()

	wall := render.LiveClock()
	procs := owners.New("/proc")
	pl, err := newPipeline(f, wall, procs)
	if err != nil {
		return err
	}
	pl.tracker.SetTimeWaitEvents(p.TimeWaitEvents())
	pile := startPile("/proc", events.Filter{Port: kf.Port, Host: kf.Host})
	defer pile.Close()
	pl.engine.SetNetnsHook(pile.Watch)
	tw := &timeWaitFeed{pile: pile, tracker: pl.tracker, engine: pl.engine, filter: pl.filter,
		onRead: func() { pile.describe(os.Stderr) }}
	pl.report = func() *diagnosis.Report {
		pile.wait(pileWait, os.Stderr) // a report shows the pile even when the run was shorter than its read
		_ = tw.feed()
		now := clock.Mono()
		return pl.engine.Report(now, time.Duration(now-startMono), "")
	}
	for _, l := range procs.Listeners() {
		pl.tracker.AddListener(l.Netns, l.Port, l.Owner)
		_ = p.SeedListener(l.Netns, l.Port, l.Family, l.Owner)
	}
	// Loading parsed the kernel's BTF (tens of MiB, garbage now): give it
	// back to the system rather than carry it as resident memory.
	debug.FreeOSMemory()
	// Attached, self-tested, listeners seeded: keep only what tracing needs.
	if err := dropCapabilities(keepAfterAttach...); err != nil {
		fmt.Fprintf(os.Stderr, "tcptrace: warning: %v\n", err)
	}
	rec, err := newRecorder(cf, wall, startMono, version, p.TimeWaitEvents())
	if err != nil {
		return err
	}
	lastFlush := time.Now()
	if rec != nil {
		defer rec.Close()
		tw.write = rec.Write
	}

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM, syscall.SIGPIPE)
	defer signal.Stop(stop)
	var timer <-chan time.Time
	if f.duration > 0 {
		t := time.NewTimer(f.duration)
		defer t.Stop()
		timer = t.C
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-stop:
		case <-timer:
		case <-ctx.Done():
		case <-done:
			return
		}
		_ = p.Stop()
	}()

	fmt.Fprintf(os.Stderr, "tcptrace: tracing TCP state changes (ring %s, poll %v)%s; Ctrl-C to stop\n", f.ringSize, f.poll, recNote(cf))
	fmt.Fprintf(os.Stderr, "tcptrace: TIME_WAIT: %s\n", p.TimeWaitMethod())

	var twErr error
	// Periodic work, at most every tickEvery while events flow and at each
	// poll tick of an idle host: flush output and capture, take the
	// ledger's snapshots, re-evaluate forecasts, draw overdue diagrams.
	tick := func() {
		now := clock.Mono()
		if rec != nil && time.Since(lastFlush) >= captureFlushEvery {
			_ = rec.Flush()
			lastFlush = time.Now()
		}
		if err := tw.feed(); err != nil && twErr == nil {
			twErr = err
		}
		pl.engine.Tick(now)
		if pl.diag != nil {
			pl.diag.Tick(now)
		}
		_ = pl.bw.Flush()
		memLim.adjust()
	}
	p.SetOnIdle(tick)
	after := func(ev *events.Event) error {
		if twErr != nil {
			return twErr // the capture failed while the pile was fed
		}
		pl.engine.Tick(ev.Time) // as a replay does: forecasts follow event time
		if rec != nil {
			return rec.Write(ev)
		}
		return nil
	}
	drained := func() bool { return p.Buffered() == 0 }
	runErr := pl.drive(p, after, drained, tick, func() { _ = p.Stop() })

	endMono := clock.Mono()
	lost, err := p.Losses()
	if err != nil {
		return err
	}
	if rec != nil {
		rec.SetLosses(lost)
		rec.SetEnd(endMono)
		if err := rec.Close(); err != nil && runErr == nil {
			runErr = fmt.Errorf("closing capture: %w", err)
		}
	}
	if runErr != nil {
		return runErr
	}
	sum := pl.summary(lost, time.Duration(endMono-startMono))
	if runs, rt, err := p.ProgramStats(); err == nil && runs > 0 {
		sum.KernelRuns, sum.KernelNs = runs, uint64(rt)
	}
	return pl.finish(f, sum)
}

// recNote says where the capture goes, for the start-up line.
func recNote(cf *captureFlags) string {
	if cf.write == "" {
		return ""
	}
	return ", recording to " + cf.write
}

// useColor decides colour: never off a terminal, never with NO_COLOR.
func useColor(mode string, f *os.File) (bool, error) {
	switch mode {
	case "always":
		return true, nil
	case "never":
		return false, nil
	case "auto", "":
		_, noColor := os.LookupEnv("NO_COLOR")
		return !noColor && isatty.IsTerminal(f.Fd()), nil
	}
	return false, fmt.Errorf("--color %q: want auto, always or never", mode)
}

// termWidth returns the terminal's width, or 80.
func termWidth(f *os.File) int {
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil || ws.Col == 0 {
		return 80
	}
	return int(ws.Col)
}
