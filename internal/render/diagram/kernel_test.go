package diagram

// Real-kernel tests of the diagrams: each shape is played on real sockets
// (this process is both ends; simultaneous close in a private netns),
// recorded by the probe, fed through the tracker into a diagram Sink, and
// the drawing must name the right active closer and TIME_WAIT holders.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/events/eventstest"
	"github.com/tcptrace/tcptrace/internal/probe"
	"github.com/tcptrace/tcptrace/internal/render/rendertest"
	"github.com/tcptrace/tcptrace/internal/render/style"
	"github.com/tcptrace/tcptrace/internal/testutil"
)

// drec reads a probe filtered to one port in the background.
type drec struct {
	p    *probe.Probe
	port uint16
	mu   sync.Mutex
	evs  []events.Event
	done chan struct{}
}

func startDRec(t *testing.T, port int) *drec {
	t.Helper()
	p, err := probe.Open(probe.Options{RingSize: 64 << 20, PollInterval: 10 * time.Millisecond,
		Filter: probe.Filter{Port: uint16(port)}})
	if err != nil {
		t.Fatalf("probe.Open: %v", err)
	}
	r := &drec{p: p, port: uint16(port), done: make(chan struct{})}
	t.Cleanup(func() { r.stop() })
	go func() {
		defer close(r.done)
		var ev events.Event
		for {
			if err := p.Next(&ev); err != nil {
				return
			}
			if ev.Kind == events.KindLoss || ev.Sport == r.port || ev.Dport == r.port {
				r.mu.Lock()
				r.evs = append(r.evs, ev)
				r.mu.Unlock()
			}
		}
	}()
	return r
}

// waitClosed waits until every cookie has reached CLOSE.
func (r *drec) waitClosed(t *testing.T, cookies ...uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.mu.Lock()
		n := 0
		for _, c := range cookies {
			for i := range r.evs {
				if r.evs[i].Cookie == c && r.evs[i].New == events.Close && r.evs[i].Kind == events.KindTransition {
					n++
					break
				}
			}
		}
		r.mu.Unlock()
		if n == len(cookies) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %d sockets to close", len(cookies))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop drains and closes the probe and returns what was recorded.
func (r *drec) stop() []events.Event {
	if r.p != nil {
		_ = r.p.Stop()
		select {
		case <-r.done:
		case <-time.After(time.Second):
		}
		_ = r.p.Close()
		<-r.done
		r.p = nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]events.Event(nil), r.evs...)
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l := listenTCP(t, "127.0.0.1:0")
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func listenTCP(t *testing.T, addr string) *net.TCPListener {
	t.Helper()
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	l, err := lc.Listen(context.Background(), "tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	return l.(*net.TCPListener)
}

// pairConn connects to l and accepts: (client, server).
func pairConn(t *testing.T, l *net.TCPListener) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	d.SetMultipathTCP(false)
	c, err := d.Dial("tcp4", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	return c.(*net.TCPConn), s
}

// played is a shape's recording and what its diagram must say.
type played struct {
	evs      []events.Event
	client   string   // the client's local endpoint
	closer   string   // in the "active closer:" line ("" when none)
	timeWait []string // in the "TIME_WAIT:" line
	also     []string // elsewhere in the drawing
}

// play runs one shape on the real kernel.
func play(t *testing.T, name string) *played {
	t.Helper()
	if name == "simultaneous" {
		return playSimultaneous(t)
	}
	port := freePort(t)
	r := startDRec(t, port)
	if name == "refused" {
		return playRefused(t, r, port)
	}
	l := listenTCP(t, fmt.Sprintf("127.0.0.1:%d", port))
	defer l.Close()
	if name == "preexisting" {
		r.stop()
	}
	c, s := pairConn(t, l)
	cc, sc := probe.CookieOf(c), probe.CookieOf(s)
	if name == "preexisting" {
		r = startDRec(t, port)
	}
	p := &played{client: c.LocalAddr().String()}
	switch name {
	case "client_close", "preexisting":
		c.Close()
		_, _ = io.Copy(io.Discard, s)
		s.Close()
		p.closer, p.timeWait = p.client, []string{p.client}
	case "server_close":
		s.Close()
		_, _ = io.Copy(io.Discard, c)
		c.Close()
		p.closer, p.timeWait = "SERVER", []string{"SERVER"}
	case "linger_reset":
		if err := c.SetLinger(0); err != nil {
			t.Fatal(err)
		}
		c.Close()
		_, _ = io.Copy(io.Discard, s)
		s.Close()
		p.timeWait, p.also = []string{"none"}, []string{"aborted by RST from CLIENT " + p.client, " RST "}
	case "half_close":
		if err := c.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, s)
		_, _ = s.Write([]byte("bye"))
		s.Close()
		if b, _ := io.ReadAll(c); string(b) != "bye" {
			t.Fatalf("half_close: read %q", b)
		}
		c.Close()
		p.closer, p.timeWait = "CLIENT", []string{p.client}
	default:
		t.Fatalf("unknown shape %q", name)
	}
	if name == "preexisting" {
		p.also = []string{"already open when tracing started"}
	}
	r.waitClosed(t, cc, sc)
	p.evs = r.stop()
	return p
}

// playRefused connects to a port bound but not listening.
func playRefused(t *testing.T, r *drec, port int) *played {
	t.Helper()
	hold, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(hold)
	if err := unix.Bind(hold, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	cookie := testutil.RefusedConnect(t, port)
	r.waitClosed(t, cookie)
	return &played{evs: r.stop(), timeWait: []string{"none"},
		also: []string{"refused: the SYN was answered by RST", "SERVER (inferred)"}}
}

// run sh runs a command, failing t with its output.
func runCmd(t *testing.T, stdin string, args ...string) {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin = strings.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// inNetns runs fn on an OS thread switched into the named netns; the thread
// is never returned to the scheduler.
func inNetns(t *testing.T, ns string, fn func() error) {
	t.Helper()
	f, err := os.Open(filepath.Join("/var/run/netns", ns))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // not unlocked: the thread exits with the goroutine
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// checkDrawing runs the shape's events through a tracker into a Diagrams
// sink and checks what the drawing says about closer and TIME_WAIT.
func checkDrawing(t *testing.T, p *played) string {
	t.Helper()
	var buf bytes.Buffer
	d := New(&buf, style.Options{Width: 80}, Select{})
	tr := events.NewTracker(d, nil, 0)
	for i := range p.evs {
		tr.Observe(&p.evs[i])
	}
	if err := d.Flush(); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if n := strings.Count(out, "\nTCP ") + strings.Count(out[:min(4, len(out))], "TCP "); n != 1 {
		t.Errorf("%d diagrams, want 1:\n%s", n, out)
	}
	line := func(prefix string) string {
		for _, l := range strings.Split(strings.ReplaceAll(out, "\n    ", " "), "\n") {
			if i := strings.Index(l, prefix); i >= 0 {
				return l[i:]
			}
		}
		return ""
	}
	if p.closer != "" && !strings.Contains(line("active closer:"), p.closer) {
		t.Errorf("active closer line %q does not name %q:\n%s", line("active closer:"), p.closer, out)
	}
	for _, w := range p.timeWait {
		if !strings.Contains(line("TIME_WAIT:"), w) {
			t.Errorf("TIME_WAIT line %q does not name %q:\n%s", line("TIME_WAIT:"), w, out)
		}
	}
	for _, w := range p.also {
		if !strings.Contains(strings.ReplaceAll(out, "\n    ", " "), w) {
			t.Errorf("drawing lacks %q:\n%s", w, out)
		}
	}
	rendertest.CheckWidth(t, out, 80)
	checkForward(t, out)
	return out
}

// kernelShapes are the shapes played on the real kernel.
var kernelShapes = []string{"client_close", "server_close", "simultaneous", "linger_reset", "refused", "half_close", "preexisting"}

func TestKernelDiagrams(t *testing.T) {
	testutil.RequirePrivileged(t)
	for _, name := range kernelShapes {
		t.Run(name, func(t *testing.T) {
			out := checkDrawing(t, play(t, name))
			t.Logf("\n%s", out)
		})
	}
}

// TestRecordDiagramFixtures records the shapes the probe package does not:
// simultaneous close and a connection open before tracing started, into
// internal/events/testdata. Run with TCPTRACE_RECORD=1.
func TestRecordDiagramFixtures(t *testing.T) {
	if os.Getenv("TCPTRACE_RECORD") != "1" {
		t.Skip("recording fixtures only with TCPTRACE_RECORD=1")
	}
	testutil.RequirePrivileged(t)
	for _, name := range []string{"simultaneous", "preexisting"} {
		t.Run(name, func(t *testing.T) {
			p := play(t, name)
			checkDrawing(t, p)
			var buf bytes.Buffer
			if err := eventstest.WriteJSONL(&buf, p.evs); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join("..", "..", "events", "testdata", name+".jsonl"), buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		})
	}
}
