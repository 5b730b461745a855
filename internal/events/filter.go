package events

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
)

// Filter selects connections and transitions for output. Zero fields match
// all. One of Ports is enough, as is one of Hosts; the fields combine: a
// connection passes when it passes every field that is set.
type Filter struct {
	PID    uint32
	Comm   string
	Ports  []uint16       // the local or the remote port is one of them (0 is not a port)
	Hosts  []netip.Prefix // the local or the remote address is in one of them (ParseHost)
	States []State        // a transition matches when it leaves or enters one of them
}

// ParseHost parses an address ("10.0.0.1", "::1": a /32 or a /128) or a
// CIDR prefix ("10.0.0.0/8") for Filter.Hosts. Host bits past the prefix
// are dropped; an IPv4-mapped IPv6 address or prefix is taken as IPv4,
// as events carry such addresses.
func ParseHost(s string) (netip.Prefix, error) {
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return p, errors.New("not an IP address or CIDR prefix")
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return p, errors.New("not an IP address or CIDR prefix")
		}
		a = a.WithZone("")
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// Kernel returns what the kernel's filter can hold of f: the port when
// Ports holds exactly one, the address when Hosts holds exactly one
// single-address prefix; zero values otherwise (userspace filters alone).
func (f *Filter) Kernel() (port uint16, host netip.Addr) {
	if len(f.Ports) == 1 {
		port = f.Ports[0]
	}
	if len(f.Hosts) == 1 && f.Hosts[0].IsSingleIP() {
		host = f.Hosts[0].Addr()
	}
	return port, host
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
	if len(f.Ports) > 0 && !slices.Contains(f.Ports, sport) && !slices.Contains(f.Ports, dport) {
		return false
	}
	if len(f.Hosts) > 0 && !f.inHosts(saddr) && !f.inHosts(daddr) {
		return false
	}
	return true
}

// inHosts reports whether a is in one of f.Hosts.
func (f *Filter) inHosts(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range f.Hosts {
		if p.Contains(a) {
			return true
		}
	}
	return false
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

// Filtered passes to Sink only what matches Filter; loss notices always
// pass. With States, a finished connection passes only when one of its
// transitions did: `--state TIME_WAIT` shows the connections that were in
// TIME_WAIT, not every connection.
type Filtered struct {
	Filter Filter
	Sink   Sink
	// passed holds, with States, the connections a transition of which
	// was passed on, each with its cookie then. The tracker recycles its
	// Conns (a finished or evicted one takes a new cookie), so the map is
	// bounded by the tracker's table and a stale entry is told by its cookie.
	passed map[*Conn]uint64
}

// Transition passes t on when it matches.
func (f *Filtered) Transition(t *Transition) {
	if !f.Filter.Match(t) {
		return
	}
	if len(f.Filter.States) > 0 {
		if f.passed == nil {
			f.passed = map[*Conn]uint64{}
		}
		f.passed[t.Conn] = t.Conn.Cookie
	}
	f.Sink.Transition(t)
}

// Finished passes c on when its connection fields match and, with States,
// one of its transitions was passed on.
func (f *Filtered) Finished(c *Conn) {
	if len(f.Filter.States) > 0 {
		cookie, ok := f.passed[c]
		delete(f.passed, c)
		if !ok || cookie != c.Cookie {
			return
		}
	}
	if f.Filter.MatchConn(c) {
		f.Sink.Finished(c)
	}
}

// Loss passes every loss notice on.
func (f *Filtered) Loss(ev *Event) { f.Sink.Loss(ev) }
