// Package clock reads CLOCK_MONOTONIC, the clock of the kernel's event
// times (bpf_ktime_get_ns).
package clock

import (
	"time"

	"golang.org/x/sys/unix"
)

// The Go runtime's monotonic clock is CLOCK_MONOTONIC read through the
// vDSO; unix.ClockGettime is a system call. Mono reads the runtime's clock
// from a base taken once: CLOCK_MONOTONIC read just after a time.Now, so
// Mono is never behind the kernel's clock, and ahead by at most the
// nanoseconds between the two reads.
var baseTime, baseMono = base()

func base() (time.Time, uint64) {
	t := time.Now()
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return t, uint64(ts.Nano())
}

// Mono returns CLOCK_MONOTONIC in ns, the clock of event times.
func Mono() uint64 { return baseMono + uint64(time.Since(baseTime)) }
