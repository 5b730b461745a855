package diagnosis

import (
	"syscall"
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
)

// Defaults of Options.
const (
	DefaultThreshold = 60 * time.Second
	DefaultChurnRate = 50.0 // client connects per second toward one destination
	DefaultShortLife = 500 * time.Millisecond
	churnMin         = 2 * time.Second // of history before churn is flagged
	MaxDests         = 4096            // destinations tracked; the least recently active is dropped
	evalEvery        = 250 * time.Millisecond
)

// Reporter receives what the engine finds, as it finds it. What it is
// given is valid only during the call.
type Reporter interface {
	Warning(w *Warning)
	Failed(f *FailedNotice)
	TimeWaitEnd(e *TimeWaitEnd)
}

// Warning kinds.
const (
	KindExhaustion = "port_exhaustion"
	KindChurn      = "churn"
)

// Warning is a forecast of port exhaustion or a churn pattern toward a destination.
type Warning struct {
	Kind     string
	Time     uint64 // CLOCK_MONOTONIC ns
	Dest     Dest
	Owner    ProcKey // the process making most of the TIME_WAIT (or connects)
	Rate     float64 // new TIME_WAIT per second (churn: connects per second)
	Held     int     // TIME_WAIT toward the destination now
	Failed   uint64  // connects toward it that failed so far
	Lifetime time.Duration
	Forecast Forecast
	Sysctls  Sysctls
}

// FailedNotice says connects failed toward a destination since the last notice.
type FailedNotice struct {
	Time  uint64
	Owner ProcKey
	Dest  Dest
	Err   uint16
	New   uint64 // since the previous notice
	Total uint64
}

// TimeWaitEnd is the kernel dropping a traced TIME_WAIT socket.
type TimeWaitEnd struct {
	Time   uint64 // when its timer ran out (or when it was seen gone)
	Cookie uint64
	Owner  ProcKey
	Dest   Dest
	Sport  uint16
	Held   time.Duration // since the handover
}

// Options configure an Engine.
type Options struct {
	Threshold time.Duration         // warn when exhaustion is nearer; DefaultThreshold if 0
	ChurnRate float64               // connects/s that, with short lives, is churn; DefaultChurnRate if 0
	ShortLife time.Duration         // DefaultShortLife if 0
	Sysctls   func(uint32) *Sysctls // a namespace's settings when no live snapshot has them (replay)
	OnNetns   func(uint32)          // called once per namespace first seen (live: watch it)
	Out       Reporter              // may be nil
}

// Engine is a Sink that joins the stream with the kernel's TIME_WAIT table
// and forecasts port exhaustion. It is not safe for concurrent use.
type Engine struct {
	o       Options
	dests   map[Dest]*destState
	netns   map[uint32]*nsView
	cookies cookieTable
	failed  failedTable
	stats   *Stats
	lastRun uint64
	warns   []Warning
	radix   []uint32       // reused by sortTimers
	runs    []run          // reused by forecast
	gen     uint32         // snapshots joined
	peers   []peerJoin     // reused by Ledger
	owned   map[uint64]int // reused by Ledger: peer<<32|owner → traced TIME_WAIT past a peer's first owner
	twEnd   TimeWaitEnd    // reused by ended
	lastD   *destState     // the latest destination looked up: churn repeats it
	lastNs  *nsView        // the latest namespace looked up
	plain   bool           // tests: join looking every socket up
}

// New returns an engine.
func New(o Options) *Engine {
	if o.Threshold <= 0 {
		o.Threshold = DefaultThreshold
	}
	if o.ChurnRate <= 0 {
		o.ChurnRate = DefaultChurnRate
	}
	if o.ShortLife <= 0 {
		o.ShortLife = DefaultShortLife
	}
	return &Engine{o: o, dests: map[Dest]*destState{}, netns: map[uint32]*nsView{},
		cookies: newCookieTable(), failed: failedTable{m: map[failKey]*failCount{}}, stats: newStats(),
		owned: map[uint64]int{}}
}

// Transition counts a step (time in state is taken from finished connections).
func (e *Engine) Transition(*events.Transition) {}

// Loss ignores loss notices.
func (e *Engine) Loss(*events.Event) {}

// Finished files a finished connection. A connect that never got a local
// port and carries no socket error failed in inet_hash_connect, which only
// fails with EADDRNOTAVAIL: the error is set on c for the views after it.
func (e *Engine) Finished(c *events.Conn) {
	if c == nil {
		return
	}
	if c.End == events.EndFailed && c.Err == 0 && c.Sport == 0 && c.Role == events.RoleClient {
		c.Err = uint16(syscall.EADDRNOTAVAIL)
	}
	e.stats.finished(c)
	e.ns(c.Netns)
	owner := ProcKey{c.Owner.PID, c.Owner.Comm}
	if c.End == events.EndFailed || c.End == events.EndRefused || c.End == events.EndTimeout {
		d := e.dest(Dest{Netns: c.Netns, Saddr: c.Saddr, Daddr: c.Daddr, Dport: c.Dport}, c.Last)
		d.failed++
		e.failed.add(owner, d.dest, c.Err, c.Last)
		return
	}
	client := c.Role == events.RoleClient || (c.Role == events.RoleUnknown && e.sysctls(c.Netns).InRange(c.Sport))
	key := Dest{Netns: c.Netns, Saddr: c.Saddr, Daddr: c.Daddr, Dport: c.Dport}
	if !client {
		key = Dest{Netns: c.Netns, Saddr: c.Saddr, Lport: c.Sport}
	}
	if !client && !c.TimeWait {
		return
	}
	d := e.dest(key, c.Last)
	sec := int64(c.Last / 1e9)
	conn := client && c.Role == events.RoleClient && !c.Partial
	if conn {
		d.conns.add(sec, 1)
		if time.Duration(c.Last-c.Start) < e.o.ShortLife {
			d.short.add(sec, 1)
		}
		d.lastOwner = owner
	}
	if c.TimeWait {
		d.tw.add(sec, 1)
		d.addOwner(owner)
		if c.Last > d.ledger.at {
			d.ledger.traced++ // not in the latest snapshot yet
		}
		e.cookies.put(c.Cookie, cookieRec{owner: owner, dest: key, sport: c.Sport, at: c.Last})
	}
	if conn {
		e.churn(d, c.Last)
	}
}

// dest returns the state of a destination, creating it (and dropping the
// least recently active one when MaxDests are tracked).
func (e *Engine) dest(k Dest, now uint64) *destState {
	d := e.lastD
	if d == nil || !d.dest.same(&k) {
		d = e.dests[k]
		if d == nil {
			if len(e.dests) >= MaxDests {
				var old *destState
				for _, x := range e.dests {
					if old == nil || x.last < old.last {
						old = x
					}
				}
				delete(e.dests, old.dest)
			}
			d = &destState{dest: k, first: now}
			e.dests[k] = d
		}
		e.lastD = d
	}
	d.last = max(d.last, now)
	return d
}

// Tick evaluates the forecasts at time now (CLOCK_MONOTONIC ns), at most
// every 250 ms, and reports warnings and failed-connect notices.
func (e *Engine) Tick(now uint64) {
	if now >= e.lastRun+uint64(evalEvery) {
		e.tick(now) // the common case, nothing due, stays inlined
	}
}

// tick evaluates the forecasts and reports the failed-connect notices.
func (e *Engine) tick(now uint64) {
	e.lastRun = now
	for _, d := range e.dests {
		e.evaluate(d, now)
	}
	if e.o.Out != nil {
		e.failed.notices(now, e.o.Out.Failed)
	}
}

// evaluate forecasts one destination and warns once when it crosses the threshold.
func (e *Engine) evaluate(d *destState, now uint64) {
	if d.dest.Lport != 0 {
		return // server side: holds the service port, not ephemeral ones
	}
	s := e.sysctls(d.dest.Netns)
	in, f := e.forecast(d, s, now)
	d.lastETA, d.hasFcast = f, in.Held > 0 || in.Rate > 0
	owner, _ := d.owner()
	if !f.Never && f.ETA < e.o.Threshold && !d.warned && in.Rate > 0 {
		d.warned = true
		e.warn(Warning{Kind: KindExhaustion, Time: now, Dest: d.dest, Owner: owner, Rate: in.Rate,
			Held: in.Held, Failed: d.failed, Forecast: f, Sysctls: s})
	} else if f.Never && in.Held == 0 {
		d.warned = false
	}
}

// churn flags, once, a destination connected to at ChurnRate or more for at
// least churnMin, nearly all connections shorter than ShortLife. It runs on
// finished connections, so a replay flags what the live run flagged.
func (e *Engine) churn(d *destState, now uint64) {
	if d.churned || d.dest.Lport != 0 || now < d.first+uint64(churnMin) {
		return
	}
	rate := d.rate(&d.conns, now)
	if rate < e.o.ChurnRate {
		return
	}
	total, short := d.conns.sum(int64(now/1e9), rateWindow), d.short.sum(int64(now/1e9), rateWindow)
	if total > 0 && short*10 >= total*9 {
		d.churned = true
		owner, _ := d.owner()
		if owner == (ProcKey{}) {
			owner = d.lastOwner
		}
		s := e.sysctls(d.dest.Netns)
		_, f := e.forecast(d, s, now)
		e.warn(Warning{Kind: KindChurn, Time: now, Dest: d.dest, Owner: owner, Rate: rate,
			Held: f.Blocking, Failed: d.failed, Lifetime: e.o.ShortLife, Forecast: f, Sysctls: s})
	}
}

// warn keeps and reports a warning.
func (e *Engine) warn(w Warning) {
	if len(e.warns) < 1024 {
		e.warns = append(e.warns, w)
	}
	if e.o.Out != nil {
		e.o.Out.Warning(&w)
	}
}

// Warnings returns the warnings issued so far (the first 1024).
func (e *Engine) Warnings() []Warning { return e.warns }

// sysctls returns a namespace's settings: the live ones read with its
// latest snapshot, else Options.Sysctls', else the kernel defaults.
func (e *Engine) sysctls(netns uint32) Sysctls {
	if v := e.netns[netns]; v != nil && v.live {
		return v.sysctls
	}
	if e.o.Sysctls != nil {
		if s := e.o.Sysctls(netns); s != nil {
			return *s
		}
	}
	return DefaultSysctls
}

// ns notes a namespace, telling OnNetns the first time.
func (e *Engine) ns(netns uint32) *nsView {
	if v := e.lastNs; v != nil && v.netns == netns {
		return v
	}
	v := e.netns[netns]
	if v == nil {
		if len(e.netns) >= MaxDests {
			return &nsView{}
		}
		v = &nsView{netns: netns}
		e.netns[netns] = v
		if e.o.OnNetns != nil {
			e.o.OnNetns(netns)
		}
	}
	e.lastNs = v
	return v
}

// SetNetnsHook sets Options.OnNetns after construction (live: watch the namespace).
func (e *Engine) SetNetnsHook(fn func(uint32)) { e.o.OnNetns = fn }

// SetSysctls sets Options.Sysctls after construction (replay: the recorded ones).
func (e *Engine) SetSysctls(fn func(uint32) *Sysctls) { e.o.Sysctls = fn }
