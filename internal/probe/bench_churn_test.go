package probe_test

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
//   - bpftrace:  the reference the targets were set against, a
//     bpftrace one-liner printing each transition of the port to a file
//     (skipped without bpftrace): it calibrates the workload.
//
// Every tracer runs in a process of its own (the floor's reader excepted:
// it sleeps between drains), as a reader in the workload's process would
// hold one of its Ps while parked in the raw epoll wait and slow the loops.
//
// Metrics: conns/s untraced and traced and their ratio; ring-buffer drops and
// recursion misses; tracer CPU-seconds per million events, from the ready
// point (its start-up done: see tracerProcess.ready) to its exit; the most
// CPU one start-up took; in-kernel ns per program run
// (BPF_STATS_RUN_TIME, held during one extra traced run after the rounds,
// so the ratio does not pay for the statistics); tracer peak RSS (the
// subprocesses); delivered/expected events.
//
// Environment: TCPTRACE_BENCH_RUN (duration of one run), TCPTRACE_BENCH_WORKERS
// (workload threads, default GOMAXPROCS), TCPTRACE_BENCH_HOSTNS=1 (skip the
// private netns), TCPTRACE_BIN (prebuilt binary), TCPTRACE_BENCH_ARGS (extra
// tracer arguments, space separated), TCPTRACE_BENCH_STATS=0 (no kernel-ns
// run).

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
	for _, mode := range []closeMode{clientClosesFirst, serverClosesFirst} {
		b.Run(mode.String(), func(b *testing.B) {
			b.Run("binary", func(b *testing.B) {
				bin := tcptraceBinary(b)
				benchChurn(b, mode, &binaryTracer{bin: bin, dir: b.TempDir()})
			})
			b.Run("reader", func(b *testing.B) {
				benchChurn(b, mode, &readerTracer{dir: b.TempDir()})
			})
			b.Run("floor", func(b *testing.B) {
				benchChurn(b, mode, &floorTracer{})
			})
			b.Run("bpftrace", func(b *testing.B) {
				bpftraceBinary(b)
				benchChurn(b, mode, &bpftraceTracer{dir: b.TempDir()})
			})
		})
	}
}

func benchChurn(b *testing.B, mode closeMode, tc tracer) {
	e := newChurnEnv(b)
	// Warm up: the first connections of a namespace are slower.
	e2 := *e
	e2.runFor = 300 * time.Millisecond
	e2.run(mode)

	var untraced, traced churnResult
	var tot tracerResult
	var ratios []float64 // per round: traced rate / untraced rate
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var uRound, tRound float64
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
		}
		ratios = append(ratios, tRound/uRound)
	}
	b.StopTimer()
	if os.Getenv("TCPTRACE_BENCH_STATS") != "0" {
		// In-kernel time per event, from one more traced run with the
		// kernel's run-time statistics on. Not during the rounds above:
		// the statistics cost two clock reads per program run, which
		// users tracing do not pay.
		tot.runs, tot.runtime = kernelCost(b, e, mode, tc)
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
	b.ReportMetric(float64(tot.ring), "ring-drops")
	b.ReportMetric(float64(tot.recursion), "recursion-misses")
	want := traced.conns * transitionsPerConn
	b.ReportMetric(float64(tot.events)/float64(want), "delivered/expected")
	if tot.events > 0 {
		b.ReportMetric(tot.cpu.Seconds()/(float64(tot.events)/1e6), "cpu-s/Mevents")
	}
	if tot.runs > 0 {
		b.ReportMetric(float64(tot.runtime.Nanoseconds())/float64(tot.runs), "kernel-ns/event")
	}
	if tot.startup > 0 { // not per event: once per start, before the workload
		b.ReportMetric(tot.startup.Seconds()*1e3, "max-startup-CPU-ms")
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
// and returns the program's runs and run time.
func kernelCost(b *testing.B, e *churnEnv, mode closeMode, tc tracer) (uint64, time.Duration) {
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Logf("bpf run-time stats unavailable: %v", err)
		return 0, 0
	}
	defer stats.Close()
	tc.start(b, e)
	r := e.run(mode)
	tr := tc.stop(b)
	checkRun(b, "traced (stats)", r)
	return tr.runs, tr.runtime
}

func checkRun(b *testing.B, what string, r churnResult) {
	if r.conns == 0 {
		b.Fatalf("%s run made no connections: %v", what, r.firstErr)
	}
	if r.errs > 0 {
		b.Logf("%s run: %d errors, first: %v", what, r.errs, r.firstErr)
	}
}
