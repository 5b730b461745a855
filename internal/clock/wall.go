package clock

import "time"

// Wall maps kernel CLOCK_MONOTONIC ns (event times) to wall-clock time:
// wall ns = mono ns + Offset.
type Wall struct {
	Offset int64          // wall-clock ns minus monotonic ns
	Loc    *time.Location // zone to show times in; nil means time.Local
}

// Live returns the Wall of the running kernel's events, its offset measured now.
func Live() Wall {
	before := time.Now()
	mono := Mono()
	after := time.Now()
	wall := before.UnixNano() + after.Sub(before).Nanoseconds()/2
	return Wall{Offset: wall - int64(mono), Loc: time.Local}
}

// Time returns the wall-clock time of a kernel monotonic timestamp.
func (w Wall) Time(mono uint64) time.Time {
	loc := w.Loc
	if loc == nil {
		loc = time.Local
	}
	return time.Unix(0, int64(mono)+w.Offset).In(loc)
}
