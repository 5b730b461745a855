package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/tcptrace/tcptrace/internal/capture"
	"github.com/tcptrace/tcptrace/internal/container"
	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/metrics"
	"github.com/tcptrace/tcptrace/internal/pipeline"
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
flowing). At / it serves the HTML report of what it has traced, live:
TIME_WAIT per destination against the port range, active closers, failed
connects, connection ladders and remedies (reloaded every 5 s; relative
links, so it works behind kubectl port-forward). With --json it also
streams JSON events to stdout for log collectors; with --capture-dir it
records rotated captures.`,
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

// diagnosisEvery is how often the metrics take the tracker's counts and
// the diagnosis' report: the TIME_WAIT gauges follow the kernel's timewait
// sockets this closely.
const diagnosisEvery = time.Second

// serveMemoryLimit is the floor of the Go runtime's soft memory limit for
// the agent (memLimit) unless GOMEMLIMIT is set.
const serveMemoryLimit = 40 << 20

func runServe(ctx context.Context, f *flags, sf *serveFlags) error {
	kf, uf, err := f.filter()
	if err != nil {
		return err
	}
	cont, err := f.containerFilter(true)
	if err != nil {
		return err
	}
	if sf.heartbeat <= 0 || sf.healthTimeout <= 0 {
		return fmt.Errorf("--heartbeat and --health-timeout must be positive")
	}
	hl, err := net.Listen("tcp", sf.metricsAddr)
	if err != nil {
		return flagError("--metrics-addr", err)
	}
	defer hl.Close()

	// The metrics take the pile at once when the start-up read is fed, not
	// at their next refresh.
	var refreshed uint64
	live, memLim, err := openLive(f, kf, serveMemoryLimit, func() { refreshed = 0 })
	if err != nil {
		return err
	}
	defer live.Close()
	hb, err := newHeartbeat(sf.heartbeat, sf.healthTimeout)
	if err != nil {
		return err
	}
	hb.seen.Store(time.Now().UnixNano()) // the start-up self-test passed
	resolver := container.New(container.Options{CgroupRoot: sf.cgroupRoot})
	wall := liveClock()
	m := metrics.New(metrics.Options{TopK: sf.topK, Kernel: live.Probe(), MaxTracked: f.maxConns, Version: version,
		Container: func(c *events.Conn) string { return resolver.Conn(c).Label() },
		Extra:     healthMetrics(hb)})
	cfg := pipeline.Config{Filter: uf, Containers: cont, Resolver: resolver, MaxConns: f.maxConns, Diagnosis: diag.options(),
		Sinks: []events.Sink{&events.Filtered{Filter: connOnly(uf), Sink: m}}}
	if f.json {
		cfg.Out = pipeline.NewOutput(os.Stdout, 64<<10)
		cfg.Sinks = append(cfg.Sinks, &events.Filtered{Filter: uf, Sink: newJSONView(cfg.Out, wall, resolver)})
	}
	if sf.captureDir != "" {
		if cfg.Record, err = serveRecorder(sf, wall.Offset, live.Start(), live.Probe().TimeWaitEvents()); err != nil {
			return err
		}
	}
	page := newLivePage()
	page.shapes = newShapes(&cfg, true, func(*events.Conn) bool { return page.watched.Load() })
	stopped := make(chan struct{})
	src := &hbSource{Live: live, hb: hb, stallAfter: sf.stallAfter, start: time.Now(), stop: stopped}
	p := pipeline.New(src, cfg)
	attachShapes(page.shapes, p)
	label := containerLabel(resolver)
	p.Every(0, func(now uint64) {
		memLim.adjust()
		if refreshed == 0 || now-refreshed >= uint64(diagnosisEvery) {
			refreshed = now
			m.SetTracker(p.Stats())
			rep := p.ReportAt(now)
			m.SetDiagnosis(rep)
			page.update(p, rep, wall, label)
		}
	})

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srv := &http.Server{Handler: serveMux(m, hb, page), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(hl) }()
	defer srv.Close()
	go hb.run(ctx)
	unwatch := stopOn(ctx, f.duration, func() {
		close(stopped)
		live.Stop()
	})
	defer unwatch()
	fmt.Fprintf(os.Stderr, "tcptrace: serving metrics on http://%s/metrics (health: /healthz)\n", hl.Addr())
	fmt.Fprintf(os.Stderr, "tcptrace: tracing TCP state changes (ring %s, poll %v) as a node agent; SIGTERM to stop\n", f.ringSize, f.poll)
	fmt.Fprintf(os.Stderr, "tcptrace: TIME_WAIT: %s\n", live.Probe().TimeWaitMethod())

	runErr := p.Run()
	hb.fail(errors.New("tracing stopped"))
	sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer scancel()
	_ = srv.Shutdown(sctx)
	return runErr
}

// serveMux serves / (the live HTML report, which links the others),
// /metrics and /healthz.
func serveMux(m *metrics.Metrics, hb *heartbeat, page http.Handler) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", page)
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
func serveRecorder(sf *serveFlags, offset int64, start uint64, twEvents bool) (*capture.Writer, error) {
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
		Overwrite: true, Tool: "tcptrace " + version, ClockOffset: offset, StartMono: start, TimeWaitEvents: twEvents})
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
