// Package clock reads CLOCK_MONOTONIC, the clock of the kernel's event
// times (bpf_ktime_get_ns).
package clock

import "golang.org/x/sys/unix"

// Mono returns CLOCK_MONOTONIC in ns, the clock of event times.
func Mono() uint64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}
