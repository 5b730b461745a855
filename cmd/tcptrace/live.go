package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/tcptrace/tcptrace/internal/container"
	"github.com/tcptrace/tcptrace/internal/pipeline"
	"github.com/tcptrace/tcptrace/internal/probe"
)

// liveMemoryLimit is the floor of the Go runtime's soft memory limit for
// live tracing (memLimit) unless GOMEMLIMIT is set.
const liveMemoryLimit = 24 << 20

// runLive traces the running kernel until a signal, --duration or a closed
// output, then prints the summary.
func runLive(ctx context.Context, f *flags, cf *captureFlags) error {
	if err := cf.check(); err != nil {
		return err
	}
	kf, uf, err := f.filter()
	if err != nil {
		return err
	}
	cont, err := f.containerFilter(true)
	if err != nil {
		return err
	}
	conts := container.New(container.Options{})
	wall := liveClock()
	v, err := newViews(f, uf, wall, conts, cf.write == "-")
	if err != nil {
		return err
	}
	src, memLim, err := openLive(f, kf, liveMemoryLimit, nil)
	if err != nil {
		return err
	}
	defer src.Close()
	rec, err := newRecorder(cf, wall.Offset, src.Start(), src.Probe().TimeWaitEvents())
	if err != nil {
		return err
	}
	p := pipeline.New(src, pipeline.Config{Filter: uf, Containers: cont, Resolver: conts, MaxConns: f.maxConns,
		Diagnosis: v.warnings(diag.options()), Sinks: v.sinks, Out: v.out, Record: rec, Log: os.Stderr})
	v.attach(p)
	p.Every(0, func(uint64) { memLim.adjust() })
	unwatch := stopOn(ctx, f.duration, src.Stop)
	defer unwatch()

	fmt.Fprintf(os.Stderr, "tcptrace: tracing TCP state changes (ring %s, poll %v)%s; Ctrl-C to stop\n", f.ringSize, f.poll, recNote(cf))
	fmt.Fprintf(os.Stderr, "tcptrace: TIME_WAIT: %s\n", src.Probe().TimeWaitMethod())
	if err := p.Run(); err != nil {
		return err
	}
	return v.finish(f, p, src.Probe())
}

// openLive opens the kernel as the source of a live mode: under the memory
// limit's floor, the probe attached and self-tested, listeners seeded, then
// only the capabilities tracing needs kept. The returned memory limit is to
// be adjusted at the pipeline's ticks.
func openLive(f *flags, kf probe.Filter, memFloor int64, onPileRead func()) (*pipeline.Live, *memLimit, error) {
	ring, err := f.ring()
	if err != nil {
		return nil, nil, err
	}
	memLim := newMemLimit(memFloor)
	ownersNote := ownerCapsNote()
	src, err := pipeline.OpenLive(pipeline.LiveOptions{Log: os.Stderr, OnPileRead: onPileRead,
		Probe: probe.Options{RingSize: ring, PollInterval: f.poll, Filter: kf, SkipSelfTest: !f.selfTest, DropEvery: f.dropEvery}})
	if err != nil {
		return nil, nil, err
	}
	if ownersNote != "" {
		fmt.Fprintln(os.Stderr, ownersNote)
	}
	// Attached, self-tested, listeners seeded: keep only what tracing needs.
	if err := dropCapabilities(keepAfterAttach...); err != nil {
		fmt.Fprintf(os.Stderr, "tcptrace: warning: %v\n", err)
	}
	return src, memLim, nil
}

// stopOn calls stop on SIGINT or SIGTERM, when ctx ends, or after d if
// d > 0 (a closed output is the pipeline's to notice). The returned
// function ends the watch: call it when the run's output is written.
func stopOn(ctx context.Context, d time.Duration, stop func()) func() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	signal.Ignore(syscall.SIGPIPE) // a write to a closed output returns EPIPE; the pipeline decides
	var timer <-chan time.Time
	t := time.NewTimer(d)
	if d > 0 {
		timer = t.C
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-sig:
		case <-timer:
		case <-ctx.Done():
		case <-done:
			return
		}
		stop()
	}()
	return func() {
		signal.Stop(sig)
		t.Stop()
		close(done)
	}
}

// recNote says where the capture goes, for the start-up line.
func recNote(cf *captureFlags) string {
	switch cf.write {
	case "":
		return ""
	case "-":
		return ", recording to standard output"
	}
	return ", recording to " + cf.write
}
