package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tcptrace/tcptrace/internal/container"
	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/ladder"
	"github.com/tcptrace/tcptrace/internal/pipeline"
	"github.com/tcptrace/tcptrace/internal/probe"
	"github.com/tcptrace/tcptrace/internal/render/style"
	"github.com/tcptrace/tcptrace/internal/render/top"
)

func init() { subcommands = append(subcommands, newTopCmd) }

// topRefresh is how often top redraws from the diagnosis (wall clock).
const topRefresh = time.Second

func newTopCmd(f *flags) *cobra.Command {
	var read string
	var speed float64
	cmd := &cobra.Command{
		Use:   "top",
		Short: "The incident live on one screen: destinations by time to exhaustion, who closes first, warnings",
		Long: `top is a full-screen view of connection churn, refreshed every second from the
diagnosis (never per event): each destination's connects per second, the share
closed on this side, TIME_WAIT held against the usable ports with the last
minute's history, when the ports run out and the failed connects; the
processes closing first; the latest warnings. Keys: ↑↓ select, Enter opens the
destination's ladders (live: of its connections from then on), s sorts, /
filters (as the flags: --port 8080 --host 10.0.0.0/8 --pid 42 --comm curl),
p pauses, q quits with the summary on stderr. -r replays a capture at its
recorded pace (--speed 10: ten times faster; 0: as fast as it reads). It
needs a terminal: elsewhere use report.`,
		Example: `  tcptrace top
  tcptrace top --port 6379
  tcptrace top -r incident.tcpt --speed 10`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE:          func(cmd *cobra.Command, _ []string) error { return runTop(cmd.Context(), f, read, speed) },
	}
	cmd.Flags().StringVarP(&read, "read", "r", "", "replay a capture file instead of the live kernel")
	cmd.Flags().Float64Var(&speed, "speed", 1, "with -r: play the capture this many times faster than recorded (0: as fast as it reads)")
	return cmd
}

// runTop runs the full-screen view over the live kernel or a capture.
func runTop(ctx context.Context, f *flags, read string, speed float64) error {
	if !isatty.IsTerminal(os.Stdout.Fd()) || !isatty.IsTerminal(os.Stdin.Fd()) {
		return usagef("top draws a full screen and reads keys: run it on a terminal; for a report elsewhere use tcptrace report (--json, --html)")
	}
	if read == "-" {
		return usagef("top reads keys from standard input: give the capture as a file, not -")
	}
	if speed < 0 {
		return usagef("--speed: want 0 (as fast as it reads) or a positive factor, got %v", speed)
	}
	kf, cfg, err := diagnosisConfig(f, read == "")
	if err != nil {
		return err
	}
	uf := cfg.Filter
	t := &topRun{f: f, source: "live"}
	var src pipeline.Source
	if read != "" {
		rs, err := openReplay(read)
		if err != nil {
			return err
		}
		defer rs.Close()
		h := rs.Capture().Header()
		t.wall, t.host, t.kernel, t.source = replayClock(h), h.Host, h.Kernel, "capture "+read
		src = &pacedSource{Replay: rs, speed: speed}
	} else {
		cfg.Resolver = container.New(container.Options{})
		t.label = containerLabel(cfg.Resolver)
		live, memLim, err := openLive(f, kf, liveMemoryLimit, nil)
		if err != nil {
			return err
		}
		defer live.Close()
		t.live, t.memLim, t.wall = live, memLim, liveClock()
		t.host, t.kernel = thisHost()
		src = live
	}
	v, err := newViews(f, uf, t.wall, cfg.Resolver, true) // the summary, on stderr at the end
	if err != nil {
		return err
	}
	cfg.Sinks, cfg.Out = v.sinks, v.out
	var pass func(*events.Conn) bool
	if read == "" {
		// Live, only the connections of the destination open on the
		// screen, from when it was opened.
		pass = func(c *events.Conn) bool {
			d := t.feed.Opened() // set before the pipeline runs
			return d != nil && (c.Daddr == d.Daddr && c.Dport == d.Dport || c.Saddr == d.Daddr && c.Sport == d.Dport)
		}
	}
	t.shapes = newShapes(&cfg, true, pass)
	return t.run(ctx, src, cfg, v)
}

// topRun is one run of top: the pipeline on this goroutine, the screen on
// Bubble Tea's.
type topRun struct {
	f            *flags
	live         *pipeline.Live
	memLim       *memLimit
	wall         wallClock
	host, kernel string
	source       string
	label        func(uint32) string
	shapes       *ladder.Collector
	feed         *top.Feeder
	prog         *tea.Program
	refreshed    time.Time
}

func (t *topRun) run(ctx context.Context, src pipeline.Source, cfg pipeline.Config, v *views) error {
	p := pipeline.New(src, cfg)
	attachShapes(t.shapes, p)
	t.feed = &top.Feeder{P: p, Src: src, Wall: t.wall, Shapes: t.shapes, Style: v.opts, Label: t.label}
	asked := t.feed.Asked()
	if t.live != nil {
		t.feed.RingFill = t.live.Probe().RingFill
	}
	p.Every(0, t.tick)
	m := top.New(top.Options{Style: v.opts, Host: t.host, Kernel: t.kernel, Source: t.source, Filter: parseTopFilter,
		Open: t.feed.Open}, style.New(os.Stdout, v.opts.Color), 80, 24)
	t.prog = tea.NewProgram(m, tea.WithAltScreen(), tea.WithContext(ctx))
	var quitByKey atomic.Bool
	var screenErr error
	screenDone := make(chan struct{})
	go func() {
		defer close(screenDone)
		_, screenErr = t.prog.Run()
		quitByKey.Store(true)
		src.Stop()
	}()
	unwatch := stopOn(ctx, t.f.duration, src.Stop)
	defer unwatch()
	runErr := p.Run()
	if !quitByKey.Load() {
		t.prog.Send(t.feed.Snapshot(true)) // a replay's last state stays on screen until q
		if t.live != nil {
			t.prog.Quit() // live: a signal or --duration ended the run
		}
	}
	for done := false; !done; { // the pipeline has ended: answer the screen's requests until q
		select {
		case <-asked:
			t.prog.Send(t.feed.Snapshot(true))
		case <-screenDone:
			done = true
		}
	}
	if screenErr != nil && !errors.Is(screenErr, tea.ErrProgramKilled) && !errors.Is(screenErr, tea.ErrInterrupted) &&
		!errors.Is(screenErr, context.Canceled) {
		return fmt.Errorf("drawing the screen: %w", screenErr)
	}
	if runErr != nil {
		return runErr
	}
	var kp *probe.Probe
	if t.live != nil {
		kp = t.live.Probe()
	}
	return v.finish(t.f, p, kp)
}

// tick sends the screen a snapshot once a refresh (wall clock), and keeps
// the memory limit.
func (t *topRun) tick(uint64) {
	if t.memLim != nil {
		t.memLim.adjust()
	}
	if time.Since(t.refreshed) < topRefresh {
		return
	}
	t.refreshed = time.Now()
	t.prog.Send(t.feed.Snapshot(false))
}

// parseTopFilter reads top's filter line with the flags' own parser.
func parseTopFilter(line string) (events.Filter, error) {
	var tf flags
	fs := pflag.NewFlagSet("filter", pflag.ContinueOnError)
	fs.SetOutput(nopWriter{})
	fs.Uint32Var(&tf.pid, "pid", 0, "")
	fs.StringVar(&tf.comm, "comm", "", "")
	fs.StringArrayVar(&tf.ports, "port", nil, "")
	fs.StringArrayVar(&tf.hosts, "host", nil, "")
	if err := fs.Parse(strings.Fields(line)); err != nil {
		return events.Filter{}, err
	}
	if fs.NArg() > 0 {
		return events.Filter{}, fmt.Errorf("want --port, --host, --pid or --comm, got %q", fs.Arg(0))
	}
	_, uf, err := tf.filter()
	return uf, err
}

type nopWriter struct{}

func (nopWriter) Write(b []byte) (int, error) { return len(b), nil }

// pacedSource plays a capture at speed times its recorded pace (0: as
// fast as it reads).
type pacedSource struct {
	*pipeline.Replay
	speed float64
	t0    time.Time
	m0    uint64
}

// Next reads the next event, waiting until it is due.
func (s *pacedSource) Next(ev *events.Event) error {
	if err := s.Replay.Next(ev); err != nil {
		return err
	}
	if s.speed <= 0 || ev.Time == 0 {
		return nil
	}
	if s.m0 == 0 {
		s.m0, s.t0 = ev.Time, time.Now()
	}
	due := s.t0.Add(time.Duration(float64(ev.Time-min(s.m0, ev.Time)) / s.speed))
	if d := time.Until(due); d > 0 {
		time.Sleep(d)
	}
	return nil
}
