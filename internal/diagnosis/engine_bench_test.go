package diagnosis

import (
	"cmp"
	"net/netip"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/ledger"
)

// cookieGen hands out socket cookies as the kernel does (include/linux/cookie.h):
// task context takes them from per-CPU batches of 4096, softirq from the
// shared counter, which the batches advance too.
type cookieGen struct {
	shared uint64
	local  [2]uint64
}

// task is a cookie taken in task context on cpu (a connect).
func (g *cookieGen) task(cpu int) uint64 {
	if g.local[cpu]&4095 == 0 {
		g.shared += 4096
		g.local[cpu] = g.shared - 4096
	}
	g.local[cpu]++
	return g.local[cpu]
}

// softirq is a cookie taken in softirq context (an accepted child socket).
func (g *cookieGen) softirq() uint64 {
	g.shared++
	return g.shared
}

// churnBench is a loopback connect/close churn toward one server at 20k
// connections/s, the client closing first: per connection a client that
// hands over to TIME_WAIT, its server side, and 10 events (Ticks).
type churnBench struct {
	e        *Engine
	gen      cookieGen
	cli, srv events.Conn
	now      uint64
	rnd      uint64
	pile     []uint64 // the latest client cookies: the TIME_WAIT pile
	n        int      // connections so far
	snap     *ledger.Snapshot
}

const churnStep = 50e3 // ns between connections: 20k/s

// newChurnBench returns a churn whose TIME_WAIT pile is the latest pile client sockets.
func newChurnBench(pile int) *churnBench {
	lo := netip.MustParseAddr("127.0.0.1")
	spans := []events.Span{{State: events.SynSent, Dur: 20e3}, {State: events.Established, Dur: 100e3},
		{State: events.FinWait1, Dur: 10e3}, {State: events.FinWait2, Dur: 10e3}}
	cb := &churnBench{e: New(Options{Out: &nopReporter{}}), now: 1e9, rnd: 88172645463325252, pile: make([]uint64, pile)}
	cb.cli = events.Conn{Owner: events.Owner{PID: 100, Comm: events.MakeComm("client")}, Role: events.RoleClient,
		Netns: 7, Saddr: lo, Daddr: lo, Dport: 8080, Spans: spans, Closer: events.CloserLocal,
		End: events.EndGraceful, TimeWait: true}
	cb.srv = events.Conn{Owner: events.Owner{PID: 200, Comm: events.MakeComm("server")}, Role: events.RoleServer,
		Netns: 7, Saddr: lo, Daddr: lo, Sport: 8080, Spans: spans[1:], Closer: events.CloserPeer, End: events.EndGraceful}
	cb.snap = &ledger.Snapshot{Netns: 7, Listeners: 1, Peers: []ledger.Peer{{Saddr: lo, Daddr: lo, Dport: 8080}},
		TimeWait: make([]ledger.TimeWait, 0, pile)}
	return cb
}

// conn runs one connection through the engine as the live pipeline does.
func (cb *churnBench) conn() {
	e := cb.e
	cb.rnd ^= cb.rnd << 13
	cb.rnd ^= cb.rnd >> 7
	cb.rnd ^= cb.rnd << 17
	start := cb.now
	cb.now += churnStep
	cb.cli.Cookie = cb.gen.task(int(cb.rnd>>60) & 1)
	cb.srv.Cookie = cb.gen.softirq()
	cb.cli.Sport = uint16(32768 + cb.n%28232)
	cb.srv.Dport = cb.cli.Sport
	cb.cli.Start, cb.cli.Last = start, start+140e3
	cb.srv.Start, cb.srv.Last = start+20e3, start+150e3
	for k := range uint64(5) {
		e.Tick(start + k*14e3)
	}
	e.Finished(&cb.cli)
	for k := range uint64(5) {
		e.Tick(start + 70e3 + k*16e3)
	}
	e.Finished(&cb.srv)
	cb.pile[cb.n%len(cb.pile)] = cb.cli.Cookie
	cb.n++
}

// ledger joins a snapshot of the pile.
func (cb *churnBench) ledger() { cb.e.Ledger(cb.build()) }

// build makes a snapshot of the pile, in the kernel's hash order: by a
// hash of the socket, the same from snapshot to snapshot.
func (cb *churnBench) build() *ledger.Snapshot {
	s := cb.snap
	s.Time = cb.now
	s.TimeWait = s.TimeWait[:0]
	n := min(cb.n, len(cb.pile))
	for i := range n {
		age := uint64(i) * churnStep // the newest first
		c := cb.pile[(cb.n-1-i+len(cb.pile))%len(cb.pile)]
		s.TimeWait = append(s.TimeWait, ledger.TimeWait{Cookie: c, Expires: uint32(60000 - age/1e6)})
	}
	slices.SortFunc(s.TimeWait, func(a, b ledger.TimeWait) int {
		return cmp.Compare(a.Cookie*0x9e3779b97f4a7c15, b.Cookie*0x9e3779b97f4a7c15)
	})
	s.Peers[0].TimeWait = n
	return s
}

// warm fills the cookie table and the pile.
func (cb *churnBench) warm(withLedger bool) {
	for range max(2*maxCookies, len(cb.pile)) {
		cb.conn()
		if withLedger && cb.n%20000 == 0 {
			cb.ledger()
		}
	}
}

// BenchmarkEngineChurn files the connections of a loopback churn (an op is
// one connection: client and server finished, 10 Ticks), the cookie table full.
func BenchmarkEngineChurn(b *testing.B) {
	cb := newChurnBench(benchTimeWait())
	cb.warm(false)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		cb.conn()
	}
}

// BenchmarkEngineChurnLedger is BenchmarkEngineChurn with, every second of
// the stream (20k connections), the join of a snapshot of the TIME_WAIT pile
// (the latest benchTimeWait() client sockets). An op is one connection.
func BenchmarkEngineChurnLedger(b *testing.B) {
	cb := newChurnBench(benchTimeWait())
	cb.snap.TimeWait = nil
	base := heapNow()
	cb.warm(true)
	cb.snap.TimeWait = nil
	engine := heapNow() - base // the engine's memory, the snapshot's apart
	cb.snap.TimeWait = make([]ledger.TimeWait, 0, len(cb.pile))
	var joins time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		cb.conn()
		if cb.n%20000 == 0 {
			b.StopTimer() // the snapshot's making is the ledger's
			s := cb.build()
			b.StartTimer()
			t0 := time.Now()
			cb.e.Ledger(s)
			joins += time.Since(t0)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(joins.Nanoseconds())/float64(b.N), "join-ns/conn")
	b.ReportMetric(float64(engine)/(1<<20), "engine-MiB")
	runtime.KeepAlive(cb)
}
