package main

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

// TestMemLimitFollowsLiveHeap: the soft limit starts at its floor, rises
// to the runtime's other memory plus 1.5 × a live heap that outgrew it, so a
// big table is not collected back to back, and comes back down near the
// floor when the heap shrinks.
func TestMemLimitFollowsLiveHeap(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	const floor = 8 << 20
	m := newMemLimit(floor)
	if got := debug.SetMemoryLimit(-1); got != floor {
		t.Fatalf("limit %d after start, want the floor %d", got, floor)
	}
	live := make([]byte, 64<<20)
	for i := range live {
		live[i] = byte(i)
	}
	runtime.GC()
	m.last = time.Time{}
	m.adjust()
	if got := debug.SetMemoryLimit(-1); got < 96<<20 {
		t.Errorf("limit %d MiB with 64 MiB live, want at least 96", got>>20)
	}
	runtime.KeepAlive(live)
	live = nil
	runtime.GC()
	m.last = time.Time{}
	m.adjust()
	if got := debug.SetMemoryLimit(-1); got < floor || got >= 2*floor {
		t.Errorf("limit %d after the live heap shrank, want the floor %d or a little more (the runtime's own memory)", got, floor)
	}
	t.Setenv("GOMEMLIMIT", "1GiB")
	if newMemLimit(floor) != nil {
		t.Error("GOMEMLIMIT set, and the limit is still managed")
	}
}
