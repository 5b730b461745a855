package bench

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
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
	dir  string
	proc tracerProcess
	prog *ebpf.Program
	st0  *ebpf.ProgramStats
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
	prog := fmt.Sprintf(`tracepoint:sock:inet_sock_set_state /args->sport == %d || args->dport == %d/ { printf("%%d %%s %%d>%%d\n", pid, comm, args->oldstate, args->newstate); }`, e.port, e.port)
	t.proc.name = "bpftrace"
	t.proc.start(b, t.dir, bpftraceBinary(b), "-e", prog)
	// Ready once its tracepoint program is loaded and a probe connection
	// shows up in its output, after its "Attaching 1 probe..." line.
	t.proc.ready(b, e, 30*time.Second, func() bool {
		t.prog = newProgram(before, ebpf.TracePoint)
		return t.prog != nil
	}, 1)
	t.st0, _ = t.prog.Stats()
}

func (t *bpftraceTracer) stop(b *testing.B) tracerResult {
	var r tracerResult
	st, _ := t.prog.Stats()
	r.runs, r.runtime, r.recursion = statsSince(t.st0, st)
	t.prog.Close()
	t.prog = nil
	r.cpu, r.maxRSS = t.proc.finish(b, false)
	r.startup, r.exit = t.proc.cpu0, t.proc.exit
	raw, _ := os.ReadFile(t.proc.out)
	for i, l := range bytes.Split(raw, []byte{'\n'}) {
		if uint64(i) >= t.proc.lines0 && bytes.Contains(l, []byte{'>'}) {
			r.events++
		}
	}
	_ = os.Remove(t.proc.out)
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
