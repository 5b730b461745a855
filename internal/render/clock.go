package render

import (
	"time"

	"golang.org/x/sys/unix"
)

// Clock maps kernel CLOCK_MONOTONIC ns (Event.Time) to wall-clock time:
// wall ns = mono ns + Offset.
type Clock struct {
	Offset int64          // wall-clock ns minus monotonic ns
	Loc    *time.Location // zone to show times in; nil means time.Local
}

// LiveClock returns a Clock for events of the running kernel, its offset
// measured now.
func LiveClock() Clock {
	var ts unix.Timespec
	before := time.Now()
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return Clock{Loc: time.Local}
	}
	after := time.Now()
	wall := before.UnixNano() + after.Sub(before).Nanoseconds()/2
	return Clock{Offset: wall - ts.Nano(), Loc: time.Local}
}

// Wall returns the wall-clock time of a kernel monotonic timestamp.
func (c Clock) Wall(mono uint64) time.Time {
	loc := c.Loc
	if loc == nil {
		loc = time.Local
	}
	return time.Unix(0, int64(mono)+c.Offset).In(loc)
}
