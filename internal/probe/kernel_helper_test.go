package probe_test

// Shared machinery of the real-kernel tests: a server helper process (this
// test binary re-executed), a background recorder of probe events, and the
// connection shapes (client_close, server_close, ...) that both the kernel
// tests and TestRecordFixtures run.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/probe"
	"github.com/tcptrace/tcptrace/internal/testutil"
)

// Environment of the helper server process.
const (
	envHelperMode = "TCPTRACE_TEST_HELPER_MODE" // shape the helper plays
	envHelperAddr = "TCPTRACE_TEST_HELPER_ADDR" // address to listen on
	envHelperN    = "TCPTRACE_TEST_HELPER_N"    // connections to serve (churn)
)

// TestHelperServer is not a test: it is the server process of the kernel
// tests, run as `<test binary> -test.run=^TestHelperServer$` with
// envHelperMode set. It listens, prints "listening <port> <cookie>", and for
// each connection prints "accepted <cookie>" and plays its mode; at the end
// it closes the listener and prints "done".
func TestHelperServer(t *testing.T) {
	mode := os.Getenv(envHelperMode)
	if mode == "" {
		return // run as part of the suite: nothing to do
	}
	if err := helperServe(mode, os.Getenv(envHelperAddr)); err != nil {
		fmt.Printf("error %v\n", err)
		os.Exit(3)
	}
	os.Exit(0)
}

func helperServe(mode, addr string) error {
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	network := "tcp4"
	if strings.HasPrefix(addr, "[") {
		network = "tcp6"
	}
	l, err := lc.Listen(context.Background(), network, addr)
	if err != nil {
		return err
	}
	ln := l.(*net.TCPListener)
	fmt.Printf("listening %d %d\n", ln.Addr().(*net.TCPAddr).Port, probe.CookieOf(ln))
	n := 1
	if s := os.Getenv(envHelperN); s != "" {
		n, _ = strconv.Atoi(s)
	}
	for i := 0; i < n; i++ {
		c, err := ln.AcceptTCP()
		if err != nil {
			return err
		}
		fmt.Printf("accepted %d\n", probe.CookieOf(c))
		switch mode {
		case "client_close", "ipv6", "linger_reset":
			// Wait for the client's FIN (or RST), then close.
			_, _ = io.Copy(io.Discard, c)
		case "server_close":
			// Close first.
		case "half_close":
			// Read until the client's FIN, answer, close.
			if _, err := io.Copy(io.Discard, c); err != nil {
				return err
			}
			if _, err := c.Write([]byte("bye")); err != nil {
				return err
			}
		case "churn":
			// One request per connection, answered, then the server
			// closes (HTTP/1.0 style).
			buf := make([]byte, 4)
			if _, err := io.ReadFull(c, buf); err != nil {
				return err
			}
			if _, err := c.Write([]byte("OK\n")); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unknown mode %q", mode)
		}
		if err := c.Close(); err != nil {
			return err
		}
	}
	if err := ln.Close(); err != nil {
		return err
	}
	fmt.Printf("done\n")
	return nil
}

// helper is a running server helper process.
type serverHelper struct {
	cmd      *exec.Cmd
	lines    chan string
	Port     int
	Listener uint64 // listening socket's cookie
}

// startHelper runs the helper server in its own process on addr
// ("127.0.0.1:port" or "[::1]:port").
func startHelper(t testing.TB, mode, addr string, n int) *serverHelper {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperServer$", "-test.count=1")
	cmd.Env = append(os.Environ(), envHelperMode+"="+mode, envHelperAddr+"="+addr, fmt.Sprintf("%s=%d", envHelperN, n))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &serverHelper{cmd: cmd, lines: make(chan string, 4*n+16)}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
		close(h.lines)
	}()
	f := h.expect(t, "listening")
	h.Port, _ = strconv.Atoi(f[0])
	h.Listener, _ = strconv.ParseUint(f[1], 10, 64)
	return h
}

// PID is the helper process's pid: the true owner of its sockets.
func (h *serverHelper) PID() uint32 { return uint32(h.cmd.Process.Pid) }

// expect waits for the helper's next line, which must start with word, and
// returns its other fields.
func (h *serverHelper) expect(t testing.TB, word string) []string {
	t.Helper()
	select {
	case line, ok := <-h.lines:
		if !ok {
			t.Fatalf("helper exited before %q", word)
		}
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != word {
			t.Fatalf("helper said %q, want %q", line, word)
		}
		return f[1:]
	case <-time.After(10 * time.Second):
		t.Fatalf("helper: no %q within 10s", word)
	}
	return nil
}

// accepted waits for the helper's accept and returns the child's cookie.
func (h *serverHelper) accepted(t testing.TB) uint64 {
	t.Helper()
	f := h.expect(t, "accepted")
	c, _ := strconv.ParseUint(f[0], 10, 64)
	return c
}

// wait waits for "done" and the helper's exit.
func (h *serverHelper) wait(t testing.TB) {
	t.Helper()
	h.expect(t, "done")
	if err := h.cmd.Wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
}

// recorder reads a probe in the background.
type recorder struct {
	p          *probe.Probe
	port       uint16
	mu         sync.Mutex
	evs        []events.Event // this test's events (either port is port) and loss notices
	all        int            // every record read
	others     int            // transitions of other ports (counted, not kept)
	othersSelf int            // of which owned by this process
	err        error
	done       chan struct{}
}

// startRecorder opens a probe filtered to port and reads it in the background.
func startRecorder(t testing.TB, opts probe.Options) *recorder {
	t.Helper()
	p, err := probe.Open(opts)
	if err != nil {
		t.Fatalf("probe.Open: %v", err)
	}
	r := &recorder{p: p, port: opts.Filter.Port, done: make(chan struct{})}
	t.Cleanup(func() { r.stop() })
	go r.run()
	return r
}

func (r *recorder) run() {
	defer close(r.done)
	var ev events.Event
	for {
		err := r.p.Next(&ev)
		if err == io.EOF {
			return
		}
		r.mu.Lock()
		if err != nil {
			r.err = err
			r.mu.Unlock()
			return
		}
		r.all++
		if ev.Kind == events.KindTransition && r.port != 0 && ev.Sport != r.port && ev.Dport != r.port {
			r.others++
			if ev.PID == uint32(os.Getpid()) && ev.OwnerKnown() {
				r.othersSelf++
			}
		}
		// The kernel filter passes events whose local port is still 0
		// (CLOSE->SYN_SENT of any socket): filter again.
		if ev.Kind == events.KindLoss || r.port == 0 || ev.Sport == r.port || ev.Dport == r.port {
			r.evs = append(r.evs, ev)
		}
		r.mu.Unlock()
	}
}

// snapshot returns a copy of the events recorded so far.
func (r *recorder) snapshot() []events.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]events.Event(nil), r.evs...)
}

// waitFor waits until cond holds for the recorded events.
func (r *recorder) waitFor(t testing.TB, what string, cond func([]events.Event) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if cond(r.snapshot()) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; have:\n%s", what, dumpEvents(r.snapshot()))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop drains the ring, closes the probe and returns everything recorded.
func (r *recorder) stop() []events.Event {
	if r.p == nil {
		return r.snapshot()
	}
	r.drain()
	_ = r.p.Close()
	<-r.done
	r.p = nil
	return r.snapshot()
}

// drain stops the probe and waits until Next has returned everything. The
// probe stays open (its counters readable) until stop.
func (r *recorder) drain() {
	_ = r.p.Stop()
	select {
	case <-r.done:
	case <-time.After(5 * time.Second):
		// Everything in the ring was returned before Stop's flush; a
		// reader still waiting now would wait forever (Close unblocks it).
		r.mu.Lock()
		r.err = fmt.Errorf("Next did not return io.EOF within 5s of Stop")
		r.mu.Unlock()
	}
}

// check fails t if reading the probe failed.
func (r *recorder) check(t testing.TB) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		t.Fatalf("reading the probe: %v", r.err)
	}
}

// closed returns a condition: every cookie has reached CLOSE.
func allClosed(cookies ...uint64) func([]events.Event) bool {
	return func(evs []events.Event) bool {
		for _, c := range cookies {
			ok := false
			for i := range evs {
				if evs[i].Kind == events.KindTransition && evs[i].Cookie == c && evs[i].New == events.Close {
					ok = true
				}
			}
			if !ok {
				return false
			}
		}
		return true
	}
}

func dumpEvents(evs []events.Event) string {
	var b strings.Builder
	for i := range evs {
		e := &evs[i]
		if e.Kind == events.KindLoss {
			fmt.Fprintf(&b, "  loss ring=%d recursion=%d\n", e.Lost.Ring, e.Lost.Recursion)
			continue
		}
		fmt.Fprintf(&b, "  cookie=%d %v>%v sport=%d dport=%d pid=%d task=%d flags=%d err=%d\n",
			e.Cookie, e.Old, e.New, e.Sport, e.Dport, e.PID, e.TaskPID, e.Flags, e.Err)
	}
	return b.String()
}

// freePort returns a TCP port that was free a moment ago (listen on 0, close).
func freeLoopbackPort(t testing.TB, network string) int {
	t.Helper()
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	host := "127.0.0.1:0"
	if network == "tcp6" {
		host = "[::1]:0"
	}
	l, err := lc.Listen(context.Background(), network, host)
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// dial connects without MPTCP.
func dialTCP(t testing.TB, network, addr string) *net.TCPConn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	d.SetMultipathTCP(false)
	c, err := d.Dial(network, addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	return c.(*net.TCPConn)
}

// shape is the outcome of one scripted connection shape.
type connShape struct {
	Name      string
	Port      uint16
	Events    []events.Event // port-filtered, as read (no loss notices expected)
	Client    uint64         // client socket cookie
	Server    uint64         // accepted socket cookie (0 for refused)
	Listener  uint64         // listening socket cookie (0 for refused)
	ClientPID uint32
	ServerPID uint32
	Churn     []uint64 // churn: client cookies
	Children  []uint64 // churn: accepted cookies
}

// shapes are the scripted connection shapes, by fixture name.
var shapeNames = []string{"client_close", "server_close", "linger_reset", "refused", "half_close", "ipv6"}

// shapeOptions are the probe options of a shape run: filtered to its port,
// with a large ring polled often, so that a busy host cannot crowd out the
// test's events.
func shapeOptions(port int) probe.Options {
	return probe.Options{RingSize: 64 << 20, PollInterval: 10 * time.Millisecond, Filter: probe.Filter{Port: uint16(port), Comm: shapeComm}}
}

// shapeComm, when set, adds a --comm filter to shape runs: the kernel then
// remembers every socket's owner itself (see TestKernelShapesKernelOwners).
var shapeComm string

// runShape runs one shape under a probe filtered to its port.
func runShape(t testing.TB, name string) *connShape {
	t.Helper()
	return runShapeWith(t, name, nil)
}

// runShapeWith runs one shape; before, when not nil, is called with the
// shape's port once the probe is attached, before any socket is made.
func runShapeWith(t testing.TB, name string, before func(port int)) *connShape {
	t.Helper()
	if name == "refused" {
		return runRefused(t, before)
	}
	network, host := "tcp4", "127.0.0.1"
	if name == "ipv6" {
		network, host = "tcp6", "[::1]"
	}
	n := 1
	if name == "churn" {
		n = 50
	}
	port := freeLoopbackPort(t, network)
	addr := fmt.Sprintf("%s:%d", host, port)
	r := startRecorder(t, shapeOptions(port))
	if before != nil {
		before(port)
	}
	h := startHelper(t, name, addr, n)
	s := &connShape{Name: name, Port: uint16(port), Listener: h.Listener, ClientPID: uint32(os.Getpid()), ServerPID: h.PID()}
	for i := 0; i < n; i++ {
		c := dialTCP(t, network, addr)
		s.Client = probe.CookieOf(c)
		s.Server = h.accepted(t)
		switch name {
		case "client_close", "ipv6":
			c.Close()
		case "server_close":
			if _, err := io.ReadAll(c); err != nil {
				t.Fatal(err)
			}
			c.Close()
		case "linger_reset":
			if err := c.SetLinger(0); err != nil {
				t.Fatal(err)
			}
			c.Close()
		case "half_close":
			if err := c.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(c)
			if err != nil || string(b) != "bye" {
				t.Fatalf("half_close: read %q, %v", b, err)
			}
			c.Close()
		case "churn":
			if _, err := c.Write([]byte("GET\n")); err != nil {
				t.Fatal(err)
			}
			if b, err := io.ReadAll(c); err != nil || string(b) != "OK\n" {
				t.Fatalf("churn: read %q, %v", b, err)
			}
			c.Close()
		}
		s.Churn = append(s.Churn, s.Client)
		s.Children = append(s.Children, s.Server)
	}
	h.wait(t)
	all := append(append([]uint64{h.Listener}, s.Churn...), s.Children...)
	r.waitFor(t, name+" closes", allClosed(all...))
	s.Events = r.stop()
	r.check(t)
	if name != "churn" {
		s.Churn, s.Children = nil, nil
	}
	return s
}

// runRefused connects to a port where a socket is bound but not listening:
// the SYN is answered by RST.
func runRefused(t testing.TB, before func(port int)) *connShape {
	t.Helper()
	// Hold the port: bound, not listening (no transitions).
	hold, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(hold)
	if err := unix.Bind(hold, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(hold)
	if err != nil {
		t.Fatal(err)
	}
	port := sa.(*unix.SockaddrInet4).Port
	r := startRecorder(t, shapeOptions(port))
	if before != nil {
		before(port)
	}
	cookie := testutil.RefusedConnect(t, port)
	r.waitFor(t, "refused close", allClosed(cookie))
	evs := r.stop()
	r.check(t)
	return &connShape{Name: "refused", Port: uint16(port), Events: evs, Client: cookie, ClientPID: uint32(os.Getpid())}
}

// of returns the events of one socket.
func eventsOf(evs []events.Event, cookie uint64) []events.Event {
	var out []events.Event
	for i := range evs {
		if evs[i].Kind == events.KindTransition && evs[i].Cookie == cookie {
			out = append(out, evs[i])
		}
	}
	return out
}
