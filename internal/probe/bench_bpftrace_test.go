package probe_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
)

// bpftraceTracer is the reference the targets were set against: a
// bpftrace one-liner printing every transition of the workload's port to a
// file, as tcpstates-style tools do (each event submitted with a wakeup).
// It calibrates the workload: on the reference loop it read
// 0.77–0.79 (client closes) and 0.43 (server closes).
type bpftraceTracer struct {
	dir     string
	cmd     *exec.Cmd
	out     string
	stderr  bytes.Buffer
	prog    *ebpf.Program
	cpu0    time.Duration
	lines0  uint64
	st0     *ebpf.ProgramStats
	exited  chan struct{}
	waitErr error
}

// bpftraceBinary returns bpftrace's path, or skips.
func bpftraceBinary(b *testing.B) string {
	bin, err := exec.LookPath("bpftrace")
	if err != nil {
		b.Skip("bpftrace not installed (Debian package bpftrace): no reference variant")
	}
	return bin
}

func (t *bpftraceTracer) start(b *testing.B, e *churnEnv) {
	before := allPrograms()
	t.out = filepath.Join(t.dir, fmt.Sprintf("bpftrace-%d.txt", time.Now().UnixNano()))
	f, err := os.Create(t.out)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	prog := fmt.Sprintf(`tracepoint:sock:inet_sock_set_state /args->sport == %d || args->dport == %d/ { printf("%%d %%s %%d>%%d\n", pid, comm, args->oldstate, args->newstate); }`, e.port, e.port)
	t.stderr.Reset()
	t.cmd = exec.Command(bpftraceBinary(b), "-e", prog)
	t.cmd.Stdout, t.cmd.Stderr = f, &t.stderr
	if err := t.cmd.Start(); err != nil {
		b.Fatalf("starting bpftrace: %v", err)
	}
	t.exited = make(chan struct{})
	go func() { t.waitErr = t.cmd.Wait(); close(t.exited) }()
	// Ready once its tracepoint program is loaded and a probe connection
	// shows up in its output.
	probeEnv := *e
	probeEnv.workers, probeEnv.runFor = 1, 20*time.Millisecond
	for deadline := time.Now().Add(30 * time.Second); t.prog == nil || countLines(t.out) < 2; time.Sleep(50 * time.Millisecond) {
		select {
		case <-t.exited:
			b.Fatalf("bpftrace exited early (%v): %s", t.waitErr, t.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			_ = t.cmd.Process.Kill()
			<-t.exited
			b.Fatalf("bpftrace not ready after 30s: %s", t.stderr.String())
		}
		if t.prog == nil {
			t.prog = newProgram(before, ebpf.TracePoint)
		} else {
			probeEnv.run(clientClosesFirst)
		}
	}
	time.Sleep(200 * time.Millisecond)
	t.cpu0, _ = procCPU(t.cmd.Process.Pid)
	t.lines0 = countLines(t.out)
	t.st0, _ = t.prog.Stats()
}

func (t *bpftraceTracer) stop(b *testing.B) tracerResult {
	var r tracerResult
	if st, err := t.prog.Stats(); err == nil && t.st0 != nil {
		r.runs, r.runtime = st.RunCount-t.st0.RunCount, st.Runtime-t.st0.Runtime
		r.recursion = st.RecursionMisses - t.st0.RecursionMisses
	}
	t.prog.Close()
	t.prog = nil
	_ = t.cmd.Process.Signal(os.Interrupt)
	select {
	case <-t.exited:
	case <-time.After(30 * time.Second):
		_ = t.cmd.Process.Kill()
		<-t.exited
	}
	if ru, ok := t.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.cpu = time.Duration(syscall.TimevalToNsec(ru.Utime)+syscall.TimevalToNsec(ru.Stime)) - t.cpu0
		r.maxRSS = ru.Maxrss << 10
	}
	raw, _ := os.ReadFile(t.out)
	for i, l := range bytes.Split(raw, []byte{'\n'}) {
		if uint64(i) >= t.lines0 && bytes.Contains(l, []byte{'>'}) {
			r.events++
		}
	}
	_ = os.Remove(t.out)
	return r
}

// allPrograms returns the IDs of every loaded BPF program.
func allPrograms() map[ebpf.ProgramID]bool {
	ids := map[ebpf.ProgramID]bool{}
	for id := ebpf.ProgramID(0); ; {
		next, err := ebpf.ProgramGetNextID(id)
		if err != nil {
			return ids
		}
		id, ids[next] = next, true
	}
}

// newProgram opens a program of type typ loaded since before, or returns nil.
func newProgram(before map[ebpf.ProgramID]bool, typ ebpf.ProgramType) *ebpf.Program {
	for id := range allPrograms() {
		if before[id] {
			continue
		}
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue
		}
		if info, err := p.Info(); err == nil && info.Type == typ {
			return p
		}
		p.Close()
	}
	return nil
}
