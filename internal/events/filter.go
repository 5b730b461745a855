package events

import "net/netip"

// Filter selects connections and transitions for output. Zero fields match all.
type Filter struct {
	PID    uint32
	Comm   string
	Port   uint16     // either end
	Host   netip.Addr // either end
	States []State    // a transition matches when it leaves or enters one of them
}

// MatchConn reports whether the connection passes the filter's connection
// fields (owner, ports, addresses).
func (f *Filter) MatchConn(c *Conn) bool {
	return f.match(c.Owner.PID, c.Owner.Comm, c.Sport, c.Dport, c.Saddr, c.Daddr)
}

// match reports whether an owner (PID 0 when unknown) and the two ends pass.
func (f *Filter) match(pid uint32, comm Comm, sport, dport uint16, saddr, daddr netip.Addr) bool {
	if f.PID != 0 && pid != f.PID {
		return false
	}
	if f.Comm != "" && comm.String() != f.Comm {
		return false
	}
	if f.Port != 0 && sport != f.Port && dport != f.Port {
		return false
	}
	if f.Host.IsValid() {
		h := f.Host.Unmap()
		if saddr.Unmap() != h && daddr.Unmap() != h {
			return false
		}
	}
	return true
}

// Match reports whether a transition passes the filter.
func (f *Filter) Match(t *Transition) bool {
	if !f.MatchConn(t.Conn) {
		return false
	}
	if len(f.States) == 0 {
		return true
	}
	for _, s := range f.States {
		if t.Old == s || t.New == s || t.Shown() == s {
			return true
		}
	}
	return false
}

// Filtered passes to Sink only what matches Filter; loss notices always pass.
type Filtered struct {
	Filter Filter
	Sink   Sink
}

// Transition passes t on when it matches.
func (f *Filtered) Transition(t *Transition) {
	if f.Filter.Match(t) {
		f.Sink.Transition(t)
	}
}

// Finished passes c on when its connection fields match.
func (f *Filtered) Finished(c *Conn) {
	if f.Filter.MatchConn(c) {
		f.Sink.Finished(c)
	}
}

// Loss passes every loss notice on.
func (f *Filtered) Loss(ev *Event) { f.Sink.Loss(ev) }

// MatchEvent reports whether an event that is not a transition (a timewait
// socket's step) passes the filter's connection fields. Its owner is the one
// the tracker stamped: a socket whose owner is unknown (a hint is not an
// owner) fails --pid and --comm.
func (f *Filter) MatchEvent(ev *Event) bool {
	var pid uint32
	var comm Comm
	if ev.OwnerKnown() {
		pid, comm = ev.PID, ev.Comm
	}
	return f.match(pid, comm, ev.Sport, ev.Dport, ev.Saddr, ev.Daddr)
}
