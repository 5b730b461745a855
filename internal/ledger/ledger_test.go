package ledger

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/testutil"
)

// envHold makes TestHelperHold connect from 127.0.0.2 to this address.
const envHold = "TCPTRACE_LEDGER_HOLD"

// TestHelperHold is not a test: run as `<test binary>
// -test.run=^TestHelperHold$` with envHold set (inside a namespace), it
// connects from 127.0.0.2 to envHold, prints "held", and holds the
// connection open until its stdin closes.
func TestHelperHold(t *testing.T) {
	addr := os.Getenv(envHold)
	if addr == "" {
		return
	}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	d.SetMultipathTCP(false)
	c, err := d.Dial("tcp4", addr)
	if err != nil {
		fmt.Printf("error %v\n", err)
		os.Exit(3)
	}
	fmt.Println("held")
	io.Copy(io.Discard, os.Stdin)
	c.Close()
	os.Exit(0)
}

// hold runs TestHelperHold inside ns toward addr and returns its PID once it
// holds the connection; it ends with t.
func hold(t *testing.T, ns *testNetns, addr string) int {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns.Name, os.Args[0], "-test.run=^TestHelperHold$")
	cmd.Env = append(os.Environ(), envHold+"="+addr)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if line != "held\n" {
		t.Fatalf("helper: %q", line)
	}
	return cmd.Process.Pid // ip netns exec execs the command in its own process
}

// listen opens a listener on 127.0.0.1:port, closed at the end of t.
func listen(t *testing.T, port int) (int, error) {
	l, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	t.Cleanup(func() { unix.Close(l) })
	_ = unix.SetsockoptInt(l, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if err := unix.Bind(l, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: port}); err != nil {
		return -1, fmt.Errorf("bind: %w", err)
	}
	return l, unix.Listen(l, 16)
}

// orphanFinWait2 leaves one orphaned FIN_WAIT2 on 127.0.0.1:port, whose
// listener stays open: the server closes first, the client keeps its
// socket open (CLOSE_WAIT) until the end of t. It returns the client's port.
func orphanFinWait2(t *testing.T, port int) (int, error) {
	l, err := listen(t, port)
	if err != nil {
		return 0, err
	}
	c, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	t.Cleanup(func() { unix.Close(c) })
	if err := unix.Connect(c, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: port}); err != nil {
		return 0, fmt.Errorf("connect: %w", err)
	}
	s, _, err := unix.Accept4(l, unix.SOCK_CLOEXEC)
	if err != nil {
		return 0, fmt.Errorf("accept: %w", err)
	}
	unix.Close(s)
	sa, err := unix.Getsockname(c)
	if err != nil {
		return 0, err
	}
	return sa.(*unix.SockaddrInet4).Port, nil
}

// ssCount runs `ip netns exec NS ss ARGS | tail -n +2 | wc -l`.
func ssCount(t *testing.T, ns *testNetns, args string) int {
	t.Helper()
	out, err := exec.Command("sh", "-c", "ip netns exec "+ns.Name+" ss "+args+" | tail -n +2 | wc -l").Output()
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// ssCookies returns the sk: values of `ss -tane state STATE` inside ns.
func ssCookies(t *testing.T, ns *testNetns, state string) []uint64 {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns.Name, "ss", "-tane", "state", state).Output()
	if err != nil {
		t.Fatal(err)
	}
	var cookies []uint64
	for _, f := range strings.Fields(string(out)) {
		if hex, ok := strings.CutPrefix(f, "sk:"); ok {
			c, err := strconv.ParseUint(hex, 16, 64)
			if err != nil {
				t.Fatalf("ss cookie %q: %v", f, err)
			}
			cookies = append(cookies, c)
		}
	}
	return cookies
}

// within reports whether got is want ± 1%.
func within(got, want int) bool { d := got - want; return 100*max(d, -d) <= want }

// TestReadPile reads a namespace holding 3000 client-side TIME_WAIT sockets
// toward 127.0.0.1:80, 375 server-side on 127.0.0.1:81 and an orphaned
// FIN_WAIT2 on 127.0.0.1:82, against what ss reads there; a helper process
// holds a connection toward 127.0.0.1:80 and this one listens on 82.
func TestReadPile(t *testing.T) {
	testutil.RequirePrivileged(t)
	ns := newTestNetns(t)
	if err := ns.pile(3000); err != nil {
		t.Fatal(err)
	}
	var l80, fw2Port int
	if err := ns.do(func() (err error) {
		if l80, err = listen(t, 80); err == nil {
			fw2Port, err = orphanFinWait2(t, 82)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	helper := hold(t, ns, "127.0.0.1:80")
	if s, _, err := unix.Accept4(l80, unix.SOCK_CLOEXEC); err == nil {
		t.Cleanup(func() { unix.Close(s) })
	}
	time.Sleep(100 * time.Millisecond) // loopback FINs and ACKs settle
	self, _ := os.ReadFile("/proc/self/comm")
	helperComm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", helper))

	p, err := ReadPile(ns.Netns, events.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Netns != ns.Inode || p.Truncated || p.Took <= 0 || p.Time == 0 || p.Sockets < ns.TimeWait+1 {
		t.Fatalf("pile netns %d truncated %v took %v time %d sockets %d", p.Netns, p.Truncated, p.Took, p.Time, p.Sockets)
	}
	byCookie := map[uint64]*events.Event{}
	var tw, hinted int
	var fw2 *events.Event
	evs := pileEvents(p)
	for i := range evs {
		ev := &evs[i]
		byCookie[ev.Cookie] = ev
		if ev.Kind != events.KindTimeWait || ev.TwOp != events.TwFound || ev.Old != events.Unknown ||
			ev.Netns != ns.Inode || ev.Time != p.Time || ev.Family != unix.AF_INET ||
			ev.Remain == 0 || ev.Remain > 60000 || ev.Cookie == 0 {
			t.Fatalf("event %+v", ev)
		}
		switch {
		case ev.New == events.FinWait2:
			fw2 = ev
		case ev.New != events.TimeWait:
			t.Fatalf("event in %v: %+v", ev.New, ev)
		case ev.Dport == 80:
			tw++
			// Toward the destination the helper holds a connection to.
			if ev.Flags&events.FlagHint == 0 || ev.PID != uint32(helper) || ev.Comm != events.MakeComm(strings.TrimSpace(string(helperComm))) {
				t.Fatalf("client-side event without the helper's (%d) hint: %+v", helper, ev)
			}
			hinted++
		case ev.Sport == 81:
			tw++
			if ev.Flags&events.FlagHint != 0 {
				t.Fatalf("hint for a port no one holds: %+v", ev)
			}
		default:
			t.Errorf("unexpected event %+v", ev)
		}
	}
	if want := ssCount(t, ns, "-tan state time-wait"); !within(tw, want) || !within(tw, ns.TimeWait) {
		t.Errorf("%d TIME_WAIT read, ss counts %d, made %d", tw, want, ns.TimeWait)
	}
	if fw2 == nil {
		t.Fatal("no orphaned FIN_WAIT2")
	}
	if fw2.Sport != 82 || int(fw2.Dport) != fw2Port || fw2.Saddr != netip.MustParseAddr("127.0.0.1") ||
		fw2.Flags&events.FlagHint == 0 || fw2.PID != uint32(os.Getpid()) || fw2.Comm != events.MakeComm(strings.TrimSpace(string(self))) {
		t.Errorf("FIN_WAIT2 %+v, want 127.0.0.1:82 → :%d with this process's hint (its listener)", fw2, fw2Port)
	}
	for _, state := range []string{"time-wait", "fin-wait-2"} {
		cookies := ssCookies(t, ns, state)
		missing := 0
		for _, c := range cookies {
			if byCookie[c] == nil {
				missing++
			}
		}
		if len(cookies) == 0 || !within(len(cookies)-missing, len(cookies)) {
			t.Errorf("ss %s: %d of %d cookies not in the pile", state, missing, len(cookies))
		}
	}
	if got := p.Sysctls["tcp_max_tw_buckets"]; got != strconv.Itoa(twBuckets) {
		t.Errorf("tcp_max_tw_buckets %q read, want the namespace's %d (%v)", got, twBuckets, p.Sysctls)
	}
	if m, err := ReadSysctls(ns.Netns); err != nil || m["tcp_max_tw_buckets"] != p.Sysctls["tcp_max_tw_buckets"] ||
		m["ip_local_port_range"] == "" {
		t.Errorf("ReadSysctls: %v, %v", m, err)
	}
	t.Logf("%d sockets, %d TIME_WAIT (%d hinted) read in %v", p.Sockets, tw, hinted, p.Took)
}

// TestReadPileFilter reads a namespace's pile through filters and a bound.
func TestReadPileFilter(t *testing.T) {
	testutil.RequirePrivileged(t)
	ns := newTestNetns(t)
	if err := ns.pile(800); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		f    events.Filter
		want int
	}{
		{events.Filter{}, 900},
		{events.Filter{Ports: []uint16{81}}, 100},
		{events.Filter{Ports: []uint16{80}}, 800},
		{events.Filter{Hosts: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}}, 800},
		{events.Filter{Hosts: []netip.Prefix{netip.MustParsePrefix("127.0.1.0/24")}}, 100},
		{events.Filter{Hosts: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32"), netip.MustParsePrefix("127.0.1.0/24")}}, 900},
		{events.Filter{Ports: []uint16{81, 80}}, 900},
		{events.Filter{Hosts: []netip.Prefix{netip.MustParsePrefix("127.0.1.2/32")}, Ports: []uint16{81}}, 100},
		{events.Filter{Hosts: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}, Ports: []uint16{81}}, 0},
	} {
		p, err := ReadPile(ns.Netns, c.f)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Found) != c.want || p.Sockets != 900 || p.Truncated {
			t.Errorf("filter %+v: %d of %d sockets (truncated %v), want %d", c.f, len(p.Found), p.Sockets, p.Truncated, c.want)
		}
	}
	p, err := readPile(procRoot, ns.Netns, events.Filter{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Found) != 100 || !p.Truncated || p.Sockets != 900 {
		t.Errorf("bound 100: %d kept of %d, truncated %v", len(p.Found), p.Sockets, p.Truncated)
	}
}

// TestReadPileCookie closes a connection of this process's own namespace
// from the client side and finds its timewait socket with the client
// socket's cookie, local port and destination.
func TestReadPileCookie(t *testing.T) {
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
	raw, _ := c.(*net.TCPConn).SyscallConn()
	var cookie uint64
	raw.Control(func(fd uintptr) { cookie, _ = unix.GetsockoptUint64(int(fd), unix.SOL_SOCKET, unix.SO_COOKIE) })
	local := c.LocalAddr().(*net.TCPAddr).AddrPort()
	c.Close() // the client closes first: it will hold TIME_WAIT
	io.Copy(io.Discard, s)
	s.Close()
	time.Sleep(50 * time.Millisecond)

	self := Netns{Inode: inode("/proc/self/ns/net"), Path: "/proc/self/ns/net"}
	p, err := ReadPile(self, events.Filter{Ports: []uint16{local.Port()}})
	if err != nil {
		t.Fatal(err)
	}
	var ev events.Event // other tests share the namespace: find it by cookie
	for _, e := range pileEvents(p) {
		if e.Cookie == cookie {
			ev = e
		}
	}
	if ev.Cookie != cookie || ev.Sport != local.Port() || ev.Saddr != local.Addr() ||
		int(ev.Dport) != l.Addr().(*net.TCPAddr).Port || ev.Daddr != netip.MustParseAddr("127.0.0.1") || ev.New != events.TimeWait {
		t.Errorf("timewait socket %+v, want cookie %d from %v to %v", ev, cookie, local, l.Addr())
	}
	if exp := time.Duration(ev.Remain) * time.Millisecond; exp <= 50*time.Second || exp > 60*time.Second {
		t.Errorf("expires in %v, want just under 60s", exp)
	}
}

// TestNamespaces finds this process's namespace and a named one, each once.
func TestNamespaces(t *testing.T) {
	testutil.RequirePrivileged(t)
	ns := newTestNetns(t)
	all := Namespaces("/proc")
	seen := map[uint32]int{}
	for _, n := range all {
		seen[n.Inode]++
		if inode(n.Path) != n.Inode {
			t.Errorf("%s is not netns %d", n.Path, n.Inode)
		}
	}
	if self := inode("/proc/self/ns/net"); seen[self] != 1 || all[0].Inode != self {
		t.Errorf("own netns %d seen %d times, first %+v", self, seen[self], all[0])
	}
	if seen[ns.Inode] != 1 {
		t.Errorf("test netns %d seen %d times among %+v", ns.Inode, seen[ns.Inode], all)
	}
	for ino, n := range seen {
		if n != 1 {
			t.Errorf("netns %d listed %d times", ino, n)
		}
	}
}

// TestReadPileGone refuses a path that names another namespace now.
func TestReadPileGone(t *testing.T) {
	testutil.RequirePrivileged(t)
	ns := newTestNetns(t)
	if _, err := ReadPile(Netns{Inode: ns.Inode + 1, Path: ns.Path}, events.Filter{}); err == nil {
		t.Error("read a namespace by a path that names another")
	}
	if _, err := ReadSysctls(Netns{Inode: ns.Inode, Path: "/nonexistent"}); err == nil {
		t.Error("read sysctls of a path that does not exist")
	}
}
