package bench

// The tracer interface of BenchmarkChurn and its main tracer, the tcptrace
// binary (the reference, reader and floor tracers have files of their own).

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
)

// tracer is a tracer under measurement.
type tracer interface {
	start(b *testing.B, e *churnEnv) // load, attach, be ready for the workload
	stop(b *testing.B) tracerResult  // drain, detach, report
}

type tracerResult struct {
	events       uint64        // transitions delivered to userspace during the workload
	cpu          time.Duration // tracer CPU during the workload and the final drain
	ring         uint64        // ring-buffer reserve failures
	recursion    uint64        // recursion misses
	runs         uint64        // set_state program runs (bpf stats)
	runtime      time.Duration // run time of every program of the tracer (bpf stats)
	timerRuns    uint64        // timer program runs (bpf stats; tcptrace's)
	timerRuntime time.Duration // their run time
	maxRSS       int64         // peak RSS in bytes, 0 when unknown
	startup      time.Duration // tracer CPU before the workload: loading, self-test, first table dumps
	exit         time.Duration // tracer CPU after its backlog was written: its exit summary and report
}

// ourProgramNames are tcptrace's programs: set_state first, then the timer
// programs.
var ourProgramNames = []string{"inet_sock_set_state", "tw_timer_start", "tw_timer_cancel", "tw_timer_expire"}

// findPrograms returns the IDs of loaded programs named like ours (the
// kernel keeps 15 bytes of the name), each with its index in
// ourProgramNames.
func findPrograms() map[ebpf.ProgramID]int {
	ids := map[ebpf.ProgramID]int{}
	for id := range allPrograms() {
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue
		}
		if info, err := p.Info(); err == nil && info.Name != "" {
			for i, name := range ourProgramNames {
				if strings.HasPrefix(name, info.Name) {
					ids[id] = i
				}
			}
		}
		p.Close()
	}
	return ids
}

// statsSince returns a program's runs, run time and recursion misses
// between two readings of its statistics; zeros when either is missing.
func statsSince(st0, st *ebpf.ProgramStats) (runs uint64, runtime time.Duration, recursion uint64) {
	if st0 == nil || st == nil {
		return 0, 0, 0
	}
	return st.RunCount - st0.RunCount, st.Runtime - st0.Runtime, st.RecursionMisses - st0.RecursionMisses
}

// processPrograms returns the BPF programs a process holds file
// descriptors of (prog_id in /proc/PID/fdinfo).
func processPrograms(pid int) map[ebpf.ProgramID]bool {
	ids := map[ebpf.ProgramID]bool{}
	infos, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fdinfo/*", pid))
	for _, path := range infos {
		raw, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(raw), "\n") {
			if v, ok := strings.CutPrefix(line, "prog_id:"); ok {
				if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32); err == nil {
					ids[ebpf.ProgramID(n)] = true
				}
			}
		}
	}
	return ids
}

func programStats(id ebpf.ProgramID) (*ebpf.ProgramStats, error) {
	p, err := ebpf.NewProgramFromID(id)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	return p.Stats()
}

// ourProcess is a subprocess running tcptrace's BPF program: the binary,
// or the reader.
type ourProcess struct {
	proc   tracerProcess
	prog   ebpf.ProgramID                        // its set_state program
	timers []ebpf.ProgramID                      // its timer programs
	st0    map[ebpf.ProgramID]*ebpf.ProgramStats // its programs' statistics at the ready point
}

// launch starts bin and waits until its program is loaded and a probe
// connection shows up in its output.
func (o *ourProcess) launch(b *testing.B, e *churnEnv, dir, bin string, args ...string) {
	o.proc.start(b, dir, bin, args...)
	// Its programs: those it holds (not another tracer's on the machine).
	find := func() {
		held := processPrograms(o.proc.cmd.Process.Pid)
		for id, i := range findPrograms() {
			switch {
			case !held[id]:
			case i == 0:
				o.prog = id
			case !slices.Contains(o.timers, id):
				o.timers = append(o.timers, id)
			}
		}
	}
	o.prog, o.timers = 0, nil
	o.proc.ready(b, e, 30*time.Second, func() bool {
		find()
		return o.prog != 0
	}, 0)
	find() // timer programs attached after set_state's
	o.st0 = map[ebpf.ProgramID]*ebpf.ProgramStats{}
	for _, id := range append([]ebpf.ProgramID{o.prog}, o.timers...) {
		o.st0[id], _ = programStats(id)
	}
}

// end interrupts the process and returns its program's runs, its CPU,
// peak RSS and start-up; the output is still to be read.
func (o *ourProcess) end(b *testing.B) tracerResult {
	var r tracerResult
	st, _ := programStats(o.prog)
	r.runs, r.runtime, _ = statsSince(o.st0[o.prog], st) // losses: from the process's own report
	for _, id := range o.timers {
		st, _ := programStats(id)
		runs, runtime, _ := statsSince(o.st0[id], st)
		r.timerRuns += runs
		r.timerRuntime += runtime
	}
	r.runtime += r.timerRuntime
	r.cpu, r.maxRSS = o.proc.finish(b, true)
	r.startup, r.exit = o.proc.cpu0, o.proc.exit
	o.prog = 0
	return r
}

// binaryTracer runs the tcptrace binary: --json --port N > file.
type binaryTracer struct {
	bin string
	dir string
	ourProcess
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

// procCPU returns the CPU time of a process so far: the sum of its threads'
// run time in ns (/proc/<pid>/task/*/schedstat), or else utime+stime from
// /proc/<pid>/stat, which counts whole clock ticks and so reads up to two
// ticks (20 ms, several percent of a round) short.
func procCPU(pid int) (time.Duration, error) {
	if tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid)); err == nil && len(tasks) > 0 {
		var sum time.Duration
		for _, t := range tasks {
			raw, err := os.ReadFile(t)
			if err != nil {
				continue // the thread exited
			}
			if f := strings.Fields(string(raw)); len(f) > 0 {
				ns, _ := strconv.ParseInt(f[0], 10, 64)
				sum += time.Duration(ns)
			}
		}
		if sum > 0 {
			return sum, nil
		}
	}
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
	args := []string{"--json", "--port", strconv.Itoa(int(e.port))}
	if extra := os.Getenv("TCPTRACE_BENCH_ARGS"); extra != "" {
		args = append(args, strings.Fields(extra)...)
	}
	t.proc.name = "tcptrace"
	t.launch(b, e, t.dir, t.bin, args...)
}

func (t *binaryTracer) stop(b *testing.B) tracerResult {
	r := t.end(b)
	// Count transitions after the ready point; find the summary.
	f, err := os.Open(t.proc.out)
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
		if line <= t.proc.lines0 {
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
	_ = os.Remove(t.proc.out)
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
