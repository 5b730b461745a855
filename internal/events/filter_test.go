package events_test

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/events/eventstest"
)

func mustHost(t *testing.T, s string) netip.Prefix {
	t.Helper()
	p, err := events.ParseHost(s)
	if err != nil {
		t.Fatalf("ParseHost(%q): %v", s, err)
	}
	return p
}

// TestParseHost takes an address as a /32 or /128, a CIDR prefix masked,
// v4-mapped ones as IPv4, and refuses the rest.
func TestParseHost(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.1":            "10.0.0.1/32",
		"::1":                 "::1/128",
		"10.1.2.3/8":          "10.0.0.0/8",
		"fd00::5/64":          "fd00::/64",
		"::ffff:10.0.0.2":     "10.0.0.2/32",
		"::ffff:10.0.0.0/104": "10.0.0.0/8",
		"fe80::1%eth0":        "fe80::1/128",
	} {
		if got := mustHost(t, in); got.String() != want {
			t.Errorf("ParseHost(%q) = %v, want %s", in, got, want)
		}
	}
	for _, in := range []string{"", "redis", "10.0.0.1/33", "10.0.0/8", "::1/129", "10.0.0.1/"} {
		if p, err := events.ParseHost(in); err == nil {
			t.Errorf("ParseHost(%q) = %v, want an error", in, p)
		}
	}
}

// TestFilterRepeats matches several ports and several hosts: one of each
// list is enough, either end; the lists and the owner combine.
func TestFilterRepeats(t *testing.T) {
	c := &events.Conn{Saddr: netip.MustParseAddr("10.0.0.2"), Daddr: netip.MustParseAddr("192.168.1.9"),
		Sport: 40000, Dport: 6379, Owner: events.Owner{PID: 7, Comm: events.MakeComm("redis-cli"), Source: events.OwnerSyscall}}
	v6 := &events.Conn{Saddr: netip.MustParseAddr("fd00::2"), Daddr: netip.MustParseAddr("fd00:1::9"), Sport: 40001, Dport: 8080}
	hosts := func(s ...string) []netip.Prefix {
		var ps []netip.Prefix
		for _, x := range s {
			ps = append(ps, mustHost(t, x))
		}
		return ps
	}
	for _, x := range []struct {
		f       events.Filter
		c, want bool // c: the IPv4 connection's verdict; want: the IPv6 one's
	}{
		{events.Filter{}, true, true},
		{events.Filter{Ports: []uint16{6379}}, true, false},
		{events.Filter{Ports: []uint16{6379, 8080}}, true, true},
		{events.Filter{Ports: []uint16{40000}}, true, false}, // the local port
		{events.Filter{Ports: []uint16{80, 443}}, false, false},
		{events.Filter{Hosts: hosts("192.168.0.0/16")}, true, false},
		{events.Filter{Hosts: hosts("10.0.0.2")}, true, false},
		{events.Filter{Hosts: hosts("10.0.0.3", "fd00::/16")}, false, true},
		{events.Filter{Hosts: hosts("10.0.0.0/8", "fd00:1::/32")}, true, true},
		{events.Filter{Hosts: hosts("::ffff:192.168.1.9")}, true, false},
		{events.Filter{Hosts: hosts("0.0.0.0/0")}, true, false},
		{events.Filter{Ports: []uint16{6379, 8080}, Hosts: hosts("fd00::/8")}, false, true},
		{events.Filter{Ports: []uint16{8080}, Hosts: hosts("10.0.0.0/8")}, false, false}, // AND: port of one, host of the other
		{events.Filter{PID: 7, Ports: []uint16{6379, 8080}}, true, false},
		{events.Filter{Comm: "redis-cli", Hosts: hosts("192.168.1.0/24")}, true, false},
		{events.Filter{PID: 8, Ports: []uint16{6379}}, false, false},
	} {
		if got := x.f.MatchConn(c); got != x.c {
			t.Errorf("%+v on the IPv4 connection: %v, want %v", x.f, got, x.c)
		}
		if got := x.f.MatchConn(v6); got != x.want {
			t.Errorf("%+v on the IPv6 connection: %v, want %v", x.f, got, x.want)
		}
		ev := events.Event{Kind: events.KindTimeWait, TwOp: events.TwFound, Saddr: c.Saddr, Daddr: c.Daddr,
			Sport: c.Sport, Dport: c.Dport, PID: 7, Comm: c.Owner.Comm, Flags: events.FlagResolved}
		if got := x.f.MatchEvent(&ev); got != x.c {
			t.Errorf("%+v on the IPv4 timewait step: %v, want %v", x.f, got, x.c)
		}
	}
}

// TestFilterKernel hands the kernel one port and one address, only when
// the lists hold exactly one (an address, not a wider prefix).
func TestFilterKernel(t *testing.T) {
	for _, x := range []struct {
		f    events.Filter
		port uint16
		host string
	}{
		{events.Filter{}, 0, ""},
		{events.Filter{Ports: []uint16{6379}}, 6379, ""},
		{events.Filter{Ports: []uint16{6379, 8080}}, 0, ""},
		{events.Filter{Hosts: []netip.Prefix{mustHost(t, "10.0.0.1")}}, 0, "10.0.0.1"},
		{events.Filter{Hosts: []netip.Prefix{mustHost(t, "::1")}, Ports: []uint16{80}}, 80, "::1"},
		{events.Filter{Hosts: []netip.Prefix{mustHost(t, "10.0.0.0/8")}}, 0, ""},
		{events.Filter{Hosts: []netip.Prefix{mustHost(t, "10.0.0.1"), mustHost(t, "10.0.0.2")}}, 0, ""},
	} {
		port, host := x.f.Kernel()
		if port != x.port || (host.IsValid() && host.String() != x.host) || (!host.IsValid() && x.host != "") {
			t.Errorf("%+v: kernel port %d host %v, want %d %q", x.f, port, host, x.port, x.host)
		}
	}
}

// TestFilteredStateConns passes, with --state, the connection records of
// the connections one of whose transitions passed, and only those, on
// recorded kernel sequences.
func TestFilteredStateConns(t *testing.T) {
	for _, x := range []struct {
		fixture string
		states  []events.State
		want    func(tkSockets) []uint64 // the cookies whose records pass
	}{
		// The client closes first: it alone goes through TIME_WAIT.
		{"client_close", []events.State{events.TimeWait}, func(s tkSockets) []uint64 { return s.clients }},
		{"client_close", []events.State{events.FinWait2}, func(s tkSockets) []uint64 { return s.clients }},
		{"client_close", []events.State{events.CloseWait, events.LastAck}, func(s tkSockets) []uint64 { return s.servers }},
		{"server_close", []events.State{events.TimeWait}, func(s tkSockets) []uint64 { return s.servers }},
		{"client_close", []events.State{events.Listen}, func(s tkSockets) []uint64 { return append(s.listeners, s.servers...) }},
		{"client_close", []events.State{events.Established}, func(s tkSockets) []uint64 { return append(s.clients, s.servers...) }},
		{"refused", []events.State{events.TimeWait}, func(tkSockets) []uint64 { return nil }},
		{"client_close", nil, func(s tkSockets) []uint64 { return append(append(s.clients, s.servers...), s.listeners...) }},
	} {
		evs := tkLoad(t, x.fixture)
		col := &eventstest.Collector{}
		f := &events.Filtered{Filter: events.Filter{States: x.states}, Sink: col}
		tr := events.NewTracker(f, nil, 16)
		for i := range evs {
			ev := evs[i]
			tr.Observe(&ev)
		}
		var got []uint64
		for _, c := range col.Conns {
			got = append(got, c.Cookie)
		}
		want := x.want(tkRoles(evs))
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s --state %v: connection records of %v, want %v", x.fixture, x.states, got, want)
		}
		for _, tt := range col.Transitions {
			if !slices.ContainsFunc(x.states, func(s events.State) bool { return tt.Old == s || tt.New == s || tt.Shown() == s }) && len(x.states) > 0 {
				t.Errorf("%s --state %v: transition %v>%v passed", x.fixture, x.states, tt.Old, tt.Shown())
			}
		}
	}
}

// TestFilteredStateRecycled: the tracker recycles a Conn evicted from its
// full table for another socket; the new socket's record passes only on
// its own transitions.
func TestFilteredStateRecycled(t *testing.T) {
	evs := tkLoad(t, "churn")
	col := &eventstest.Collector{}
	f := &events.Filtered{Filter: events.Filter{States: []events.State{events.TimeWait}}, Sink: col}
	tr := events.NewTracker(f, nil, 2) // evicts, recycling Conns, all the time
	for i := range evs {
		ev := evs[i]
		tr.Observe(&ev)
	}
	tw := map[uint64]bool{}
	for _, x := range col.Transitions {
		tw[x.Conn.Cookie] = true
	}
	for _, c := range col.Conns {
		if !tw[c.Cookie] || !c.TimeWait {
			t.Errorf("connection %d passed without a TIME_WAIT transition (TimeWait %v)", c.Cookie, c.TimeWait)
		}
	}
	if len(col.Conns) == 0 {
		t.Error("no connection passed")
	}
}
