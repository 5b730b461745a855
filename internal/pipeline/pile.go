package pipeline

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/ledger"
)

// sysctlEvery is how often each namespace's sysctls are read again.
const sysctlEvery = 10 * time.Second

// Reconciliation of orphaned FIN_WAIT2 timewait sockets: a move to
// TIME_WAIT that leaves the socket's timer in its timer-wheel bucket fires
// no timer tracepoint, so the namespaces holding orphans older than
// orphanAge have their FIN_WAIT2 sockets read, at most every orphanEvery
// and waiting orphanCost times the previous round's reads (0.5 % of a CPU).
const (
	orphanAge   = time.Second
	orphanEvery = time.Second
	orphanCost  = 200
)

// pileReader reads, off the event path and once per namespace, the
// timewait sockets that predate tracing (the pile an engineer arrives to),
// and keeps each namespace's sysctls fresh, and reads orphans for their
// reconciliation. Live takes what it has read at the pipeline's ticks.
type pileReader struct {
	proc   string
	filter events.Filter
	mu     sync.Mutex
	piles  []ledger.Pile                // read, not taken yet (their sockets become TwFound events when fed)
	sysctl map[uint32]map[string]string // sysctls read since the last take
	known  map[uint32]ledger.Netns      // namespaces read (or queued)
	queue  []uint32                     // namespaces first seen in the stream, to read
	done   bool                         // the namespaces present at start are read
	orphNS []uint32                     // namespaces whose orphans to read
	orphs  []ledger.Orphans             // reads not taken yet
	orphAt time.Time                    // no orphan read before
	stats  pileStats                    // what the start-up read found
	wake   chan struct{}
	stop   chan struct{}
	doneCh chan struct{} // closed once done
}

// pileStats sums the start-up read.
type pileStats struct {
	namespaces, timeWait, finWait2, sockets int
	truncated                               bool
	took                                    time.Duration
	errs                                    []string
}

// startPile starts reading every namespace of proc in the background.
func startPile(proc string, f events.Filter) *pileReader {
	r := &pileReader{proc: proc, filter: f, sysctl: map[uint32]map[string]string{},
		known: map[uint32]ledger.Netns{}, wake: make(chan struct{}, 1), stop: make(chan struct{}),
		doneCh: make(chan struct{})}
	go r.run()
	return r
}

// run reads the namespaces present now, then those first seen later, and
// refreshes sysctls, until Close.
func (r *pileReader) run() {
	start := time.Now()
	all := ledger.Namespaces(r.proc)
	r.mu.Lock()
	for _, ns := range all {
		r.known[ns.Inode] = ns // not queued again when the stream shows them first
	}
	r.mu.Unlock()
	for _, ns := range all {
		r.read(ns, true)
	}
	r.mu.Lock()
	r.done = true
	r.stats.took = time.Since(start)
	r.mu.Unlock()
	close(r.doneCh)
	t := time.NewTicker(sysctlEvery)
	defer t.Stop()
	o := time.NewTicker(orphanEvery)
	defer o.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-o.C:
			r.readOrphans()
		case <-r.wake:
			r.mu.Lock()
			q := r.queue
			r.queue = nil
			r.mu.Unlock()
			want := map[uint32]bool{}
			for _, ino := range q {
				want[ino] = true
			}
			for _, ns := range ledger.Namespaces(r.proc) {
				if want[ns.Inode] {
					r.read(ns, false)
				}
			}
		case <-t.C:
			r.mu.Lock()
			all := make([]ledger.Netns, 0, len(r.known))
			for _, ns := range r.known {
				all = append(all, ns)
			}
			r.mu.Unlock()
			for _, ns := range all {
				if m, err := ledger.ReadSysctls(ns); err == nil {
					r.mu.Lock()
					r.sysctl[ns.Inode] = m
					r.mu.Unlock()
				}
			}
		}
	}
}

// read reads one namespace's pile and sysctls.
func (r *pileReader) read(ns ledger.Netns, atStart bool) {
	r.mu.Lock()
	r.known[ns.Inode] = ns
	r.mu.Unlock()
	p, err := ledger.ReadPile(ns, r.filter)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		if atStart && len(r.stats.errs) < 8 {
			r.stats.errs = append(r.stats.errs, err.Error())
		}
		return
	}
	if len(p.Found) > 0 {
		r.piles = append(r.piles, p)
	}
	if p.Sysctls != nil {
		r.sysctl[ns.Inode] = p.Sysctls
	}
	if atStart {
		r.stats.namespaces++
		r.stats.sockets += p.Sockets
		r.stats.truncated = r.stats.truncated || p.Truncated
		for i := range p.Found {
			if p.Found[i].State == events.FinWait2 {
				r.stats.finWait2++
			} else {
				r.stats.timeWait++
			}
		}
	}
}

// readOrphans reads the FIN_WAIT2 timewait sockets of the namespaces asked
// for (reconcile), unless the previous round's budget runs still. Each
// namespace's read walks the kernel's one connection table (namespaces
// share it), so the budget is one for all: the next round waits
// orphanCost times this round's reads together.
func (r *pileReader) readOrphans() {
	r.mu.Lock()
	var due []ledger.Netns
	if time.Now().After(r.orphAt) {
		for _, ino := range r.orphNS {
			if ns, ok := r.known[ino]; ok && ns.Path != "" {
				due = append(due, ns)
			}
		}
	}
	r.orphNS = nil
	r.mu.Unlock()
	var took time.Duration
	for _, ns := range due {
		o, err := ledger.ReadOrphans(ns)
		took += o.Took
		if err == nil {
			r.mu.Lock()
			r.orphs = append(r.orphs, o)
			r.mu.Unlock()
		}
	}
	if len(due) > 0 {
		r.mu.Lock()
		r.orphAt = time.Now().Add(max(orphanEvery, orphanCost*took))
		r.mu.Unlock()
	}
}

// reconcile asks for the orphans of these namespaces to be read.
func (r *pileReader) reconcile(ns []uint32) {
	r.mu.Lock()
	r.orphNS = ns
	r.mu.Unlock()
}

// takeOrphans returns the orphan reads made since the last call.
func (r *pileReader) takeOrphans() []ledger.Orphans {
	r.mu.Lock()
	defer r.mu.Unlock()
	o := r.orphs
	r.orphs = nil
	return o
}

// Watch queues a namespace first seen in the stream, unless read already.
func (r *pileReader) Watch(ino uint32) {
	r.mu.Lock()
	_, ok := r.known[ino]
	if !ok {
		r.known[ino] = ledger.Netns{Inode: ino}
		r.queue = append(r.queue, ino)
	}
	r.mu.Unlock()
	if !ok {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
}

// take returns the piles and sysctls read since the last call, and
// whether the start-up read is complete.
func (r *pileReader) take() ([]ledger.Pile, map[uint32]map[string]string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	found, sys := r.piles, r.sysctl
	r.piles = nil
	if len(sys) > 0 {
		r.sysctl = map[uint32]map[string]string{}
	} else {
		sys = nil
	}
	return found, sys, r.done
}

// wait waits up to d for the start-up read to complete, and says on w when
// it did not.
func (r *pileReader) wait(d time.Duration, w io.Writer) {
	select {
	case <-r.doneCh:
	case <-time.After(d):
		fmt.Fprintf(w, "tcptrace: warning: the namespaces' tables were not all read within %v: TIME_WAIT that predates tracing is missing from some\n", d)
	}
}

// Close stops the reader; a read in progress finishes in the background.
func (r *pileReader) Close() { close(r.stop) }

// describe writes one line on what the start-up read found.
func (r *pileReader) describe(w io.Writer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats
	trunc := ""
	if s.truncated {
		trunc = " (truncated: a namespace held more than the read keeps)"
	}
	fmt.Fprintf(w, "tcptrace: read %d namespaces at start in %v: %d TIME_WAIT and %d orphaned FIN_WAIT2 sockets predate tracing, of %d sockets%s\n",
		s.namespaces, s.took.Round(time.Millisecond), s.timeWait, s.finWait2, s.sockets, trunc)
	for _, e := range s.errs {
		fmt.Fprintf(w, "tcptrace: warning: reading a namespace's sockets: %s\n", e)
	}
}
