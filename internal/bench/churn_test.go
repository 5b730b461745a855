package bench

// BenchmarkChurn: loopback connect/close churn, untraced vs traced.
//
// The workload runs in a private network namespace (lo up, ports 1024-65535,
// tcp_tw_reuse=1, 16 loopback destination addresses), one locked OS thread
// per worker making blocking raw syscalls: socket, connect, accept, then the
// first close on one side, read to EOF and close on the other. Every
// connection makes 10 TCP state transitions (5 per socket). Each round runs
// the same workload untraced and traced for TCPTRACE_BENCH_RUN (default 3s)
// each, alternating which goes first.
//
// Tracers:
//   - binary:    the real tcptrace (--json --port N > file) as a subprocess;
//     $TCPTRACE_BIN, or built from ../../cmd/tcptrace (skipped if it does
//     not build yet).
//   - reader:    a process of its own (this test binary, re-run) that opens
//     the probe and decodes each record, nothing more: tcptrace's kernel
//     program and ring reader with almost none of its userspace.
//   - floor:     the cheapest possible tracer, a clock read and an 8-byte
//     record per transition, drained and discarded: the loop's ceiling.
//   - floor-tw:  the floor plus programs on timer_start, timer_cancel and
//     timer_expire_entry that keep only timewait timers and write a record
//     for each: the least any tracer on the timer tracepoints costs.
//   - bpftrace:  the reference the targets were set against, a
//     bpftrace one-liner printing each transition of the port to a file
//     (skipped without bpftrace): it calibrates the workload.
//
// Every tracer runs in a process of its own (the floor's reader excepted:
// it sleeps between drains), so that its CPU is its own and its garbage
// collector does not run in the workload's process.
//
// Pile variants (pile_test.go): every tracer runs with no TIME_WAIT
// pile (pile-0); the binary, the floor and floor-tw also with 50k and 200k TIME_WAIT
// sockets in another namespace and 200k spread over 64 namespaces, made
// before the tracer starts (the binary reads them at start-up) and made
// again when older than 40 s; bpftrace also with the 200k pile.
//
// Metrics: conns/s untraced and traced and their ratio (the median of the
// rounds' and the pooled one); ring-buffer drops and
// recursion misses; tracer CPU-seconds per million events, from the ready
// point (its start-up done: see tracerProcess.ready) to its drained point
// (its backlog written: see tracerProcess.finish); the most CPU one
// start-up took, and one exit; in-kernel ns per event: every program of the
// tracer (tcptrace: set_state and the three timer programs) over the
// set_state runs (BPF_STATS_RUN_TIME, held during one extra traced run after the rounds,
// so the ratio does not pay for the statistics); tracer peak RSS (the
// subprocesses); delivered/expected events.
//
// Environment: TCPTRACE_BENCH_RUN (duration of one run), TCPTRACE_BENCH_ROUNDS
// (rounds, default b.N), TCPTRACE_BENCH_WORKERS
// (workload threads, default GOMAXPROCS), TCPTRACE_BENCH_HOSTNS=1 (skip the
// private netns), TCPTRACE_BIN (prebuilt binary), TCPTRACE_BENCH_ARGS (extra
// tracer arguments, space separated), TCPTRACE_BIN_OLD (a second build run
// as "binary-old" beside binary, without a pile: an A/B in one run),
// TCPTRACE_BENCH_STATS=0 (no kernel-ns run).

import (
	"os"
	"sort"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/tcptrace/tcptrace/internal/testutil"
)

const transitionsPerConn = 10

func BenchmarkChurn(b *testing.B) {
	testutil.RequirePrivileged(b)
	for _, spec := range pileSpecs {
		b.Run(spec.name, func(b *testing.B) {
			pl := &pile{spec: spec, port: int(churnPort())}
			defer func() {
				if len(pl.took) > 0 {
					b.Logf("%s: %d builds, %v", spec.name, len(pl.took), pl.took)
				}
				pl.remove()
			}()
			for _, mode := range []closeMode{clientClosesFirst, serverClosesFirst} {
				b.Run(mode.String(), func(b *testing.B) {
					benchTracers(b, mode, pl)
				})
			}
		})
	}
}

// benchTracers runs the tracers of a pile variant: every one without a
// pile; the binary and the floor with every pile; bpftrace also with the
// 200k pile in one namespace.
func benchTracers(b *testing.B, mode closeMode, pl *pile) {
	b.Run("binary", func(b *testing.B) {
		bin := tcptraceBinary(b)
		benchChurn(b, mode, pl, &binaryTracer{bin: bin, dir: b.TempDir()})
	})
	if old := os.Getenv("TCPTRACE_BIN_OLD"); old != "" && pl.spec.size == 0 {
		// An A/B of two builds in the same run, e.g. before and after a
		// change: the same flags as binary.
		b.Run("binary-old", func(b *testing.B) {
			benchChurn(b, mode, pl, &binaryTracer{bin: old, dir: b.TempDir()})
		})
	}
	if pl.spec.size == 0 {
		b.Run("reader", func(b *testing.B) {
			benchChurn(b, mode, pl, &readerTracer{dir: b.TempDir()})
		})
	}
	b.Run("floor", func(b *testing.B) {
		benchChurn(b, mode, pl, &floorTracer{})
	})
	b.Run("floor-tw", func(b *testing.B) {
		benchChurn(b, mode, pl, &floorTracer{tw: true})
	})
	if pl.spec.size == 0 || pl.spec.spread == 1 && pl.spec.size == 200_000 {
		b.Run("bpftrace", func(b *testing.B) {
			bpftraceBinary(b)
			benchChurn(b, mode, pl, &bpftraceTracer{dir: b.TempDir()})
		})
	}
}

func benchChurn(b *testing.B, mode closeMode, pl *pile, tc tracer) {
	e := newChurnEnv(b)
	pl.ensure(b)
	// Warm up: the first connections of a namespace are slower.
	e2 := *e
	e2.runFor = 300 * time.Millisecond
	e2.run(mode)

	var untraced, traced churnResult
	var tot tracerResult
	var ratios []float64 // per round: traced rate / untraced rate
	// Rounds: TCPTRACE_BENCH_ROUNDS, or b.N (-benchtime Nx runs the
	// benchmark once with N=1 first, so bench/run uses -benchtime 1x).
	rounds := envInt("TCPTRACE_BENCH_ROUNDS", b.N)
	var nz noise
	b.ResetTimer()
	for i := 0; i < rounds; i++ {
		var uRound, tRound float64
		b.StopTimer()
		pl.ensure(b) // made again before it could expire in the round
		nz.check()
		b.StartTimer()
		for k := 0; k < 2; k++ {
			if (i+k)%2 == 0 {
				b.StopTimer() // the timer is meaningless here; metrics are reported
				r := e.run(mode)
				b.StartTimer()
				checkRun(b, "untraced", r)
				untraced.conns += r.conns
				untraced.elapsed += r.elapsed
				uRound = float64(r.conns) / r.elapsed.Seconds()
				continue
			}
			b.StopTimer()
			tc.start(b, e)
			b.StartTimer()
			r := e.run(mode)
			b.StopTimer()
			tr := tc.stop(b)
			b.StartTimer()
			checkRun(b, "traced", r)
			traced.conns += r.conns
			traced.elapsed += r.elapsed
			tRound = float64(r.conns) / r.elapsed.Seconds()
			tot.events += tr.events
			tot.cpu += tr.cpu
			tot.ring += tr.ring
			tot.recursion += tr.recursion
			tot.maxRSS = max(tot.maxRSS, tr.maxRSS)
			tot.startup = max(tot.startup, tr.startup)
			tot.exit = max(tot.exit, tr.exit)
			tot.timerRuns += tr.timerRuns
		}
		ratios = append(ratios, tRound/uRound)
	}
	b.StopTimer()
	if os.Getenv("TCPTRACE_BENCH_STATS") != "0" {
		// In-kernel time per event, from one more traced run with the
		// kernel's run-time statistics on. Not during the rounds above:
		// the statistics cost two clock reads per program run, which
		// users tracing do not pay.
		pl.ensure(b)
		k := kernelCost(b, e, mode, tc)
		tot.runs, tot.runtime, tot.timerRuns, tot.timerRuntime = k.runs, k.runtime, k.timerRuns, k.timerRuntime
	}
	uRate := float64(untraced.conns) / untraced.elapsed.Seconds()
	tRate := float64(traced.conns) / traced.elapsed.Seconds()
	b.ReportMetric(uRate, "untraced-conns/s")
	b.ReportMetric(tRate, "traced-conns/s")
	// The median of per-round ratios resists load that comes and goes on
	// a shared machine better than the ratio of totals.
	sort.Float64s(ratios)
	med := ratios[len(ratios)/2]
	if len(ratios)%2 == 0 {
		med = (ratios[len(ratios)/2-1] + med) / 2
	}
	b.ReportMetric(med, "traced/untraced")
	// Pooled over the rounds: the rates of all rounds' connections.
	b.ReportMetric(tRate/uRate, "pooled-traced/untraced")
	b.ReportMetric(float64(tot.ring), "ring-drops")
	b.ReportMetric(float64(tot.recursion), "recursion-misses")
	want := traced.conns * transitionsPerConn
	b.ReportMetric(float64(tot.events)/float64(want), "delivered/expected")
	if tot.events > 0 {
		b.ReportMetric(tot.cpu.Seconds()/(float64(tot.events)/1e6), "cpu-s/Mevents")
	}
	if tot.runs > 0 {
		// Every program of the tracer (set_state and the timer
		// programs) over the set_state runs.
		b.ReportMetric(float64(tot.runtime.Nanoseconds())/float64(tot.runs), "kernel-ns/event")
		if tot.timerRuns > 0 {
			b.ReportMetric(float64(tot.timerRuntime.Nanoseconds())/float64(tot.runs), "timer-ns/event")
			b.ReportMetric(float64(tot.timerRuns)/float64(tot.runs), "timer-runs/event")
		}
	}
	if pl.spec.size > 0 {
		b.ReportMetric(float64(pl.spec.size), "pile")
	}
	b.ReportMetric(float64(nz.busy), "busy-rounds")
	b.ReportMetric(float64(nz.foreign), "foreign-tracers")
	if tot.startup > 0 { // not per event: once per start, before the workload
		b.ReportMetric(tot.startup.Seconds()*1e3, "max-startup-CPU-ms")
	}
	if tot.exit > 0 { // not per event: once per run, after the backlog is written
		b.ReportMetric(tot.exit.Seconds()*1e3, "max-exit-CPU-ms")
	}
	if tot.maxRSS > 0 {
		b.ReportMetric(float64(tot.maxRSS)/(1<<20), "peak-RSS-MiB")
	}
	b.ReportMetric(0, "ns/op")
	b.Logf("%s: per-round traced/untraced %.3f", mode, ratios)
	b.Logf("%s: untraced %d conns in %v, traced %d conns in %v; %d events delivered of %d expected; program runs %d; tracer CPU %v",
		mode, untraced.conns, untraced.elapsed, traced.conns, traced.elapsed, tot.events, want, tot.runs, tot.cpu)
}

// kernelCost runs the workload traced once with BPF run-time statistics on
// and returns the tracer's result: its programs' runs and run time.
func kernelCost(b *testing.B, e *churnEnv, mode closeMode, tc tracer) tracerResult {
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Logf("bpf run-time stats unavailable: %v", err)
		return tracerResult{}
	}
	defer stats.Close()
	tc.start(b, e)
	r := e.run(mode)
	tr := tc.stop(b)
	checkRun(b, "traced (stats)", r)
	return tr
}

func checkRun(b *testing.B, what string, r churnResult) {
	if r.conns == 0 {
		b.Fatalf("%s run made no connections: %v", what, r.firstErr)
	}
	if r.errs > 0 {
		b.Logf("%s run: %d errors, first: %v", what, r.errs, r.firstErr)
	}
}
