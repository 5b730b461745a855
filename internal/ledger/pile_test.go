package ledger

import (
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tcptrace/tcptrace/internal/events"
)

// diagMsg builds a struct inet_diag_msg.
type diagMsg struct {
	state        events.State
	timer        uint8
	saddr, daddr string
	sport, dport uint16
	cookie       uint64
	expires      uint32
	inode        uint32
}

func (d diagMsg) bytes() []byte {
	m := make([]byte, diagMsgLen)
	s, a := netip.MustParseAddr(d.saddr), netip.MustParseAddr(d.daddr)
	m[0], m[1], m[2] = unix.AF_INET6, uint8(d.state), d.timer
	if s.Is4() {
		m[0] = unix.AF_INET
	}
	binary.BigEndian.PutUint16(m[4:], d.sport)
	binary.BigEndian.PutUint16(m[6:], d.dport)
	copy(m[8:], s.AsSlice())
	copy(m[24:], a.AsSlice())
	ne.PutUint32(m[44:], uint32(d.cookie))
	ne.PutUint32(m[48:], uint32(d.cookie>>32))
	ne.PutUint32(m[52:], d.expires)
	ne.PutUint32(m[68:], d.inode)
	return m
}

// fakeProc makes a /proc stand-in where process pid, named comm, holds
// the socket inodes.
func fakeProc(t *testing.T, root, pid, comm string, inodes ...string) {
	t.Helper()
	dir := filepath.Join(root, pid)
	if err := os.MkdirAll(filepath.Join(dir, "fd"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "comm"), []byte(comm+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for i, ino := range append([]string{"pipe:[1]", "/dev/null"}, inodes...) {
		if err := os.Symlink(ino, filepath.Join(dir, "fd", string(rune('3'+i)))); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBuilder files a fake dump: timewait sockets of both substates and
// families, open sockets that hint, and sockets the pile leaves out.
func TestBuilder(t *testing.T) {
	proc := t.TempDir()
	fakeProc(t, proc, "100", "client", "socket:[7]")
	fakeProc(t, proc, "200", "server", "socket:[8]", "socket:[9]")
	fakeProc(t, proc, "300", "other", "socket:[10]")

	p := Pile{Netns: 42, Time: 1000}
	b := newBuilder(&p, events.Filter{}, MaxPile, map[string]string{"ip_local_port_range": "40000 50000"})
	for _, d := range []diagMsg{
		// Client side toward 10.0.0.1:443, v4 and v4-mapped: pid 100 holds one there.
		{state: events.TimeWait, timer: 3, saddr: "10.0.0.2", daddr: "10.0.0.1", sport: 40001, dport: 443, cookie: 1<<40 | 1, expires: 59000},
		{state: events.TimeWait, timer: 3, saddr: "::ffff:10.0.0.2", daddr: "::ffff:10.0.0.1", sport: 40002, dport: 443, cookie: 2, expires: 58000},
		{state: events.Established, saddr: "10.0.0.2", daddr: "10.0.0.1", sport: 40003, dport: 443, inode: 7},
		// Server side on port 80 (listened by pid 200) and 45000 (in the range, listened).
		{state: events.FinWait2, timer: 3, saddr: "::ffff:10.0.0.1", daddr: "::ffff:10.0.0.9", sport: 80, dport: 40100, cookie: 3, expires: 30000},
		{state: events.Listen, saddr: "0.0.0.0", daddr: "0.0.0.0", sport: 80, inode: 8},
		{state: events.TimeWait, timer: 3, saddr: "10.0.0.1", daddr: "10.0.0.8", sport: 45000, dport: 40200, cookie: 4},
		{state: events.Listen, saddr: "10.0.0.1", daddr: "0.0.0.0", sport: 45000, inode: 9},
		// A real v6 one no one points to, and an orphaned full FIN_WAIT2.
		{state: events.TimeWait, timer: 3, saddr: "2001:db8::1", daddr: "2001:db8::2", sport: 40004, dport: 22, cookie: 5},
		{state: events.FinWait2, timer: 2, saddr: "10.0.0.2", daddr: "10.0.0.7", sport: 40005, dport: 443, cookie: 6},
		// Not timewait: a FIN_WAIT2 a process holds, an orphan in LAST_ACK, an ESTABLISHED no process shows.
		{state: events.FinWait2, timer: 0, saddr: "10.0.0.2", daddr: "10.0.0.7", sport: 40006, dport: 443, cookie: 7, inode: 10},
		{state: events.LastAck, saddr: "10.0.0.2", daddr: "10.0.0.7", sport: 40007, dport: 443, cookie: 8},
		{state: events.Established, saddr: "2001:db8::1", daddr: "2001:db8::2", sport: 40008, dport: 22, inode: 99}, // toward cookie 5's destination
	} {
		b.add(d.bytes())
	}
	b.hint(proc)
	if p.Sockets != 12 || p.Truncated || len(p.Found) != 6 {
		t.Fatalf("%d sockets, %d timewait (truncated %v)", p.Sockets, len(p.Found), p.Truncated)
	}
	want := []struct {
		cookie uint64
		family uint16
		state  events.State
		saddr  string
		pid    uint32
		comm   string
	}{
		{1<<40 | 1, unix.AF_INET, events.TimeWait, "10.0.0.2", 100, "client"},
		{2, unix.AF_INET, events.TimeWait, "10.0.0.2", 100, "client"},
		{3, unix.AF_INET, events.FinWait2, "10.0.0.1", 200, "server"},
		{4, unix.AF_INET, events.TimeWait, "10.0.0.1", 200, "server"},
		{5, unix.AF_INET6, events.TimeWait, "2001:db8::1", 0, ""},
		{6, unix.AF_INET, events.FinWait2, "10.0.0.2", 300, "other"}, // pid 300's FIN_WAIT2 is toward 10.0.0.7:443 too
	}
	evs := pileEvents(p)
	for i, w := range want {
		ev := evs[i]
		if ev.Cookie != w.cookie || ev.Family != w.family || ev.New != w.state || ev.Saddr.String() != w.saddr ||
			ev.PID != w.pid || ev.Comm.String() != w.comm || (ev.Flags&events.FlagHint != 0) != (w.pid != 0) ||
			ev.Kind != events.KindTimeWait || ev.TwOp != events.TwFound || ev.Netns != 42 || ev.Time != 1000 {
			t.Errorf("event %d: %+v, want %+v", i, ev, w)
		}
	}
	if evs[0].Remain != 59000 || evs[0].Dport != 443 || evs[0].Sport != 40001 {
		t.Errorf("event 0: %+v", evs[0])
	}
}

// TestBuilderBound keeps at most the bound and says so; filtered sockets
// count toward Sockets only.
func TestBuilderBound(t *testing.T) {
	var p Pile
	b := newBuilder(&p, events.Filter{Ports: []uint16{443}}, 2, nil)
	for i := range 5 {
		b.add(diagMsg{state: events.TimeWait, timer: 3, saddr: "10.0.0.2", daddr: "10.0.0.1", sport: uint16(40000 + i), dport: 443}.bytes())
		b.add(diagMsg{state: events.TimeWait, timer: 3, saddr: "10.0.0.2", daddr: "10.0.0.1", sport: uint16(40000 + i), dport: 80}.bytes())
	}
	if p.Sockets != 10 || len(p.Found) != 2 || !p.Truncated {
		t.Errorf("%d sockets, %d kept, truncated %v", p.Sockets, len(p.Found), p.Truncated)
	}
}

// TestFilter matches either end, v4-mapped hosts as v4.
func TestFilter(t *testing.T) {
	host := func(s string) netip.Prefix {
		p, err := events.ParseHost(s)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	ev := events.Event{Saddr: netip.MustParseAddr("10.0.0.2"), Daddr: netip.MustParseAddr("10.0.0.1"), Sport: 40000, Dport: 443}
	for _, c := range []struct {
		f    events.Filter
		want bool
	}{
		{events.Filter{}, true},
		{events.Filter{Ports: []uint16{443}}, true},
		{events.Filter{Ports: []uint16{40000}}, true},
		{events.Filter{Ports: []uint16{80}}, false},
		{events.Filter{Ports: []uint16{80, 443}}, true},
		{events.Filter{Hosts: []netip.Prefix{host("10.0.0.1")}}, true},
		{events.Filter{Hosts: []netip.Prefix{host("::ffff:10.0.0.2")}}, true},
		{events.Filter{Hosts: []netip.Prefix{host("10.0.0.3")}}, false},
		{events.Filter{Hosts: []netip.Prefix{host("10.0.0.3"), host("10.0.0.0/30")}}, true},
		{events.Filter{Hosts: []netip.Prefix{host("10.0.0.1")}, Ports: []uint16{80}}, false},
	} {
		if got := c.f.MatchEvent(&ev); got != c.want {
			t.Errorf("%+v: %v, want %v", c.f, got, c.want)
		}
	}
}

// TestPortRange falls back to the kernel's default on a bad setting.
func TestPortRange(t *testing.T) {
	for in, want := range map[string][2]uint16{"1024 65535": {1024, 65535}, "": {32768, 60999}, "9 3": {32768, 60999}, "x y": {32768, 60999}} {
		if lo, hi := portRange(map[string]string{"ip_local_port_range": in}); lo != want[0] || hi != want[1] {
			t.Errorf("%q: %d-%d", in, lo, hi)
		}
	}
}

// TestSides: with no listener left, a timewait socket is the server side
// when its local end is shared by more of the pile than its remote end.
func TestSides(t *testing.T) {
	a := func(s string) [16]byte { return netip.MustParseAddr(s).As16() }
	var p Pile
	for i := range 5 { // a server's port 9999 that closed first toward five clients
		p.Found = append(p.Found, Found{Saddr: a("::ffff:10.0.0.1"), Sport: 9999, Daddr: a("::ffff:10.0.0.2"), Dport: uint16(40000 + i)})
	}
	for i := range 5 { // five client ports toward one server
		p.Found = append(p.Found, Found{Saddr: a("::ffff:10.0.0.2"), Sport: uint16(41000 + i), Daddr: a("::ffff:10.0.0.3"), Dport: 80})
	}
	p.Found = append(p.Found, Found{Saddr: a("::ffff:10.0.0.2"), Sport: 42000, Daddr: a("::ffff:10.0.0.4"), Dport: 22, Hint: -1})
	b := &builder{pile: &p, listen: map[uint16]struct{}{22: {}}}
	b.sides()
	for i, f := range p.Found {
		if want := i < 5; f.Server != want {
			t.Errorf("socket %d (%d → %d): server %v, want %v", i, f.Sport, f.Dport, f.Server, want)
		}
	}
}
