package probe_test

import (
	"errors"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"
)

// floorTracer is the cheapest tracer of every transition there can be: a
// tp_btf program that reads the clock and submits an 8-byte record without
// a wakeup (no filter, no fields), and a reader that drains the ring every
// millisecond and looks at nothing. Any tracer that timestamps and delivers
// each transition costs the loop at least this much, so its ratio is the
// loop's ceiling for every other variant.
type floorTracer struct {
	ring *ebpf.Map
	prog *ebpf.Program
	lnk  link.Link
	rd   *ringbuf.Reader
	done chan tracerResult
	st0  *ebpf.ProgramStats
}

// floorProgram returns the floor's instructions: ring = ktime_get_ns().
func floorProgram(ring *ebpf.Map) asm.Instructions {
	return asm.Instructions{
		asm.FnKtimeGetNs.Call(),
		asm.StoreMem(asm.RFP, -8, asm.R0, asm.DWord),
		asm.LoadMapPtr(asm.R1, ring.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -8),
		asm.Mov.Imm(asm.R3, 8),
		asm.Mov.Imm(asm.R4, 1), // BPF_RB_NO_WAKEUP
		asm.FnRingbufOutput.Call(),
		asm.Mov.Imm(asm.R0, 0),
		asm.Return(),
	}
}

func (t *floorTracer) start(b *testing.B, _ *churnEnv) {
	var err error
	t.ring, err = ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.RingBuf, MaxEntries: 4 << 20})
	if err != nil {
		b.Fatalf("floor ring: %v", err)
	}
	t.prog, err = ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "inet_sock_set_s", // counted by findPrograms like ours
		Type:         ebpf.Tracing,
		AttachType:   ebpf.AttachTraceRawTp,
		AttachTo:     "inet_sock_set_state",
		Instructions: floorProgram(t.ring),
		License:      "GPL",
	})
	if err != nil {
		b.Fatalf("floor program: %+v", err)
	}
	if t.lnk, err = link.AttachTracing(link.TracingOptions{Program: t.prog}); err != nil {
		b.Fatalf("attaching the floor program: %v", err)
	}
	if t.rd, err = ringbuf.NewReader(t.ring); err != nil {
		b.Fatalf("floor reader: %v", err)
	}
	t.st0, _ = t.prog.Stats()
	t.done = make(chan tracerResult, 1)
	started := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var ru0, ru1 unix.Rusage
		_ = unix.Getrusage(unix.RUSAGE_THREAD, &ru0)
		close(started)
		var rec ringbuf.Record
		var r tracerResult
		for {
			// The ring reports data whenever it holds some, woken or
			// not: sleep, then read what is there.
			time.Sleep(time.Millisecond)
			t.rd.SetDeadline(time.Now())
			err := t.rd.ReadInto(&rec)
			for ; err == nil; err = t.rd.ReadInto(&rec) {
				r.events++
			}
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				break // closed by stop
			}
		}
		_ = unix.Getrusage(unix.RUSAGE_THREAD, &ru1)
		r.cpu = time.Duration(ru1.Utime.Nano() - ru0.Utime.Nano() + ru1.Stime.Nano() - ru0.Stime.Nano())
		t.done <- r
	}()
	<-started
}

func (t *floorTracer) stop(b *testing.B) tracerResult {
	_ = t.lnk.Close()
	time.Sleep(5 * time.Millisecond) // the last records: drained by the next deadline
	st, _ := t.prog.Stats()
	_ = t.rd.Close()
	r := <-t.done
	r.runs, r.runtime, r.recursion = statsSince(t.st0, st)
	_ = t.prog.Close()
	_ = t.ring.Close()
	return r
}
