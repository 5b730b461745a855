package ledger

import (
	"fmt"
	"os"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tcptrace/tcptrace/internal/clock"
	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/testutil"
)

// twBuckets is tcp_max_tw_buckets in test namespaces (testutil.NewNetns's).
const twBuckets = 4194304

// testNetns is a test namespace (testutil.Netns) as this package names
// namespaces, with the pile it holds.
type testNetns struct {
	Netns
	t        *testutil.Netns
	Name     string
	TimeWait int    // TIME_WAIT sockets made by pile
	Made     uint64 // CLOCK_MONOTONIC ns when the last was made (they last 60 s)
}

// newTestNetns makes a namespace deleted at the end of tb.
func newTestNetns(tb testing.TB) *testNetns {
	tb.Helper()
	n, err := makeNetns()
	if n != nil {
		tb.Cleanup(n.remove)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// makeNetns makes a namespace; the caller removes it (also on error, if not nil).
func makeNetns() (*testNetns, error) {
	t, err := testutil.MakeNetns(nil)
	if t == nil {
		return nil, err
	}
	return &testNetns{Netns: Netns{Inode: t.Inode, Path: t.Path}, t: t, Name: t.Name}, err
}

// remove deletes the namespace.
func (n *testNetns) remove() { n.t.Remove() }

// do runs fn inside the namespace: the sockets it makes are the namespace's.
func (n *testNetns) do(fn func() error) error { return n.t.Do(fn) }

// pile makes clients TIME_WAIT sockets from 127.0.0.2+ toward 127.0.0.1:80
// (the client closes first) plus clients/8 server-side ones on 127.0.0.1:81
// (the server closes first, then the client).
func (n *testNetns) pile(clients int) error {
	err := n.do(func() error {
		made, err := testutil.MakeTimeWait([3]byte{127, 0, 0}, [4]byte{127, 0, 0, 1}, 80, clients, true)
		n.TimeWait += made
		if err != nil {
			return err
		}
		made, err = testutil.MakeTimeWait([3]byte{127, 0, 1}, [4]byte{127, 0, 0, 1}, 81, clients/8, false)
		n.TimeWait += made
		return err
	})
	n.Made = clock.Mono()
	return err
}

var (
	benchNS   = map[int]*testNetns{}
	benchNSMu sync.Mutex
)

// TestMain deletes the benchmarks' namespaces when the binary ends.
func TestMain(m *testing.M) {
	code := m.Run()
	benchNSMu.Lock()
	for _, n := range benchNS {
		n.remove()
	}
	benchNSMu.Unlock()
	os.Exit(code)
}

// benchNetns returns a namespace (one per size per test binary, made once)
// holding a pile of clients (see testNetns.pile) and a connection toward
// their destination (testNetns.holdOpen); it fails tb when it cannot
// be made or its sockets are about to expire.
func benchNetns(tb testing.TB, clients int) *testNetns {
	tb.Helper()
	benchNSMu.Lock()
	defer benchNSMu.Unlock()
	n := benchNS[clients]
	if n == nil {
		var err error
		n, err = makeNetns()
		if n != nil {
			benchNS[clients] = n
		}
		if err == nil {
			err = n.pile(clients)
		}
		if err == nil {
			// From the last source of the pile, the one with ports left.
			err = n.holdOpen([4]byte{127, 0, 0, byte(2 + (clients-1)/(testutil.PortHi-testutil.PortLo+1))})
		}
		if err != nil {
			tb.Fatal(err)
		}
	}
	if age := clock.Mono() - n.Made; age > 40e9 {
		tb.Fatalf("the bench namespace's TIME_WAIT sockets are %ds old: they expire at 60s", age/1e9)
	}
	return n
}

// holdOpen opens a connection from src to 127.0.0.1:80 inside the
// namespace, held by this process until it exits: the pile's client-side
// TIME_WAIT sockets from src get it as their hint.
func (n *testNetns) holdOpen(src [4]byte) error {
	return n.do(func() error {
		l, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(l)
		_ = unix.SetsockoptInt(l, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		if err := unix.Bind(l, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: 80}); err != nil {
			return fmt.Errorf("bind: %w", err)
		}
		if err := unix.Listen(l, 1); err != nil {
			return err
		}
		c, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		if err := unix.Bind(c, &unix.SockaddrInet4{Addr: src}); err != nil {
			return fmt.Errorf("bind: %w", err)
		}
		if err := unix.Connect(c, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: 80}); err != nil {
			return fmt.Errorf("connect: %w", err)
		}
		_, _, err = unix.Accept4(l, unix.SOCK_CLOEXEC)
		return err
	})
}

// pileEvents returns the pile's sockets as the TwFound events it feeds.
func pileEvents(p Pile) []events.Event {
	out := make([]events.Event, len(p.Found))
	for i := range p.Found {
		p.Event(i, &out[i])
	}
	return out
}
