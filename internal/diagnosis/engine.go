package diagnosis

import (
	"cmp"
	"slices"
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
	TimeWait(s *TimeWaitStep)
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
	Held     int     // timewait sockets (TIME_WAIT, orphaned FIN_WAIT2) toward the destination now
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

// TimeWaitStep is a step of a timewait socket after its connection's
// CLOSE: an orphaned FIN_WAIT2 got the peer's FIN and is TIME_WAIT now
// (Op TwMove), or the kernel dropped it (TwExpire, TwKill, TwReuse).
type TimeWaitStep struct {
	Time     uint64 // CLOCK_MONOTONIC ns of the step
	Op       events.TwOp
	Old, New events.State // substate before and after (New is CLOSE for an end)
	Cookie   uint64
	Owner    ProcKey
	Known    bool // the owner was traced (false: the socket predates tracing)
	Dest     Dest
	Sport    uint16
	Held     time.Duration // since the timewait socket took over (found: since it was read)
}

// Options configure an Engine.
type Options struct {
	Threshold time.Duration         // warn when exhaustion is nearer; DefaultThreshold if 0
	ChurnRate float64               // connects/s that, with short lives, is churn; DefaultChurnRate if 0
	ShortLife time.Duration         // DefaultShortLife if 0
	Sysctls   func(uint32) *Sysctls // a namespace's settings when none were set live (replay)
	OnNetns   func(uint32)          // called once per namespace first seen (live: watch it)
	Out       Reporter              // may be nil
	// TimeWaitEvents says the stream reports timewait sockets
	// (KindTimeWait): the forecast counts them from the table from the
	// start. The first KindTimeWait event turns it on too.
	TimeWaitEvents bool
}

// Engine is a Sink that follows the live timewait sockets (TimeWait),
// forecasts port exhaustion, flags churn and counts failed connects. It
// is not safe for concurrent use.
type Engine struct {
	o        Options
	dests    map[Dest]*destState
	netns    map[uint32]*nsView
	failed   failedTable
	stats    *Stats
	lastRun  uint64
	warns    []Warning
	runs     []run      // reused by forecast
	lastD    *destState // the latest destination looked up: churn repeats it
	lastNs   *nsView    // the latest namespace looked up
	twEvents bool       // timewait sockets come as events: the table is the truth
	tw       twTable
	tl       timelines
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
		failed: failedTable{m: map[failKey]*failCount{}}, stats: newStats(), twEvents: o.TimeWaitEvents,
		tw: twTable{}}
}

// Transition counts the open client connections per destination (the
// forecast's InUse): a client connection's handshake completing adds one,
// its CLOSE after that removes it. Time in state is taken from finished
// connections.
func (e *Engine) Transition(t *events.Transition) {
	c := t.Conn
	if c == nil || c.Role != events.RoleClient {
		return
	}
	switch {
	case t.New == events.Established && (t.Old == events.SynSent || t.Old == events.SynRecv):
		d := e.dest(clientDest(c), c.Last)
		d.open++
		d.connects++
	case t.New == events.Close && t.Old != events.SynSent && t.Old != events.SynRecv && t.Old != events.Close:
		if d := e.lookup(clientDest(c)); d != nil && d.open > 0 {
			d.open--
		}
	}
}

// clientDest is where a client connection goes.
func clientDest(c *events.Conn) Dest {
	return Dest{Netns: c.Netns, Saddr: c.Saddr, Daddr: c.Daddr, Dport: c.Dport}
}

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
		d.connects++
		e.failed.add(owner, d.dest, c.Err, c.Last)
		return
	}
	client := c.Role == events.RoleClient || (c.Role == events.RoleUnknown && e.sysctls(c.Netns).InRange(c.Sport))
	key := clientDest(c)
	if !client {
		key = Dest{Netns: c.Netns, Saddr: c.Saddr, Lport: c.Sport}
	}
	holds := c.TimeWait || c.TwState == events.FinWait2 // a timewait socket took it over
	if !client && !holds {
		return
	}
	d := e.dest(key, c.Last)
	if c.TwState != events.Unknown {
		e.settle(c, d, owner)
	}
	sec := int64(c.Last / 1e9)
	conn := client && c.Role == events.RoleClient && !c.Partial
	if conn {
		d.conns.add(sec, 1)
		if time.Duration(c.Last-c.Start) < e.o.ShortLife {
			d.short.add(sec, 1)
		}
		d.lastOwner = owner
	}
	if holds {
		d.tw.add(sec, 1)
		d.addOwner(owner)
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
				e.evict()
			}
			d = &destState{dest: k, first: now, ns: e.ns(k.Netns)}
			d.exp.cur = int64(now / 1e9)
			e.dests[k] = d
		}
		e.lastD = d
	}
	d.last = max(d.last, now)
	return d
}

// lookup returns the state of a destination, nil if none.
func (e *Engine) lookup(k Dest) *destState {
	if d := e.lastD; d != nil && d.dest.same(&k) {
		return d
	}
	return e.dests[k]
}

// evictBatch is how many destinations a full table drops at once, so that
// its scan is paid once per evictBatch new destinations, not for each.
const evictBatch = MaxDests / 16

// evict drops the evictBatch least recently active destinations, those
// that hold no timewait socket and no open connection first. A destination
// dropped with timewait sockets keeps their counts right: its sockets
// still point to it (the report no longer shows it).
func (e *Engine) evict() {
	all := make([]*destState, 0, len(e.dests))
	for _, x := range e.dests {
		all = append(all, x)
	}
	busy := func(x *destState) bool { return x.timeWait+x.finWait2 > 0 || x.open > 0 }
	slices.SortFunc(all, func(a, b *destState) int {
		if ba, bb := busy(a), busy(b); ba != bb {
			if ba {
				return 1
			}
			return -1
		}
		return cmp.Compare(a.last, b.last)
	})
	for _, x := range all[:min(evictBatch, len(all))] {
		delete(e.dests, x.dest)
		if e.lastD == x {
			e.lastD = nil
		}
	}
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
	e.prune(now)
	for _, d := range e.dests {
		e.evaluate(d, now)
	}
	e.sample(now, false)
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
	d.lastETA, d.lastIn, d.hasFcast = f, in, in.Held > 0 || in.Rate > 0
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
