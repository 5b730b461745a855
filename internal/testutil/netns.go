package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/tcptrace/tcptrace/internal/nsexec"
)

// Netns is a network namespace made with `ip netns add` for a test: its own
// host, with its loopback up and its own TIME_WAIT sysctls.
type Netns struct {
	Name  string
	Path  string // /run/netns/<Name>
	Inode uint32 // as events carry it in Event.Netns
}

var netnsSeq atomic.Int32

// NewNetns makes a namespace, deleted when tb ends, with loopback up,
// tcp_tw_reuse=0, a raised tcp_max_tw_buckets, ip_local_port_range
// PortLo-PortHi, and then the given sysctls
// (net.ipv4 names without the prefix, e.g. "ip_local_port_range": "40000 40001").
func NewNetns(tb testing.TB, sysctls map[string]string) *Netns {
	tb.Helper()
	n, err := MakeNetns(sysctls)
	if n != nil {
		tb.Cleanup(n.Remove)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// MakeNetns is NewNetns for callers that remove the namespace themselves
// (also on error, when it is not nil).
func MakeNetns(sysctls map[string]string) (*Netns, error) {
	name := fmt.Sprintf("tcptrace-t%d-%d", os.Getpid(), netnsSeq.Add(1))
	if err := ip("netns", "add", name); err != nil {
		return nil, err
	}
	n := &Netns{Name: name, Path: filepath.Join("/run/netns", name)}
	var st unix.Stat_t
	if err := unix.Stat(n.Path, &st); err != nil {
		return n, err
	}
	n.Inode = uint32(st.Ino)
	if err := ip("-n", name, "link", "set", "lo", "up"); err != nil {
		return n, err
	}
	all := map[string]string{"tcp_max_tw_buckets": "4194304", "tcp_tw_reuse": "0",
		"ip_local_port_range": fmt.Sprintf("%d %d", PortLo, PortHi)}
	for k, v := range sysctls {
		all[k] = v
	}
	return n, n.Do(func() error {
		for k, v := range all {
			if err := os.WriteFile("/proc/sys/net/ipv4/"+k, []byte(v), 0o644); err != nil {
				return fmt.Errorf("sysctl %s: %w", k, err)
			}
		}
		return nil
	})
}

// Remove deletes the namespace.
func (n *Netns) Remove() { _ = ip("netns", "del", n.Name) }

// Exec runs a command inside the namespace and returns its output.
func (n *Netns) Exec(name string, args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", n.Name, name}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s in %s: %w: %s", name, strings.Join(args, " "), n.Name, err, out)
	}
	return string(out), nil
}

// Do runs fn on a locked OS thread inside the namespace: the sockets it
// makes are the namespace's (they stay there once made).
func (n *Netns) Do(fn func() error) error {
	target, err := netns.GetFromPath(n.Path)
	if err != nil {
		return err
	}
	defer target.Close()
	var ferr error
	if err := nsexec.In(target, func() { ferr = fn() }); err != nil {
		return err
	}
	return ferr
}

// ip runs ip(8).
func ip(args ...string) error {
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// The ephemeral range of test namespaces: MakeTimeWait binds its clients'
// ports in it, as connect() would pick them there. It lies below the host's
// default range (32768-60999), so that a test filtering on a port the host
// picked for it never sees another test's pile.
const (
	PortLo = 10000
	PortHi = 32767
)

// MakeTimeWait makes n connections to dst:port (a listener it opens) and
// closes them, the client first (its side keeps TIME_WAIT) or the server
// first (the server's side does). Call it inside Netns.Do. Clients bind
// srcBase.2, .3, ... (one source address per PortHi-PortLo+1 ports), so a pile can
// outgrow one address's port range; it returns how many it made.
func MakeTimeWait(srcBase [3]byte, dst [4]byte, port, n int, clientFirst bool) (int, error) {
	l, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(l)
	_ = unix.SetsockoptInt(l, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if err := unix.Bind(l, &unix.SockaddrInet4{Addr: dst, Port: port}); err != nil {
		return 0, fmt.Errorf("bind listener: %w", err)
	}
	if err := unix.Listen(l, 4096); err != nil {
		return 0, err
	}
	const batch = 1000
	made := 0
	cli, srv := make([]int, 0, batch), make([]int, 0, batch)
	defer func() {
		for _, fd := range append(cli, srv...) {
			unix.Close(fd)
		}
	}()
	for made < n {
		for len(cli) < batch && made+len(cli) < n {
			i := made + len(cli)
			src := [4]byte{srcBase[0], srcBase[1], srcBase[2], byte(2 + i/(PortHi-PortLo+1))}
			c, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return made, err
			}
			cli = append(cli, c)
			if err := unix.Bind(c, &unix.SockaddrInet4{Addr: src, Port: PortLo + i%(PortHi-PortLo+1)}); err != nil {
				return made, fmt.Errorf("bind %v: %w", src, err)
			}
			if err := unix.Connect(c, &unix.SockaddrInet4{Addr: dst, Port: port}); err != nil {
				return made, fmt.Errorf("connect: %w", err)
			}
		}
		for range cli {
			s, _, err := unix.Accept4(l, unix.SOCK_CLOEXEC)
			if err != nil {
				return made, fmt.Errorf("accept: %w", err)
			}
			srv = append(srv, s)
		}
		first, second := cli, srv
		if !clientFirst {
			first, second = srv, cli
		}
		for _, fd := range first {
			unix.Close(fd)
		}
		for _, fd := range second {
			unix.Close(fd)
		}
		made += len(cli)
		cli, srv = cli[:0], srv[:0]
	}
	return made, nil
}
