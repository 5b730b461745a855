package diagnosis

import (
	"net/netip"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/ledger"
)

// ends is a Reporter that keeps copies of the TIME_WAIT ends.
type ends struct{ got []TimeWaitEnd }

func (r *ends) Warning(*Warning)           {}
func (r *ends) Failed(*FailedNotice)       {}
func (r *ends) TimeWaitEnd(e *TimeWaitEnd) { r.got = append(r.got, *e) }

var (
	cliAddr = netip.MustParseAddr("10.0.0.1")
	srvAddr = netip.MustParseAddr("10.0.0.2")
)

// handover files a traced connection of pid that handed over to TIME_WAIT
// at last: toward srvAddr:80 from port sport, or (server) from port 8080.
func handover(e *Engine, cookie uint64, pid uint32, sport uint16, last uint64, server bool) {
	c := &events.Conn{Cookie: cookie, Owner: events.Owner{PID: pid, Comm: events.MakeComm("app")},
		Role: events.RoleClient, Netns: 7, Saddr: cliAddr, Daddr: srvAddr, Sport: sport, Dport: 80,
		Start: last - 1e6, Last: last, End: events.EndGraceful, TimeWait: true}
	if server {
		c.Role, c.Saddr, c.Daddr, c.Sport, c.Dport = events.RoleServer, srvAddr, cliAddr, 8080, sport
	}
	e.Finished(c)
}

// snap is a snapshot of namespace 7 at sec seconds: TIME_WAIT sockets toward
// srvAddr:80 (peer 0) and on local port 8080 (peer 1), with open sockets
// toward 10.0.0.3:443 (peer 2) and one listener on a range port.
func snap(sec uint64, client, server []uint64) *ledger.Snapshot {
	s := &ledger.Snapshot{Netns: 7, Time: sec * 1e9, Listeners: 1, Peers: []ledger.Peer{
		{Saddr: cliAddr, Daddr: srvAddr, Dport: 80},
		{Saddr: srvAddr, Lport: 8080},
		{Saddr: cliAddr, Daddr: netip.MustParseAddr("10.0.0.3"), Dport: 443, InUse: 2},
	}}
	for i, cs := range [][]uint64{client, server} {
		for _, c := range cs {
			s.TimeWait = append(s.TimeWait, ledger.TimeWait{Cookie: c, Peer: uint32(i), Expires: 50000})
			s.Peers[i].TimeWait++
		}
	}
	return s
}

// TestLedgerJoin checks the join of snapshots with traced handovers:
// TIME_WAIT per destination and owner, the forecast's inputs, and the
// sockets reported ended when the kernel dropped them.
func TestLedgerJoin(t *testing.T) {
	var out ends
	e := New(Options{Out: &out})
	for c := uint64(1); c <= 3; c++ {
		handover(e, c, 100, uint16(40000+c), 99e9, false)
	}
	handover(e, 4, 200, 40004, 99e9, false)
	handover(e, 5, 300, 50000, 99e9, true)
	toward := Dest{Netns: 7, Saddr: cliAddr, Daddr: srvAddr, Dport: 80}
	e.dest(Dest{Netns: 7, Saddr: cliAddr, Daddr: netip.MustParseAddr("10.0.0.3"), Dport: 443}, 99e9)

	e.Ledger(snap(100, []uint64{1, 2, 3, 4, 9}, []uint64{5, 10}))
	r := e.Report(100e9, time.Second, "")
	if len(r.Namespaces) != 1 || r.Namespaces[0].TimeWait != 7 || r.Namespaces[0].Unknown != 2 {
		t.Fatalf("namespaces %+v", r.Namespaces)
	}
	server := Dest{Netns: 7, Saddr: srvAddr, Lport: 8080}
	app := func(pid uint32) ProcKey { return ProcKey{pid, events.MakeComm("app")} }
	want := map[TimeWaitRow]bool{}
	for _, row := range []TimeWaitRow{
		{Dest: toward, Owner: app(100), Known: true, Count: 3},
		{Dest: toward, Owner: app(200), Known: true, Count: 1},
		{Dest: toward, Count: 1},
		{Dest: server, Owner: app(300), Known: true, Count: 1},
		{Dest: server, Count: 1},
	} {
		want[row] = true
	}
	for _, row := range r.TimeWait {
		if !want[row] {
			t.Errorf("unexpected row %+v", row)
		}
		delete(want, row)
	}
	if len(want) > 0 {
		t.Errorf("missing rows %+v", want)
	}
	d := e.dests[toward]
	if l := d.ledger; len(l.expiries) != 5 || l.inUse != 1 || l.netnsTW != 7 || l.traced != 0 {
		t.Errorf("ledger view %+v, want 5 expiries, 1 in use (the listener), 7 in the namespace", l)
	}
	if in := e.inputs(d, e.sysctls(7), 101e9); in.Held != 5 || in.Expiries[0] != 49*time.Second {
		t.Errorf("inputs a second later: held %d, expiries %v", in.Held, in.Expiries)
	}
	if l := e.dests[Dest{Netns: 7, Saddr: cliAddr, Daddr: netip.MustParseAddr("10.0.0.3"), Dport: 443}].ledger; l.inUse != 3 {
		t.Errorf("open-only destination in use %d, want 2 + the listener", l.inUse)
	}
	if len(out.got) != 0 {
		t.Fatalf("ends before any socket left: %+v", out.got)
	}

	// 2 and 5 leave the table; 9 (never traced) too.
	e.Ledger(snap(101, []uint64{1, 3, 4}, []uint64{10}))
	if len(out.got) != 2 {
		t.Fatalf("ends %+v, want cookies 2 and 5", out.got)
	}
	for _, end := range out.got {
		switch {
		case end.Cookie == 2 && end.Owner.PID == 100 && end.Dest == toward && end.Sport == 40002:
		case end.Cookie == 5 && end.Owner.PID == 300 && end.Dest.Lport == 8080 && end.Sport == 8080:
		default:
			t.Errorf("end %+v", end)
		}
		if end.Time != 101e9 || end.Held != 2*time.Second {
			t.Errorf("end of %d at %d held %v, want at the snapshot, 2s after the handover", end.Cookie, end.Time, end.Held)
		}
	}

	// 1's handover is forgotten (the oldest of a full table): when it
	// leaves, nothing is reported; 3 leaves with a timer that ran out.
	for c := uint64(1000); c < 1000+maxCookies-4; c++ {
		handover(e, c, 400, 40000, 101e9, false)
	}
	if _, ok := e.cookies.get(1); ok {
		t.Fatal("cookie 1 still remembered")
	}
	if _, ok := e.cookies.get(3); !ok {
		t.Fatal("cookie 3 forgotten")
	}
	out.got = nil
	s := snap(200, []uint64{4}, nil)
	e.Ledger(s)
	if len(out.got) != 1 || out.got[0].Cookie != 3 || out.got[0].Time != 151e9 {
		t.Errorf("ends %+v, want cookie 3's at 101s+50s", out.got)
	}
	if e.stats.twEnded != 3 {
		t.Errorf("%d ended, want 3", e.stats.twEnded)
	}
}

// TestParseSysctlsFields checks the port range's parsing without strings.Fields.
func TestParseSysctlsFields(t *testing.T) {
	for in, ok := range map[string]bool{"1024 65000": true, " 1024\t65000\n": true, "1024": false, "1 2 3": false, "": false} {
		s := ParseSysctls(map[string]string{"ip_local_port_range": in})
		if s.Known != ok || ok && (s.PortLo != 1024 || s.PortHi != 65000) {
			t.Errorf("%q: %+v", in, s)
		}
	}
}
