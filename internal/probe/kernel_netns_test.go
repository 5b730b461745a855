package probe_test

// Network namespaces and raw loopback sockets for the timewait tests, which
// change per-namespace sysctls (tcp_fin_timeout, tcp_tw_reuse, the
// ephemeral port range) and so run their sockets in a namespace of their own.

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// testNetns is a network namespace made with `ip netns add`, its lo up.
type testNetns struct {
	name string
	fd   int
}

var netnsSeq atomic.Int32

// newNetns makes a namespace, sets its sysctls ("key=value") and removes
// it at cleanup.
func newNetns(t testing.TB, sysctls ...string) *testNetns {
	t.Helper()
	name := fmt.Sprintf("tcptw%d-%d", os.Getpid(), netnsSeq.Add(1))
	runCmd(t, "ip", "netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	runCmd(t, "ip", "-n", name, "link", "set", "lo", "up")
	for _, s := range sysctls {
		runCmd(t, "ip", "netns", "exec", name, "sysctl", "-q", "-w", s)
	}
	fd, err := unix.Open("/var/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return &testNetns{name: name, fd: fd}
}

func runCmd(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// socket makes a TCP/IPv4 socket in the namespace (nil: the test's own),
// from a thread that enters it and is then discarded. The socket stays in
// the namespace it was made in; any thread may use it.
func (n *testNetns) socket(t *testing.T) int {
	t.Helper()
	var fd int
	err := onLockedThread(func() error {
		if n != nil {
			if err := unix.Setns(n.fd, unix.CLONE_NEWNET); err != nil {
				return fmt.Errorf("setns: %w", err)
			}
		}
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
func (n *testNetns) listen4(t *testing.T, port int) int {
	t.Helper()
	fd := n.socket(t)
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
func (n *testNetns) connect4(t *testing.T, port, from int) (int, error) {
	t.Helper()
	fd := n.socket(t)
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
