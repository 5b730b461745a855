package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/tcptrace/tcptrace/internal/capture"
	"github.com/tcptrace/tcptrace/internal/clock"
	"github.com/tcptrace/tcptrace/internal/container"
	"github.com/tcptrace/tcptrace/internal/diagnosis"
	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/metrics"
	"github.com/tcptrace/tcptrace/internal/owners"
	"github.com/tcptrace/tcptrace/internal/probe"
	"github.com/tcptrace/tcptrace/internal/render"
)

// serveFlags are the command line of the node agent.
type serveFlags struct {
	metricsAddr   string
	captureDir    string
	captureSize   string
	captureCount  int
	heartbeat     time.Duration
	healthTimeout time.Duration
	topK          int
	cgroupRoot    string
	stallAfter    time.Duration
}

func init() { subcommands = append(subcommands, newServeCmd) }

func newServeCmd(f *flags) *cobra.Command {
	sf := serveFlags{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run as a node agent: Prometheus metrics, /healthz, optional JSON stream and rotated captures",
		Long: `serve traces until SIGTERM with bounded memory and serves Prometheus metrics
on --metrics-addr (/metrics) and a health check (/healthz: fails when the
periodic loopback heartbeat connection is not traced, i.e. events stopped
flowing). With --json it also streams JSON events to stdout for log
collectors; with --capture-dir it records rotated captures.`,
		Example: `  tcptrace serve                                  # metrics on 127.0.0.1:9464
  tcptrace serve --metrics-addr :9464 --json
  tcptrace serve --capture-dir /var/lib/tcptrace --capture-size 64MiB --capture-count 8`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if fl := cmd.Flag("max-conns"); fl == nil || !fl.Changed {
				f.maxConns = metrics.AgentMaxConns
			}
			return runServe(cmd.Context(), f, &sf)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&sf.metricsAddr, "metrics-addr", "127.0.0.1:9464", "listen address of /metrics and /healthz (loopback only by default)")
	fs.StringVar(&sf.captureDir, "capture-dir", "", "record rotated captures into this directory")
	fs.StringVar(&sf.captureSize, "capture-size", "64MiB", "with --capture-dir: size at which a capture file is rotated")
	fs.IntVar(&sf.captureCount, "capture-count", 8, "with --capture-dir: capture files kept per run (older runs' files are pruned to this many at start)")
	fs.DurationVar(&sf.heartbeat, "heartbeat", 10*time.Second, "period of the loopback heartbeat connection that proves events flow")
	fs.DurationVar(&sf.healthTimeout, "health-timeout", 5*time.Second, "/healthz fails when a heartbeat is not traced within this")
	fs.IntVar(&sf.topK, "top-k", metrics.DefaultTopK, "owners and destinations with a series of their own, per metric (the rest: \"other\")")
	fs.StringVar(&sf.cgroupRoot, "cgroup-root", container.DefaultCgroupRoot, "the host's cgroup v2 mount, to name containers (in a pod: a hostPath mount of /sys/fs/cgroup)")
	fs.DurationVar(&sf.stallAfter, "fault-stall-after", 0, "testing: stop reading events after this long, as a stuck tracer would")
	_ = fs.MarkHidden("fault-stall-after")
	return cmd
}

// agent is serve's running state, touched only by the pipeline goroutine
// except where noted.
type agent struct {
	tracker *events.Tracker
	engine  *diagnosis.Engine
	metrics *metrics.Metrics
	rec     *capture.Writer
	bw      *bufio.Writer
	start   uint64
	lastSet time.Time     // tracker stats to metrics
	lastRep time.Time     // diagnosis to metrics
	lastFl  time.Time     // output and capture flushed
	tw      *timeWaitFeed // timewait steps and the pile read at start, to the engine
	memLim  *memLimit     // the Go runtime's soft memory limit, following the live heap
	twErr   error         // the capture failed while the pile was fed
}

// periodic runs housekeeping between events or at idle poll ticks.
func (a *agent) periodic() {
	now := time.Now()
	if now.Sub(a.lastFl) >= captureFlushEvery {
		a.lastFl = now
		if a.bw != nil {
			_ = a.bw.Flush()
		}
		if a.rec != nil {
			_ = a.rec.Flush()
		}
	}
	if now.Sub(a.lastSet) < time.Second {
		return
	}
	a.lastSet = now
	a.memLim.adjust()
	a.metrics.SetTracker(a.tracker.Stats())
	if a.tw != nil {
		if err := a.tw.feed(); err != nil && a.twErr == nil {
			a.twErr = err
		}
	}
	mono := clock.Mono()
	a.engine.Tick(mono)
	if now.Sub(a.lastRep) >= diagnosisEvery {
		a.lastRep = now
		a.metrics.SetDiagnosis(a.engine.Report(mono, time.Duration(mono-a.start), ""))
	}
}

// diagnosisEvery is how often the metrics take the diagnosis' report: the
// TIME_WAIT gauges follow the kernel's timewait sockets this closely.
const diagnosisEvery = time.Second

// serveMemoryLimit is the floor of the Go runtime's soft memory limit for
// the agent (memLimit) unless GOMEMLIMIT is set.
const serveMemoryLimit = 40 << 20

func runServe(ctx context.Context, f *flags, sf *serveFlags) error {
	memLim := newMemLimit(serveMemoryLimit)
	oneCPU()
	kf, uf, err := f.filter()
	if err != nil {
		return err
	}
	ring, err := f.ring()
	if err != nil {
		return err
	}
	cf, err := f.containerFilter()
	if err != nil {
		return err
	}
	if sf.heartbeat <= 0 || sf.healthTimeout <= 0 {
		return fmt.Errorf("--heartbeat and --health-timeout must be positive")
	}
	hl, err := net.Listen("tcp", sf.metricsAddr)
	if err != nil {
		return fmt.Errorf("--metrics-addr: %w", err)
	}
	defer hl.Close()

	a := &agent{memLim: memLim}
	p, err := probe.Open(probe.Options{RingSize: ring, PollInterval: f.poll, Filter: kf,
		SkipSelfTest: !f.selfTest, OnIdle: func() {
			if a.metrics != nil {
				a.periodic()
			}
		}})
	if err != nil {
		return err
	}
	defer p.Close()
	a.start = clock.Mono()
	procs := owners.New("/proc")
	seeds := procs.Listeners()
	for _, l := range seeds {
		_ = p.SeedListener(l.Netns, l.Port, l.Family, l.Owner)
	}
	// Loading parsed the kernel's BTF (tens of MiB, garbage now): give it
	// back to the system rather than carry it as resident memory.
	debug.FreeOSMemory()
	if err := dropCapabilities(keepAfterAttach...); err != nil {
		fmt.Fprintf(os.Stderr, "tcptrace: %v\n", err)
	}

	hb, err := newHeartbeat(sf.heartbeat, sf.healthTimeout)
	if err != nil {
		return err
	}
	resolver := container.New(container.Options{CgroupRoot: sf.cgroupRoot})
	wall := render.LiveClock()
	hb.seen.Store(time.Now().UnixNano()) // the start-up self-test passed
	a.engine = diagnosis.New(diag.options())
	pile := startPile("/proc", events.Filter{Port: kf.Port, Host: kf.Host})
	defer pile.Close()
	a.engine.SetNetnsHook(pile.Watch)
	a.metrics = metrics.New(metrics.Options{TopK: sf.topK, Kernel: p, MaxTracked: f.maxConns, Version: version,
		Container: func(c *events.Conn) string { return resolver.Conn(c).Label() },
		Extra:     healthMetrics(hb)})
	connOnly := events.Filter{PID: uf.PID, Comm: uf.Comm, Port: uf.Port, Host: uf.Host}
	sinks := events.Tee{
		// First: it sets the error of port-less failed connects for the others.
		&events.Filtered{Filter: connOnly, Sink: a.engine},
		&events.Filtered{Filter: connOnly, Sink: a.metrics},
	}
	if f.json {
		a.bw = bufio.NewWriterSize(&errWriter{w: os.Stdout}, 64<<10)
		js := render.NewJSON(a.bw, wall)
		js.Extra = func(b []byte, c *events.Conn) []byte { return container.AppendJSON(b, resolver.Conn(c)) }
		sinks = append(sinks, &events.Filtered{Filter: uf, Sink: js})
	}
	var sink events.Sink = sinks
	if cf.Active() {
		sink = &container.Filtered{Filter: cf, Resolver: resolver, Sink: sinks}
	}
	a.tracker = events.NewTracker(sink, procs, f.maxConns)
	a.tracker.SetTimeWaitEvents(p.TimeWaitEvents())
	a.tw = &timeWaitFeed{pile: pile, tracker: a.tracker, engine: a.engine, filter: connOnly,
		onRead: func() {
			pile.describe(os.Stderr)
			a.lastRep = time.Time{} // the pile in the metrics now, not at the next report
		}}
	for _, l := range seeds {
		a.tracker.AddListener(l.Netns, l.Port, l.Owner)
	}
	if sf.captureDir != "" {
		if a.rec, err = serveRecorder(sf, wall, a.start, p.TimeWaitEvents()); err != nil {
			return err
		}
		defer a.rec.Close()
		a.tw.write = a.rec.Write
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srv := &http.Server{Handler: serveMux(a.metrics, hb), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(hl) }()
	defer srv.Close()
	go hb.run(ctx)

	stopped := make(chan struct{})
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	var timer <-chan time.Time
	if f.duration > 0 {
		timer = time.After(f.duration)
	}
	go func() {
		select {
		case <-sig:
		case <-ctx.Done():
		case <-timer:
		}
		close(stopped)
		_ = p.Stop()
	}()
	fmt.Fprintf(os.Stderr, "tcptrace: serving metrics on http://%s/metrics (health: /healthz)\n", hl.Addr())
	fmt.Fprintf(os.Stderr, "tcptrace: tracing TCP state changes (ring %s, poll %v) as a node agent; SIGTERM to stop\n", f.ringSize, f.poll)
	fmt.Fprintf(os.Stderr, "tcptrace: TIME_WAIT: %s\n", p.TimeWaitMethod())

	src := &hbSource{src: p, hb: hb, stallAfter: sf.stallAfter, start: time.Now(), stop: stopped}
	var ev events.Event
	var runErr error
	for {
		err := src.Next(&ev)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			runErr = err
			break
		}
		a.tracker.Observe(&ev)
		a.tw.observe(&ev)
		if a.twErr != nil {
			runErr = fmt.Errorf("writing capture: %w", a.twErr)
			break
		}
		if a.rec != nil {
			if err := a.rec.Write(&ev); err != nil {
				runErr = fmt.Errorf("writing capture: %w", err)
				break
			}
		}
		if p.Buffered() == 0 {
			a.periodic()
		}
	}
	hb.fail(errors.New("tracing stopped"))
	if a.bw != nil {
		_ = a.bw.Flush()
	}
	if a.rec != nil {
		if lost, err := p.Losses(); err == nil {
			a.rec.SetLosses(lost)
		}
		a.rec.SetEnd(clock.Mono())
		if err := a.rec.Close(); err != nil && runErr == nil {
			runErr = fmt.Errorf("closing capture: %w", err)
		}
	}
	sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer scancel()
	_ = srv.Shutdown(sctx)
	return runErr
}

// serveMux serves /metrics and /healthz.
func serveMux(m *metrics.Metrics, hb *heartbeat) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.Registry(), promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if err := hb.check(time.Now()); err != nil {
			http.Error(w, "unhealthy: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

var (
	descHealthy   = prometheus.NewDesc("tcptrace_healthy", "1 while the heartbeat connection is traced (as /healthz), else 0.", nil, nil)
	descHeartbeat = prometheus.NewDesc("tcptrace_heartbeat_last_traced_timestamp_seconds", "Unix time the latest heartbeat connection was seen traced.", nil, nil)
)

// healthMetrics exports the heartbeat's state.
func healthMetrics(hb *heartbeat) func(ch chan<- prometheus.Metric) {
	return func(ch chan<- prometheus.Metric) {
		up := 1.0
		if hb.check(time.Now()) != nil {
			up = 0
		}
		ch <- prometheus.MustNewConstMetric(descHealthy, prometheus.GaugeValue, up)
		ch <- prometheus.MustNewConstMetric(descHeartbeat, prometheus.GaugeValue, float64(hb.seen.Load())/1e9)
	}
}

// serveRecorder creates DIR/tcptrace-<start>.tcpt, rotated by size and
// count, after pruning earlier runs' files to --capture-count.
func serveRecorder(sf *serveFlags, wall render.Clock, start uint64, twEvents bool) (*capture.Writer, error) {
	size, err := parseSize(sf.captureSize)
	if err != nil {
		return nil, fmt.Errorf("--capture-size: %w", err)
	}
	if sf.captureCount < 1 {
		return nil, fmt.Errorf("--capture-count %d: must be at least 1", sf.captureCount)
	}
	if err := os.MkdirAll(sf.captureDir, 0o700); err != nil {
		return nil, fmt.Errorf("--capture-dir: %w", err)
	}
	pruneCaptures(sf.captureDir, sf.captureCount)
	name := filepath.Join(sf.captureDir, "tcptrace-"+time.Now().UTC().Format("20060102T150405Z")+".tcpt")
	w, err := capture.Create(name, capture.Options{RotateSize: int64(size), RotateCount: sf.captureCount,
		Overwrite: true, Tool: "tcptrace " + version, ClockOffset: wall.Offset, StartMono: start, TimeWaitEvents: twEvents})
	if err != nil {
		return nil, fmt.Errorf("--capture-dir: %w", err)
	}
	return w, nil
}

// pruneCaptures removes the oldest tcptrace-*.tcpt* files in dir beyond keep.
func pruneCaptures(dir string, keep int) {
	files, _ := filepath.Glob(filepath.Join(dir, "tcptrace-*.tcpt*"))
	type aged struct {
		path string
		mod  time.Time
	}
	var all []aged
	for _, p := range files {
		if st, err := os.Stat(p); err == nil && !strings.HasSuffix(p, ".tmp") {
			all = append(all, aged{p, st.ModTime()})
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].mod.After(all[j].mod) })
	for i := keep; i < len(all); i++ {
		_ = os.Remove(all[i].path)
	}
}
