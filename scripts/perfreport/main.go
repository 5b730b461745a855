// Command perfreport measures tcptrace's cost on this machine, in one run:
//
//   - in-kernel ns per event of tcptrace's program, of an empty program on
//     the same hook (tp_btf/inet_sock_set_state, built here from two
//     instructions: no compiler needed) and of floor programs that only
//     read the clock, only write an 8-byte ring record, or both, from the
//     kernel's BPF run-time stats (held only during extra rounds: they cost
//     each program run two clock reads, so the other figures come from
//     rounds without them);
//   - loopback churn throughput untraced, with the empty program, traced by
//     tcptrace, and traced by a bpftrace one-liner doing the same job
//     (tracepoint:sock:inet_sock_set_state printing each transition);
//   - tcptrace's userspace CPU-seconds per million events, peak RSS (VmHWM)
//     and lost events at the machine's maximum churn with the default ring.
//
// Rounds interleave the variants (the order rotates each round) and the
// table shows medians. Run by scripts/perf-report, which builds tcptrace and
// this program; as root.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

var (
	tcptraceBin = flag.String("tcptrace", "", "tcptrace binary")
	rounds      = flag.Int("rounds", 5, "rounds (each runs every variant once)")
	runFor      = flag.Duration("run", 3*time.Second, "length of one run")
	workers     = flag.Int("workers", runtime.GOMAXPROCS(0), "workload threads")
	bpftraceBin = flag.String("bpftrace", "bpftrace", "bpftrace binary (\"\" to skip)")
)

// Every connection the workload makes: the client connects and aborts
// (SO_LINGER 0), the server reads the reset and closes: 3 transitions each
// side, and no TIME_WAIT, so the rate is sustained.
const perConn = 6

type result struct {
	conns     float64 // connections per second
	kernelNs  float64 // ns per program run (0: no program)
	cpuPerM   float64 // tracer CPU-seconds per million events
	rssMiB    float64
	lost      uint64
	ringLost  uint64 // of lost: ring buffer full (the rest: recursion guard)
	events    uint64
	runs      uint64
	delivered float64 // events shown / generated
}

type variant struct {
	name string
	run  func(port int) (result, error)
}

func main() {
	flag.Parse()
	if *tcptraceBin == "" {
		fmt.Fprintln(os.Stderr, "perfreport: -tcptrace is required")
		os.Exit(2)
	}
	vs := []variant{
		{"untraced", func(port int) (result, error) { return churnOnly(port) }},
		{"empty tp_btf program", runEmpty},
	}
	for _, f := range floors {
		vs = append(vs, variant{f.name, runFloor(f.f)})
	}
	vs = append(vs, []variant{
		{"tcptrace", func(port int) (result, error) { return runTcptrace(port) }},
		{"tcptrace --json", func(port int) (result, error) { return runTcptrace(port, "--json") }},
	}...)
	if *bpftraceBin != "" {
		if _, err := exec.LookPath(*bpftraceBin); err == nil {
			vs = append(vs, variant{"bpftrace one-liner", runBpftrace})
		} else {
			fmt.Fprintf(os.Stderr, "perfreport: %s not found: skipping its variant\n", *bpftraceBin)
		}
	}
	// Throughput, CPU, RSS and losses come from rounds without the
	// kernel's BPF run-time statistics, which cost every program run two
	// clock reads; kernel ns/event from kRounds more rounds with them on.
	all := map[string][]result{}
	kern := map[string][]result{}
	for r := 0; r < *rounds+kRounds(); r++ {
		into := all
		var stats io.Closer
		if r >= *rounds {
			into = kern
			var err error
			if stats, err = ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME)); err != nil {
				fmt.Fprintf(os.Stderr, "perfreport: enabling BPF run-time stats: %v\n", err)
				os.Exit(1)
			}
		}
		for i := range vs {
			v := vs[(i+r)%len(vs)]
			port, err := freePort()
			if err != nil {
				fail(err)
			}
			res, err := v.run(port)
			if err != nil {
				fail(fmt.Errorf("%s: %w", v.name, err))
			}
			fmt.Fprintf(os.Stderr, "round %d %-22s %8.0f conns/s kernel %6.0f ns/event cpu %.3f s/M rss %.1f MiB lost %d (ring %d)\n",
				r+1, v.name, res.conns, res.kernelNs, res.cpuPerM, res.rssMiB, res.lost, res.ringLost)
			into[v.name] = append(into[v.name], res)
		}
		if stats != nil {
			stats.Close()
		}
	}
	report(vs, all, kern)
}

// kRounds is how many rounds measure kernel ns/event.
func kRounds() int { return max(1, (*rounds+1)/2) }

func fail(err error) {
	fmt.Fprintf(os.Stderr, "perfreport: %v\n", err)
	os.Exit(1)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// churn runs the workload on port for the run length and returns conns/s.
func churn(port int) (float64, uint64, error) {
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(context.Background(), "tcp4", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return 0, 0, err
	}
	var accepted atomic.Uint64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() {
				buf := make([]byte, 16)
				for {
					if _, err := c.Read(buf); err != nil {
						break
					}
				}
				c.Close()
			}()
		}
	}()
	var n atomic.Uint64
	var wg sync.WaitGroup
	start := time.Now()
	stop := start.Add(*runFor)
	for w := 0; w < *workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var d net.Dialer
			d.SetMultipathTCP(false)
			for time.Now().Before(stop) {
				c, err := d.Dial("tcp4", ln.Addr().String())
				if err != nil {
					continue
				}
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	time.Sleep(100 * time.Millisecond)
	ln.Close()
	return float64(n.Load()) / el.Seconds(), n.Load(), nil
}

func churnOnly(port int) (result, error) {
	r, _, err := churn(port)
	return result{conns: r}, err
}

func progStats(p *ebpf.Program) (runs uint64, ns time.Duration) {
	st, err := p.Stats()
	if err != nil {
		return 0, 0
	}
	return st.RunCount, st.Runtime
}

// runEmpty attaches a program that returns 0 to the same hook.
func runEmpty(port int) (result, error) {
	return runFloor(floor{})(port)
}

// runProgram attaches prog to the hook and churns.
func runProgram(prog *ebpf.Program, port int) (result, error) {
	l, err := link.AttachTracing(link.TracingOptions{Program: prog})
	if err != nil {
		return result{}, err
	}
	defer l.Close()
	r0, t0 := progStats(prog)
	rate, _, err := churn(port)
	r1, t1 := progStats(prog)
	res := result{conns: rate, runs: r1 - r0}
	if r1 > r0 {
		res.kernelNs = float64(t1-t0) / float64(r1-r0)
	}
	return res, err
}

// programOf finds the BPF program a process holds (fdinfo prog_id).
func programOf(pid int) (*ebpf.Program, error) {
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fdinfo/*", pid))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "prog_id:"); ok {
				id, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
				if err == nil {
					return ebpf.NewProgramFromID(ebpf.ProgramID(id))
				}
			}
		}
	}
	return nil, fmt.Errorf("process %d holds no BPF program", pid)
}

// lastProgramID is the highest loaded program ID now.
func lastProgramID() ebpf.ProgramID {
	var id ebpf.ProgramID
	for {
		next, err := ebpf.ProgramGetNextID(id)
		if err != nil {
			return id
		}
		id = next
	}
}

// newTracepointProgram returns a tracepoint program loaded after ID after,
// or nil.
func newTracepointProgram(after ebpf.ProgramID) *ebpf.Program {
	id := after
	for {
		next, err := ebpf.ProgramGetNextID(id)
		if err != nil {
			return nil
		}
		id = next
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue
		}
		if p.Type() == ebpf.TracePoint {
			return p
		}
		p.Close()
	}
}

func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100, nil
}

func vmHWM(pid int) float64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}

// startTracer starts cmd (stdout to /dev/null) and waits for ready on stderr.
func startTracer(cmd *exec.Cmd, ready string) (*bytes.Buffer, chan struct{}, error) {
	var errb bytes.Buffer
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	pw.Close()
	ok := make(chan bool, 1)
	done := make(chan struct{})
	var mu sync.Mutex
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sent := false
		for sc.Scan() {
			mu.Lock()
			errb.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if !sent && strings.Contains(sc.Text(), ready) {
				sent = true
				ok <- true
			}
		}
		if !sent {
			ok <- false
		}
	}()
	select {
	case good := <-ok:
		if !good {
			cmd.Wait()
			return nil, nil, fmt.Errorf("did not start: %s", errb.String())
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		return nil, nil, fmt.Errorf("did not start within 30s")
	}
	return &errb, done, nil
}

var (
	reEvents = regexp.MustCompile(`(?m)^events\s+(\d+)`)
	reLost   = regexp.MustCompile(`(?m)^lost\s+(\d+) .*ring buffer full (\d+)`)
)

// runTcptrace: tcptrace --port P, output to a pipe that is read and thrown
// away (the summary is read from stderr, or from the last JSON line).
func runTcptrace(port int, extra ...string) (result, error) {
	cmd := exec.Command(*tcptraceBin, append([]string{"--port", strconv.Itoa(port)}, extra...)...)
	var last lastLine
	cmd.Stdout = &last
	errb, done, err := startTracer(cmd, "tracing TCP state changes")
	if err != nil {
		return result{}, err
	}
	defer cmd.Process.Kill()
	pid := cmd.Process.Pid
	prog, err := programOf(pid)
	if err != nil {
		return result{}, err
	}
	defer prog.Close()
	cpu0, _ := procCPU(pid)
	r0, t0 := progStats(prog)
	rate, conns, err := churn(port)
	if err != nil {
		return result{}, err
	}
	time.Sleep(300 * time.Millisecond) // the reader drains
	r1, t1 := progStats(prog)
	cpu1, _ := procCPU(pid)
	rss := vmHWM(pid)
	cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err != nil {
		return result{}, fmt.Errorf("tcptrace: %v: %s", err, errb)
	}
	<-done
	res := result{conns: rate, rssMiB: rss, runs: r1 - r0}
	if r1 > r0 {
		res.kernelNs = float64(t1-t0) / float64(r1-r0)
	}
	if j := last.String(); strings.HasPrefix(j, `{"type":"summary"`) {
		var s struct {
			Events uint64 `json:"events"`
			Lost   struct {
				Ring  uint64 `json:"ring"`
				Total uint64 `json:"total"`
			} `json:"lost"`
		}
		if err := json.Unmarshal([]byte(j), &s); err != nil {
			return result{}, fmt.Errorf("summary %q: %v", j, err)
		}
		res.events, res.lost, res.ringLost = s.Events, s.Lost.Total, s.Lost.Ring
	} else if m := reEvents.FindStringSubmatch(errb.String()); m != nil {
		res.events, _ = strconv.ParseUint(m[1], 10, 64)
	}
	if m := reLost.FindStringSubmatch(errb.String()); m != nil && res.lost == 0 {
		res.lost, _ = strconv.ParseUint(m[1], 10, 64)
		res.ringLost, _ = strconv.ParseUint(m[2], 10, 64)
	}
	if res.events > 0 {
		res.cpuPerM = (cpu1 - cpu0).Seconds() / (float64(res.events) / 1e6)
	}
	res.delivered = float64(res.events) / float64(conns*perConn)
	return res, nil
}

// runBpftrace: the same job as a bpftrace one-liner, output to /dev/null.
func runBpftrace(port int) (result, error) {
	prog := fmt.Sprintf(`tracepoint:sock:inet_sock_set_state /args->sport == %d || args->dport == %d/ { printf("%%d %%s %%d>%%d\n", pid, comm, args->oldstate, args->newstate); }`, port, port)
	before := lastProgramID()
	cmd := exec.Command(*bpftraceBin, "-e", prog)
	var errb bytes.Buffer
	cmd.Stderr = &errb // "Attaching 1 probe..." goes to stdout: /dev/null
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	defer cmd.Process.Kill()
	pid := cmd.Process.Pid
	// Ready once its program is loaded: bpftrace attaches tracepoints with
	// perf events and need not keep the program's descriptor, so look for a
	// tracepoint program loaded since it started.
	var p *ebpf.Program
	for i := 0; ; i++ {
		if p = newTracepointProgram(before); p != nil {
			break
		}
		if i == 300 {
			return result{}, fmt.Errorf("bpftrace loaded no program within 30s: %s", errb.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	defer p.Close()
	cpu0, _ := procCPU(pid)
	r0, t0 := progStats(p)
	rate, conns, err := churn(port)
	if err != nil {
		return result{}, err
	}
	time.Sleep(300 * time.Millisecond)
	r1, t1 := progStats(p)
	cpu1, _ := procCPU(pid)
	rss := vmHWM(pid)
	cmd.Process.Signal(syscall.SIGTERM)
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
	res := result{conns: rate, rssMiB: rss, runs: r1 - r0}
	if r1 > r0 {
		res.kernelNs = float64(t1-t0) / float64(r1-r0)
	}
	ev := float64(conns * perConn)
	res.cpuPerM = (cpu1 - cpu0).Seconds() / (ev / 1e6)
	return res, nil
}

// lastLine is an io.Writer that keeps only the last complete line (the JSON
// summary) and throws the rest away, as a reader of the stream would.
type lastLine struct {
	cur, last []byte
}

func (l *lastLine) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			l.cur = append(l.cur, b...)
			break
		}
		l.cur = append(l.cur, b[:i]...)
		l.last, l.cur = append(l.last[:0], l.cur...), l.cur[:0]
		b = b[i+1:]
	}
	return n, nil
}

func (l *lastLine) String() string { return string(l.last) }

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func col(rs []result, f func(result) float64) float64 {
	var xs []float64
	for _, r := range rs {
		xs = append(xs, f(r))
	}
	return median(xs)
}

func report(vs []variant, all, kern map[string][]result) {
	var uts unix.Utsname
	_ = unix.Uname(&uts)
	untraced := col(all["untraced"], func(r result) float64 { return r.conns })
	empty := col(kern["empty tp_btf program"], func(r result) float64 { return r.kernelNs })
	fmt.Printf("Measured %s on Linux %s, %d CPUs, %d workload threads; %d rounds of %v per variant, interleaved, then %d more with the kernel's BPF run-time statistics on for kernel ns/event (the other columns come from the rounds without them); medians. Workload: loopback connect + abort (SO_LINGER 0) and close, %d transitions per connection.\n\n",
		time.Now().UTC().Format("2006-01-02"), unix.ByteSliceToString(uts.Release[:]), runtime.NumCPU(), *workers, *rounds, *runFor, kRounds(), perConn)
	fmt.Println("| variant | conns/s | vs untraced | kernel ns/event | vs empty program | userspace CPU-s per M events | peak RSS | lost |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	for _, v := range vs {
		rs := all[v.name]
		c := col(rs, func(r result) float64 { return r.conns })
		k := col(kern[v.name], func(r result) float64 { return r.kernelNs })
		row := fmt.Sprintf("| %s | %.0f | %.3f |", v.name, c, c/untraced)
		if k > 0 {
			row += fmt.Sprintf(" %.0f | %.2f× |", k, k/empty)
		} else {
			row += " – | – |"
		}
		if cpu := col(rs, func(r result) float64 { return r.cpuPerM }); cpu > 0 {
			row += fmt.Sprintf(" %.3f | %.1f MiB |", cpu, col(rs, func(r result) float64 { return r.rssMiB }))
		} else {
			row += " – | – |"
		}
		if strings.HasPrefix(v.name, "tcptrace") {
			var lost, ring uint64
			for _, r := range append(rs, kern[v.name]...) {
				lost += r.lost
				ring += r.ringLost
			}
			row += fmt.Sprintf(" %d: ring %d, recursion %d (all rounds) |", lost, ring, lost-ring)
		} else {
			row += " – |"
		}
		fmt.Println(row)
	}
	mark := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**missed**"
	}
	fmt.Println()
	fmt.Println("| target | tcptrace (text) | | tcptrace --json | |")
	fmt.Println("|---|---|---|---|---|")
	type fig struct {
		k, thr, cpu float64
		lost, ring  uint64
	}
	figs := map[string]fig{}
	for _, name := range []string{"tcptrace", "tcptrace --json"} {
		tc := all[name]
		f := fig{
			k:   col(kern[name], func(r result) float64 { return r.kernelNs }),
			thr: col(tc, func(r result) float64 { return r.conns }) / untraced,
			cpu: col(tc, func(r result) float64 { return r.cpuPerM }),
		}
		for _, r := range append(tc, kern[name]...) {
			f.lost += r.lost
			f.ring += r.ringLost
		}
		figs[name] = f
	}
	t, j := figs["tcptrace"], figs["tcptrace --json"]
	fmt.Printf("| kernel cost ≤ 1.5× the empty program (%.0f ns) | %.2f× (%.0f ns) | %s | %.2f× (%.0f ns) | %s |\n", empty, t.k/empty, t.k, mark(t.k <= 1.5*empty), j.k/empty, j.k, mark(j.k <= 1.5*empty))
	fmt.Printf("| throughput ≥ 0.97× untraced | %.3f× | %s | %.3f× | %s |\n", t.thr, mark(t.thr >= 0.97), j.thr, mark(j.thr >= 0.97))
	fmt.Printf("| ≤ 0.25 CPU-s per million events | %.3f | %s | %.3f | %s |\n", t.cpu, mark(t.cpu <= 0.25), j.cpu, mark(j.cpu <= 0.25))
	fmt.Printf("| 0 lost at maximum churn, default ring | %d (ring %d) | %s | %d (ring %d) | %s |\n", t.lost, t.ring, mark(t.lost == 0), j.lost, j.ring, mark(j.lost == 0))
}
