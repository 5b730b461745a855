package ledger

import (
	"os"
	"runtime"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/testutil"
)

// benchSize is the client-side TIME_WAIT pile of the benchmarks:
// TCPTRACE_BENCH_TW or 50000 (plus an eighth as many server-side).
func benchSize() int {
	if n, err := strconv.Atoi(os.Getenv("TCPTRACE_BENCH_TW")); err == nil && n > 0 {
		return n
	}
	return 50000
}

// cpuTime returns the process's user+system CPU time in ns.
func cpuTime() int64 {
	var ru unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkReadPile reads, once per iteration, a namespace (ip netns add)
// holding benchSize() client-side TIME_WAIT sockets toward 127.0.0.1:80, an
// eighth as many server-side ones, and one open connection toward
// 127.0.0.1:80 that names the client-side ones' hint: what tcptrace does
// once per namespace at start. ns/sock is wall time per socket read,
// cpu-ns/sock the process's user+system CPU (the kernel's side of the dump
// included), alloc-B/sock the memory allocated (the pile's events).
func BenchmarkReadPile(b *testing.B) {
	testutil.RequirePrivileged(b)
	ns := benchNetns(b, benchSize())
	var socks, hinted int
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	cpu := cpuTime()
	b.ResetTimer()
	for range b.N {
		p, err := ReadPile(ns.Netns, events.Filter{})
		if err != nil {
			b.Fatal(err)
		}
		if len(p.Found) < ns.TimeWait*99/100 || p.Truncated {
			b.Fatalf("%d TIME_WAIT read of %d made (truncated %v)", len(p.Found), ns.TimeWait, p.Truncated)
		}
		socks += p.Sockets
		hinted = 0
		for i := range p.Found {
			if p.Found[i].Hint >= 0 {
				hinted++
			}
		}
	}
	b.StopTimer()
	cpu = cpuTime() - cpu
	runtime.ReadMemStats(&ms1)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(socks), "ns/sock")
	b.ReportMetric(float64(cpu)/float64(socks), "cpu-ns/sock")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(b.N), "allocs/read")
	b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/float64(socks), "alloc-B/sock")
	b.ReportMetric(float64(socks/b.N), "sockets")
	b.ReportMetric(float64(hinted), "hinted")
}

// BenchmarkDumpRaw is the kernel's share of BenchmarkReadPile: the same
// namespace's dump read into a sink that only counts.
func BenchmarkDumpRaw(b *testing.B) {
	testutil.RequirePrivileged(b)
	ns := benchNetns(b, benchSize())
	d, err := openHandle(ns.Path)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	buf := make([]byte, recvBufLen)
	var socks int
	cpu := cpuTime()
	b.ResetTimer()
	for range b.N {
		var c counter
		if err := d.dumpAll(buf, allStates, &c); err != nil {
			b.Fatal(err)
		}
		socks += int(c)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(socks), "ns/sock")
	b.ReportMetric(float64(cpuTime()-cpu)/float64(socks), "cpu-ns/sock")
	b.ReportMetric(float64(socks/b.N), "sockets")
}

// counter counts the sockets of a dump.
type counter int

func (c *counter) add([]byte) { *c++ }
