package probe_test

// BenchmarkChurn: loopback connect/close churn, untraced vs traced.
//
// The workload runs in a private network namespace (lo up, ports 1024-65535,
// tcp_tw_reuse=1, 16 loopback destination addresses), one locked OS thread
// per worker making blocking raw syscalls: socket, connect, accept, then the
// first close on one side, read to EOF and close on the other. Every
// connection makes 10 TCP state transitions (5 per socket). Each round runs
// the same workload untraced and traced for TCPTRACE_BENCH_RUN (default 3s)
// each, alternating which goes first.
//
// Tracers:
//   - binary:    the real tcptrace (--json --port N > file) as a subprocess;
//     $TCPTRACE_BIN, or built from ../../cmd/tcptrace (skipped if it does
//     not build yet).
//   - inprocess: probe.Open + events.Tracker in a goroutine rendering lines
//     to io.Discard; its CPU is the reader thread's (RUSAGE_THREAD).
//
// Metrics: conns/s untraced and traced and their ratio; ring-buffer drops and
// recursion misses; tracer CPU-seconds per million events; in-kernel ns per
// program run (BPF_STATS_RUN_TIME held during the run); tracer peak RSS
// (binary only); delivered/expected events.
//
// Environment: TCPTRACE_BENCH_RUN (duration of one run), TCPTRACE_BENCH_WORKERS
// (workload threads, default GOMAXPROCS), TCPTRACE_BENCH_HOSTNS=1 (skip the
// private netns), TCPTRACE_BIN (prebuilt binary), TCPTRACE_BENCH_ARGS (extra
// tracer arguments, space separated), TCPTRACE_BENCH_STATS=0 (no bpf run-time
// stats: they cost two clock reads per program run).

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/probe"
	"github.com/tcptrace/tcptrace/internal/testutil"
)

const transitionsPerConn = 10

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
	nsFd    int // -1: host namespace
	lnFd    int
	port    uint16
	addrs   [][4]byte
	workers int
	runFor  time.Duration
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

func newChurnEnv(b *testing.B) *churnEnv {
	e := &churnEnv{
		nsFd:    -1,
		lnFd:    -1,
		port:    uint16(40000 + os.Getpid()%20000),
		workers: envInt("TCPTRACE_BENCH_WORKERS", runtime.GOMAXPROCS(0)),
		runFor:  envDuration("TCPTRACE_BENCH_RUN", 3*time.Second),
	}
	for i := 1; i <= 16; i++ {
		e.addrs = append(e.addrs, [4]byte{127, 0, 0, byte(i)})
	}
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
	b.Cleanup(func() {
		unix.Close(e.lnFd)
		if e.nsFd >= 0 {
			unix.Close(e.nsFd)
		}
	})
	return e
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

// tracer is a running tcptrace under measurement.
type tracer interface {
	start(b *testing.B, e *churnEnv) // load, attach, be ready for the workload
	stop(b *testing.B) tracerResult  // drain, detach, report
}

type tracerResult struct {
	events    uint64        // transitions delivered to userspace during the workload
	cpu       time.Duration // tracer CPU during the workload and the final drain
	ring      uint64        // ring-buffer reserve failures
	recursion uint64        // recursion misses
	runs      uint64        // program runs (bpf stats)
	runtime   time.Duration // program run time (bpf stats)
	maxRSS    int64         // peak RSS in bytes, 0 when unknown
}

// findPrograms returns the IDs of loaded programs named like ours (the
// kernel keeps 15 bytes of the name).
func findPrograms() map[ebpf.ProgramID]bool {
	ids := map[ebpf.ProgramID]bool{}
	var id ebpf.ProgramID
	for {
		next, err := ebpf.ProgramGetNextID(id)
		if err != nil {
			return ids
		}
		id = next
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue
		}
		if info, err := p.Info(); err == nil && strings.HasPrefix("inet_sock_set_state", info.Name) && info.Name != "" {
			ids[id] = true
		}
		p.Close()
	}
}

func programStats(id ebpf.ProgramID) (*ebpf.ProgramStats, error) {
	p, err := ebpf.NewProgramFromID(id)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	return p.Stats()
}

// binaryTracer runs the tcptrace binary: --json --port N > file.
type binaryTracer struct {
	bin      string
	dir      string
	cmd      *exec.Cmd
	out      string
	stderr   bytes.Buffer
	prog     ebpf.ProgramID
	cpu0     time.Duration
	lines0   uint64
	st0      *ebpf.ProgramStats
	waitErr  error
	exitedCh chan struct{}
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// tcptraceBinary returns $TCPTRACE_BIN or builds cmd/tcptrace once.
func tcptraceBinary(b *testing.B) string {
	if bin := os.Getenv("TCPTRACE_BIN"); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			b.Skipf("TCPTRACE_BIN: %v", err)
		}
		return bin
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tcptrace-bench-bin")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "tcptrace")
		cmd := exec.Command("go", "build", "-o", builtBin, "./cmd/tcptrace")
		cmd.Dir = "../.."
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("%v: %s", err, bytes.TrimSpace(out))
		}
	})
	if buildErr != nil {
		b.Skipf("cmd/tcptrace does not build yet: %v", buildErr)
	}
	return builtBin
}

// procCPU returns utime+stime of a process from /proc/<pid>/stat.
func procCPU(pid int) (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(raw, ')')
	f := strings.Fields(string(raw[i+2:]))
	// fields after ")": state(3) ... utime is field 14, stime 15 (1-based in stat)
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	const hz = 100 // USER_HZ
	return time.Duration(ut+st) * time.Second / hz, nil
}

func countLines(path string) uint64 {
	raw, _ := os.ReadFile(path)
	return uint64(bytes.Count(raw, []byte{'\n'}))
}

func (t *binaryTracer) start(b *testing.B, e *churnEnv) {
	before := findPrograms()
	t.out = filepath.Join(t.dir, fmt.Sprintf("out-%d.jsonl", time.Now().UnixNano()))
	f, err := os.Create(t.out)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	args := []string{"--json", "--port", strconv.Itoa(int(e.port))}
	if extra := os.Getenv("TCPTRACE_BENCH_ARGS"); extra != "" {
		args = append(args, strings.Fields(extra)...)
	}
	t.stderr.Reset()
	t.cmd = exec.Command(t.bin, args...)
	t.cmd.Stdout = f
	t.cmd.Stderr = &t.stderr
	if err := t.cmd.Start(); err != nil {
		b.Fatalf("starting %s: %v", t.bin, err)
	}
	exited := make(chan struct{})
	go func() { t.waitErr = t.cmd.Wait(); close(exited) }()
	// Ready when its program is loaded and a probe connection shows up in
	// its output.
	deadline := time.Now().Add(15 * time.Second)
	probeEnv := *e
	probeEnv.workers, probeEnv.runFor = 1, 20*time.Millisecond
	for t.prog == 0 || countLines(t.out) == 0 {
		select {
		case <-exited:
			b.Fatalf("tcptrace exited early (%v): %s", t.waitErr, t.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			_ = t.cmd.Process.Kill()
			<-exited
			b.Fatalf("tcptrace not ready after 15s (program found: %v, output lines: %d): %s", t.prog != 0, countLines(t.out), t.stderr.String())
		}
		if t.prog == 0 {
			for id := range findPrograms() {
				if !before[id] {
					t.prog = id
				}
			}
		} else {
			probeEnv.run(clientClosesFirst)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // let the probe connections' output settle
	t.exitedCh = exited
	t.cpu0, _ = procCPU(t.cmd.Process.Pid)
	t.lines0 = countLines(t.out)
	t.st0, _ = programStats(t.prog)
}

func (t *binaryTracer) stop(b *testing.B) tracerResult {
	var r tracerResult
	if st, err := programStats(t.prog); err == nil && t.st0 != nil {
		r.runs = st.RunCount - t.st0.RunCount
		r.runtime = st.Runtime - t.st0.Runtime
	}
	_ = t.cmd.Process.Signal(os.Interrupt)
	select {
	case <-t.exitedCh:
	case <-time.After(30 * time.Second):
		_ = t.cmd.Process.Kill()
		<-t.exitedCh
		b.Fatalf("tcptrace did not exit 30s after SIGINT: %s", t.stderr.String())
	}
	if t.waitErr != nil {
		b.Fatalf("tcptrace: %v: %s", t.waitErr, t.stderr.String())
	}
	if ru, ok := t.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.cpu = time.Duration(syscall.TimevalToNsec(ru.Utime)+syscall.TimevalToNsec(ru.Stime)) - t.cpu0
		r.maxRSS = ru.Maxrss << 10
	}
	// Count transitions after the ready point; find the summary.
	f, err := os.Open(t.out)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var line uint64
	var summary map[string]any
	types := map[string]uint64{}
	for sc.Scan() {
		line++
		if line <= t.lines0 {
			continue
		}
		var head struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(sc.Bytes(), &head); err != nil {
			b.Fatalf("tcptrace output line %d is not JSON: %v: %q", line, err, sc.Bytes())
		}
		types[head.Type]++
		if head.Type == "summary" {
			summary = map[string]any{}
			_ = json.Unmarshal(sc.Bytes(), &summary)
		}
	}
	r.events = types["transition"]
	if r.events == 0 { // unknown schema: everything but summary/connection/loss lines
		for k, v := range types {
			if k != "summary" && k != "connection" && k != "conn" && k != "loss" {
				r.events += v
			}
		}
	}
	if summary == nil {
		b.Errorf("tcptrace printed no summary line after SIGINT; line types %v", types)
	} else {
		r.ring, r.recursion = lostCounts(summary)
		if testing.Verbose() {
			b.Logf("summary: %v", summary)
		}
	}
	_ = os.Remove(t.out)
	t.prog = 0
	return r
}

// lostCounts finds the ring and recursion loss counts in the summary line,
// wherever it nests them.
func lostCounts(m map[string]any) (ring, rec uint64) {
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, v := range x {
				walk(prefix+"."+strings.ToLower(k), v)
			}
		case float64:
			if !strings.Contains(prefix, "lost") && !strings.Contains(prefix, "loss") && !strings.Contains(prefix, "drop") {
				return
			}
			switch {
			case strings.Contains(prefix, "ring"):
				ring += uint64(x)
			case strings.Contains(prefix, "recurs"):
				rec += uint64(x)
			}
		}
	}
	walk("", m)
	return ring, rec
}

// inprocTracer runs probe + tracker in this process, rendering to io.Discard.
type inprocTracer struct {
	p    *probe.Probe
	done chan tracerResult
	st0r uint64
	st0t time.Duration
	l0   events.Losses
}

// lineSink renders transitions as text lines, roughly the work of a view.
type lineSink struct {
	w   *bufio.Writer
	buf []byte
}

func (s *lineSink) Transition(t *events.Transition) {
	ev := t.Event
	b := s.buf[:0]
	b = append(b, `{"type":"transition","time":`...)
	b = strconv.AppendUint(b, ev.Time, 10)
	b = append(b, `,"cookie":`...)
	b = strconv.AppendUint(b, ev.Cookie, 10)
	b = append(b, `,"pid":`...)
	b = strconv.AppendUint(b, uint64(ev.PID), 10)
	b = append(b, `,"comm":"`...)
	b = append(b, bytes.TrimRight(ev.Comm[:], "\x00")...)
	b = append(b, `","saddr":"`...)
	b = ev.Saddr.AppendTo(b)
	b = append(b, `","sport":`...)
	b = strconv.AppendUint(b, uint64(ev.Sport), 10)
	b = append(b, `,"daddr":"`...)
	b = ev.Daddr.AppendTo(b)
	b = append(b, `","dport":`...)
	b = strconv.AppendUint(b, uint64(ev.Dport), 10)
	b = append(b, `,"old":"`...)
	b = append(b, t.Old.String()...)
	b = append(b, `","new":"`...)
	b = append(b, t.Shown().String()...)
	b = append(b, `","in_old_ns":`...)
	b = strconv.AppendInt(b, t.InOld, 10)
	b = append(b, "}\n"...)
	s.buf = b
	_, _ = s.w.Write(b)
}
func (s *lineSink) Finished(*events.Conn) {}
func (s *lineSink) Loss(*events.Event)    {}

func (t *inprocTracer) start(b *testing.B, e *churnEnv) {
	p, err := probe.Open(probe.Options{Filter: probe.Filter{Port: e.port}})
	if err != nil {
		b.Fatalf("probe.Open: %v", err)
	}
	t.p = p
	t.st0r, t.st0t, _ = p.ProgramStats()
	t.l0, _ = p.Losses()
	t.done = make(chan tracerResult, 1)
	started := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var ru0, ru1 unix.Rusage
		_ = unix.Getrusage(unix.RUSAGE_THREAD, &ru0)
		close(started)
		sink := &lineSink{w: bufio.NewWriterSize(io.Discard, 64<<10)}
		tr := events.NewTracker(sink, nil, 0)
		var ev events.Event
		var r tracerResult
		for {
			err := p.Next(&ev)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Errorf("probe.Next: %v", err)
				break
			}
			tr.Observe(&ev)
		}
		_ = sink.w.Flush()
		_ = unix.Getrusage(unix.RUSAGE_THREAD, &ru1)
		r.events = tr.Stats().Events
		r.cpu = time.Duration(ru1.Utime.Nano() - ru0.Utime.Nano() + ru1.Stime.Nano() - ru0.Stime.Nano())
		t.done <- r
	}()
	<-started
}

func (t *inprocTracer) stop(b *testing.B) tracerResult {
	runs, rt, _ := t.p.ProgramStats()
	_ = t.p.Stop()
	r := <-t.done
	r.runs, r.runtime = runs-t.st0r, rt-t.st0t
	if l, err := t.p.Losses(); err == nil {
		r.ring, r.recursion = l.Ring-t.l0.Ring, l.Recursion-t.l0.Recursion
	}
	if err := t.p.Close(); err != nil {
		b.Errorf("probe.Close: %v", err)
	}
	return r
}

func BenchmarkChurn(b *testing.B) {
	testutil.RequirePrivileged(b)
	for _, mode := range []closeMode{clientClosesFirst, serverClosesFirst} {
		b.Run(mode.String(), func(b *testing.B) {
			b.Run("binary", func(b *testing.B) {
				bin := tcptraceBinary(b)
				benchChurn(b, mode, &binaryTracer{bin: bin, dir: b.TempDir()})
			})
			b.Run("inprocess", func(b *testing.B) {
				benchChurn(b, mode, &inprocTracer{})
			})
		})
	}
}

func benchChurn(b *testing.B, mode closeMode, tc tracer) {
	e := newChurnEnv(b)
	if os.Getenv("TCPTRACE_BENCH_STATS") != "0" {
		stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
		if err != nil {
			b.Logf("bpf run-time stats unavailable: %v", err)
		} else {
			defer stats.Close()
		}
	}
	// Warm up: the first connections of a namespace are slower.
	e2 := *e
	e2.runFor = 300 * time.Millisecond
	e2.run(mode)

	var untraced, traced churnResult
	var tot tracerResult
	var ratios []float64 // per round: traced rate / untraced rate
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var uRound, tRound float64
		for k := 0; k < 2; k++ {
			if (i+k)%2 == 0 {
				b.StopTimer() // the timer is meaningless here; metrics are reported
				r := e.run(mode)
				b.StartTimer()
				checkRun(b, "untraced", r)
				untraced.conns += r.conns
				untraced.elapsed += r.elapsed
				uRound = float64(r.conns) / r.elapsed.Seconds()
				continue
			}
			b.StopTimer()
			tc.start(b, e)
			b.StartTimer()
			r := e.run(mode)
			b.StopTimer()
			tr := tc.stop(b)
			b.StartTimer()
			checkRun(b, "traced", r)
			traced.conns += r.conns
			traced.elapsed += r.elapsed
			tRound = float64(r.conns) / r.elapsed.Seconds()
			tot.events += tr.events
			tot.cpu += tr.cpu
			tot.ring += tr.ring
			tot.recursion += tr.recursion
			tot.runs += tr.runs
			tot.runtime += tr.runtime
			tot.maxRSS = max(tot.maxRSS, tr.maxRSS)
		}
		ratios = append(ratios, tRound/uRound)
	}
	b.StopTimer()
	uRate := float64(untraced.conns) / untraced.elapsed.Seconds()
	tRate := float64(traced.conns) / traced.elapsed.Seconds()
	b.ReportMetric(uRate, "untraced-conns/s")
	b.ReportMetric(tRate, "traced-conns/s")
	// The median of per-round ratios resists load that comes and goes on
	// a shared machine better than the ratio of totals.
	sort.Float64s(ratios)
	med := ratios[len(ratios)/2]
	if len(ratios)%2 == 0 {
		med = (ratios[len(ratios)/2-1] + med) / 2
	}
	b.ReportMetric(med, "traced/untraced")
	b.ReportMetric(float64(tot.ring), "ring-drops")
	b.ReportMetric(float64(tot.recursion), "recursion-misses")
	want := traced.conns * transitionsPerConn
	b.ReportMetric(float64(tot.events)/float64(want), "delivered/expected")
	if tot.events > 0 {
		b.ReportMetric(tot.cpu.Seconds()/(float64(tot.events)/1e6), "cpu-s/Mevents")
	}
	if tot.runs > 0 {
		b.ReportMetric(float64(tot.runtime.Nanoseconds())/float64(tot.runs), "kernel-ns/event")
	}
	if tot.maxRSS > 0 {
		b.ReportMetric(float64(tot.maxRSS)/(1<<20), "peak-RSS-MiB")
	}
	b.ReportMetric(0, "ns/op")
	b.Logf("%s: per-round traced/untraced %.3f", mode, ratios)
	b.Logf("%s: untraced %d conns in %v, traced %d conns in %v; %d events delivered of %d expected; program runs %d; tracer CPU %v",
		mode, untraced.conns, untraced.elapsed, traced.conns, traced.elapsed, tot.events, want, tot.runs, tot.cpu)
}

func checkRun(b *testing.B, what string, r churnResult) {
	if r.conns == 0 {
		b.Fatalf("%s run made no connections: %v", what, r.firstErr)
	}
	if r.errs > 0 {
		b.Logf("%s run: %d errors, first: %v", what, r.errs, r.firstErr)
	}
}
