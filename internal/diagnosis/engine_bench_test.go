package diagnosis

import (
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"testing"

	"github.com/tcptrace/tcptrace/internal/events"
)

// benchTimeWait is the timewait table of the benchmarks: TCPTRACE_BENCH_TW or 200000.
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

// nopReporter counts what it is given.
type nopReporter struct{ steps int }

func (r *nopReporter) Warning(*Warning)       {}
func (r *nopReporter) Failed(*FailedNotice)   {}
func (r *nopReporter) TimeWait(*TimeWaitStep) { r.steps++ }

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
// connections/s, the client closing first, as the live pipeline hands it
// to the engine: per connection the client's handshake and CLOSE
// (Transition), its timewait socket's start (TimeWait), the client and its
// server side finished, the end (TwReuse) of the timewait socket started
// lag connections before, and 10 Ticks.
type churnBench struct {
	e        *Engine
	gen      cookieGen
	cli, srv events.Conn
	tw, end  events.Event
	up, down events.Transition
	now      uint64
	rnd      uint64
	pile     []uint64 // the cookies of the latest lag timewait sockets
	n        int      // connections so far
}

const churnStep = 50e3 // ns between connections: 20k/s

// newChurnBench returns a churn whose timewait sockets end lag connections after they start.
func newChurnBench(lag int) *churnBench {
	lo := netip.MustParseAddr("127.0.0.1")
	spans := []events.Span{{State: events.SynSent, Dur: 20e3}, {State: events.Established, Dur: 100e3},
		{State: events.FinWait1, Dur: 10e3}, {State: events.FinWait2, Dur: 10e3}}
	cb := &churnBench{e: New(Options{Out: &nopReporter{}}), now: 1e9, rnd: 88172645463325252, pile: make([]uint64, lag)}
	owner := events.Owner{PID: 100, Comm: events.MakeComm("client"), Source: events.OwnerSyscall}
	cb.cli = events.Conn{Owner: owner, Role: events.RoleClient, Netns: 7, Saddr: lo, Daddr: lo, Dport: 8080, Spans: spans,
		Closer: events.CloserLocal, End: events.EndGraceful, TimeWait: true, TwState: events.TimeWait}
	cb.srv = events.Conn{Owner: events.Owner{PID: 200, Comm: events.MakeComm("server")}, Role: events.RoleServer,
		Netns: 7, Saddr: lo, Daddr: lo, Sport: 8080, Spans: spans[1:], Closer: events.CloserPeer, End: events.EndGraceful}
	cb.tw = events.Event{Kind: events.KindTimeWait, TwOp: events.TwStart, Netns: 7, Saddr: lo, Daddr: lo, Dport: 8080,
		Old: events.FinWait2, New: events.TimeWait, PID: owner.PID, Comm: owner.Comm, Flags: events.FlagResolved}
	cb.end = events.Event{Kind: events.KindTimeWait, TwOp: events.TwReuse, Netns: 7, Saddr: lo, Daddr: lo, Dport: 8080,
		Old: events.TimeWait, New: events.Close}
	cb.up = events.Transition{Conn: &cb.cli, Old: events.SynSent, New: events.Established}
	cb.down = events.Transition{Conn: &cb.cli, Old: events.FinWait2, New: events.Close, TimeWait: true}
	return cb
}

// conn runs one connection through the engine.
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
	cb.cli.Start, cb.cli.Last = start, start+20e3
	cb.srv.Start, cb.srv.Last = start+20e3, start+150e3
	e.Transition(&cb.up)
	for k := range uint64(5) {
		e.Tick(start + k*14e3)
	}
	cb.cli.Last = start + 140e3
	cb.tw.Cookie, cb.tw.Sport, cb.tw.Time = cb.cli.Cookie, cb.cli.Sport, cb.cli.Last
	e.TimeWait(&cb.tw)
	e.Transition(&cb.down)
	e.Finished(&cb.cli)
	for k := range uint64(5) {
		e.Tick(start + 70e3 + k*16e3)
	}
	e.Finished(&cb.srv)
	i := cb.n % len(cb.pile)
	if old := cb.pile[i]; old != 0 {
		cb.end.Cookie, cb.end.Time = old, start+150e3
		e.TimeWait(&cb.end)
	}
	cb.pile[i] = cb.cli.Cookie
	cb.n++
}

// other files n timewait sockets that predate tracing toward another
// destination, ending in a minute: the table the churn runs beside.
func (cb *churnBench) other(n int) {
	ev := events.Event{Kind: events.KindTimeWait, TwOp: events.TwFound, Netns: 7, Saddr: cliAddr, Daddr: srvAddr,
		Dport: 80, New: events.TimeWait, Remain: 60000, Time: cb.now}
	for i := range n {
		ev.Cookie, ev.Sport = 1<<40+uint64(i), uint16(32768+i%28000)
		cb.e.TimeWait(&ev)
	}
}

// refresh restarts the timers of the other destination's sockets (a
// retransmitted FIN), so that they outlive the benchmark.
func (cb *churnBench) refresh(n int) {
	ev := events.Event{Kind: events.KindTimeWait, TwOp: events.TwMove, Old: events.TimeWait, New: events.TimeWait, Time: cb.now}
	for i := range n {
		ev.Cookie = 1<<40 + uint64(i)
		cb.e.TimeWait(&ev)
	}
}

// BenchmarkEngineChurn is the engine's cost per connection of a churn (an
// op: 2 Transitions, 2 TimeWait events, 2 Finished, 10 Ticks; ns/event is
// per TimeWait and Finished call, the rest included):
//   - empty: each timewait socket ends 64 connections after it started, the table holds 64;
//   - table: the same, beside benchTimeWait() other timewait sockets;
//   - pile: each ends benchTimeWait() connections (10 s) after it started, the table holds that many.
func BenchmarkEngineChurn(b *testing.B) {
	n := benchTimeWait()
	for _, bc := range []struct {
		name       string
		lag, other int
	}{{"empty", 64, 0}, {"table", 64, n}, {"pile", n, 0}} {
		b.Run(bc.name, func(b *testing.B) {
			base := heapNow()
			cb := newChurnBench(bc.lag)
			cb.other(bc.other)
			for range bc.lag + 1<<16 {
				cb.conn()
			}
			mem := heapNow() - base
			refreshed := cb.n
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				cb.conn()
				if bc.other > 0 && cb.n-refreshed >= 800000 { // 40 s of stream
					b.StopTimer()
					cb.refresh(bc.other)
					refreshed = cb.n
					b.StartTimer()
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(4*b.N), "ns/event")
			b.ReportMetric(float64(cb.e.tw.socks.len()), "table")
			b.ReportMetric(float64(mem)/float64(max(cb.e.tw.socks.len(), 1)), "B/sock")
			if cb.e.tw.lost != 0 || cb.e.tw.stray != 0 || cb.e.tw.socks.len() != bc.lag+bc.other {
				b.Fatalf("table %d (want %d), lost %d, stray %d", cb.e.tw.socks.len(), bc.lag+bc.other, cb.e.tw.lost, cb.e.tw.stray)
			}
			runtime.KeepAlive(cb)
		})
	}
}
