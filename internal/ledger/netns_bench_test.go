package ledger

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchNetns is a private network namespace holding a pile of loopback
// TIME_WAIT sockets, for benchmarks. It lives on a locked OS thread that
// stays in it until the test binary exits.
type BenchNetns struct {
	Path     string // the namespace file (/proc/PID/task/TID/ns/net)
	Proc     string // a /proc stand-in whose self/ns/net is the namespace (for NewPoller)
	Ino      uint32 // the namespace's inode
	TimeWait int    // TIME_WAIT sockets made
	Made     uint64 // CLOCK_MONOTONIC ns when the last one was made (they last 60 s)
	err      error
}

var (
	benchNS   = map[int]*BenchNetns{}
	benchNSMu sync.Mutex
)

// TestMain removes the bench namespaces' /proc stand-ins when the tests end.
func TestMain(m *testing.M) {
	code := m.Run()
	benchNSMu.Lock()
	for _, b := range benchNS {
		if b.Proc != "" {
			os.RemoveAll(b.Proc)
		}
	}
	benchNSMu.Unlock()
	os.Exit(code)
}

// NewBenchNetns returns a namespace (one per size per test binary, made
// once) with n client-side TIME_WAIT sockets from 127.0.0.2+ toward
// 127.0.0.1:80, plus n/8 server-side ones on 127.0.0.1:81. It fails tb when
// the namespace or the sockets cannot be made, or when they are about to expire.
func NewBenchNetns(tb testing.TB, n int) *BenchNetns {
	tb.Helper()
	benchNSMu.Lock()
	defer benchNSMu.Unlock()
	b := benchNS[n]
	if b == nil {
		b = &BenchNetns{}
		ready := make(chan struct{})
		go b.thread(n, ready)
		<-ready
		benchNS[n] = b
	}
	if b.err != nil {
		tb.Fatal(b.err)
	}
	if age := monoNow() - b.Made; age > 40e9 {
		tb.Fatalf("the bench namespace's TIME_WAIT sockets are %ds old: they expire at 60s", age/1e9)
	}
	return b
}

// thread enters a new namespace on a thread other than the main one (whose
// namespace is the process's, /proc/self/ns/net) and keeps that thread
// alive: the namespace's path names it.
func (b *BenchNetns) thread(n int, ready chan struct{}) {
	runtime.LockOSThread() // never unlocked: the thread dies with the binary
	if unix.Gettid() == unix.Getpid() {
		// Hand over to a goroutine that cannot get this thread while it is locked.
		locked := make(chan struct{})
		go func() {
			runtime.LockOSThread()
			close(locked)
			b.serve(n, ready)
		}()
		<-locked
		runtime.UnlockOSThread()
		return
	}
	b.serve(n, ready)
}

// serve makes the namespace on the current, locked thread and never returns.
func (b *BenchNetns) serve(n int, ready chan struct{}) {
	b.err = b.setup(n)
	close(ready)
	select {}
}

func (b *BenchNetns) setup(n int) error {
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("unshare: %w", err)
	}
	b.Path = fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
	b.Ino = inode(b.Path)
	if err := loUp(); err != nil {
		return err
	}
	for name, v := range map[string]string{"tcp_max_tw_buckets": "4194304", "tcp_tw_reuse": "0"} {
		if err := os.WriteFile("/proc/sys/net/ipv4/"+name, []byte(v), 0o644); err != nil {
			return fmt.Errorf("sysctl %s: %w", name, err)
		}
	}
	proc, err := os.MkdirTemp("", "tcptrace-benchns")
	if err != nil {
		return err
	}
	b.Proc = proc
	if err := os.MkdirAll(filepath.Join(proc, "self", "ns"), 0o755); err != nil {
		return err
	}
	if err := os.Symlink(b.Path, filepath.Join(proc, "self", "ns", "net")); err != nil {
		return err
	}
	if err := os.Symlink("/proc/sys", filepath.Join(proc, "sys")); err != nil {
		return err
	}
	made, err := makeTimeWait([4]byte{127, 0, 0, 1}, 80, n, true)
	if err == nil {
		var m int
		m, err = makeTimeWait([4]byte{127, 0, 0, 1}, 81, n/8, false)
		made += m
	}
	b.TimeWait, b.Made = made, monoNow()
	return err
}

// loUp brings the loopback interface up.
func loUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("lo flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("lo up: %w", err)
	}
	return nil
}

// makeTimeWait makes n loopback connections to dst:port and closes them,
// the client first (its side keeps TIME_WAIT) or the server first.
// Clients bind 127.0.0.2, .3, ... with ports 32768-60999: the default
// ephemeral range, as connect() would pick.
func makeTimeWait(dst [4]byte, port, n int, clientFirst bool) (int, error) {
	l, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(l)
	if err := unix.Bind(l, &unix.SockaddrInet4{Addr: dst, Port: port}); err != nil {
		return 0, fmt.Errorf("bind listener: %w", err)
	}
	if err := unix.Listen(l, 4096); err != nil {
		return 0, err
	}
	const batch = 1000
	const lo, hi = 32768, 60999
	made := 0
	cli, srv := make([]int, 0, batch), make([]int, 0, batch)
	for made < n {
		for len(cli) < batch && made+len(cli) < n {
			i := made + len(cli)
			src := [4]byte{127, 0, 0, byte(2 + i/(hi-lo+1))}
			if port == 81 {
				src[2] = 1 // apart from the client-side ones
			}
			c, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return made, err
			}
			cli = append(cli, c)
			if err := unix.Bind(c, &unix.SockaddrInet4{Addr: src, Port: lo + i%(hi-lo+1)}); err != nil {
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

// benchSize is the TIME_WAIT pile of the benchmarks: TCPTRACE_BENCH_TW or 50000.
func benchSize() int {
	if n, err := strconv.Atoi(os.Getenv("TCPTRACE_BENCH_TW")); err == nil && n > 0 {
		return n
	}
	return 50000
}

// cpuTime returns the process's user+system CPU time in ns.
func cpuTime() int64 {
	var ru unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchSize is benchSize for the package's external tests.
func BenchSize() int { return benchSize() }

// CPUTime is cpuTime for the package's external tests.
func CPUTime() int64 { return cpuTime() }
