package ledger

import (
	"runtime"
	"testing"

	"github.com/tcptrace/tcptrace/internal/testutil"
)

// benchHandle opens a sock_diag socket in a namespace holding benchSize()
// TIME_WAIT sockets, closed when b ends.
func benchHandle(b *testing.B) *diagSock {
	testutil.RequirePrivileged(b)
	ns := NewBenchNetns(b, benchSize())
	d, err := openHandle(ns.Path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(d.Close)
	return d
}

// BenchmarkDump reads a namespace's table holding benchSize() client-side
// TIME_WAIT sockets (and an eighth as many server-side) once per iteration,
// into a reused snapshot as the poller does. cpu-ns/sock is the process's
// user+system CPU (the kernel's side of the dump included) per TIME_WAIT
// socket; B/sock the snapshot's memory per TIME_WAIT socket.
func BenchmarkDump(b *testing.B) {
	d := benchHandle(b)
	buf := make([]byte, recvBufLen)
	s := &Snapshot{}
	s.PortLo, s.PortHi = defaultPortLo, defaultPortHi
	dumpOnce := func() {
		s.reset()
		if err := d.dumpAll(buf, allStates, s); err != nil {
			b.Fatal(err)
		}
	}
	dumpOnce() // warm: the snapshot's memory is sized
	var socks int
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	cpu := cpuTime()
	b.ResetTimer()
	for range b.N {
		dumpOnce()
		socks += len(s.TimeWait)
	}
	b.StopTimer()
	cpu = cpuTime() - cpu
	runtime.ReadMemStats(&ms1)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(socks), "ns/sock")
	b.ReportMetric(float64(cpu)/float64(socks), "cpu-ns/sock")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(b.N), "allocs/dump")
	b.ReportMetric(float64(snapshotBytes(s))/float64(len(s.TimeWait)), "B/sock")
	b.ReportMetric(float64(socks/b.N), "sockets")
}

// BenchmarkDumpRaw is the kernel's share of BenchmarkDump: the same dump
// read into a sink that does nothing.
func BenchmarkDumpRaw(b *testing.B) {
	d := benchHandle(b)
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
}

// counter counts the sockets of a dump.
type counter int

func (c *counter) add([]byte) { *c++ }

// snapshotBytes is the memory a snapshot holds.
func snapshotBytes(s *Snapshot) int {
	const twSize, peerSize, indexEntry = 16, 64, 48
	return cap(s.TimeWait)*twSize + cap(s.Peers)*peerSize + len(s.index)*indexEntry
}
