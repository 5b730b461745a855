package bench

// BenchmarkBulk: what tracing costs ordinary traffic. The timer programs
// run for every kernel timer armed, cancelled or run, and TCP re-arms its
// timers per packet, so a bulk transfer pays them per packet although it
// makes almost no state changes. A few long-lived loopback connections in
// the churn workload's namespace stream 64 KiB writes for
// TCPTRACE_BENCH_RUN; each round runs it untraced and traced (order
// alternating) by the tcptrace binary (--json --port N, timer programs on),
// and, to tell the timer programs' share, by the reader process with and
// without them.
//
// Metrics: bytes/s untraced and traced, the median of the rounds'
// traced/untraced ratios and the pooled one, the tracer's CPU, and, from one more traced run
// with the kernel's run-time statistics on, the timer programs' runs per
// second and their share of one CPU.

import (
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/tcptrace/tcptrace/internal/testutil"
)

// bulkConns is how many connections stream at once.
const bulkConns = 4

func BenchmarkBulk(b *testing.B) {
	testutil.RequirePrivileged(b)
	b.Run("binary", func(b *testing.B) {
		benchBulk(b, &binaryTracer{bin: tcptraceBinary(b), dir: b.TempDir()})
	})
	b.Run("reader", func(b *testing.B) {
		benchBulk(b, &readerTracer{dir: b.TempDir()})
	})
	b.Run("reader-no-timewait", func(b *testing.B) {
		benchBulk(b, &readerTracer{dir: b.TempDir(), noTimeWait: true})
	})
}

func benchBulk(b *testing.B, tc tracer) {
	e := newChurnEnv(b)
	e.bulk(b, 300*time.Millisecond) // warm up
	rounds := envInt("TCPTRACE_BENCH_ROUNDS", b.N)
	var uBytes, tBytes float64
	var uTime, tTime, cpu time.Duration
	var ratios []float64
	var nz noise
	for i := 0; i < rounds; i++ {
		nz.check()
		var u, t float64
		for k := 0; k < 2; k++ {
			if (i+k)%2 == 0 {
				n, d := e.bulk(b, e.runFor)
				uBytes, uTime, u = uBytes+n, uTime+d, n/d.Seconds()
				continue
			}
			tc.start(b, e)
			n, d := e.bulk(b, e.runFor)
			cpu += tc.stop(b).cpu
			tBytes, tTime, t = tBytes+n, tTime+d, n/d.Seconds()
		}
		ratios = append(ratios, t/u)
	}
	uRate, tRate := uBytes/uTime.Seconds(), tBytes/tTime.Seconds()
	sort.Float64s(ratios)
	b.ReportMetric(uRate/1e6, "untraced-MB/s")
	b.ReportMetric(tRate/1e6, "traced-MB/s")
	b.ReportMetric(median(ratios), "traced/untraced")
	b.ReportMetric(tRate/uRate, "pooled-traced/untraced")
	b.ReportMetric(100*cpu.Seconds()/tTime.Seconds(), "tracer-%CPU")
	b.ReportMetric(float64(nz.busy), "busy-rounds")
	b.ReportMetric(float64(nz.foreign), "foreign-tracers")
	b.Logf("per-round traced/untraced %.3f", ratios)

	// The timer programs' runs, from a run with statistics on.
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Logf("bpf run-time stats unavailable: %v", err)
	} else {
		tc.start(b, e)
		_, d := e.bulk(b, e.runFor)
		tr := tc.stop(b)
		stats.Close()
		b.ReportMetric(float64(tr.timerRuns)/d.Seconds(), "timer-runs/s")
		if tr.timerRuns > 0 {
			b.ReportMetric(float64(tr.timerRuntime.Nanoseconds())/float64(tr.timerRuns), "timer-ns/run")
		}
		b.ReportMetric(100*tr.timerRuntime.Seconds()/d.Seconds(), "timer-%CPU")
	}
	b.ReportMetric(0, "ns/op")
}

// median returns the middle of sorted values.
func median(sorted []float64) float64 {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// bulk connects bulkConns clients to the workload's listener, streams
// 64 KiB writes on each for d, and returns the bytes written and the time
// they took.
func (e *churnEnv) bulk(b *testing.B, d time.Duration) (float64, time.Duration) {
	var cli, srv []int
	err := onLockedThread(func() error {
		if e.nsFd >= 0 {
			if err := unix.Setns(e.nsFd, unix.CLONE_NEWNET); err != nil {
				return err
			}
		}
		for i := 0; i < bulkConns; i++ {
			c, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			cli = append(cli, c)
			if err := unix.Connect(c, &unix.SockaddrInet4{Addr: e.addrs[i%len(e.addrs)], Port: int(e.port)}); err != nil {
				return fmt.Errorf("connect: %w", err)
			}
			s, _, err := unix.Accept4(e.lnFd, unix.SOCK_CLOEXEC)
			if err != nil {
				return fmt.Errorf("accept: %w", err)
			}
			srv = append(srv, s)
		}
		return nil
	})
	if err != nil {
		for _, fd := range append(cli, srv...) {
			unix.Close(fd)
		}
		b.Fatalf("bulk connections: %v", err)
	}
	var stop atomic.Bool
	var written atomic.Uint64
	var wg sync.WaitGroup
	for i := range cli {
		wg.Add(2)
		go func(fd int) { // writer
			defer wg.Done()
			buf := make([]byte, 1<<16)
			for !stop.Load() {
				n, err := unix.Write(fd, buf)
				if err != nil && err != unix.EINTR {
					break
				}
				written.Add(uint64(max(n, 0)))
			}
			unix.Close(fd)
		}(cli[i])
		go func(fd int) { // reader, to EOF
			defer wg.Done()
			buf := make([]byte, 1<<16)
			for {
				n, err := unix.Read(fd, buf)
				if err == unix.EINTR {
					continue
				}
				if n <= 0 {
					break
				}
			}
			unix.Close(fd)
		}(srv[i])
	}
	start := time.Now()
	time.Sleep(d)
	n := written.Load()
	elapsed := time.Since(start)
	stop.Store(true)
	wg.Wait()
	return float64(n), elapsed
}
