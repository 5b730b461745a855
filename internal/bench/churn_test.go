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
// in binary's rounds, without a pile, its metrics named old-*: an A/B in
// the same rounds),
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
// 200k pile in one namespace. With TCPTRACE_BIN_OLD, the binary's rounds
// also run that build, interleaved: an A/B in the same rounds.
func benchTracers(b *testing.B, mode closeMode, pl *pile) {
	b.Run("binary", func(b *testing.B) {
		tcs := []tracer{&binaryTracer{bin: tcptraceBinary(b), dir: b.TempDir()}}
		if old := os.Getenv("TCPTRACE_BIN_OLD"); old != "" && pl.spec.size == 0 {
			tcs = append(tcs, &binaryTracer{bin: old, dir: b.TempDir()})
		}
		benchChurn(b, mode, pl, tcs...)
	})
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

// traced sums one tracer's rounds.
type traced struct {
	tc     tracer
	run    churnResult  // the workload's, traced
	tot    tracerResult // the tracer's
	ratios []float64    // per round: traced rate / untraced rate
}

// benchChurn runs rounds of the workload untraced and traced by each of tcs
// (the order turning round by round), then reports the first tracer's
// metrics, and the second's (an A/B) with the prefix "old-".
func benchChurn(b *testing.B, mode closeMode, pl *pile, tcs ...tracer) {
	e := newChurnEnv(b)
	e.movePort = pl.spec.size == 0
	pl.ensure(b)
	// Warm up: the first connections of a namespace are slower.
	e2 := *e
	e2.runFor = 300 * time.Millisecond
	e2.run(mode)

	var untraced churnResult
	ts := make([]traced, len(tcs))
	for i, tc := range tcs {
		ts[i].tc = tc
	}
	// Rounds: TCPTRACE_BENCH_ROUNDS, or b.N (-benchtime Nx runs the
	// benchmark once with N=1 first, so bench/run uses -benchtime 1x).
	rounds := envInt("TCPTRACE_BENCH_ROUNDS", b.N)
	var nz noise
	b.StopTimer() // the timer is meaningless here; metrics are reported
	for i := 0; i < rounds; i++ {
		pl.ensure(b) // made again before it could expire in the round
		nz.check()
		var uRound float64
		tRound := make([]float64, len(ts))
		for k := 0; k <= len(ts); k++ {
			e.fresh(b, mode)
			j := (i+k)%(len(ts)+1) - 1 // -1: untraced
			if j < 0 {
				r := e.run(mode)
				checkRun(b, "untraced", r)
				untraced.conns += r.conns
				untraced.elapsed += r.elapsed
				uRound = float64(r.conns) / r.elapsed.Seconds()
				continue
			}
			t := &ts[j]
			t.tc.start(b, e)
			r := e.run(mode)
			tr := t.tc.stop(b)
			checkRun(b, "traced", r)
			t.run.conns += r.conns
			t.run.elapsed += r.elapsed
			tRound[j] = float64(r.conns) / r.elapsed.Seconds()
			t.tot.add(tr)
		}
		for j := range ts {
			ts[j].ratios = append(ts[j].ratios, tRound[j]/uRound)
		}
	}
	if os.Getenv("TCPTRACE_BENCH_STATS") != "0" {
		// In-kernel time per event, from one more traced run with the
		// kernel's run-time statistics on. Not during the rounds above:
		// the statistics cost two clock reads per program run, which
		// users tracing do not pay.
		for j := range ts {
			pl.ensure(b)
			e.fresh(b, mode)
			k := kernelCost(b, e, mode, ts[j].tc)
			t := &ts[j].tot
			t.runs, t.runtime, t.timerRuns, t.timerRuntime = k.runs, k.runtime, k.timerRuns, k.timerRuntime
		}
	}
	uRate := float64(untraced.conns) / untraced.elapsed.Seconds()
	b.Logf("%s: untraced %d conns in %v", mode, untraced.conns, untraced.elapsed)
	b.ReportMetric(uRate, "untraced-conns/s")
	for j := range ts {
		prefix := ""
		if j > 0 {
			prefix = "old-"
		}
		ts[j].report(b, prefix, uRate)
	}
	if pl.spec.size > 0 {
		b.ReportMetric(float64(pl.spec.size), "pile")
	}
	b.ReportMetric(float64(nz.busy), "busy-rounds")
	b.ReportMetric(float64(nz.foreign), "foreign-tracers")
	b.ReportMetric(0, "ns/op")
}

// add sums a run's result into t (peaks as maxima).
func (t *tracerResult) add(r tracerResult) {
	t.events += r.events
	t.cpu += r.cpu
	t.ring += r.ring
	t.recursion += r.recursion
	t.maxRSS = max(t.maxRSS, r.maxRSS)
	t.startup = max(t.startup, r.startup)
	t.exit = max(t.exit, r.exit)
	t.timerRuns += r.timerRuns
}

// report writes one tracer's metrics, each name with prefix.
func (t *traced) report(b *testing.B, prefix string, uRate float64) {
	metric := func(v float64, unit string) { b.ReportMetric(v, prefix+unit) }
	tRate := float64(t.run.conns) / t.run.elapsed.Seconds()
	metric(tRate, "traced-conns/s")
	// The median of per-round ratios resists load that comes and goes on
	// a shared machine better than the ratio of totals.
	sort.Float64s(t.ratios)
	med := t.ratios[len(t.ratios)/2]
	if len(t.ratios)%2 == 0 {
		med = (t.ratios[len(t.ratios)/2-1] + med) / 2
	}
	metric(med, "traced/untraced")
	// Pooled over the rounds: the rates of all rounds' connections.
	metric(tRate/uRate, "pooled-traced/untraced")
	tot := &t.tot
	want := t.run.conns * transitionsPerConn
	b.Logf("%sper-round traced/untraced %.3f; traced %d conns in %v; %d events delivered of %d expected; program runs %d; tracer CPU %v",
		prefix, t.ratios, t.run.conns, t.run.elapsed, tot.events, want, tot.runs, tot.cpu)
	metric(float64(tot.ring), "ring-drops")
	metric(float64(tot.recursion), "recursion-misses")
	metric(float64(tot.events)/float64(want), "delivered/expected")
	if tot.events > 0 {
		metric(tot.cpu.Seconds()/(float64(tot.events)/1e6), "cpu-s/Mevents")
	}
	if tot.runs > 0 {
		// Every program of the tracer (set_state and the timer
		// programs) over the set_state runs.
		metric(float64(tot.runtime.Nanoseconds())/float64(tot.runs), "kernel-ns/event")
		if tot.timerRuns > 0 {
			metric(float64(tot.timerRuntime.Nanoseconds())/float64(tot.runs), "timer-ns/event")
			metric(float64(tot.timerRuns)/float64(tot.runs), "timer-runs/event")
		}
	}
	if tot.startup > 0 { // not per event: once per start, before the workload
		metric(tot.startup.Seconds()*1e3, "max-startup-CPU-ms")
	}
	if tot.exit > 0 { // not per event: once per run, after the backlog is written
		metric(tot.exit.Seconds()*1e3, "max-exit-CPU-ms")
	}
	if tot.maxRSS > 0 {
		metric(float64(tot.maxRSS)/(1<<20), "peak-RSS-MiB")
	}
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
