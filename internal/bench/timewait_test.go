package bench

// The cost of the timewait programs: they run for every kernel timer armed,
// cancelled or run on the host, so their cost is per timer, not per
// timewait socket. BenchmarkTimerPrograms measures, under two loopback
// workloads in a private namespace, how often they run per transition and
// for how long (BPF_STATS_RUN_TIME, which itself adds ~60-70 ns per run
// here: an empty tp_btf program measured 69 ns/run).
//
//	churn: workers connect and close at once, client first (a TIME_WAIT
//	       each; tcp_tw_reuse=1 and a wide port range keep them going).
//	bulk:  a few long-lived connections stream 64 KiB writes.
//
// Run: TCPTRACE_REQUIRE_PRIVILEGED=1 go test -run '^$' -bench TimerPrograms -benchtime 1x ./internal/bench/

import (
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/probe"
	"github.com/tcptrace/tcptrace/internal/testutil"
)

func BenchmarkTimerPrograms(b *testing.B) {
	testutil.RequirePrivileged(b)
	old, _ := os.ReadFile("/proc/sys/kernel/bpf_stats_enabled")
	if err := os.WriteFile("/proc/sys/kernel/bpf_stats_enabled", []byte("1"), 0); err != nil {
		b.Skipf("enabling BPF run-time statistics: %v", err)
	}
	b.Cleanup(func() { _ = os.WriteFile("/proc/sys/kernel/bpf_stats_enabled", old, 0) })
	for _, mode := range []string{"churn", "bulk"} {
		b.Run(mode, func(b *testing.B) { benchTimers(b, mode) })
	}
}

// loopback is 127.0.0.1.
var loopback = [4]byte{127, 0, 0, 1}

// onNetnsThread runs fn in the background on a locked OS thread inside ns.
func onNetnsThread(ns *testutil.Netns, wg *sync.WaitGroup, fn func()) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = ns.Do(func() error { fn(); return nil })
	}()
}

func benchTimers(b *testing.B, mode string) {
	ns := testutil.NewNetns(b, map[string]string{"ip_local_port_range": "10000 60000", "tcp_tw_reuse": "1"})
	p, err := probe.Open(probe.Options{SkipSelfTest: true, RingSize: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	if !p.TimeWaitEvents() {
		b.Fatalf("no timewait programs: %s", p.TimeWaitMethod())
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var ev events.Event
		for p.Next(&ev) == nil {
		}
	}()
	defer func() { _ = p.Stop(); <-done; p.Close() }()

	const port = 9000
	var wg sync.WaitGroup
	ln := -1
	onNetnsThread(ns, &wg, func() {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return
		}
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		if unix.Bind(fd, &unix.SockaddrInet4{Addr: loopback, Port: port}) == nil && unix.Listen(fd, 4096) == nil {
			ln = fd
		}
	})
	wg.Wait()
	if ln < 0 {
		b.Fatal("listening in the namespace failed")
	}
	go serveSink(ln)

	var stop atomic.Bool
	var conns atomic.Int64
	r0, t0, _ := p.ProgramStats()
	tr0, tt0, _ := p.TimerStats()
	start := time.Now()
	for w := 0; w < 4; w++ {
		onNetnsThread(ns, &wg, func() { clientLoop(mode, port, &stop, &conns) })
	}
	time.Sleep(3 * time.Second)
	stop.Store(true)
	wg.Wait()
	elapsed := time.Since(start)
	r1, t1, _ := p.ProgramStats()
	tr1, tt1, _ := p.TimerStats()
	unix.Close(ln)
	runs, timers := r1-r0, tr1-tr0
	b.ReportMetric(float64(t1-t0)/float64(max(runs, 1)), "set_state-ns/run")
	b.ReportMetric(float64(tt1-tt0)/float64(max(timers, 1)), "timer-ns/run")
	b.ReportMetric(float64(timers)/float64(max(runs, 1)), "timer-runs/transition")
	b.ReportMetric(float64(timers)/elapsed.Seconds(), "timer-runs/s")
	b.ReportMetric(100*(tt1-tt0).Seconds()/elapsed.Seconds(), "timer-%CPU")
	b.Logf("%s: %d connections in %v; %d transitions, %d timer-program runs", mode, conns.Load(), elapsed.Round(time.Millisecond), runs, timers)
}

// serveSink accepts connections and reads each until EOF, then closes it.
func serveSink(ln int) {
	for {
		fd, _, err := unix.Accept4(ln, unix.SOCK_CLOEXEC)
		if err != nil {
			return
		}
		go func() {
			buf := make([]byte, 1<<16)
			for {
				if n, err := unix.Read(fd, buf); n <= 0 || err != nil {
					break
				}
			}
			unix.Close(fd)
		}()
	}
}

// clientLoop connects until stop: closing at once (churn) or streaming
// until stop (bulk).
func clientLoop(mode string, port int, stop *atomic.Bool, conns *atomic.Int64) {
	payload := make([]byte, 1<<16)
	for !stop.Load() {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return
		}
		if err := unix.Connect(fd, &unix.SockaddrInet4{Addr: loopback, Port: port}); err == nil {
			conns.Add(1)
			for mode == "bulk" && !stop.Load() {
				if _, err := unix.Write(fd, payload); err != nil {
					break
				}
			}
		}
		unix.Close(fd)
	}
}
