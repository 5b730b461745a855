package pipeline

import (
	"io"
	"runtime/debug"
	"time"

	"github.com/tcptrace/tcptrace/internal/clock"
	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/ledger"
	"github.com/tcptrace/tcptrace/internal/owners"
	"github.com/tcptrace/tcptrace/internal/probe"
)

// pileWait bounds how long a report at exit waits for the start-up read of
// the namespaces' tables to complete: a report must not miss a namespace
// because the run was shorter than the read (each namespace's read walks
// the kernel's whole connection table: seconds for dozens of namespaces
// beside a big pile).
const pileWait = 30 * time.Second

// LiveOptions configure the kernel as a source.
type LiveOptions struct {
	Probe probe.Options
	// Log receives the line on what the start-up read found and warnings
	// about it (stderr); nil discards them.
	Log io.Writer
	// OnPileRead, when not nil, is called once the start-up read has been
	// fed into the stream.
	OnPileRead func()
}

// Live is the running kernel as a source: the probe's stream, the
// listeners that predate it, and what is read beside the stream, fed in at
// ticks: every namespace's timewait sockets once at start (the pile that
// predates tracing), their sysctls, and the orphans' reconciliation.
type Live struct {
	probe  *probe.Probe
	procs  *owners.Table
	seeds  []owners.Listener
	pile   *pileReader
	start  uint64
	log    io.Writer
	onRead func()
	told   bool          // the start-up read was described
	asked  time.Time     // orphans were last asked for
	queue  []ledger.Pile // found sockets read and not fed yet
	next   int           // the next one to feed in queue[0]
	read   bool          // the start-up read is over
}

// feedBatch bounds the found sockets fed at one tick, so that a big pile
// is fed between reads of the ring rather than in one stop of the event
// loop while the ring fills.
const feedBatch = 4096

// OpenLive attaches the probe (it checks, unless told not to, that a
// loopback connection is traced) and seeds it with the listeners that
// predate it. The start-up read of every namespace starts with the
// pipeline (New), through its connection filter.
func OpenLive(o LiveOptions) (*Live, error) {
	p, err := probe.Open(o.Probe)
	if err != nil {
		return nil, err
	}
	l := &Live{probe: p, start: clock.Mono(), procs: owners.New("/proc"), log: o.Log, onRead: o.OnPileRead}
	if l.log == nil {
		l.log = io.Discard
	}
	l.seeds = l.procs.Listeners()
	for _, s := range l.seeds {
		_ = p.SeedListener(s.Netns, s.Port, s.Family, s.Owner)
	}
	// Loading parsed the kernel's BTF (tens of MiB, garbage now): give it
	// back to the system rather than carry it as resident memory.
	debug.FreeOSMemory()
	return l, nil
}

// Probe returns the attached probe.
func (l *Live) Probe() *probe.Probe { return l.probe }

// Close stops the start-up read and detaches the probe.
func (l *Live) Close() error {
	if l.pile != nil {
		l.pile.Close()
	}
	return l.probe.Close()
}

// Next reads the next event from the kernel's ring.
func (l *Live) Next(ev *events.Event) error { return l.probe.Next(ev) }

// Now returns the kernel's CLOCK_MONOTONIC, the clock of event times.
func (l *Live) Now() uint64 { return clock.Mono() }

// Start returns when the probe was attached.
func (l *Live) Start() uint64 { return l.start }

// Losses returns the kernel's loss counters.
func (l *Live) Losses() (events.Losses, error) { return l.probe.Losses() }

// Stop ends the stream once the ring is drained.
func (l *Live) Stop() { _ = l.probe.Stop() }

func (l *Live) resolver() events.Resolver { return l.procs }
func (l *Live) timeWaitEvents() bool      { return l.probe.TimeWaitEvents() }
func (l *Live) drained() bool             { return l.probe.Buffered() == 0 }
func (l *Live) ledgerNote() string        { return "" }

// attach gives the tracker the listeners that predate tracing, starts the
// start-up read of every namespace through p's ports and hosts (the
// sockets it finds have no owner for a --pid or --comm), has the
// diagnosis queue namespaces first seen in the stream for a read, and runs
// p's ticks at the probe's idle polls.
func (l *Live) attach(p *Pipeline) {
	for _, s := range l.seeds {
		p.tracker.AddListener(s.Netns, s.Port, s.Owner)
	}
	l.pile = startPile("/proc", events.Filter{Ports: p.filter.Ports, Hosts: p.filter.Hosts})
	p.engine.SetNetnsHook(l.pile.Watch)
	l.probe.SetOnIdle(p.idle)
}

// tick feeds what the pile reader has read into p: a batch, and more
// batches for as long as the ring stays empty, so that a pile read at
// start is fed at once on an idle host and between reads of the ring on a
// busy one.
func (l *Live) tick(p *Pipeline, now uint64) error {
	for {
		if err := l.feed(p, now); err != nil {
			return err
		}
		if len(l.queue) == 0 || !l.drained() {
			return nil
		}
		now = l.Now()
	}
}

// settle waits a bounded time for the start-up read and feeds it.
func (l *Live) settle(p *Pipeline) {
	l.pile.wait(pileWait, l.log)
	for {
		_ = l.feed(p, l.Now())
		if len(l.queue) == 0 {
			return
		}
	}
}

// feed takes what the pile reader has read and feeds it through p: the
// sysctls to the diagnosis, the found sockets as TwFound events, and the
// orphans' moves. Found sockets are stamped with the time they are fed
// (their remaining timers shortened to match), so the stream stays in
// time order.
func (l *Live) feed(p *Pipeline, now uint64) error {
	found, sys, done := l.pile.take()
	for ns, m := range sys {
		p.engine.SetNetnsSysctls(ns, m)
		p.engine.MarkTableRead(ns) // read with its pile (and then only refreshed)
	}
	l.queue = append(l.queue, found...)
	l.read = l.read || done
	var ev events.Event
	for fed := 0; len(l.queue) > 0 && fed < feedBatch; fed++ {
		pl := &l.queue[0]
		if l.next >= len(pl.Found) {
			l.queue, l.next = l.queue[1:], 0
			continue
		}
		pl.Event(l.next, &ev)
		l.next++
		if now > ev.Time {
			gone := uint32((now - ev.Time) / uint64(time.Millisecond))
			ev.Remain -= min(ev.Remain, gone)
		}
		ev.Time = now
		if err := p.step(&ev); err != nil {
			return err
		}
	}
	if len(l.queue) > 0 && l.next >= len(l.queue[0].Found) {
		l.queue, l.next = l.queue[1:], 0
	}
	if err := l.reconcile(p, now); err != nil {
		return err
	}
	if l.read && len(l.queue) == 0 && !l.told {
		l.told = true
		l.pile.describe(l.log)
		if l.onRead != nil {
			l.onRead()
		}
	}
	return nil
}

// reconcile asks the pile reader, once per orphanEvery, for the namespaces
// holding orphans older than orphanAge, and feeds a TwMove for each orphan
// its reads found gone from FIN_WAIT2.
func (l *Live) reconcile(p *Pipeline, now uint64) error {
	if time.Since(l.asked) >= orphanEvery {
		l.asked = time.Now()
		l.pile.reconcile(p.engine.OrphanNamespaces(now - uint64(orphanAge)))
	}
	for _, o := range l.pile.takeOrphans() {
		for _, c := range p.engine.SettleOrphans(o.Netns, o.Cookies, o.Time) {
			ev := events.Event{Kind: events.KindTimeWait, TwOp: events.TwMove, Time: now, Cookie: c,
				Netns: o.Netns, Old: events.FinWait2, New: events.TimeWait}
			if err := p.step(&ev); err != nil {
				return err
			}
		}
	}
	return nil
}
