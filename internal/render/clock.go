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

// clockText formats kernel timestamps as Wall(mono).Format("15:04:05.000000")
// does, formatting hours, minutes and seconds once per second.
type clockText struct {
	c   Clock
	ok  bool
	sec int64  // the second hms shows, in Unix time
	hms []byte // "15:04:05"
}

// appendTime appends the wall-clock time of a kernel monotonic timestamp.
func (k *clockText) appendTime(b []byte, mono uint64) []byte {
	sec, frac := splitSec(int64(mono) + k.c.Offset)
	if !k.ok || sec != k.sec {
		loc := k.c.Loc
		if loc == nil {
			loc = time.Local
		}
		k.hms = time.Unix(sec, 0).In(loc).AppendFormat(k.hms[:0], "15:04:05")
		k.sec, k.ok = sec, true
	}
	us := frac / 1000
	hi, mid, lo := 2*(us/10000), 2*(us/100%100), 2*(us%100)
	return append(append(b, k.hms...), '.', pairs[hi], pairs[hi+1], pairs[mid], pairs[mid+1], pairs[lo], pairs[lo+1])
}

// rfcClock formats kernel timestamps as Wall(mono).Format(time.RFC3339Nano)
// does, in quotes, formatting date, clock and zone once per second for the
// latest two seconds (a connection record shows its end and its start).
type rfcClock struct {
	c    Clock
	secs [2]rfcSecond
	next int // the slot to reuse
}

// rfcSecond is one formatted second.
type rfcSecond struct {
	ok     bool
	sec    int64  // Unix time
	prefix []byte // `"2006-01-02T15:04:05`
	zone   []byte // "Z" or "+01:00"
}

// appendTime appends the quoted wall-clock time of a kernel timestamp.
func (k *rfcClock) appendTime(b []byte, mono uint64) []byte {
	ns := int64(mono) + k.c.Offset
	if ns < 0 {
		b = append(b, '"')
		b = k.c.Wall(mono).AppendFormat(b, time.RFC3339Nano)
		return append(b, '"')
	}
	sec, frac := splitSec(ns)
	s := &k.secs[0]
	if !s.ok || s.sec != sec {
		s = &k.secs[1]
		if !s.ok || s.sec != sec {
			s = &k.secs[k.next]
			k.next ^= 1
			t := k.c.Wall(uint64(sec*1e9 - k.c.Offset))
			s.prefix = t.AppendFormat(append(s.prefix[:0], '"'), "2006-01-02T15:04:05")
			s.zone = t.AppendFormat(s.zone[:0], "Z07:00")
			s.sec, s.ok = sec, true
		}
	}
	b = append(b, s.prefix...)
	if frac != 0 {
		p1, p2, p3, p4 := 2*(frac/1e7), 2*(frac/1e5%100), 2*(frac/1e3%100), 2*(frac/10%100)
		b = append(b, '.', pairs[p1], pairs[p1+1], pairs[p2], pairs[p2+1], pairs[p3], pairs[p3+1],
			pairs[p4], pairs[p4+1], byte('0'+frac%10))
		for b[len(b)-1] == '0' {
			b = b[:len(b)-1]
		}
	}
	b = append(b, s.zone...)
	return append(b, '"')
}

// splitSec splits Unix ns into seconds and the ns into that second.
func splitSec(ns int64) (sec int64, frac uint32) {
	if ns >= 0 { // unsigned division is the cheaper
		return int64(uint64(ns) / 1e9), uint32(uint64(ns) % 1e9)
	}
	sec, f := ns/1e9, ns%1e9
	if f < 0 {
		sec, f = sec-1, f+1e9
	}
	return sec, uint32(f)
}
