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
	if f.PID != 0 && c.Owner.PID != f.PID {
		return false
	}
	if f.Comm != "" && c.Owner.Comm.String() != f.Comm {
		return false
	}
	if f.Port != 0 && c.Sport != f.Port && c.Dport != f.Port {
		return false
	}
	if f.Host.IsValid() {
		h := f.Host.Unmap()
		if c.Saddr.Unmap() != h && c.Daddr.Unmap() != h {
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
// the tracker stamped: a socket whose owner is unknown fails --pid and --comm.
func (f *Filter) MatchEvent(ev *Event) bool {
	known := ev.OwnerKnown()
	if f.PID != 0 && (!known || ev.PID != f.PID) {
		return false
	}
	if f.Comm != "" && (!known || ev.Comm.String() != f.Comm) {
		return false
	}
	if f.Port != 0 && ev.Sport != f.Port && ev.Dport != f.Port {
		return false
	}
	if f.Host.IsValid() {
		h := f.Host.Unmap()
		if ev.Saddr.Unmap() != h && ev.Daddr.Unmap() != h {
			return false
		}
	}
	return true
}
