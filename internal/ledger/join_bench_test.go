package ledger_test

import (
	"runtime"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/diagnosis"
	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/ledger"
	"github.com/tcptrace/tcptrace/internal/testutil"
)

type nop struct{}

func (nop) Warning(*diagnosis.Warning)         {}
func (nop) Failed(*diagnosis.FailedNotice)     {}
func (nop) TimeWaitEnd(*diagnosis.TimeWaitEnd) {}

// heapNow is the live heap after a collection.
func heapNow() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkPollJoin is the live path per iteration: a poller's dump of a
// namespace holding BenchSize() client-side TIME_WAIT sockets (and an
// eighth as many server-side), taken and joined by the engine, a quarter
// of the sockets traced. cpu-ns/sock is user+system CPU per TIME_WAIT
// socket; B/sock the memory poller and engine hold per socket, apart from
// the cookie table of the traced handovers (table-B).
func BenchmarkPollJoin(b *testing.B) {
	testutil.RequirePrivileged(b)
	ns := ledger.NewBenchNetns(b, ledger.BenchSize())
	base := heapNow()
	p := ledger.NewPoller(ns.Proc, time.Hour)
	defer p.Close()
	if !p.Watch(ns.Ino) {
		b.Fatal("cannot watch")
	}
	p.PollOnce()
	first := p.Take()
	if len(first) != 1 || first[0].Err != nil {
		b.Fatalf("snapshots %+v", first)
	}
	var traced []*events.Conn
	for i, k := range first[0].TimeWait {
		if i%4 != 0 {
			continue
		}
		peer := first[0].Peers[k.Peer]
		c := &events.Conn{Cookie: k.Cookie, Owner: events.Owner{PID: 100, Comm: events.MakeComm("app")},
			Role: events.RoleClient, Netns: ns.Ino, Saddr: peer.Saddr, Daddr: peer.Daddr, Sport: 40000, Dport: peer.Dport,
			Start: 1, Last: 2, End: events.EndGraceful, TimeWait: true}
		if peer.Lport != 0 {
			c.Role, c.Sport, c.Daddr, c.Dport = events.RoleServer, peer.Lport, peer.Saddr, 40000
		}
		traced = append(traced, c)
	}
	first[0].Release()
	e := diagnosis.New(diagnosis.Options{Out: nop{}})
	before := heapNow()
	for _, c := range traced {
		e.Finished(c)
	}
	table := heapNow() - before
	runtime.KeepAlive(traced)
	traced = nil
	join := func() int {
		p.PollOnce()
		n := 0
		for _, s := range p.Take() {
			if s.Err != nil {
				b.Fatal(s.Err)
			}
			n += len(s.TimeWait)
			e.Ledger(s)
		}
		return n
	}
	join()
	n := join()
	held := heapNow() - base - table
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	socks := 0
	cpu := ledger.CPUTime()
	b.ResetTimer()
	for range b.N {
		socks += join()
	}
	b.StopTimer()
	cpu = ledger.CPUTime() - cpu
	runtime.ReadMemStats(&ms1)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(socks), "ns/sock")
	b.ReportMetric(float64(cpu)/float64(socks), "cpu-ns/sock")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(b.N), "allocs/dump")
	b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/float64(socks), "alloc-B/sock")
	b.ReportMetric(float64(held)/float64(n), "B/sock")
	b.ReportMetric(float64(table), "table-B")
	b.ReportMetric(float64(n), "sockets")
}
