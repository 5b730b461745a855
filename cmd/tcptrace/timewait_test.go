package main

// TIME_WAIT as the kernel holds it, through the binary: a pile that
// predates tracing shows from the start, churn beside a big pile loses
// nothing, an orphaned FIN_WAIT2 is not TIME_WAIT until the peer's FIN, and
// tcp_tw_reuse's early kill is reported.

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcptrace/tcptrace/internal/testutil"
)

// jsonLines parses a --json stream.
func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not a JSON line: %q: %v", l, err)
		}
		lines = append(lines, m)
	}
	return lines
}

// ssCount counts sockets in state (ss's name, e.g. time-wait) in ns.
func ssCount(t *testing.T, ns *testutil.Netns, state string) int {
	t.Helper()
	out, err := ns.Exec("ss", "-Htan", "state", state)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(out, "\n")
}

// within1pc reports whether got is within 1 % of want.
func within1pc(got, want int) bool {
	d := got - want
	return want > 0 && d*100 <= want && -d*100 <= want
}

// nsRow returns the report's namespace row of inode ino.
func nsRow(t *testing.T, report map[string]any, ino uint32) map[string]any {
	t.Helper()
	rows, _ := report["namespaces"].([]any)
	for _, x := range rows {
		if r := x.(map[string]any); r["netns"] == float64(ino) {
			return r
		}
	}
	t.Fatalf("no row for netns %d in the report: %v", ino, rows)
	return nil
}

// A report started on a host that already holds a pile, with no new
// traffic, shows the pile as ss does, owner "predates tracing".
func TestReportShowsPile(t *testing.T) {
	testutil.RequirePrivileged(t)
	testutil.Flood(t)
	ns := testutil.NewNetns(t, nil)
	if err := ns.Do(func() error {
		if _, err := testutil.MakeTimeWait([3]byte{127, 0, 0}, [4]byte{127, 0, 0, 1}, 80, 5000, true); err != nil {
			return err
		}
		_, err := testutil.MakeTimeWait([3]byte{127, 0, 1}, [4]byte{127, 0, 0, 1}, 81, 600, false)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	want := ssCount(t, ns, "time-wait")
	rep := startTracer(t, "report", "--json", "--duration", "2s")
	if err := rep.cmd.Wait(); err != nil {
		t.Fatalf("report: %v: %s", err, rep.stderr)
	}
	var report map[string]any
	if err := json.Unmarshal(rep.stdout.Bytes(), &report); err != nil {
		t.Fatalf("report: %v: %s", err, rep.stdout.String())
	}
	row := nsRow(t, report, ns.Inode)
	got, predating := int(row["time_wait_sockets"].(float64)), int(row["unknown_owner"].(float64))
	if !within1pc(got, want) || predating != got {
		t.Errorf("netns %d: report %d TIME_WAIT (%d predating), ss %d", ns.Inode, got, predating, want)
	}
	if row["method"] != "events+table" {
		t.Errorf("method %v, want events+table", row["method"])
	}
	dest := 0
	for _, x := range report["time_wait_by_destination"].([]any) {
		r := x.(map[string]any)
		if r["netns"] == float64(ns.Inode) && r["dport"] == 80.0 && r["owner_known"] == false {
			dest += int(r["time_wait_sockets"].(float64))
		}
	}
	if dest != 5000 {
		t.Errorf("report: %d predating TIME_WAIT toward 127.0.0.1:80, want 5000", dest)
	}
	if !strings.Contains(rep.stderr.String(), "predate tracing") {
		t.Errorf("no start-up line on the pile: %s", rep.stderr)
	}
	t.Logf("report %d TIME_WAIT in netns %d, ss %d", got, ns.Inode, want)
}

// Churn beside a pile of 50k TIME_WAIT loses nothing: every transition and
// every timewait start arrives.
func TestPileThenChurn(t *testing.T) {
	testutil.RequirePrivileged(t)
	testutil.Flood(t)
	ns := testutil.NewNetns(t, nil)
	if err := ns.Do(func() error {
		_, err := testutil.MakeTimeWait([3]byte{127, 0, 0}, [4]byte{127, 0, 0, 1}, 80, 50000, true)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	pile := ssCount(t, ns, "time-wait")
	if pile < 50000 {
		t.Fatalf("pile of %d TIME_WAIT, want 50000", pile)
	}
	const conns, port = 3000, 9191
	tr := startTracer(t, "--json", "--port", strconv.Itoa(port))
	if err := ns.Do(func() error {
		_, err := testutil.MakeTimeWait([3]byte{127, 0, 2}, [4]byte{127, 0, 0, 1}, port, conns, true)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	tr.stop(t, syscall.SIGINT)
	lines := jsonLines(t, tr.stdout.String())
	transitions, closed, tw := 0, 0, 0
	var sum map[string]any
	for _, m := range lines {
		if m["type"] != "summary" && m["netns"] != float64(ns.Inode) {
			continue // another test's, on the same port
		}
		switch m["type"] {
		case "transition":
			transitions++
		case "connection":
			closed++
			// A client's full close() orphans its socket: the timewait
			// socket starts in FIN_WAIT2 unless the server's FIN came first.
			if m["role"] == "client" && (m["timewait_state"] == "TIME_WAIT" && m["time_wait"] == true ||
				m["timewait_state"] == "FIN_WAIT2" && m["time_wait"] == false) {
				tw++
			}
		case "summary":
			sum = m
		}
	}
	if sum == nil {
		t.Fatal("no summary line")
	}
	lost := sum["lost"].(map[string]any)
	if lost["ring"] != 0.0 {
		t.Errorf("ring lost %v events beside a pile of %d", lost["ring"], pile)
	}
	// The kernel's recursion guard skips a few set_state runs under churn
	// (a softirq nested in the program, on loopback): they are counted,
	// and the tracker fills the steps they skipped (inferred transitions)
	// unless it was a socket's last.
	rec := int(lost["recursion"].(float64))
	// Per connection: 5 transitions each side, and the listener's LISTEN and CLOSE.
	if want := 10*conns + 2; transitions+rec < want || closed+rec < 2*conns+1 || tw+rec < conns {
		t.Errorf("%d transitions (want %d), %d connections ended (want %d), %d clients taken over by a timewait socket (want %d), %d skipped by the recursion guard",
			transitions, want, closed, 2*conns+1, tw, conns, rec)
	}
	t.Logf("pile %d; %d transitions, %d connections, %d TIME_WAIT, lost %v", pile, transitions, closed, tw, lost)
}

// sock4 opens a TCP socket inside the caller's namespace (testutil.Netns.Do).
func sock4() (int, error) { return unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0) }

// pair connects a client to the listener l on 127.0.0.1:port and accepts it.
func pair(l, port int) (c, s int, err error) {
	if c, err = sock4(); err != nil {
		return -1, -1, err
	}
	if err = unix.Connect(c, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: port}); err != nil {
		unix.Close(c)
		return -1, -1, fmt.Errorf("connect: %w", err)
	}
	s, _, err = unix.Accept4(l, unix.SOCK_CLOEXEC)
	return c, s, err
}

// listen4 listens on 127.0.0.1:port.
func listen4(port int) (int, error) {
	l, err := sock4()
	if err != nil {
		return -1, err
	}
	_ = unix.SetsockoptInt(l, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if err := unix.Bind(l, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: port}); err != nil {
		return -1, err
	}
	return l, unix.Listen(l, 16)
}

// The server closes first and the client keeps its socket 1.5 s: the
// stream shows the server's orphaned FIN_WAIT2, then TIME_WAIT only once
// the client's FIN arrives, as ss does at both moments.
func TestOrphanFinWait2Stream(t *testing.T) {
	testutil.RequirePrivileged(t)
	// tcp_fin_timeout 30 s: the orphan's timer then moves to another
	// timer-wheel bucket when the FIN re-arms it for 60 s, so the kernel's
	// timer tracepoints see the move as it happens.
	orphanStream(t, 9192, map[string]string{"tcp_fin_timeout": "30"}, 1500*time.Millisecond, 0)
}

// With the default tcp_fin_timeout a FIN soon after the orphan's start
// re-arms its timer within its timer-wheel bucket, which fires no
// tracepoint: the reconciliation (a read of the namespace's FIN_WAIT2
// sockets once orphans are 1 s old) reports the move within a few seconds.
func TestOrphanMoveUnseen(t *testing.T) {
	testutil.RequirePrivileged(t)
	orphanStream(t, 9194, nil, 100*time.Millisecond, 4*time.Second)
}

// orphanStream makes a connection in a namespace with sysctls whose server
// closes first and whose client closes after delay, checks ss, and checks
// that the stream shows the server's orphaned FIN_WAIT2 and its move to
// TIME_WAIT (within late of the client's FIN, or at it when late is 0).
func orphanStream(t *testing.T, port int, sysctls map[string]string, delay, late time.Duration) {
	ns := testutil.NewNetns(t, sysctls)
	tr := startTracer(t, "--json", "--port", strconv.Itoa(port))
	var c, s, l int
	if err := ns.Do(func() (err error) {
		if l, err = listen4(port); err != nil {
			return err
		}
		c, s, err = pair(l, port)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(l)
	unix.Close(s)
	time.Sleep(min(delay, 100*time.Millisecond) / 2)
	if n, tw := ssCount(t, ns, "fin-wait-2"), ssCount(t, ns, "time-wait"); n != 1 || tw != 0 {
		t.Fatalf("after the server's close ss shows %d FIN-WAIT-2, %d TIME-WAIT; want 1, 0", n, tw)
	}
	time.Sleep(delay - min(delay, 100*time.Millisecond)/2)
	unix.Close(c)
	time.Sleep(50 * time.Millisecond)
	if n, tw := ssCount(t, ns, "fin-wait-2"), ssCount(t, ns, "time-wait"); n != 0 || tw != 1 {
		t.Fatalf("after the client's close ss shows %d FIN-WAIT-2, %d TIME-WAIT; want 0, 1", n, tw)
	}
	time.Sleep(200*time.Millisecond + late)
	tr.stop(t, syscall.SIGINT)
	var closeAt, moveAt time.Time
	var orphan, move, conn map[string]any
	for _, m := range jsonLines(t, tr.stdout.String()) {
		switch {
		case m["netns"] != float64(ns.Inode): // another test's, on the same port
		case m["type"] == "transition" && m["sport"] == float64(port) && m["new"] == "CLOSE":
			orphan = m
			closeAt, _ = time.Parse(time.RFC3339Nano, m["time"].(string))
		case m["type"] == "time_wait_move":
			move = m
			moveAt, _ = time.Parse(time.RFC3339Nano, m["time"].(string))
		case m["type"] == "connection" && m["sport"] == float64(port):
			conn = m
		}
	}
	if orphan == nil || orphan["orphan"] != true || orphan["time_wait"] == true {
		t.Errorf("server's CLOSE: %v, want orphan and not TIME_WAIT", orphan)
	}
	if conn == nil || conn["timewait_state"] != "FIN_WAIT2" || conn["time_wait"] != false {
		t.Errorf("server's connection: %v, want timewait_state FIN_WAIT2, time_wait false", conn)
	}
	if move == nil || move["old"] != "FIN_WAIT2" || move["new"] != "TIME_WAIT" || move["sport"] != float64(port) {
		t.Fatalf("move: %v, want FIN_WAIT2 → TIME_WAIT of the server's socket", move)
	}
	if d := moveAt.Sub(closeAt); d < delay-200*time.Millisecond || d > delay+late+time.Second {
		t.Errorf("TIME_WAIT %v after the orphan's CLOSE, want %v (the client's FIN) to %v", d, delay, delay+late)
	}
}

// With tcp_tw_reuse=1 and two ephemeral ports, a third connect takes the
// port of a TIME_WAIT socket: its early end is reported as a reuse.
func TestTimeWaitReuseStream(t *testing.T) {
	testutil.RequirePrivileged(t)
	ns := testutil.NewNetns(t, map[string]string{"ip_local_port_range": "40000 40001", "tcp_tw_reuse": "1"})
	const port = 9193
	tr := startTracer(t, "--json", "--port", strconv.Itoa(port))
	var l int
	closeBoth := func() error {
		c, s, err := pair(l, port)
		if err != nil {
			return err
		}
		unix.Close(c) // the client closes first: its side holds TIME_WAIT
		time.Sleep(20 * time.Millisecond)
		unix.Close(s)
		return nil
	}
	if err := ns.Do(func() (err error) {
		if l, err = listen4(port); err != nil {
			return err
		}
		if err = closeBoth(); err == nil {
			err = closeBoth()
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(l)
	time.Sleep(1200 * time.Millisecond) // tcp_tw_reuse_delay: 1 s
	if err := ns.Do(closeBoth); err != nil {
		t.Fatalf("third connect: %v", err)
	}
	time.Sleep(200 * time.Millisecond)
	tr.stop(t, syscall.SIGINT)
	reused := 0
	for _, m := range jsonLines(t, tr.stdout.String()) {
		if m["type"] == "time_wait_end" && m["cause"] == "reuse" && m["dport"] == float64(port) && m["owner_known"] == true &&
			m["netns"] == float64(ns.Inode) {
			reused++
			if held := m["held_us"].(float64); held < 1e6 {
				t.Errorf("reused after %.0f µs, want ≥ 1 s (tcp_tw_reuse_delay)", held)
			}
		}
	}
	if reused != 1 {
		t.Errorf("%d TIME_WAIT ends by reuse, want 1:\n%s", reused, tr.stdout.String())
	}
}
