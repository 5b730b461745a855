package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"golang.org/x/sys/unix"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/owners"
	"github.com/tcptrace/tcptrace/internal/probe"
	"github.com/tcptrace/tcptrace/internal/render"
)

// runLive traces the running kernel until a signal, --duration or a closed
// output, then prints the summary.
func runLive(ctx context.Context, f *flags) error {
	kf, uf, err := f.filter()
	if err != nil {
		return err
	}
	ring, err := f.ring()
	if err != nil {
		return err
	}
	color, err := useColor(f.color, os.Stdout)
	if err != nil {
		return err
	}

	p, err := probe.Open(probe.Options{RingSize: ring, PollInterval: f.poll, Filter: kf, SkipSelfTest: !f.selfTest})
	if err != nil {
		return err
	}
	defer p.Close()
	start := time.Now()

	out := &errWriter{w: os.Stdout}
	bw := bufio.NewWriterSize(out, 64<<10)
	clock := render.LiveClock()
	opts := render.Options{Color: color, Width: f.width, Clock: clock, ASCII: f.ascii}
	if opts.Width == 0 {
		opts.Width = termWidth(os.Stdout)
	}
	var view events.Sink
	var js *render.JSON
	if f.json {
		js = render.NewJSON(bw, clock)
		view = js
	} else {
		view = render.NewText(bw, opts)
	}
	summ := render.NewSummarizer()
	procs := owners.New("/proc")
	tr := events.NewTracker(events.Tee{
		&events.Filtered{Filter: uf, Sink: view},
		&events.Filtered{Filter: events.Filter{PID: uf.PID, Comm: uf.Comm, Port: uf.Port, Host: uf.Host}, Sink: summ},
	}, procs, f.maxConns)
	for _, l := range procs.Listeners() {
		tr.AddListener(l.Netns, l.Port, l.Owner)
		_ = p.SeedListener(l.Netns, l.Port, l.Owner)
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
		case <-ctxDone(ctx):
		case <-done:
			return
		}
		_ = p.Stop()
	}()

	var ev events.Event
	for {
		err := p.Next(&ev)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		tr.Observe(&ev)
		if p.Buffered() == 0 {
			_ = bw.Flush()
		}
		if out.err != nil {
			_ = p.Stop() // output closed (e.g. piped into head): finish quietly
		}
	}
	_ = bw.Flush()

	lost, err := p.Losses()
	if err != nil {
		return err
	}
	sum := summ.Summary(tr.Stats(), lost, time.Since(start))
	if runs, rt, err := p.ProgramStats(); err == nil && runs > 0 {
		sum.KernelRuns, sum.KernelNs = runs, uint64(rt)
	}
	if f.noSummary || out.err != nil {
		return nil
	}
	if js != nil {
		if err := js.Summary(sum); err != nil {
			return err
		}
		return bw.Flush()
	}
	return sum.WriteText(os.Stderr, opts)
}

func ctxDone(ctx context.Context) <-chan struct{} {
	if ctx == nil {
		return nil
	}
	return ctx.Done()
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
