package bench

// The churn workload of BenchmarkChurn: a private network namespace and one
// locked thread per CPU making connections.

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

type closeMode int

const (
	clientClosesFirst closeMode = iota
	serverClosesFirst
)

func (m closeMode) String() string {
	if m == clientClosesFirst {
		return "client-closes"
	}
	return "server-closes"
}

// churnEnv is the workload's namespace, listener and parameters.
type churnEnv struct {
	nsFd int   // -1: host namespace
	past []int // earlier namespaces (fresh), open until the benchmark ends
	// movePort: each fresh namespace listens on the next port, so the
	// tracers, filtering on the run's port, do not see the earlier runs'
	// TIME_WAIT expire (60 s later, during another run: in an A/B of two
	// identical builds the one listed first took 1.02-1.10x the CPU).
	// Not with a pile: the pile is on the port.
	movePort bool
	lnFd     int
	port     uint16
	addrs    [][4]byte
	workers  int
	runFor   time.Duration
}

func envDuration(name string, def time.Duration) time.Duration {
	if v := os.Getenv(name); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
}

func envInt(name string, def int) int {
	if v := os.Getenv(name); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			return n
		}
	}
	return def
}

// onLockedThread runs fn on a fresh OS thread that is discarded afterwards,
// so namespace changes never leak to other goroutines.
func onLockedThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		errc <- fn()
	}()
	return <-errc
}

// churnPort is the workload's port (and the piles'): one per process.
func churnPort() uint16 { return uint16(40000 + os.Getpid()%20000) }

func newChurnEnv(b *testing.B) *churnEnv {
	e := &churnEnv{
		nsFd:    -1,
		lnFd:    -1,
		port:    churnPort(),
		workers: envInt("TCPTRACE_BENCH_WORKERS", runtime.GOMAXPROCS(0)),
		runFor:  envDuration("TCPTRACE_BENCH_RUN", 3*time.Second),
	}
	for i := 1; i <= 16; i++ {
		e.addrs = append(e.addrs, [4]byte{127, 0, 0, byte(i)})
	}
	e.setup(b)
	b.Cleanup(func() {
		unix.Close(e.lnFd)
		if e.nsFd >= 0 {
			unix.Close(e.nsFd)
		}
		for _, fd := range e.past {
			unix.Close(fd)
		}
	})
	return e
}

// setup makes the workload's private namespace (unless
// TCPTRACE_BENCH_HOSTNS=1) and its listener.
func (e *churnEnv) setup(b *testing.B) {
	err := onLockedThread(func() error {
		if os.Getenv("TCPTRACE_BENCH_HOSTNS") != "1" {
			if err := e.privateNetns(); err != nil {
				b.Logf("private netns unavailable (%v): churning in the host namespace", err)
			}
		}
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		if err := unix.Bind(fd, &unix.SockaddrInet4{Port: int(e.port)}); err != nil {
			unix.Close(fd)
			return fmt.Errorf("binding port %d: %w", e.port, err)
		}
		if err := unix.Listen(fd, 4096); err != nil {
			unix.Close(fd)
			return err
		}
		e.lnFd = fd
		return nil
	})
	if err != nil {
		b.Fatalf("setting up the churn workload: %v", err)
	}
}

// fresh moves the workload to a new private namespace (and port, with
// movePort) before a run, so
// that every run starts without the TIME_WAIT the earlier ones left (a
// server's, in server closes, 60 s long: a pile in the workload's own
// namespace that grew round by round, read by the tracer when the
// namespace first showed). The earlier namespaces stay open until the
// benchmark ends: closing one would purge its timewait sockets, every
// purge a timer event on the workload's port, during the next run. A short
// warm-up follows: a namespace's first connections are slower.
func (e *churnEnv) fresh(b *testing.B, mode closeMode) {
	if e.nsFd < 0 {
		return
	}
	unix.Close(e.lnFd)
	e.past = append(e.past, e.nsFd)
	e.nsFd, e.lnFd = -1, -1
	if e.movePort {
		e.port = 40000 + (e.port-40000+1)%20000
	}
	e.setup(b)
	w := *e
	w.runFor = 100 * time.Millisecond
	w.run(mode)
}

// privateNetns moves the calling (locked) thread to a new network namespace,
// brings lo up and widens the ephemeral port range.
func (e *churnEnv) privateNetns() error {
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("unshare: %w", err)
	}
	fd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		unix.Close(fd)
		return err
	}
	defer unix.Close(s)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		unix.Close(fd)
		return err
	}
	if err := unix.IoctlIfreq(s, unix.SIOCGIFFLAGS, ifr); err != nil {
		unix.Close(fd)
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(s, unix.SIOCSIFFLAGS, ifr); err != nil {
		unix.Close(fd)
		return fmt.Errorf("lo up: %w", err)
	}
	// /proc/sys/net is the opening thread's namespace.
	for k, v := range map[string]string{
		"net/ipv4/ip_local_port_range": "1024 65535",
		"net/ipv4/tcp_tw_reuse":        "1",
		"net/ipv4/tcp_max_tw_buckets":  "1048576",
	} {
		if err := os.WriteFile("/proc/sys/"+k, []byte(v), 0); err != nil {
			unix.Close(fd)
			return fmt.Errorf("sysctl %s: %w", k, err)
		}
	}
	e.nsFd = fd
	return nil
}

// churnResult is one run of the workload.
type churnResult struct {
	conns    uint64
	errs     uint64
	elapsed  time.Duration
	firstErr error
}

// run churns with e.workers threads for e.runFor.
func (e *churnEnv) run(mode closeMode) churnResult {
	var stop atomic.Bool
	var wg sync.WaitGroup
	counts := make([]uint64, e.workers)
	errs := make([]uint64, e.workers)
	var firstErr atomic.Value
	start := time.Now()
	for w := 0; w < e.workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread() // never unlocked: the thread may be in the private netns
			if e.nsFd >= 0 {
				if err := unix.Setns(e.nsFd, unix.CLONE_NEWNET); err != nil {
					firstErr.CompareAndSwap(nil, err)
					errs[w]++
					return
				}
			}
			n, ne := e.churn(mode, w, &stop, &firstErr)
			counts[w], errs[w] = n, ne
		}()
	}
	time.Sleep(e.runFor)
	stop.Store(true)
	wg.Wait()
	r := churnResult{elapsed: time.Since(start)}
	for w := range counts {
		r.conns += counts[w]
		r.errs += errs[w]
	}
	if v, ok := firstErr.Load().(error); ok {
		r.firstErr = v
	}
	return r
}

// churn is one worker's loop. Every iteration closes one end before it
// blocks, so workers that accept each other's connections cannot deadlock.
func (e *churnEnv) churn(mode closeMode, w int, stop *atomic.Bool, firstErr *atomic.Value) (n, nerr uint64) {
	var buf [64]byte
	drain := func(fd int) {
		for {
			k, err := unix.Read(fd, buf[:])
			if err == unix.EINTR {
				continue
			}
			if k <= 0 {
				return
			}
		}
	}
	sa := &unix.SockaddrInet4{Port: int(e.port)}
	for i := w; !stop.Load(); i++ {
		c, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			firstErr.CompareAndSwap(nil, err)
			nerr++
			continue
		}
		sa.Addr = e.addrs[i%len(e.addrs)]
		for {
			err = unix.Connect(c, sa)
			if err != unix.EINTR {
				break
			}
		}
		if err != nil {
			firstErr.CompareAndSwap(nil, fmt.Errorf("connect: %w", err))
			nerr++
			unix.Close(c)
			time.Sleep(time.Millisecond)
			continue
		}
		var s int
		for {
			s, _, err = unix.Accept4(e.lnFd, unix.SOCK_CLOEXEC)
			if err != unix.EINTR {
				break
			}
		}
		if err != nil {
			firstErr.CompareAndSwap(nil, fmt.Errorf("accept: %w", err))
			nerr++
			unix.Close(c)
			continue
		}
		if mode == clientClosesFirst {
			unix.Close(c)
			drain(s)
			unix.Close(s)
		} else {
			unix.Close(s)
			drain(c)
			unix.Close(c)
		}
		n++
	}
	return n, nerr
}
