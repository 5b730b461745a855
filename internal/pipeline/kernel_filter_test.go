package pipeline

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcptrace/tcptrace/internal/diagnosis"
	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/probe"
	"github.com/tcptrace/tcptrace/internal/testutil"
)

// Ports of the filter test, outside every namespace's ephemeral range and
// used by no other test (every test's namespaces are read at start).
const (
	portA = 7031 // the one filtered on
	portB = 7032 // the other one
	portC = 7033 // nothing goes there
)

// spy is the live source, counting the timewait moves toward portB.
type spy struct {
	*Live
	moves int
}

func (s *spy) Next(ev *events.Event) error {
	err := s.Live.Next(ev)
	if err == nil && ev.Kind == events.KindTimeWait && ev.TwOp == events.TwMove && ev.Dport == portB {
		s.moves++
	}
	return err
}

// TestLiveFilterTimeWait traces real TIME_WAIT toward two ports, in a
// namespace of its own, with a filter on one of them (`report --port A`:
// the kernel filters too) and on it and a port nobody uses (`--port A
// --port C`: userspace alone filters), and checks that the report, its
// namespace counts and the start-up read count only port A: the pile read
// at start, the sockets made while tracing, and not the orphan toward B
// whose move to TIME_WAIT the kernel reports after its start was filtered out.
func TestLiveFilterTimeWait(t *testing.T) {
	testutil.RequirePrivileged(t)
	for _, ports := range [][]uint16{{portA}, {portA, portC}} {
		t.Run(fmt.Sprint(ports), func(t *testing.T) { liveFilter(t, events.Filter{Ports: ports}) })
	}
}

func liveFilter(t *testing.T, f events.Filter) {
	ns := testutil.NewNetns(t, nil)
	const pileA, pileB, liveA, liveB = 20, 30, 15, 25
	err := ns.Do(func() error {
		if _, err := testutil.MakeTimeWait([3]byte{127, 0, 1}, [4]byte{127, 0, 0, 1}, portA, pileA, true); err != nil {
			return err
		}
		_, err := testutil.MakeTimeWait([3]byte{127, 0, 2}, [4]byte{127, 0, 0, 1}, portB, pileB, true)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var kf probe.Filter
	kf.Port, kf.Host = f.Kernel()
	var log bytes.Buffer
	read := make(chan struct{})
	live, err := OpenLive(LiveOptions{Probe: probe.Options{Filter: kf}, Log: &log, OnPileRead: func() { close(read) }})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	src := &spy{Live: live}
	p := New(src, Config{Filter: f})
	done := make(chan error, 1)
	go func() { done <- p.Run() }()
	select { // what the read finds predates tracing: sockets made after it do not
	case <-read:
	case <-time.After(20 * time.Second):
		t.Fatal("the start-up read did not end within 20s")
	}

	var srv int // the server side of the orphan toward portB
	err = ns.Do(func() error {
		if _, err := testutil.MakeTimeWait([3]byte{127, 0, 3}, [4]byte{127, 0, 0, 1}, portA, liveA, true); err != nil {
			return err
		}
		if _, err := testutil.MakeTimeWait([3]byte{127, 0, 4}, [4]byte{127, 0, 0, 1}, portB, liveB, true); err != nil {
			return err
		}
		var err error
		srv, err = orphan([4]byte{127, 0, 5, 2}, portB)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// The peer's FIN moves the orphan to TIME_WAIT; seconds later, so
	// that its timer leaves its timer-wheel bucket and the kernel says so.
	time.Sleep(5 * time.Second)
	unix.Close(srv)
	time.Sleep(300 * time.Millisecond)
	live.Stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	rep := p.Report()

	if _, host := f.Kernel(); len(f.Ports) > 1 && !host.IsValid() && src.moves == 0 {
		t.Error("the kernel reported no move to TIME_WAIT of the orphan toward the other port: the test proves nothing")
	}
	held := 0
	for _, r := range rep.TimeWait {
		if r.Dest.Dport != portA && r.Dest.Lport != portA {
			t.Errorf("a TIME_WAIT row toward another port: %+v", r)
		}
		if r.Dest.Netns == ns.Inode {
			held += r.Count + r.FinWait2
		}
	}
	if held != pileA+liveA {
		t.Errorf("%d TIME_WAIT toward port %d in the test's namespace, want %d (%d read at start, %d made while tracing)",
			held, portA, pileA+liveA, pileA, liveA)
	}
	var row *diagnosis.NetnsRow
	for i := range rep.Namespaces {
		if rep.Namespaces[i].Netns == ns.Inode {
			row = &rep.Namespaces[i]
		}
	}
	if row == nil || row.TimeWait != pileA+liveA || row.FinWait2 != 0 || row.Unknown != pileA {
		t.Errorf("the namespace's row %+v, want %d TIME_WAIT, %d of them predating tracing", row, pileA+liveA, pileA)
	}
	want := fmt.Sprintf(": %d TIME_WAIT and 0 orphaned FIN_WAIT2 sockets predate tracing", pileA)
	if !strings.Contains(log.String(), want) {
		t.Errorf("the start-up read's line does not say %q:\n%s", want, log.String())
	}
	for _, r := range rep.Forecasts {
		if r.Dest.Dport != portA && r.Dest.Lport != portA {
			t.Errorf("a forecast toward another port: %+v", r)
		}
	}
}

// orphan connects from src to 127.0.0.1:port (a listener it opens) and
// closes the client while the server holds on: the client's end becomes
// an orphaned FIN_WAIT2 timewait socket until the server closes (the
// returned fd). Call it inside Netns.Do.
func orphan(src [4]byte, port int) (int, error) {
	l, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	defer unix.Close(l)
	_ = unix.SetsockoptInt(l, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if err := unix.Bind(l, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: port}); err != nil {
		return -1, err
	}
	if err := unix.Listen(l, 8); err != nil {
		return -1, err
	}
	c, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := unix.Bind(c, &unix.SockaddrInet4{Addr: src, Port: testutil.PortLo}); err != nil {
		unix.Close(c)
		return -1, err
	}
	if err := unix.Connect(c, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: port}); err != nil {
		unix.Close(c)
		return -1, err
	}
	s, _, err := unix.Accept4(l, unix.SOCK_CLOEXEC)
	unix.Close(c)
	return s, err
}
