package bench

// Other work on the machine during a benchmark: other tracers' programs
// run for every event of the workload (traced and untraced alike), and
// other processes take CPU from the rounds. BenchmarkChurn notes both
// before each round, so a table built on a busy machine says so.

import (
	"github.com/cilium/ebpf"
)

// noise is what a benchmark saw of other work before its rounds.
type noise struct {
	rounds  int // rounds
	busy    int // rounds the machine was not quiet before (see waitQuiet)
	foreign int // most tracing programs of others loaded before a round
}

// check waits for the machine to quiet down (up to 2 s) before a round and
// notes whether it did and how many tracing programs others have loaded.
// None of the benchmark's own tracers runs at that point.
func (n *noise) check() {
	n.rounds++
	if !waitQuiet(2e9) {
		n.busy++
	}
	n.foreign = max(n.foreign, foreignTracers())
}

// foreignTracers counts loaded tracing programs (tp_btf, tracepoint, raw
// tracepoint, kprobe).
func foreignTracers() int {
	count := 0
	for id := range allPrograms() {
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue
		}
		if info, err := p.Info(); err == nil {
			switch info.Type {
			case ebpf.Tracing, ebpf.TracePoint, ebpf.RawTracepoint, ebpf.Kprobe:
				count++
			}
		}
		p.Close()
	}
	return count
}
