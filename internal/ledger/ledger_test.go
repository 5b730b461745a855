package ledger

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/probe"
	"github.com/tcptrace/tcptrace/internal/testutil"
)

// TestTimeWaitCookie closes a loopback connection from the client side and
// finds its timewait socket in the kernel's table with the client socket's
// own cookie, local port and destination: the join tcptrace relies on.
func TestTimeWaitCookie(t *testing.T) {
	testutil.RequirePrivileged(t)
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	l, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := net.Dial("tcp4", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	cookie := probe.CookieOf(c.(*net.TCPConn))
	local := c.LocalAddr().(*net.TCPAddr)
	c.Close() // the client closes first: it will hold TIME_WAIT
	io.Copy(io.Discard, s)
	s.Close()
	time.Sleep(50 * time.Millisecond)

	p := NewPoller("/proc", time.Hour)
	defer p.Close()
	self := inode("/proc/self/ns/net")
	if !p.Watch(self) {
		t.Fatalf("cannot watch netns %d", self)
	}
	p.PollOnce()
	snaps := p.Take()
	if len(snaps) != 1 || snaps[0].Err != nil {
		t.Fatalf("snapshots %+v", snaps)
	}
	var found *TimeWait
	for i := range snaps[0].TimeWait {
		if snaps[0].TimeWait[i].Cookie == cookie {
			found = &snaps[0].TimeWait[i]
		}
	}
	if found == nil {
		t.Fatalf("no timewait socket with cookie %d among %d", cookie, len(snaps[0].TimeWait))
	}
	peer := snaps[0].Peers[found.Peer]
	if int(peer.Dport) != l.Addr().(*net.TCPAddr).Port || peer.Daddr.String() != "127.0.0.1" || peer.Saddr != local.AddrPort().Addr() {
		t.Errorf("timewait socket toward %+v, want from %v to %v", peer, local, l.Addr())
	}
	if exp := time.Duration(found.Expires) * time.Millisecond; exp <= 50*time.Second || exp > 60*time.Second {
		t.Errorf("expires in %v, want just under 60s", exp)
	}
	if snaps[0].Sysctls["ip_local_port_range"] == "" {
		t.Errorf("no sysctls read: %v", snaps[0].Sysctls)
	}
}

// watching returns a namespace of 1000 TIME_WAIT sockets (needs root) and a
// poller of period watching it, closed at the end of the test.
func watching(t *testing.T, period time.Duration) (*BenchNetns, *Poller) {
	t.Helper()
	testutil.RequirePrivileged(t)
	ns := NewBenchNetns(t, 1000)
	p := NewPoller(ns.Proc, period)
	t.Cleanup(p.Close)
	p.Watch(ns.Ino)
	return ns, p
}

// TestSnapshotPeers dumps a namespace of known TIME_WAIT sockets through a
// poller: 1000 client-side toward 127.0.0.1:80 and 125 server-side on port 81.
func TestSnapshotPeers(t *testing.T) {
	ns, p := watching(t, 50*time.Millisecond)
	p.PollOnce()
	snaps := p.Take()
	if len(snaps) != 1 || snaps[0].Err != nil {
		t.Fatalf("snapshots %+v", snaps)
	}
	s := snaps[0]
	if len(s.TimeWait) != ns.TimeWait || len(s.Peers) != 2 || s.Truncated {
		t.Fatalf("%d TIME_WAIT (want %d), peers %+v", len(s.TimeWait), ns.TimeWait, s.Peers)
	}
	for _, peer := range s.Peers {
		switch {
		case peer.Saddr.String() == "127.0.0.2" && peer.Daddr.String() == "127.0.0.1" && peer.Dport == 80 && peer.Lport == 0:
			if peer.TimeWait != 1000 {
				t.Errorf("client side %+v, want 1000 TIME_WAIT", peer)
			}
		case peer.Saddr.String() == "127.0.0.1" && !peer.Daddr.IsValid() && peer.Dport == 0 && peer.Lport == 81:
			if peer.TimeWait != 125 {
				t.Errorf("server side %+v, want 125 TIME_WAIT", peer)
			}
		default:
			t.Errorf("unexpected peer %+v", peer)
		}
	}
	for _, k := range s.TimeWait {
		if k.Cookie == 0 || k.Expires == 0 || k.Expires > 60000 || int(k.Peer) >= len(s.Peers) {
			t.Fatalf("TIME_WAIT socket %+v", k)
		}
	}
	if s.PortLo != 32768 || s.PortHi != 60999 || s.Sysctls["ip_local_port_range"] != "32768 60999" {
		t.Errorf("range %d-%d from sysctls %v", s.PortLo, s.PortHi, s.Sysctls)
	}
	if s.DumpTime <= 0 || s.Period != max(50*time.Millisecond, dumpCost*s.DumpTime) {
		t.Errorf("dump took %v, period %v", s.DumpTime, s.Period)
	}
}

// TestSnapshotReuse checks that snapshots' memory goes back to the poller
// on Release or at the next Take, and that a namespace never needs more
// than two.
func TestSnapshotReuse(t *testing.T) {
	ns, p := watching(t, time.Hour)
	take := func() *Snapshot {
		t.Helper()
		snaps := p.Take()
		if len(snaps) != 1 || snaps[0].Err != nil || len(snaps[0].TimeWait) != ns.TimeWait {
			t.Fatalf("snapshots %+v", snaps)
		}
		return snaps[0]
	}
	p.PollOnce()
	a := take()
	a.Release()
	p.PollOnce()
	if take() != a {
		t.Error("a released snapshot was not reused")
	}
	p.PollOnce() // a is lent: a second one
	b := take()  // gives a back
	if b == a {
		t.Fatal("a lent snapshot was reused")
	}
	p.PollOnce()
	p.PollOnce() // the dump replaces the snapshot not taken, in its memory
	if c := take(); c != a {
		t.Error("a third snapshot was made")
	}
	if p.Take() != nil {
		t.Error("a snapshot taken twice")
	}
}

// TestPollerPeriod runs the loop with a period far shorter than a dump's
// cost allows: dumps are spaced by dumpCost times their duration, and the
// loop keeps dumping. It waits for three dumps, however slow the machine
// (a 1 ms dump spaces them 200 ms apart).
func TestPollerPeriod(t *testing.T) {
	_, p := watching(t, time.Microsecond)
	p.Start()
	var prev *Snapshot
	var prevTime uint64
	var prevPeriod time.Duration
	seen := 0
	start := time.Now()
	for deadline := start.Add(20 * time.Second); seen < 3 && time.Now().Before(deadline); time.Sleep(200 * time.Microsecond) {
		for _, s := range p.Take() {
			if s.Err != nil {
				t.Fatal(s.Err)
			}
			if s.Period != dumpCost*s.DumpTime {
				t.Fatalf("period %v after a dump of %v", s.Period, s.DumpTime)
			}
			if prev != nil && time.Duration(s.Time-prevTime) < prevPeriod-time.Millisecond {
				t.Errorf("dumps %v apart, want at least %v", time.Duration(s.Time-prevTime), prevPeriod)
			}
			prev, prevTime, prevPeriod = s, s.Time, s.Period
			seen++
		}
	}
	if seen < 3 {
		t.Errorf("%d dumps in %v, the last spaced %v", seen, time.Since(start).Round(time.Millisecond), prevPeriod)
	}
}

// TestPollerJoinCost holds a snapshot 20 ms before releasing it, as a slow
// join would: the namespace's next dump waits dumpCost times the dump and
// the hold together.
func TestPollerJoinCost(t *testing.T) {
	_, p := watching(t, time.Microsecond)
	p.PollOnce()
	s := p.Take()
	if len(s) != 1 || s[0].Err != nil {
		t.Fatalf("snapshots %+v", s)
	}
	time.Sleep(20 * time.Millisecond)
	s[0].Release()
	p.PollOnce()
	s = p.Take()
	if len(s) != 1 || s[0].Err != nil {
		t.Fatalf("snapshots %+v", s)
	}
	if min := dumpCost * (s[0].DumpTime + 20*time.Millisecond); s[0].Period < min {
		t.Errorf("period %v after a dump of %v and a join of 20ms, want at least %v", s[0].Period, s[0].DumpTime, min)
	}
}

// TestPollerSharedBudget watches two namespaces: the ledger's budget is
// one for both, so a dump waits dumpCost times both namespaces' dumps.
func TestPollerSharedBudget(t *testing.T) {
	testutil.RequirePrivileged(t)
	a, b := NewBenchNetns(t, 1000), NewBenchNetns(t, 200)
	// A /proc stand-in naming both: self is a, process "1" is in b.
	proc := t.TempDir()
	for dir, target := range map[string]string{"self": a.Path, "1": b.Path} {
		if err := os.MkdirAll(filepath.Join(proc, dir, "ns"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(proc, dir, "ns", "net")); err != nil {
			t.Fatal(err)
		}
	}
	p := NewPoller(proc, time.Microsecond)
	t.Cleanup(p.Close)
	p.Watch(a.Ino)
	p.Watch(b.Ino)
	p.PollOnce()
	p.PollOnce()
	s := p.Take()
	if len(s) != 2 {
		t.Fatalf("%d snapshots, want 2", len(s))
	}
	if s[0].Err != nil || s[1].Err != nil {
		t.Fatalf("snapshot errors: %v, %v", s[0].Err, s[1].Err)
	}
	if s[0].Time > s[1].Time {
		s[0], s[1] = s[1], s[0]
	}
	if want := dumpCost * (s[0].DumpTime + s[1].DumpTime); s[1].Period != want {
		t.Errorf("netns %d's period %v after dumps of %v (netns %d) and %v, want %v",
			s[1].Netns, s[1].Period, s[0].DumpTime, s[0].Netns, s[1].DumpTime, want)
	}
}

// TestListening finds this process's listening sockets, each with its own
// family and its inode.
func TestListening(t *testing.T) {
	testutil.RequirePrivileged(t)
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	want := map[uint16]uint16{} // port → family
	for network, addr := range map[string]string{"tcp4": "127.0.0.1:0", "tcp6": "[::1]:0"} {
		l, err := lc.Listen(context.Background(), network, addr)
		if err != nil {
			if network == "tcp6" {
				continue // no IPv6
			}
			t.Fatal(err)
		}
		defer l.Close()
		fam := uint16(2)
		if network == "tcp6" {
			fam = 10
		}
		want[uint16(l.Addr().(*net.TCPAddr).Port)] = fam
	}
	socks, err := Listening("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	for _, so := range socks {
		if fam, ok := want[so.Sport]; ok && so.Family == fam && so.Inode != 0 && so.State == events.Listen {
			delete(want, so.Sport)
		}
	}
	if len(want) > 0 {
		t.Errorf("listeners not found (port → family): %v among %+v", want, socks)
	}
}

// TestDumpPerFamily checks that the fallback for kernels without the compat
// request (one dump per family) reads the same table.
func TestDumpPerFamily(t *testing.T) {
	testutil.RequirePrivileged(t)
	ns := NewBenchNetns(t, 1000)
	d, err := openHandle(ns.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	buf := make([]byte, recvBufLen)
	var counts [2]int
	for i, noCompat := range []bool{false, true} {
		d.noCompat = noCompat
		s := &Snapshot{PortLo: defaultPortLo, PortHi: defaultPortHi}
		s.reset()
		if err := d.dumpAll(buf, allStates, s); err != nil {
			t.Fatal(err)
		}
		counts[i] = len(s.TimeWait)
	}
	if counts[0] != ns.TimeWait || counts[1] != ns.TimeWait || !d.noCompat {
		t.Errorf("TIME_WAIT %d in one walk, %d per family, want %d", counts[0], counts[1], ns.TimeWait)
	}
}
