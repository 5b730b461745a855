package diagnosis

import (
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"testing"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/ledger"
)

// benchTimeWait is the TIME_WAIT pile of the benchmarks: TCPTRACE_BENCH_TW or 200000.
func benchTimeWait() int {
	if n, err := strconv.Atoi(os.Getenv("TCPTRACE_BENCH_TW")); err == nil && n > 0 {
		return n
	}
	return 200000
}

// heapNow is the live heap after a collection.
func heapNow() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// benchSnapshots returns two snapshots of n TIME_WAIT sockets, most toward
// 4 destinations from ports of the range and an eighth on a server port,
// in the kernel's hash order (shuffled); the second lacks every 64th socket.
// Every fourth socket's handover is traced into e, by one of 3 processes
// (the cookie table holds at most maxCookies of them).
func benchSnapshots(e *Engine, n int) (a, b *ledger.Snapshot) {
	a = &ledger.Snapshot{Netns: 7, Time: 1e9, Listeners: 1}
	for i := range 4 {
		a.Peers = append(a.Peers, ledger.Peer{Saddr: cliAddr, Daddr: netip.AddrFrom4([4]byte{10, 1, 0, byte(i)}), Dport: 80})
	}
	a.Peers = append(a.Peers, ledger.Peer{Saddr: srvAddr, Lport: 8080})
	rnd := uint64(88172645463325252)
	for i := range n {
		rnd ^= rnd << 13
		rnd ^= rnd >> 7
		rnd ^= rnd << 17
		peer := uint32(rnd % 4)
		if i%8 == 7 {
			peer = 4
		}
		cookie := uint64(1<<20 + i)
		a.TimeWait = append(a.TimeWait, ledger.TimeWait{Cookie: cookie, Peer: peer, Expires: uint32(rnd % 60000)})
		a.Peers[peer].TimeWait++
		if i%4 == 0 {
			p := &a.Peers[peer]
			c := &events.Conn{Cookie: cookie, Owner: events.Owner{PID: uint32(100 + i%3), Comm: events.MakeComm("app")},
				Role: events.RoleClient, Netns: 7, Saddr: p.Saddr, Daddr: p.Daddr, Sport: uint16(32768 + i%28000), Dport: 80,
				Start: 1, Last: 2, End: events.EndGraceful, TimeWait: true}
			if p.Lport != 0 {
				c.Role, c.Sport, c.Daddr, c.Dport = events.RoleServer, p.Lport, cliAddr, uint16(i)
			}
			e.Finished(c)
		}
	}
	for i := range a.TimeWait {
		j := int(uint64(i) * 2654435761 % uint64(len(a.TimeWait)))
		a.TimeWait[i], a.TimeWait[j] = a.TimeWait[j], a.TimeWait[i]
	}
	b = &ledger.Snapshot{Netns: 7, Listeners: 1, Peers: append([]ledger.Peer(nil), a.Peers...)}
	for i, k := range a.TimeWait {
		if i%64 == 0 {
			b.Peers[k.Peer].TimeWait--
			continue
		}
		b.TimeWait = append(b.TimeWait, k)
	}
	return a, b
}

// nopReporter discards what it is given.
type nopReporter struct{ ends int }

func (r *nopReporter) Warning(*Warning)         {}
func (r *nopReporter) Failed(*FailedNotice)     {}
func (r *nopReporter) TimeWaitEnd(*TimeWaitEnd) { r.ends++ }

// BenchmarkEngineLedger joins snapshots of benchTimeWait() TIME_WAIT
// sockets, a quarter traced, alternating two that differ by 1/64 (those
// end, then come back). B/sock is the engine's memory for the join per
// socket, the cookie table of the traced handovers apart (table-B).
func BenchmarkEngineLedger(b *testing.B) {
	n := benchTimeWait()
	var out nopReporter
	base := heapNow()
	e := New(Options{Out: &out})
	s1, s2 := benchSnapshots(e, n)
	snaps := heapNow()
	table := snaps - base - uint64(cap(s1.TimeWait)+cap(s2.TimeWait))*16
	sec := uint64(1)
	join := func() {
		s := s1
		if sec%2 == 0 {
			s = s2
		}
		s.Time = sec * 1e9
		sec++
		e.Ledger(s)
	}
	for range 4 {
		join() // warm: the join's memory is sized
	}
	joined := heapNow()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	b.ResetTimer()
	for range b.N {
		join()
	}
	b.StopTimer()
	runtime.ReadMemStats(&ms1)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/sock")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(b.N), "allocs/join")
	b.ReportMetric(float64(joined-snaps)/float64(n), "B/sock")
	b.ReportMetric(float64(table), "table-B")
	if out.ends == 0 {
		b.Fatal("no TIME_WAIT ends reported")
	}
}

// BenchmarkEngineFinished files finished connections that hand over to
// TIME_WAIT, the cookie table full.
func BenchmarkEngineFinished(b *testing.B) {
	e := New(Options{Out: &nopReporter{}})
	c := &events.Conn{Owner: events.Owner{PID: 100, Comm: events.MakeComm("app")}, Role: events.RoleClient,
		Netns: 7, Saddr: cliAddr, Daddr: srvAddr, Dport: 80, End: events.EndGraceful, TimeWait: true,
		Spans: []events.Span{{State: events.Established, Dur: 1e6}}}
	file := func(i int) {
		c.Cookie, c.Sport = uint64(i), uint16(32768+i%28000)
		c.Start, c.Last = uint64(i)*40e3, uint64(i)*40e3+1e6 // 25k/s
		e.Finished(c)
	}
	i := 0
	for ; i < 2*maxCookies; i++ {
		file(i)
	}
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	b.ResetTimer()
	for range b.N {
		file(i)
		i++
	}
	b.StopTimer()
	runtime.ReadMemStats(&ms1)
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(b.N), "allocs/call")
}

// BenchmarkFilterRefresh rebuilds the filter of a full cookie table.
func BenchmarkFilterRefresh(b *testing.B) {
	var t cookieTable
	for c := range uint64(maxCookies) {
		t.put(c*3, cookieRec{})
	}
	t.refresh()
	b.ResetTimer()
	for range b.N {
		t.stale = maxCookies
		t.refresh()
	}
}
