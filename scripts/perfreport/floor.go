package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/ringbuf"
)

// floor is a minimal program on the hook, built from a few instructions:
// what any tracer there pays for the parts every event needs. With clock it
// reads bpf_ktime_get_ns (a timestamp per event); with ring it writes an
// 8-byte record to a BPF ring buffer (reserve + submit without wakeup),
// drained by a reader polling every 50 ms as tcptrace's does.
type floor struct{ clock, ring bool }

// Floor variants, in the order the table shows them.
var floors = []struct {
	name string
	f    floor
}{
	{"clock read only (bpf_ktime_get_ns)", floor{clock: true}},
	{"8-byte ring record only", floor{ring: true}},
	{"clock read + 8-byte ring record", floor{clock: true, ring: true}},
}

func runFloor(fl floor) func(port int) (result, error) {
	return func(port int) (result, error) {
		var insns asm.Instructions
		var rb *ebpf.Map
		if fl.clock {
			insns = append(insns, asm.FnKtimeGetNs.Call())
		}
		if fl.ring {
			var err error
			rb, err = ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.RingBuf, MaxEntries: 4 << 20})
			if err != nil {
				return result{}, fmt.Errorf("creating a ring buffer: %w", err)
			}
			defer rb.Close()
			insns = append(insns,
				asm.LoadMapPtr(asm.R1, rb.FD()),
				asm.Mov.Imm(asm.R2, 8),
				asm.Mov.Imm(asm.R3, 0),
				asm.FnRingbufReserve.Call(),
				asm.JEq.Imm(asm.R0, 0, "out"),
				asm.Mov.Reg(asm.R1, asm.R0),
				asm.Mov.Imm(asm.R2, 1), // BPF_RB_NO_WAKEUP
				asm.FnRingbufSubmit.Call(),
			)
		}
		insns = append(insns, asm.Mov.Imm(asm.R0, 0).WithSymbol("out"), asm.Return())
		prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
			Name:         "floor_set_state",
			Type:         ebpf.Tracing,
			AttachType:   ebpf.AttachTraceRawTp,
			AttachTo:     "inet_sock_set_state",
			License:      "GPL",
			Instructions: insns,
		})
		if err != nil {
			return result{}, fmt.Errorf("loading a floor program: %w", err)
		}
		defer prog.Close()
		if rb != nil {
			rd, err := ringbuf.NewReader(rb)
			if err != nil {
				return result{}, fmt.Errorf("opening the ring buffer: %w", err)
			}
			done := make(chan struct{})
			go drain(rd, done)
			defer func() { rd.Close(); <-done }()
		}
		return runProgram(prog, port)
	}
}

// drain reads rd until it is closed, waking at least every 50 ms.
func drain(rd *ringbuf.Reader, done chan<- struct{}) {
	defer close(done)
	var rec ringbuf.Record
	for {
		rd.SetDeadline(time.Now().Add(50 * time.Millisecond))
		if err := rd.ReadInto(&rec); errors.Is(err, ringbuf.ErrClosed) {
			return
		}
	}
}
