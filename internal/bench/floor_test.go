package bench

import (
	"errors"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/tcptrace/tcptrace/internal/probe"
)

// floorTracer is the cheapest tracer of every transition there can be: a
// tp_btf program that reads the clock and submits an 8-byte record without
// a wakeup (no filter, no fields), and a reader that drains the ring every
// millisecond and looks at nothing. Any tracer that timestamps and delivers
// each transition costs the loop at least this much, so its ratio is the
// loop's ceiling for every other variant.
//
// With tw (floor-tw), it also traces timewait sockets the way tcptrace does:
// programs on timer_start, timer_cancel and timer_expire_entry that keep
// only timers whose function is tw_timer_handler and write a 16-byte record
// (the clock twice; not counted as a transition) for each. That is the least an event-driven TIME_WAIT tracer costs:
// the timer tracepoints run for every kernel timer on the host.
type floorTracer struct {
	tw     bool
	ring   *ebpf.Map
	prog   *ebpf.Program
	timers []*ebpf.Program
	lnks   []link.Link
	rd     *ringbuf.Reader
	done   chan tracerResult
	st0    map[*ebpf.Program]*ebpf.ProgramStats
}

// floorProgram returns the floor's instructions: ring = ktime_get_ns().
func floorProgram(ring *ebpf.Map) asm.Instructions {
	return floorRecord(ring, 8)
}

// floorRecord writes the clock to ring, size (8 or 16) bytes without a
// wakeup, and returns 0.
func floorRecord(ring *ebpf.Map, size int32) asm.Instructions {
	return asm.Instructions{
		asm.FnKtimeGetNs.Call(),
		asm.StoreMem(asm.RFP, -8, asm.R0, asm.DWord),
		asm.StoreMem(asm.RFP, -16, asm.R0, asm.DWord),
		asm.LoadMapPtr(asm.R1, ring.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, int32(-size)),
		asm.Mov.Imm(asm.R3, size),
		asm.Mov.Imm(asm.R4, 1), // BPF_RB_NO_WAKEUP
		asm.FnRingbufOutput.Call(),
		asm.Mov.Imm(asm.R0, 0),
		asm.Return(),
	}
}

// floorTimerProgram returns the floor-tw timer programs' instructions: if
// the timer's function (at byte off of struct timer_list) is fn, write the
// floor's record.
func floorTimerProgram(ring *ebpf.Map, off int16, fn uint64) asm.Instructions {
	return append(asm.Instructions{
		asm.LoadMem(asm.R2, asm.R1, 0, asm.DWord),   // the timer (first argument)
		asm.LoadMem(asm.R2, asm.R2, off, asm.DWord), // timer->function
		asm.LoadImm(asm.R3, int64(fn), asm.DWord),
		asm.JEq.Reg(asm.R2, asm.R3, "tw"),
		asm.Mov.Imm(asm.R0, 0),
		asm.Return(),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("tw"),
	}, floorRecord(ring, 16)...)
}

// timerFunctionOffset returns the byte offset of struct timer_list's
// function in this kernel's BTF.
func timerFunctionOffset() (int16, error) {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return 0, err
	}
	var tl *btf.Struct
	if err := spec.TypeByName("timer_list", &tl); err != nil {
		return 0, err
	}
	for _, m := range tl.Members {
		if m.Name == "function" {
			return int16(m.Offset.Bytes()), nil
		}
	}
	return 0, errors.New("struct timer_list has no member function")
}

// attach loads prog of insns on the tp_btf tracepoint to and attaches it.
func (t *floorTracer) attach(b *testing.B, name, to string, insns asm.Instructions) *ebpf.Program {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         name,
		Type:         ebpf.Tracing,
		AttachType:   ebpf.AttachTraceRawTp,
		AttachTo:     to,
		Instructions: insns,
		License:      "GPL",
	})
	if err != nil {
		b.Fatalf("floor program on %s: %+v", to, err)
	}
	lnk, err := link.AttachTracing(link.TracingOptions{Program: prog})
	if err != nil {
		b.Fatalf("attaching the floor program on %s: %v", to, err)
	}
	t.lnks = append(t.lnks, lnk)
	t.st0[prog], _ = prog.Stats()
	return prog
}

func (t *floorTracer) start(b *testing.B, _ *churnEnv) {
	var err error
	t.ring, err = ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.RingBuf, MaxEntries: 4 << 20})
	if err != nil {
		b.Fatalf("floor ring: %v", err)
	}
	t.st0 = map[*ebpf.Program]*ebpf.ProgramStats{}
	t.timers, t.lnks = nil, nil
	if t.tw {
		fn, err := probe.TwTimerHandler()
		if err != nil {
			b.Fatalf("floor-tw: %v", err)
		}
		off, err := timerFunctionOffset()
		if err != nil {
			b.Fatalf("floor-tw: timer_list in the kernel's BTF: %v", err)
		}
		for _, tp := range []string{"timer_start", "timer_cancel", "timer_expire_entry"} {
			t.timers = append(t.timers, t.attach(b, "floor_tw", tp, floorTimerProgram(t.ring, off, fn)))
		}
	}
	// Counted by findPrograms like ours.
	t.prog = t.attach(b, "inet_sock_set_s", "inet_sock_set_state", floorProgram(t.ring))
	if t.rd, err = ringbuf.NewReader(t.ring); err != nil {
		b.Fatalf("floor reader: %v", err)
	}
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
				if len(rec.RawSample) == 8 { // not a floor-tw timer record
					r.events++
				}
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
	for _, l := range t.lnks {
		_ = l.Close()
	}
	time.Sleep(5 * time.Millisecond) // the last records: drained by the next deadline
	st, _ := t.prog.Stats()
	tst := make([]*ebpf.ProgramStats, len(t.timers))
	for i, p := range t.timers {
		tst[i], _ = p.Stats()
	}
	_ = t.rd.Close()
	r := <-t.done
	r.runs, r.runtime, r.recursion = statsSince(t.st0[t.prog], st)
	for i, p := range t.timers {
		runs, runtime, _ := statsSince(t.st0[p], tst[i])
		r.timerRuns += runs
		r.timerRuntime += runtime
		_ = p.Close()
	}
	r.runtime += r.timerRuntime
	_ = t.prog.Close()
	_ = t.ring.Close()
	return r
}
