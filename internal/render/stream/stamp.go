package stream

import (
	"time"

	"github.com/tcptrace/tcptrace/internal/clock"
)

// stamps formats kernel timestamps as wall-clock times. Formatting a time
// costs as much as the rest of a line, and a stream's times mostly share
// their second: what comes before the fraction of a second (head) and
// after it (tail) is formatted once per second, the fraction by the views.
// The latest second is kept, and an earlier one apart (a connection's
// start, in its record written at its end).
type stamps struct {
	loc        *time.Location
	offset     int64  // wall-clock ns minus monotonic ns
	head, tail string // layouts before and after the fraction
	latest     second
	earlier    second
}

// second is one second, formatted.
type second struct {
	ok         bool
	sec        int64 // Unix time
	head, tail []byte
}

// newStamps returns the stamps of c, formatting seconds in head and tail.
func newStamps(c clock.Wall, head, tail string) stamps {
	return stamps{loc: c.Time(0).Location(), offset: c.Offset, head: head, tail: tail}
}

// split returns the head and tail of mono's second, valid until the next
// call, and the ns into that second.
func (s *stamps) split(mono uint64) (head, tail []byte, frac uint32) {
	ns := int64(mono) + s.offset
	sec, f := ns/1e9, ns%1e9
	if f < 0 {
		sec, f = sec-1, f+1e9
	}
	at := &s.latest
	if at.ok && sec < at.sec {
		at = &s.earlier
	}
	if !at.ok || at.sec != sec {
		t := time.Unix(sec, 0).In(s.loc)
		at.head = t.AppendFormat(at.head[:0], s.head)
		at.tail = t.AppendFormat(at.tail[:0], s.tail)
		at.sec, at.ok = sec, true
	}
	return at.head, at.tail, uint32(f)
}
