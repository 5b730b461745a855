package capture

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/owners"
	"github.com/tcptrace/tcptrace/internal/probe"
	"github.com/tcptrace/tcptrace/internal/testutil"
)

const samplePath = "testdata/sample.tcpt"

// TestRecordSample records testdata/sample.tcpt with the real probe: a
// connect-per-request churn to one port (client closes first) and one
// connection of each close shape. Re-record with:
//
//	TCPTRACE_RECORD=1 go test ./internal/capture -run TestRecordSample
func TestRecordSample(t *testing.T) {
	if os.Getenv("TCPTRACE_RECORD") != "1" {
		t.Skip("recording the sample capture only with TCPTRACE_RECORD=1")
	}
	testutil.RequirePrivileged(t)
	p, err := probe.Open(probe.Options{RingSize: 64 << 20, PollInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	tmp := samplePath + ".tmp"
	w, err := Create(tmp, Options{Tool: "sample-recorder", Overwrite: true})
	if err != nil {
		t.Fatal(err)
	}
	ports := map[uint16]bool{}
	var mu sync.Mutex
	keep := func(port int) {
		mu.Lock()
		ports[uint16(port)] = true
		mu.Unlock()
	}
	tr := events.NewTracker(&events.Collector{}, owners.New("/proc"), 0)
	done := make(chan error, 1)
	go func() {
		var ev events.Event
		for {
			err := p.Next(&ev)
			if errors.Is(err, io.EOF) {
				done <- nil
				return
			}
			if err != nil {
				done <- err
				return
			}
			mu.Lock()
			ok := ev.Kind == events.KindLoss || ports[ev.Sport] || ports[ev.Dport]
			mu.Unlock()
			if !ok {
				continue
			}
			tr.Observe(&ev)
			if err := w.Write(&ev); err != nil {
				done <- err
				return
			}
		}
	}()
	serve(t, keep, "tcp4", "127.0.0.1", 300, "client_close")
	for _, shape := range []string{"client_close", "server_close", "linger_reset", "half_close"} {
		serve(t, keep, "tcp4", "127.0.0.1", 1, shape)
	}
	serve(t, keep, "tcp6", "::1", 1, "client_close")
	refused(t, keep)
	time.Sleep(200 * time.Millisecond)
	_ = p.Stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		_ = p.Close() // Next may miss io.EOF after a loss notice at the flush
	}
	if l, err := p.Losses(); err == nil {
		w.SetLosses(l)
	}
	n := w.Events()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, samplePath); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(samplePath)
	t.Logf("%s: %d events, %d bytes", samplePath, n, st.Size())
}

// serve runs n connections of one shape against a listener in this process.
func serve(t *testing.T, keep func(int), network, host string, n int, shape string) {
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	l, err := lc.Listen(context.Background(), network, net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	keep(port)
	errs := make(chan error, 1)
	go func() {
		for i := 0; i < n; i++ {
			c, err := l.Accept()
			if err != nil {
				errs <- err
				return
			}
			switch shape {
			case "server_close":
			case "half_close":
				_, _ = io.Copy(io.Discard, c)
				_, _ = c.Write([]byte("bye"))
			default: // wait for the client's FIN or RST
				_, _ = io.Copy(io.Discard, c)
			}
			c.Close()
		}
		errs <- nil
	}()
	d := net.Dialer{Timeout: 5 * time.Second}
	d.SetMultipathTCP(false)
	for i := 0; i < n; i++ {
		c, err := d.Dial(network, net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			t.Fatal(err)
		}
		tc := c.(*net.TCPConn)
		switch shape {
		case "server_close":
			_, _ = io.ReadAll(tc)
		case "linger_reset":
			_ = tc.SetLinger(0)
		case "half_close":
			_ = tc.CloseWrite()
			_, _ = io.ReadAll(tc)
		default:
			_, _ = tc.Write([]byte("GET\n"))
		}
		tc.Close()
	}
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	l.Close()
}

// refused connects to a bound, not listening, port: the SYN is answered by RST.
func refused(t *testing.T, keep func(int)) {
	hold, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(hold)
	if err := unix.Bind(hold, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, _ := unix.Getsockname(hold)
	port := sa.(*unix.SockaddrInet4).Port
	keep(port)
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	err = unix.Connect(fd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}})
	unix.Close(fd)
	if err != unix.ECONNREFUSED {
		t.Fatalf("connect to a bound-only port: %v", err)
	}
}

// TestSample replays the shipped capture: every event decodes, it ended
// cleanly, and it holds the churn and each close shape.
func TestSample(t *testing.T) {
	r, err := Open(samplePath)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var c events.Collector
	tr := events.NewTracker(&c, nil, 0)
	var ev events.Event
	for {
		err := r.Next(&ev)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		tr.Observe(&ev)
	}
	if r.Truncated() != nil || r.Trailer() == nil || len(r.Header().Netns) == 0 || r.Header().Kernel == "" {
		t.Fatalf("truncated %v trailer %v header %+v", r.Truncated(), r.Trailer(), r.Header())
	}
	ends := map[events.End]int{}
	v6 := 0
	for _, cn := range c.Conns {
		ends[cn.End]++
		if cn.Family == unix.AF_INET6 {
			v6++
		}
	}
	if len(c.Conns) < 600 || ends[events.EndReset] == 0 || v6 == 0 {
		t.Fatalf("%d conns, ends %v, %d IPv6", len(c.Conns), ends, v6)
	}
	t.Logf("%d events, %d conns, ends %v, netns %+v", r.Events(), len(c.Conns), ends, r.Header().Netns[0])
}
