package probe_test

// Timewait sockets from the timer tracepoints, against the real kernel: how
// each way into and out of a timewait socket shows in the stream.

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/probe"
	"github.com/tcptrace/tcptrace/internal/testutil"
)

// twOf returns the timewait steps of one socket.
func twOf(evs []events.Event, cookie uint64) []events.Event {
	var out []events.Event
	for i := range evs {
		if evs[i].Kind == events.KindTimeWait && evs[i].Cookie == cookie {
			out = append(out, evs[i])
		}
	}
	return out
}

// hasTw returns a condition: cookie had step op.
func hasTw(cookie uint64, op events.TwOp) func([]events.Event) bool {
	return func(evs []events.Event) bool {
		for _, e := range twOf(evs, cookie) {
			if e.TwOp == op {
				return true
			}
		}
		return false
	}
}

// index returns the position of the first event of cookie that match
// accepts, -1 if none.
func index(evs []events.Event, cookie uint64, match func(*events.Event) bool) int {
	for i := range evs {
		if evs[i].Cookie == cookie && match(&evs[i]) {
			return i
		}
	}
	return -1
}

func dumpAll(evs []events.Event) string {
	var b strings.Builder
	for i := range evs {
		e := &evs[i]
		if e.Kind == events.KindTimeWait {
			fmt.Fprintf(&b, "  tw %v cookie=%d %v>%v %v:%d>%v:%d t=%d\n", e.TwOp, e.Cookie, e.Old, e.New, e.Saddr, e.Sport, e.Daddr, e.Dport, e.Time)
			continue
		}
		b.WriteString(dumpEvents(evs[i : i+1]))
	}
	return b.String()
}

// openTimeWait starts a recorder filtered to port and checks that timewait
// events are on.
func openTimeWait(t *testing.T, port int) *recorder {
	t.Helper()
	testutil.RequirePrivileged(t)
	r := startRecorder(t, shapeOptions(port))
	if !r.p.TimeWaitEvents() {
		t.Fatalf("no timewait events: %s", r.p.TimeWaitMethod())
	}
	return r
}

// checkOne asserts that cookie has exactly the steps ops, with local port
// sport and remote port dport, and returns them.
func checkSteps(t *testing.T, evs []events.Event, cookie uint64, sport, dport int, ops ...events.TwOp) []events.Event {
	t.Helper()
	tw := twOf(evs, cookie)
	var got []events.TwOp
	for _, e := range tw {
		got = append(got, e.TwOp)
		if int(e.Sport) != sport || int(e.Dport) != dport {
			t.Errorf("%v of %d: ports %d>%d, want %d>%d", e.TwOp, cookie, e.Sport, e.Dport, sport, dport)
		}
		if e.PID != 0 || e.Flags&(events.FlagTaskOwns|events.FlagOwnerKnown) != 0 {
			t.Errorf("%v of %d: owner pid=%d flags=%d, want none", e.TwOp, cookie, e.PID, e.Flags)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(ops) {
		t.Fatalf("cookie %d: steps %v, want %v; stream:\n%s", cookie, got, ops, dumpAll(evs))
	}
	return tw
}

// (a) The client closes first: its timewait socket (TIME_WAIT) starts
// before its FIN_WAIT2->CLOSE. The client half-closes and holds its socket
// until the server's FIN, so that the socket is not orphaned in FIN_WAIT2
// (a full close would make it a FIN_WAIT2 timewait socket first, as in
// TestKernelTimeWaitOrphanFinWait2).
func TestKernelTimeWaitClientClose(t *testing.T) {
	port := freeLoopbackPort(t, "tcp4")
	r := openTimeWait(t, port)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	h := startHelper(t, "half_close", addr, 1)
	c := dialTCP(t, "tcp4", addr)
	client, cport := probe.CookieOf(c), c.LocalAddr().(*net.TCPAddr).Port
	h.accepted(t)
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(c); err != nil {
		t.Fatal(err)
	}
	c.Close()
	h.wait(t)
	r.waitFor(t, "client TwStart", hasTw(client, events.TwStart))
	evs := r.stop()
	r.check(t)
	tw := checkSteps(t, evs, client, cport, port, events.TwStart)
	if tw[0].New != events.TimeWait || tw[0].Old != events.Unknown {
		t.Errorf("TwStart %v>%v, want UNKNOWN>TIME_WAIT", tw[0].Old, tw[0].New)
	}
	start := index(evs, client, func(e *events.Event) bool { return e.Kind == events.KindTimeWait })
	closed := index(evs, client, func(e *events.Event) bool { return e.Kind == events.KindTransition && e.New == events.Close })
	if closed < 0 || start > closed {
		t.Errorf("TwStart at %d, CLOSE at %d: want the start first\n%s", start, closed, dumpAll(evs))
	}
}

// (b) An orphaned FIN_WAIT2: the server closes first, the client 1.5 s
// later. The server's timewait socket starts in FIN_WAIT2 and moves to
// TIME_WAIT when the client's FIN comes.
//
// The move shows only when re-arming the timer (60 s) moves it to another
// timer-wheel bucket: mod_timer() reports nothing when the new expiry falls
// in the old bucket (buckets of 512 jiffies, ~2 s at HZ=250, for timers
// ~60 s away). With tcp_fin_timeout 60 s, a FIN within ~2 s of the
// FIN_WAIT2 start is mostly not seen; hence tcp_fin_timeout 30 s here.
func TestKernelTimeWaitOrphanFinWait2(t *testing.T) {
	port := freeLoopbackPort(t, "tcp4")
	r := openTimeWait(t, port)
	ns := testutil.NewNetns(t, map[string]string{"tcp_fin_timeout": "30"})
	ln := listen4(t, ns, port)
	c, err := connect4(t, ns, port, 0)
	if err != nil {
		t.Fatal(err)
	}
	s := accept4(t, ln)
	server, cport := fdCookie(t, s), fdPort(t, c)
	closeFd(s)
	readEOF(t, c) // the server's FIN
	r.waitFor(t, "server TwStart", hasTw(server, events.TwStart))
	if ss := ssState(t, ns, port); !strings.Contains(ss, "FIN-WAIT-2") || !strings.Contains(ss, "timer:(timewait") {
		t.Errorf("ss before the client's close: %q, want FIN-WAIT-2 with a timewait timer", ss)
	}
	time.Sleep(1500 * time.Millisecond)
	closeFd(c)
	r.waitFor(t, "server TwMove", hasTw(server, events.TwMove))
	if ss := ssState(t, ns, port); !strings.Contains(ss, "TIME-WAIT") {
		t.Errorf("ss after the client's close: %q, want TIME-WAIT", ss)
	}
	evs := r.stop()
	r.check(t)
	tw := checkSteps(t, evs, server, port, cport, events.TwStart, events.TwMove)
	if tw[0].New != events.FinWait2 {
		t.Errorf("TwStart substate %v, want FIN_WAIT2", tw[0].New)
	}
	if tw[1].Old != events.FinWait2 || tw[1].New != events.TimeWait {
		t.Errorf("TwMove %v>%v, want FIN_WAIT2>TIME_WAIT", tw[1].Old, tw[1].New)
	}
	if d := time.Duration(tw[1].Time - tw[0].Time); d < 1400*time.Millisecond || d > 3*time.Second {
		t.Errorf("TwMove %v after TwStart, want ~1.5s", d)
	}
}

// (c) Natural expiry: with tcp_fin_timeout=1 an orphaned FIN_WAIT2 whose
// peer never closes expires after about a second.
func TestKernelTimeWaitExpire(t *testing.T) {
	port := freeLoopbackPort(t, "tcp4")
	r := openTimeWait(t, port)
	ns := testutil.NewNetns(t, map[string]string{"tcp_fin_timeout": "1"})
	ln := listen4(t, ns, port)
	c, err := connect4(t, ns, port, 0)
	if err != nil {
		t.Fatal(err)
	}
	s := accept4(t, ln)
	server := fdCookie(t, s)
	closeFd(s)
	readEOF(t, c) // the client never closes
	r.waitFor(t, "server TwExpire", hasTw(server, events.TwExpire))
	evs := r.stop()
	r.check(t)
	tw := checkSteps(t, evs, server, port, fdPort(t, c), events.TwStart, events.TwExpire)
	if tw[1].Old != events.FinWait2 || tw[1].New != events.Close {
		t.Errorf("TwExpire %v>%v, want FIN_WAIT2>CLOSE", tw[1].Old, tw[1].New)
	}
	if d := time.Duration(tw[1].Time - tw[0].Time); d < 900*time.Millisecond || d > 3*time.Second {
		t.Errorf("TwExpire %v after TwStart, want ~1s", d)
	}
}

// (d) tcp_tw_reuse: with two ephemeral ports both in TIME_WAIT, a connect()
// past tcp_tw_reuse_delay takes one of them.
func TestKernelTimeWaitReuse(t *testing.T) {
	port := freeLoopbackPort(t, "tcp4")
	r := openTimeWait(t, port)
	ns := testutil.NewNetns(t, map[string]string{"ip_local_port_range": "40000 40001", "tcp_tw_reuse": "1",
		"tcp_timestamps": "1"})
	ln := listen4(t, ns, port)
	olds := map[uint64]int{}
	for i := 0; i < 2; i++ {
		c, err := connect4(t, ns, port, 0)
		if err != nil {
			t.Fatal(err)
		}
		s := accept4(t, ln)
		olds[fdCookie(t, c)] = fdPort(t, c)
		closeFd(c) // the client closes first: TIME_WAIT
		readEOF(t, s)
		closeFd(s)
	}
	for cookie := range olds {
		r.waitFor(t, "client TwStart", hasTw(cookie, events.TwStart))
	}
	time.Sleep(1200 * time.Millisecond) // tcp_tw_reuse_delay
	c, err := connect4(t, ns, port, 0)
	if err != nil {
		t.Fatalf("connect past tcp_tw_reuse_delay: %v", err)
	}
	reused, from := uint64(0), fdPort(t, c)
	for cookie, p := range olds {
		if p == from {
			reused = cookie
		}
	}
	if reused == 0 {
		t.Fatalf("new connection from port %d, not a TIME_WAIT one %v", from, olds)
	}
	r.waitFor(t, "TwReuse", hasTw(reused, events.TwReuse))
	evs := r.stop()
	r.check(t)
	tw := checkSteps(t, evs, reused, from, port, events.TwStart, events.TwReuse)
	if tw[1].Old != events.TimeWait || tw[1].New != events.Close {
		t.Errorf("TwReuse %v>%v, want TIME_WAIT>CLOSE", tw[1].Old, tw[1].New)
	}
}

// (e) A new SYN on the 4-tuple kills the server's TIME_WAIT socket: a kill,
// not a reuse (the connect() is the peer's).
func TestKernelTimeWaitKillBySyn(t *testing.T) {
	port := freeLoopbackPort(t, "tcp4")
	r := openTimeWait(t, port)
	ns := testutil.NewNetns(t, nil)
	ln := listen4(t, ns, port)
	from := port + 1
	if from > 65535 {
		from = port - 1
	}
	c, err := connect4(t, ns, port, from)
	if err != nil {
		t.Fatal(err)
	}
	s := accept4(t, ln)
	server := fdCookie(t, s)
	closeFd(s) // the server closes first
	readEOF(t, c)
	closeFd(c)
	r.waitFor(t, "server TIME_WAIT", inTimeWait(server))
	time.Sleep(50 * time.Millisecond) // the client's LAST_ACK->CLOSE
	c2, err := connect4(t, ns, port, from)
	if err != nil {
		t.Fatalf("reconnecting from port %d: %v", from, err)
	}
	accept4(t, ln)
	closeFd(c2)
	r.waitFor(t, "server TwKill", func(evs []events.Event) bool {
		tw := twOf(evs, server)
		return len(tw) > 0 && tw[len(tw)-1].TwOp.Ends()
	})
	evs := r.stop()
	r.check(t)
	tw := twOf(evs, server)
	last := tw[len(tw)-1]
	if last.TwOp != events.TwKill || last.Old != events.TimeWait || last.New != events.Close {
		t.Fatalf("server's end: %v %v>%v, want kill TIME_WAIT>CLOSE\n%s", last.TwOp, last.Old, last.New, dumpAll(evs))
	}
	if int(last.Sport) != port || int(last.Dport) != from {
		t.Errorf("kill ports %d>%d, want %d>%d", last.Sport, last.Dport, port, from)
	}
}

// (f) A Go listener (MPTCP by default since Go 1.24) that closes first: its
// accepted socket's TIME_WAIT is reported with that socket's cookie.
func TestKernelTimeWaitGoListener(t *testing.T) {
	port := freeLoopbackPort(t, "tcp4")
	r := openTimeWait(t, port)
	var lc net.ListenConfig
	if !lc.MultipathTCP() {
		t.Logf("this Go does not listen with MPTCP by default")
	}
	l, err := lc.Listen(context.Background(), "tcp4", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c := dialTCP(t, "tcp4", l.Addr().String())
	cport := c.LocalAddr().(*net.TCPAddr).Port
	s, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	server := probe.CookieOf(s.(*net.TCPConn))
	t.Logf("listener MPTCP %v: listening socket protocol %d, accepted %d", lc.MultipathTCP(), sockProtocol(l.(*net.TCPListener)), sockProtocol(s.(*net.TCPConn)))
	s.Close()
	if _, err := io.ReadAll(c); err != nil {
		t.Fatal(err)
	}
	c.Close()
	r.waitFor(t, "server TIME_WAIT", inTimeWait(server))
	evs := r.stop()
	r.check(t)
	// Whether the client's FIN finds the server's socket still whole
	// (TIME_WAIT at once) or orphaned in FIN_WAIT2 is a race.
	tw := twOf(evs, server)
	if tw[0].New == events.TimeWait {
		checkSteps(t, evs, server, port, cport, events.TwStart)
	} else {
		checkSteps(t, evs, server, port, cport, events.TwStart, events.TwMove)
	}
}

// inTimeWait returns a condition: cookie's timewait socket is in TIME_WAIT.
func inTimeWait(cookie uint64) func([]events.Event) bool {
	return func(evs []events.Event) bool {
		tw := twOf(evs, cookie)
		return len(tw) > 0 && tw[len(tw)-1].New == events.TimeWait
	}
}

// sockProtocol returns a socket's SO_PROTOCOL (IPPROTO_TCP, IPPROTO_MPTCP).
func sockProtocol(c syscall.Conn) int {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1
	}
	proto := -1
	_ = rc.Control(func(fd uintptr) {
		proto, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PROTOCOL)
	})
	return proto
}

// Options.NoTimeWait: no timer programs, no timewait events.
func TestKernelTimeWaitOff(t *testing.T) {
	testutil.RequirePrivileged(t)
	port := freeLoopbackPort(t, "tcp4")
	opts := shapeOptions(port)
	opts.NoTimeWait = true
	r := startRecorder(t, opts)
	if r.p.TimeWaitEvents() || !strings.Contains(r.p.TimeWaitMethod(), "no timewait events") {
		t.Fatalf("NoTimeWait: events %v, method %q", r.p.TimeWaitEvents(), r.p.TimeWaitMethod())
	}
	if runs, _, err := r.p.TimerStats(); err != nil || runs != 0 {
		t.Errorf("timer programs ran %d times (%v)", runs, err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	h := startHelper(t, "client_close", addr, 1)
	c := dialTCP(t, "tcp4", addr)
	client := probe.CookieOf(c)
	h.accepted(t)
	c.Close()
	h.wait(t)
	r.waitFor(t, "client close", allClosed(client))
	evs := r.stop()
	r.check(t)
	for i := range evs {
		if evs[i].Kind == events.KindTimeWait {
			t.Fatalf("timewait event with NoTimeWait:\n%s", dumpAll(evs))
		}
	}
}
