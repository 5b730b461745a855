package diagnosis

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
)

var (
	cliAddr = netip.MustParseAddr("10.0.0.1")
	srvAddr = netip.MustParseAddr("10.0.0.2")
	altAddr = netip.MustParseAddr("10.0.0.3")
	toward  = Dest{Netns: 7, Saddr: cliAddr, Daddr: srvAddr, Dport: 80}
	towardB = Dest{Netns: 7, Saddr: cliAddr, Daddr: altAddr, Dport: 443}
)

// stream feeds an engine as the command does: each record to the
// tracker, which hands the engine transitions and finished connections,
// then the timewait steps (their owner stamped) to the engine, and a Tick.
type stream struct {
	e   *Engine
	tr  *events.Tracker
	out *collect
}

func newStream(o Options) *stream {
	out := &collect{}
	o.Out = out
	e := New(o)
	return &stream{e: e, tr: events.NewTracker(e, nil, 0), out: out}
}

func (s *stream) feed(evs ...events.Event) {
	for i := range evs {
		ev := evs[i]
		s.tr.Observe(&ev)
		if ev.Kind == events.KindTimeWait {
			s.e.TimeWait(&ev)
		}
		s.e.Tick(ev.Time)
	}
}

// sock returns the table's socket of cookie c (zero if none).
func sock(e *Engine, c uint64) twSock {
	s, _ := e.tw.socks.get(c)
	return s
}

func proc(pid uint32) ProcKey { return ProcKey{pid, events.MakeComm("app")} }

// connect returns the events of a client connection of pid from sport
// toward srvAddr:80 that connects at at (ns).
func connect(cookie uint64, pid uint32, sport uint16, at uint64) []events.Event {
	base := events.Event{Cookie: cookie, Netns: 7, Family: 2, Saddr: cliAddr, Daddr: srvAddr, Sport: sport, Dport: 80}
	a, b := base, base
	a.Time, a.Old, a.New = at, events.Close, events.SynSent
	a.Flags, a.PID, a.TID, a.Comm = events.FlagTaskOwns, pid, pid, events.MakeComm("app")
	b.Time, b.Old, b.New = at+100e3, events.SynSent, events.Established
	return []events.Event{a, b}
}

// clientClose returns the events of such a connection that then closes
// first and hands over to a timewait socket in substate sub (TIME_WAIT, or
// FIN_WAIT2 when orphaned): the timewait socket starts before the CLOSE.
func clientClose(cookie uint64, pid uint32, sport uint16, at uint64, sub events.State) []events.Event {
	evs := connect(cookie, pid, sport, at)
	base := evs[1]
	base.Flags, base.PID, base.TID, base.Comm = 0, 0, 0, events.Comm{}
	step := func(dt uint64, old, new events.State) events.Event {
		ev := base
		ev.Time, ev.Old, ev.New = at+dt, old, new
		return ev
	}
	fin := step(1e6, events.Established, events.FinWait1)
	fin.Flags, fin.PID, fin.TID, fin.Comm = events.FlagTaskOwns, pid, pid, events.MakeComm("app")
	tw := step(1.2e6, events.Unknown, sub)
	tw.Kind, tw.TwOp = events.KindTimeWait, events.TwStart
	return append(evs, fin, step(1.1e6, events.FinWait1, events.FinWait2), tw, step(1.2e6, events.FinWait2, events.Close))
}

// twStep is a timewait step of cookie at at (ns).
func twStep(op events.TwOp, cookie, at uint64, old, new events.State) events.Event {
	return events.Event{Kind: events.KindTimeWait, TwOp: op, Cookie: cookie, Time: at, Old: old, New: new,
		Netns: 7, Family: 2, Saddr: cliAddr, Daddr: srvAddr, Dport: 80}
}

// found is a timewait socket toward altAddr:443 read at start (at ns),
// its timer at remain ms, with a hint when hint is not 0.
func found(cookie, at uint64, sub events.State, remain uint32, hint uint32) events.Event {
	ev := events.Event{Kind: events.KindTimeWait, TwOp: events.TwFound, Cookie: cookie, Time: at, New: sub, Remain: remain,
		Netns: 7, Family: 2, Saddr: cliAddr, Daddr: altAddr, Sport: uint16(50000 + cookie), Dport: 443}
	if hint != 0 {
		ev.Flags, ev.PID, ev.Comm = events.FlagHint, hint, events.MakeComm("app")
	}
	return ev
}

// rows returns a report's TIME_WAIT rows as a set.
func rows(r *Report) map[TimeWaitRow]bool {
	m := map[TimeWaitRow]bool{}
	for _, row := range r.TimeWait {
		m[row] = true
	}
	return m
}

// TestTimeWaitTable follows starts, a move, expiries, a kill, a reuse and
// sockets found at start through the counts per destination, owner and
// namespace, and the steps reported.
func TestTimeWaitTable(t *testing.T) {
	s := newStream(Options{})
	e := s.e
	s.feed(clientClose(1, 100, 40001, 1e9, events.TimeWait)...)
	s.feed(clientClose(2, 100, 40002, 1e9, events.FinWait2)...)
	s.feed(found(50, 1.5e9, events.TimeWait, 30000, 900), found(51, 1.5e9, events.FinWait2, 10000, 0))
	s.feed(clientClose(3, 200, 40003, 2e9, events.TimeWait)...)
	s.feed(clientClose(4, 200, 40004, 2e9, events.TimeWait)...)

	d, b := e.lookup(toward), e.lookup(towardB)
	if d == nil || b == nil || d.timeWait != 3 || d.finWait2 != 1 || b.timeWait != 1 || b.finWait2 != 1 {
		t.Fatalf("destinations %+v %+v", d, b)
	}
	v := e.netns[7]
	if v.tw != 4 || v.fw2 != 2 || v.found != 2 || e.tw.socks.len() != 6 {
		t.Fatalf("namespace tw %d fw2 %d found %d, table %d", v.tw, v.fw2, v.found, e.tw.socks.len())
	}
	if len(s.out.steps) != 0 {
		t.Fatalf("starts reported: %+v", s.out.steps)
	}
	r := e.Report(3e9, 3*time.Second, "")
	want := map[TimeWaitRow]bool{
		{Dest: toward, Owner: proc(100), Known: true, Count: 1, FinWait2: 1}: true,
		{Dest: toward, Owner: proc(200), Known: true, Count: 2}:              true,
		{Dest: towardB, Hint: proc(900), Count: 1}:                           true,
		{Dest: towardB, FinWait2: 1}:                                         true,
	}
	if got := rows(r); len(got) != len(want) {
		t.Errorf("rows %+v, want %+v", r.TimeWait, want)
	} else {
		for row := range want {
			if !got[row] {
				t.Errorf("missing row %+v in %+v", row, r.TimeWait)
			}
		}
	}
	if len(r.Namespaces) != 1 || r.Namespaces[0] != (NetnsRow{Netns: 7, Sysctls: DefaultSysctls, From: "default",
		TimeWait: 4, FinWait2: 2, Unknown: 2, Method: MethodTable}) {
		t.Errorf("namespaces %+v", r.Namespaces)
	}

	s.feed(twStep(events.TwMove, 2, 3e9, events.FinWait2, events.TimeWait),
		twStep(events.TwKill, 3, 4e9, events.TimeWait, events.Close),
		twStep(events.TwReuse, 4, 4e9, events.TimeWait, events.Close),
		twStep(events.TwExpire, 51, 11.5e9, events.FinWait2, events.Close),
		twStep(events.TwExpire, 50, 31.5e9, events.TimeWait, events.Close),
		twStep(events.TwExpire, 1, 61.1e9, events.TimeWait, events.Close),
		twStep(events.TwExpire, 999, 62e9, events.TimeWait, events.Close))
	if d.timeWait != 1 || d.finWait2 != 0 || b.timeWait != 0 || b.finWait2 != 0 || v.tw != 1 || v.fw2 != 0 || v.found != 0 {
		t.Errorf("after the ends: toward %d+%d, B %d+%d, namespace %d+%d found %d",
			d.timeWait, d.finWait2, b.timeWait, b.finWait2, v.tw, v.fw2, v.found)
	}
	wantSteps := []TimeWaitStep{
		{Time: 3e9, Op: events.TwMove, Old: events.FinWait2, New: events.TimeWait, Cookie: 2, Owner: proc(100), Known: true,
			Dest: toward, Sport: 40002, Held: 3e9 - 1.0012e9},
		{Time: 4e9, Op: events.TwKill, Old: events.TimeWait, New: events.Close, Cookie: 3, Owner: proc(200), Known: true,
			Dest: toward, Sport: 40003, Held: 4e9 - 2.0012e9},
		{Time: 4e9, Op: events.TwReuse, Old: events.TimeWait, New: events.Close, Cookie: 4, Owner: proc(200), Known: true,
			Dest: toward, Sport: 40004, Held: 4e9 - 2.0012e9},
		{Time: 11.5e9, Op: events.TwExpire, Old: events.FinWait2, New: events.Close, Cookie: 51, Dest: towardB, Sport: 50051,
			Held: 10e9},
		{Time: 31.5e9, Op: events.TwExpire, Old: events.TimeWait, New: events.Close, Cookie: 50, Dest: towardB, Sport: 50050,
			Held: 30e9},
		{Time: 61.1e9, Op: events.TwExpire, Old: events.TimeWait, New: events.Close, Cookie: 1, Owner: proc(100), Known: true,
			Dest: toward, Sport: 40001, Held: 61.1e9 - 1.0012e9},
	}
	if len(s.out.steps) != len(wantSteps) {
		t.Fatalf("steps %+v", s.out.steps)
	}
	for i, st := range s.out.steps {
		if st != wantSteps[i] {
			t.Errorf("step %d: %+v\nwant %+v", i, st, wantSteps[i])
		}
	}
	r = e.Report(62e9, 62*time.Second, "")
	if r.TWEnded != 5 || r.TWStray != 1 || r.TWLost != 0 {
		t.Errorf("ended %d stray %d lost %d, want 5, 1, 0", r.TWEnded, r.TWStray, r.TWLost)
	}
	if len(r.TimeWait) != 1 || r.TimeWait[0] != (TimeWaitRow{Dest: toward, Owner: proc(100), Known: true, Count: 1}) {
		t.Errorf("rows %+v", r.TimeWait)
	}
	if c := s.tr.Stats(); c.Tracked != 0 {
		t.Errorf("tracker holds %d connections", c.Tracked)
	}
}

// TestTimeWaitFound: a socket read at start that the table holds already,
// or whose end came first (the read raced with it), is not added; one
// whose end is older than the race is.
func TestTimeWaitFound(t *testing.T) {
	s := newStream(Options{})
	e := s.e
	s.feed(clientClose(1, 100, 40001, 1e9, events.TimeWait)...)
	f := found(1, 1.5e9, events.TimeWait, 59000, 900)
	f.Saddr, f.Daddr, f.Sport, f.Dport = cliAddr, srvAddr, 40001, 80
	s.feed(f)
	if x := sock(e, 1); e.tw.socks.len() != 1 || x.found || e.rowOf(&x).key != (twKey{owner: proc(100), known: true}) {
		t.Errorf("found over a start: %+v %+v", x, e.rowOf(&x).key)
	}
	s.feed(twStep(events.TwExpire, 60, 2e9, events.TimeWait, events.Close), found(60, 1.8e9, events.TimeWait, 1000, 0))
	s.feed(twStep(events.TwExpire, 61, 2e9, events.TimeWait, events.Close), found(61, 63e9, events.TimeWait, 1000, 0))
	if _, ok := e.tw.socks.get(60); ok || e.tw.stray != 2 {
		t.Errorf("found after its end filed: stray %d", e.tw.stray)
	}
	if x, ok := e.tw.socks.get(61); !ok || !x.found || e.netns[7].found != 1 {
		t.Errorf("found long after an end of the same cookie not filed")
	}
	for c := uint64(1000); c < 1000+recentEnds; c++ {
		e.tw.ended.put(c, 3e9)
	}
	if len(e.tw.ended.at) != recentEnds || e.tw.ended.has(60, 2e9) {
		t.Errorf("ends remembered %d, bound %d", len(e.tw.ended.at), recentEnds)
	}
}

// TestTimeWaitPrune: a socket whose end never came is dropped ten seconds
// after its timer ran out, not before; a restarted timer counts from the
// restart; an orphaned FIN_WAIT2 lasts the namespace's tcp_fin_timeout.
func TestTimeWaitPrune(t *testing.T) {
	s := newStream(Options{})
	e := s.e
	e.SetNetnsSysctls(7, map[string]string{"tcp_fin_timeout": "30"})
	s.feed(clientClose(1, 100, 40001, 1e9, events.TimeWait)...)
	s.feed(clientClose(2, 100, 40002, 1e9, events.FinWait2)...)
	s.feed(clientClose(3, 100, 40003, 1e9, events.TimeWait)...)
	s.feed(twStep(events.TwMove, 3, 30e9, events.TimeWait, events.TimeWait))
	if x, y := sock(e, 2), sock(e, 3); x.due != 31 || y.due != 90 {
		t.Errorf("orphan due at %d s, want 31; restarted at %d s, want 90", x.due, y.due)
	}
	e.Tick(41.9e9)
	if e.tw.socks.len() != 3 || e.tw.lost != 0 {
		t.Fatalf("pruned early: %d left, %d lost", e.tw.socks.len(), e.tw.lost)
	}
	e.Tick(42.2e9)
	if _, ok := e.tw.socks.get(2); ok || e.tw.lost != 1 || e.lookup(toward).finWait2 != 0 {
		t.Fatalf("orphan not pruned 10 s after its timer")
	}
	in, _ := e.forecast(e.lookup(toward), e.sysctls(7), 65e9)
	if in.Held != 2 {
		t.Errorf("held %d past the timer, before the prune: want 2", in.Held)
	}
	e.Tick(72.1e9)
	r := e.Report(72.1e9, time.Minute, "")
	if _, ok := e.tw.socks.get(3); !ok || e.tw.socks.len() != 1 || r.TWLost != 2 || r.TWEnded != 0 {
		t.Errorf("table %d, lost %d ended %d: want the restarted one left", e.tw.socks.len(), r.TWLost, r.TWEnded)
	}
	if d := e.lookup(toward); d.timeWait != 1 || d.exp.overdue != 0 || e.netns[7].tw != 1 {
		t.Errorf("counts after the prune: %d held, %d overdue", d.timeWait, d.exp.overdue)
	}
	s.feed(twStep(events.TwExpire, 1, 73e9, events.TimeWait, events.Close))
	if e.tw.stray != 1 {
		t.Errorf("the end of a pruned socket: stray %d", e.tw.stray)
	}
}

// TestTimeWaitSettle: a timewait socket is filed by its local port at its
// start, then under its connection's role and final owner when it finishes.
func TestTimeWaitSettle(t *testing.T) {
	s := newStream(Options{})
	e := s.e
	// An accepted connection on port 40000 (in the ephemeral range) that closes first.
	base := events.Event{Cookie: 10, Netns: 7, Family: 2, Saddr: srvAddr, Daddr: cliAddr, Sport: 40000, Dport: 5555}
	step := func(at uint64, old, new events.State) events.Event {
		ev := base
		ev.Time, ev.Old, ev.New = at, old, new
		return ev
	}
	fin := step(2e9, events.Established, events.FinWait1)
	fin.Flags, fin.PID, fin.TID, fin.Comm = events.FlagTaskOwns, 300, 300, events.MakeComm("app")
	tw := step(2.2e9, events.Unknown, events.TimeWait)
	tw.Kind, tw.TwOp = events.KindTimeWait, events.TwStart
	s.feed(step(1e9, events.Listen, events.SynRecv), step(1.1e9, events.SynRecv, events.Established), fin,
		step(2.1e9, events.FinWait1, events.FinWait2), tw)
	// The tracker marks the start of an accepted connection's timewait
	// socket FlagServer: it is filed on the server side at once, though
	// its port is in the ephemeral range.
	asClient := Dest{Netns: 7, Saddr: srvAddr, Daddr: cliAddr, Dport: 5555}
	server := Dest{Netns: 7, Saddr: srvAddr, Lport: 40000}
	if d := e.lookup(server); d == nil || d.timeWait != 1 || e.lookup(asClient) != nil {
		t.Fatalf("at its start, not on the server side: %+v", d)
	}
	s.feed(step(2.2e9, events.FinWait2, events.Close))
	d := e.lookup(server)
	if d == nil || d.timeWait != 1 || func() ProcKey { x := sock(e, 10); return e.rowOf(&x).key.owner }() != proc(300) {
		t.Fatalf("not settled on the server side: %+v", d)
	}
	// A start without its owner; the connection's owner came later.
	ev := twStep(events.TwStart, 11, 3e9, events.Unknown, events.TimeWait)
	ev.Sport = 40011
	e.TimeWait(&ev)
	e.Finished(&events.Conn{Cookie: 11, Owner: events.Owner{PID: 400, Comm: events.MakeComm("app"), Source: events.OwnerProc},
		Role: events.RoleClient, Netns: 7, Saddr: cliAddr, Daddr: srvAddr, Sport: 40011, Dport: 80, Start: 2e9, Last: 3e9,
		End: events.EndGraceful, TimeWait: true, TwState: events.TimeWait})
	r := e.Report(4e9, time.Second, "")
	if !rows(r)[TimeWaitRow{Dest: toward, Owner: proc(400), Known: true, Count: 1}] || len(r.TimeWait) != 2 {
		t.Errorf("rows %+v", r.TimeWait)
	}
}

// TestTimeWaitForecast: with timewait events the forecast counts the
// table's sockets, their timers to the second, the namespace's total and
// the open connections.
func TestTimeWaitForecast(t *testing.T) {
	s := newStream(Options{})
	e := s.e
	e.SetNetnsSysctls(7, map[string]string{"ip_local_port_range": "40000 40063", "tcp_tw_reuse": "0"})
	exact := map[uint64]uint64{} // cookie → ns its timer runs out
	for i := range uint64(20) {
		at := 1e9 + i*1.3e9
		s.feed(clientClose(i+1, 100, uint16(40000+i), at, events.TimeWait)...)
		exact[i+1] = at + 1.2e6 + uint64(TimeWaitLen)
	}
	for i := range uint64(3) {
		s.feed(connect(100+i, 100, uint16(40030+i), 30e9)...)
	}
	for i := range uint64(5) {
		s.feed(found(200+i, 30e9, events.TimeWait, 20000, 0))
	}
	now := uint64(31.5e9)
	d := e.lookup(toward)
	in, f := e.forecast(d, e.sysctls(7), now)
	if in.Held != 20 || in.NetnsTW != 25 || in.InUse != 3 || f.Usable != 61 || f.Blocking != 20 || f.Left != 41 || f.Reuse {
		t.Errorf("inputs %+v\nforecast %+v", in, f)
	}
	var tm timers
	tm.runs = d.exp.timers(now, nil)
	var got []time.Duration
	for _, r := range tm.runs {
		for range r.n {
			got = append(got, r.v)
		}
	}
	var want []time.Duration
	for _, ns := range exact {
		want = append(want, time.Duration(ns-now))
	}
	slices.Sort(want)
	if len(got) != len(want) {
		t.Fatalf("timers %v, want %v", got, want)
	}
	for i := range got {
		if got[i] < want[i] || got[i] >= want[i]+time.Second {
			t.Errorf("timer %d: %v, exact %v", i, got[i], want[i])
		}
	}
	// The connections close: no more in use.
	for i := range uint64(3) {
		ev := events.Event{Cookie: 100 + i, Time: 32e9, Netns: 7, Saddr: cliAddr, Daddr: srvAddr, Sport: uint16(40030 + i),
			Dport: 80, Old: events.Established, New: events.Close, Err: 104}
		s.feed(ev)
	}
	if d.open != 0 {
		t.Errorf("%d open after they closed", d.open)
	}
}

// TestHandovers: without timewait events (an old capture) TIME_WAIT is
// inferred from traced handovers, each held TimeWaitLen.
func TestHandovers(t *testing.T) {
	e := New(Options{})
	for i := range uint64(10) {
		e.Finished(&events.Conn{Cookie: i + 1, Owner: events.Owner{PID: 100, Comm: events.MakeComm("app"), Source: events.OwnerSyscall},
			Role: events.RoleClient, Netns: 7, Saddr: cliAddr, Daddr: srvAddr, Sport: uint16(40000 + i), Dport: 80,
			Start: 1e9, Last: 2e9 + i*1e9, End: events.EndGraceful, TimeWait: true})
	}
	r := e.Report(12e9, 10*time.Second, "note")
	if len(r.Namespaces) != 1 || r.Namespaces[0].Method != MethodHandovers || r.Namespaces[0].TimeWait != -1 || r.LedgerNote != "note" {
		t.Errorf("namespaces %+v", r.Namespaces)
	}
	if len(r.TimeWait) != 1 || r.TimeWait[0] != (TimeWaitRow{Dest: toward, Owner: proc(100), Known: true, Count: 10}) {
		t.Errorf("rows %+v", r.TimeWait)
	}
	if len(r.Forecasts) != 1 || r.Forecasts[0].Inputs.Held != 10 || r.Forecasts[0].Forecast.Blocking != 10 {
		t.Errorf("forecasts %+v", r.Forecasts)
	}
	if e.TimeWaitEvents() || !New(Options{TimeWaitEvents: true}).TimeWaitEvents() {
		t.Error("TimeWaitEvents")
	}
	e.MarkTableRead(8)
	e.TimeWait(&events.Event{Kind: events.KindTimeWait, TwOp: events.TwKill, Cookie: 77, Time: 13e9})
	r = e.Report(13e9, 10*time.Second, "")
	if len(r.Namespaces) != 2 || r.Namespaces[0].Method != MethodEvents || r.Namespaces[1].Method != MethodTable ||
		r.Namespaces[0].TimeWait != 0 || len(r.TimeWait) != 0 {
		t.Errorf("after a timewait event: %+v, rows %+v", r.Namespaces, r.TimeWait)
	}
}

// TestEvictKeepsHolders: at MaxDests, the destinations dropped (a batch of
// the least recently active) are idle ones, not one that holds timewait
// sockets.
func TestEvictKeepsHolders(t *testing.T) {
	e := New(Options{})
	ev := twStep(events.TwStart, 1, 1e9, events.Unknown, events.TimeWait)
	ev.Sport = 40001
	e.TimeWait(&ev)
	for i := range MaxDests - 1 {
		e.dest(Dest{Netns: 7, Saddr: cliAddr, Daddr: altAddr, Dport: uint16(i + 1)}, 2e9+uint64(i))
	}
	e.dest(Dest{Netns: 7, Saddr: cliAddr, Daddr: altAddr, Dport: 9999}, 5e9)
	if len(e.dests) != MaxDests-evictBatch+1 || e.lookup(toward) == nil || e.lookup(Dest{Netns: 7, Saddr: cliAddr, Daddr: altAddr, Dport: 1}) != nil {
		t.Errorf("%d destinations; the holder kept: %v", len(e.dests), e.lookup(toward) != nil)
	}
	e.TimeWait(&events.Event{Kind: events.KindTimeWait, TwOp: events.TwExpire, Cookie: 1, Time: 61e9})
	if e.netns[7].tw != 0 || e.lookup(toward).timeWait != 0 {
		t.Error("counts after the end")
	}
}

// TestDueRing checks the per-second timers against a plain count, over
// random adds, removals and advances.
func TestDueRing(t *testing.T) {
	next := xorshift()
	var x dueRing
	x.cur = 1000
	type sock struct{ due int64 }
	var live []sock
	now := int64(1000)
	for range 20000 {
		switch next(4) {
		case 0, 1:
			due := max(now+int64(next(maxAhead+1))-int64(next(20)), 0)
			x.add(due, 1)
			live = append(live, sock{due})
		case 2:
			if len(live) > 0 {
				i := next(uint64(len(live)))
				x.add(live[i].due, -1)
				live[i] = live[len(live)-1]
				live = live[:len(live)-1]
			}
		case 3:
			now += int64(next(3))
			runs := x.timers(uint64(now)*1e9+uint64(next(1e9)), nil)
			var over, total int
			for _, s := range live {
				if s.due < now {
					over++
				}
			}
			for _, r := range runs {
				total += r.n
			}
			if total != len(live) || x.overdue != over {
				t.Fatalf("at %d: %d timers, %d overdue; want %d, %d", now, total, x.overdue, len(live), over)
			}
		}
	}
}

// TestSettleOrphans: orphans that moved or ended since are not asked for;
// one a read no longer finds in FIN_WAIT2 is returned, once fed its move
// it is no orphan any more; one younger than the read is left alone.
func TestSettleOrphans(t *testing.T) {
	e := New(Options{})
	for c := uint64(1); c <= 4; c++ {
		ev := twStep(events.TwStart, c, c*1e9, events.Unknown, events.FinWait2)
		ev.Sport = uint16(40000 + c)
		e.TimeWait(&ev)
	}
	move := twStep(events.TwMove, 1, 5e9, events.FinWait2, events.TimeWait)
	end := twStep(events.TwExpire, 2, 5e9, events.FinWait2, events.Close)
	e.TimeWait(&move)
	e.TimeWait(&end)
	if ns := e.OrphanNamespaces(3.5e9); len(ns) != 1 || ns[0] != 7 {
		t.Fatalf("namespaces with orphans older than 3.5 s: %v, want [7]", ns)
	}
	moved := e.SettleOrphans(7, map[uint64]bool{}, 3.5e9)
	if len(moved) != 1 || moved[0] != 3 {
		t.Fatalf("settled %v, want [3] (4 is younger than the read)", moved)
	}
	mv := twStep(events.TwMove, 3, 6e9, events.FinWait2, events.TimeWait)
	e.TimeWait(&mv)
	if s := sock(e, 3); s.sub != events.TimeWait {
		t.Errorf("socket 3 in %v after its move", s.sub)
	}
	if ns := e.OrphanNamespaces(3.5e9); len(ns) != 0 {
		t.Errorf("orphans older than 3.5 s left in %v", ns)
	}
	if moved := e.SettleOrphans(7, map[uint64]bool{4: true}, 7e9); len(moved) != 0 {
		t.Errorf("settled %v while the read still holds 4 in FIN_WAIT2", moved)
	}
}

// TestFoundSideFromRead: sockets read at start keep the side the read gave
// them, even when their local ports lie outside the ephemeral range (a
// pile of clients bound to chosen ports): one client-side destination, not
// one server-side destination per local port.
func TestFoundSideFromRead(t *testing.T) {
	s := newStream(Options{})
	for c := uint64(1); c <= 100; c++ {
		f := found(c, 1e9, events.TimeWait, 59000, 0)
		f.Sport = uint16(10000 + c) // below the default range, 32768-60999
		s.feed(f)
	}
	if len(s.e.dests) != 1 {
		t.Errorf("100 client-side sockets found toward one destination filed under %d destinations", len(s.e.dests))
	}
	srv := found(200, 1e9, events.TimeWait, 59000, 0)
	srv.Flags |= events.FlagServer
	s.feed(srv)
	if _, ok := s.e.dests[Dest{Netns: 7, Saddr: cliAddr, Lport: srv.Sport}]; !ok {
		t.Errorf("a found server-side socket not filed under its local port")
	}
}
