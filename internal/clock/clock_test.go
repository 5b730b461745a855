package clock

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestMonoFollowsKernel: Mono is never behind CLOCK_MONOTONIC as the
// kernel reads it, and ahead of it by far less than a microsecond's worth
// of drift over repeated reads.
func TestMonoFollowsKernel(t *testing.T) {
	for range 1000 {
		var ts unix.Timespec
		before := Mono()
		_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
		after := Mono()
		k := uint64(ts.Nano())
		if after < k {
			t.Fatalf("Mono %d is behind the kernel's %d", after, k)
		}
		if before > k+50_000 {
			t.Fatalf("Mono %d is %d ns ahead of the kernel's %d", before, before-k, k)
		}
	}
}
