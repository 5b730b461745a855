package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tcptrace/tcptrace/internal/capture"
	"github.com/tcptrace/tcptrace/internal/clock"
	"github.com/tcptrace/tcptrace/internal/container"
	"github.com/tcptrace/tcptrace/internal/diagnosis"
	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/owners"
	"github.com/tcptrace/tcptrace/internal/probe"
	"github.com/tcptrace/tcptrace/internal/render"
)

// replayLedgerNote says what a replayed report knows of TIME_WAIT.
func replayLedgerNote(h *capture.Header) string {
	if h.TimeWaitEvents {
		return "replayed from a capture: TIME_WAIT as the kernel reported each timewait socket while recording, " +
			"with those that predated it as read at its start; sysctls are the ones recorded per namespace"
	}
	return "replayed from a capture recorded without timewait events: TIME_WAIT counts are the handovers traced " +
		"in the last 60 s (sockets that predate the capture are missing); sysctls are the ones recorded per namespace"
}

// diagFlags tune the TIME_WAIT diagnosis of live tracing, replay and report.
type diagFlags struct {
	warnWithin time.Duration
	churnRate  float64
	shortLife  time.Duration
}

// diag holds the diagnosis flags (defaults until a command registers them).
var diag = diagFlags{warnWithin: diagnosis.DefaultThreshold,
	churnRate: diagnosis.DefaultChurnRate, shortLife: diagnosis.DefaultShortLife}

func (d *diagFlags) register(fs *pflag.FlagSet) {
	fs.DurationVar(&d.warnWithin, "warn-within", d.warnWithin, "warn when connect() toward a destination is forecast to fail within this")
	fs.Float64Var(&d.churnRate, "churn-rate", d.churnRate, "connects/s toward one destination that, with short lives, is flagged as churn")
	fs.DurationVar(&d.shortLife, "churn-life", d.shortLife, "connections shorter than this count as churn")
}

func (d *diagFlags) options() diagnosis.Options {
	return diagnosis.Options{Threshold: d.warnWithin, ChurnRate: d.churnRate, ShortLife: d.shortLife}
}

func init() {
	subcommands = append(subcommands, newReportCmd)
}

func newReportCmd(f *flags) *cobra.Command {
	var read string
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Who closes first, who holds TIME_WAIT, failed connects and the port-exhaustion forecast",
		Long: `report traces for --duration (or until Ctrl-C), or replays a capture (-r FILE),
then prints: the top active closers, TIME_WAIT by destination and owner (as
the kernel reports each timewait socket, with those that predate tracing read
once at start from every namespace), failed
connects, end kinds, lifetime and time-in-state percentiles, and the
port-exhaustion forecast with its inputs.`,
		Example: `  tcptrace report --duration 30s
  tcptrace report --json -r incident.tcpt`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if read != "" {
				return runReportReplay(f, read)
			}
			return runReportLive(f)
		},
	}
	cmd.Flags().StringVarP(&read, "read", "r", "", "report on a capture file instead of the live kernel")
	return cmd
}

// printReport writes the report to stdout as --json or text asks.
// label, when not nil, names each process's container (live only).
func printReport(f *flags, wall render.Clock, rep *diagnosis.Report, title string, label func(uint32) string) error {
	if f.json {
		return render.WriteReportJSON(os.Stdout, wall, rep)
	}
	color, err := useColor(f.color, os.Stdout)
	if err != nil {
		return err
	}
	o := render.Options{Color: color, Width: f.width, Clock: wall, ASCII: f.ascii}
	return render.WriteReportText(os.Stdout, o, render.ReportOptions{Title: title, ProcLabel: label}, rep)
}

// containerLabel names the container a process runs in, for the report's
// tables: "[container <short id or namespace/pod>]", "" on the host.
func containerLabel(res *container.Resolver) func(uint32) string {
	return func(pid uint32) string {
		if l := res.PID(pid).Label(); l != "" {
			return "[container " + l + "]"
		}
		return ""
	}
}

// runReportLive traces until --duration or a signal.
func runReportLive(f *flags) error {
	kf, uf, err := f.filter()
	if err != nil {
		return err
	}
	ring, err := f.ring()
	if err != nil {
		return err
	}
	p, err := probe.Open(probe.Options{RingSize: ring, PollInterval: f.poll, Filter: kf, SkipSelfTest: !f.selfTest})
	if err != nil {
		return err
	}
	defer p.Close()
	start := clock.Mono()
	wall := render.LiveClock()
	eng := diagnosis.New(diag.options())
	procs := owners.New("/proc")
	connOnly := events.Filter{PID: uf.PID, Comm: uf.Comm, Port: uf.Port, Host: uf.Host}
	tr := events.NewTracker(&events.Filtered{Filter: connOnly, Sink: eng}, procs, f.maxConns)
	tr.SetTimeWaitEvents(p.TimeWaitEvents())
	pile := startPile("/proc", events.Filter{Port: kf.Port, Host: kf.Host})
	defer pile.Close()
	eng.SetNetnsHook(pile.Watch)
	tw := &timeWaitFeed{pile: pile, tracker: tr, engine: eng, filter: connOnly,
		onRead: func() { pile.describe(os.Stderr) }}
	for _, l := range procs.Listeners() {
		tr.AddListener(l.Netns, l.Port, l.Owner)
		_ = p.SeedListener(l.Netns, l.Port, l.Family, l.Owner)
	}
	p.SetOnIdle(func() {
		_ = tw.feed()
		eng.Tick(clock.Mono())
	})
	stopOn(f.duration, func() { _ = p.Stop() })
	fmt.Fprintf(os.Stderr, "tcptrace: tracing TCP state changes for the report; Ctrl-C to stop\n")
	fmt.Fprintf(os.Stderr, "tcptrace: TIME_WAIT: %s\n", p.TimeWaitMethod())
	var ev events.Event
	for {
		err := p.Next(&ev)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		tr.Observe(&ev)
		tw.observe(&ev)
		eng.Tick(ev.Time)
	}
	pile.wait(pileWait, os.Stderr) // the pile shows even when the run was shorter than its read
	_ = tw.feed()
	now := clock.Mono()
	rep := eng.Report(now, time.Duration(now-start), "")
	return printReport(f, wall, rep, "tcptrace report (live, "+time.Duration(now-start).Round(time.Millisecond).String()+")",
		containerLabel(container.New(container.Options{})))
}

// runReportReplay reports on a capture, with its recorded sysctls.
func runReportReplay(f *flags, path string) error {
	_, uf, err := f.filter()
	if err != nil {
		return err
	}
	r, wall, err := openReplay(path)
	if err != nil {
		return err
	}
	defer r.Close()
	eng := diagnosis.New(diag.options())
	eng.SetSysctls(captureSysctls(r))
	connOnly := events.Filter{PID: uf.PID, Comm: uf.Comm, Port: uf.Port, Host: uf.Host}
	tr := events.NewTracker(&events.Filtered{Filter: connOnly, Sink: eng}, nil, f.maxConns)
	tr.SetTimeWaitEvents(r.Header().TimeWaitEvents)
	var ev events.Event
	var last uint64
	for {
		err := r.Next(&ev)
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		tr.Observe(&ev)
		diagnoseTimeWait(eng, &connOnly, &ev)
		last = max(last, ev.Time)
		eng.Tick(ev.Time)
	}
	h := r.Header()
	end := last
	if t := r.Trailer(); t != nil {
		end = max(end, t.EndMono)
	}
	var elapsed time.Duration
	if end > h.StartMono {
		elapsed = time.Duration(end - h.StartMono)
	}
	rep := eng.Report(end, elapsed, replayLedgerNote(h))
	if err := printReport(f, wall, rep, "tcptrace report ("+path+", "+elapsed.Round(time.Millisecond).String()+")", nil); err != nil {
		return err
	}
	if r.Truncated() != nil {
		fmt.Fprintln(os.Stderr, replayNote(path, r))
		return exitError(2)
	}
	return nil
}

// captureSysctls returns the namespaces' sysctls recorded in a capture.
func captureSysctls(r *capture.Reader) func(uint32) *diagnosis.Sysctls {
	cache := map[uint32]*diagnosis.Sysctls{}
	return func(ns uint32) *diagnosis.Sysctls {
		if s, ok := cache[ns]; ok {
			return s
		}
		for _, n := range r.Header().Netns {
			if n.Inode == ns {
				s := diagnosis.ParseSysctls(n.Sysctls)
				if !s.Known {
					return nil
				}
				cache[ns] = &s
				return &s
			}
		}
		return nil
	}
}

// stopOn calls stop after d (if > 0) or on SIGINT/SIGTERM.
func stopOn(d time.Duration, stop func()) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	var timer <-chan time.Time
	if d > 0 {
		timer = time.After(d)
	}
	go func() {
		select {
		case <-sig:
		case <-timer:
		}
		signal.Stop(sig)
		stop()
	}()
}

// noteworthy reports whether the diagnosis found something to show on exit.
func noteworthy(r *diagnosis.Report) bool {
	return len(r.Warnings) > 0 || len(r.Failed) > 0
}

// writeDiagnosis writes the exit summary's diagnosis: the forecast, TIME_WAIT
// and failed connects when something is at risk, else one line.
func writeDiagnosis(w io.Writer, o render.Options, r *diagnosis.Report, label func(uint32) string) error {
	if noteworthy(r) {
		return render.WriteReportText(w, o, render.ReportOptions{Title: "tcptrace diagnosis", Short: true, ProcLabel: label}, r)
	}
	held, fw2, spaces := 0, 0, 0
	for _, n := range r.Namespaces {
		if n.TimeWait >= 0 {
			held, fw2, spaces = held+n.TimeWait, fw2+n.FinWait2, spaces+1
		}
	}
	orphans := ""
	if fw2 > 0 {
		orphans = " and " + strconv.Itoa(fw2) + " orphaned FIN_WAIT2"
	}
	_, err := fmt.Fprintf(w, "tcptrace diagnosis: no port exhaustion forecast, no failed connects (%d TIME_WAIT%s now in %d namespaces)\n",
		held, orphans, spaces)
	return err
}
