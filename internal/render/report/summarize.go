package report

import (
	"net/netip"
	"time"

	"github.com/tcptrace/tcptrace/internal/diagnosis"
	"github.com/tcptrace/tcptrace/internal/events"
)

// Bounds of what the Summarizer remembers.
const (
	maxHalves = 1 << 16 // finished sockets waiting for the other end of their connection
	maxProcs  = 4096    // processes whose established and failed connects are counted
)

// tuple is a socket's addresses and ports, as it sees them.
type tuple struct {
	saddr, daddr netip.Addr
	sport, dport uint16
}

// procCount is one process's connections that were established and its
// connects that failed.
type procCount struct {
	established, failed uint64
}

// Summarizer is a Sink that counts what it sees for the exit summary; the
// processes that closed first come from the diagnosis (Summary.SetReport).
// It tells sockets from connections: the client and server sockets of a
// connection both ends of which are on this host are one connection.
type Summarizer struct {
	closers     Closers
	ends        [events.EndClosed + 1]uint64
	timeWait    uint64
	finWait2    uint64
	transitions uint64
	lost        events.Losses
	halves      map[tuple]uint32 // established sockets finished before the other end of their connection
	established uint64           // finished sockets that were established
	pairs       uint64           // connections both ends of which finished here
	failed      uint64           // connects never established
	listeners   uint64
	procs       map[diagnosis.ProcKey]*procCount
}

// NewSummarizer returns an empty Summarizer.
func NewSummarizer() *Summarizer {
	return &Summarizer{halves: map[tuple]uint32{}, procs: map[diagnosis.ProcKey]*procCount{}}
}

// Transition counts a transition.
func (s *Summarizer) Transition(*events.Transition) { s.transitions++ }

// Finished counts a socket's verdict, and its connection once per pair.
func (s *Summarizer) Finished(c *events.Conn) {
	if c == nil {
		return
	}
	switch c.Closer {
	case events.CloserLocal:
		s.closers.Local++
	case events.CloserPeer:
		s.closers.Peer++
	case events.CloserSimultaneous:
		s.closers.Simultaneous++
	default:
		s.closers.None++
	}
	if int(c.End) < len(s.ends) {
		s.ends[c.End]++
	}
	if c.TimeWait {
		s.timeWait++
	}
	if c.TwState == events.FinWait2 {
		s.finWait2++
	}
	switch {
	case c.Role == events.RoleListener:
		s.listeners++
	case c.Established():
		s.established++
		s.pair(c)
		if p := s.proc(c); p != nil {
			p.established++
		}
	case c.Role != events.RoleServer:
		s.failed++
		if p := s.proc(c); p != nil {
			p.failed++
		}
	}
}

// pair counts a finished socket's connection as a pair when the socket of
// its other end finished here before it.
func (s *Summarizer) pair(c *events.Conn) {
	own := tuple{c.Saddr.Unmap(), c.Daddr.Unmap(), c.Sport, c.Dport}
	peer := tuple{own.daddr, own.saddr, own.dport, own.sport}
	if n := s.halves[peer]; n > 0 {
		s.pairs++
		if n == 1 {
			delete(s.halves, peer)
		} else {
			s.halves[peer] = n - 1
		}
		return
	}
	if len(s.halves) < maxHalves {
		s.halves[own]++
	}
}

// proc returns the counts of c's owner, nil once maxProcs are counted.
func (s *Summarizer) proc(c *events.Conn) *procCount {
	k := diagnosis.ProcKey{PID: c.Owner.PID, Comm: c.Owner.Comm}
	p := s.procs[k]
	if p == nil && len(s.procs) < maxProcs {
		p = &procCount{}
		s.procs[k] = p
	}
	return p
}

// Loss keeps the latest cumulative loss counters.
func (s *Summarizer) Loss(ev *events.Event) {
	if ev != nil {
		s.lost.Ring = max(s.lost.Ring, ev.Lost.Ring)
		s.lost.Recursion = max(s.lost.Recursion, ev.Lost.Recursion)
	}
}

// Summary combines what the summarizer saw with the tracker's counters and
// the final loss totals.
func (s *Summarizer) Summary(st events.Stats, lost events.Losses, elapsed time.Duration) *Summary {
	lost.Ring = max(lost.Ring, s.lost.Ring)
	lost.Recursion = max(lost.Recursion, s.lost.Recursion)
	sum := &Summary{
		Elapsed: elapsed, ElapsedS: elapsed.Seconds(),
		Events: st.Events, Transitions: s.transitions, Sockets: st.Conns, Finished: st.Finished, Open: st.Tracked,
		Connections: s.established - s.pairs, Pairs: s.pairs, FailedConnects: s.failed, Listeners: s.listeners,
		ActiveClosers: []ProcCloses{}, Closers: s.closers, Ends: make(map[string]uint64),
		TimeWait: s.timeWait, FinWait2: s.finWait2, TimeWaitNow: -1, FinWait2Now: -1,
		Lost:     LostCounts{Ring: lost.Ring, Recursion: lost.Recursion, Total: lost.Total()},
		Inferred: st.Inferred, Evicted: st.Evicted, procs: s.procs,
	}
	for e, n := range s.ends {
		if n > 0 {
			sum.Ends[events.End(e).String()] = n
		}
	}
	return sum
}
