package probe_test

// Raw loopback sockets for the timewait tests, which change per-namespace
// sysctls (tcp_fin_timeout, tcp_tw_reuse, the ephemeral port range) and so
// run their sockets in a namespace of their own (testutil.NewNetns).

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tcptrace/tcptrace/internal/testutil"
)

// socket makes a TCP/IPv4 socket in the namespace. The socket stays in
// the namespace it was made in; any thread may use it.
func socket(t *testing.T, ns *testutil.Netns) int {
	t.Helper()
	var fd int
	err := ns.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	keepFd(t, fd)
	return fd
}

// openFds are the sockets the tests have not closed: closed at cleanup.
var openFds sync.Map

func keepFd(t *testing.T, fd int) {
	openFds.Store(fd, true)
	t.Cleanup(func() {
		if _, ok := openFds.LoadAndDelete(fd); ok {
			unix.Close(fd)
		}
	})
}

// closeFd closes a socket of keepFd's.
func closeFd(fd int) {
	if _, ok := openFds.LoadAndDelete(fd); ok {
		unix.Close(fd)
	}
}

var loopback4 = [4]byte{127, 0, 0, 1}

// listen4 listens on 127.0.0.1:port in the namespace.
func listen4(t *testing.T, ns *testutil.Netns, port int) int {
	t.Helper()
	fd := socket(t, ns)
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: loopback4, Port: port}); err != nil {
		t.Fatalf("bind :%d: %v", port, err)
	}
	if err := unix.Listen(fd, 64); err != nil {
		t.Fatal(err)
	}
	return fd
}

// connect4 connects to 127.0.0.1:port from the namespace, from local port
// from (SO_REUSEADDR) unless 0.
func connect4(t *testing.T, ns *testutil.Netns, port, from int) (int, error) {
	t.Helper()
	fd := socket(t, ns)
	if from != 0 {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: loopback4, Port: from}); err != nil {
			t.Fatalf("bind :%d: %v", from, err)
		}
	}
	return fd, unix.Connect(fd, &unix.SockaddrInet4{Addr: loopback4, Port: port})
}

// accept4 accepts one connection.
func accept4(t *testing.T, ln int) int {
	t.Helper()
	fd, _, err := unix.Accept4(ln, unix.SOCK_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	keepFd(t, fd)
	return fd
}

// readEOF reads until the peer's FIN.
func readEOF(t *testing.T, fd int) {
	t.Helper()
	buf := make([]byte, 512)
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if n == 0 {
			return
		}
	}
}

// fdCookie returns a socket's cookie.
func fdCookie(t *testing.T, fd int) uint64 {
	t.Helper()
	c, err := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_COOKIE)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// fdPort returns a socket's local port.
func fdPort(t *testing.T, fd int) int {
	t.Helper()
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return sa.(*unix.SockaddrInet4).Port
}

// ssState returns the state and timer of the TCP sockets of namespace ns
// with local port port, as ss shows them ("FIN-WAIT-2 ... timer:(timewait,...)").
func ssState(t *testing.T, ns *testutil.Netns, port int) string {
	t.Helper()
	out, err := ns.Exec("ss", "-Htano", "sport", "=", fmt.Sprintf(":%d", port))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}
