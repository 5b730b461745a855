package diagnosis

import "testing"

// TestCookieIndex checks the table's index against a map through growth,
// overwrites and the FIFO's removals, with cookies in per-CPU-like batches,
// in random order, and in strides that collide in the hash.
func TestCookieIndex(t *testing.T) {
	for name, next := range map[string]func(i int, rnd uint64) uint64{
		"batches": func(i int, rnd uint64) uint64 { return uint64(i/4096*8192 + int(rnd%2)*4096 + i%4096) },
		"random":  func(_ int, rnd uint64) uint64 { return rnd },
		"strided": func(i int, _ uint64) uint64 { return uint64(i) << 18 },
		"dense":   func(i int, _ uint64) uint64 { return uint64(i) },
	} {
		tb := newCookieTable()
		ref := map[uint64]uint16{} // cookie → sport
		var fifo []uint64
		rnd := uint64(88172645463325252)
		for i := range 3 * maxCookies {
			rnd ^= rnd << 13
			rnd ^= rnd >> 7
			rnd ^= rnd << 17
			c := next(i, rnd)
			if i%7 == 3 && len(fifo) > 0 {
				c = fifo[len(fifo)-1-int(rnd%uint64(min(len(fifo), 1000)))] // the same socket again
			}
			sport := uint16(i)
			tb.put(c, cookieRec{dest: Dest{Dport: 80}, owner: ProcKey{PID: uint32(i % 5)}, sport: sport})
			if _, ok := ref[c]; !ok {
				fifo = append(fifo, c)
				if len(fifo) > maxCookies {
					delete(ref, fifo[0])
					fifo = fifo[1:]
				}
			}
			ref[c] = sport
			if i%50000 == 0 || i == 3*maxCookies-1 {
				check(t, name, &tb, ref, fifo)
			}
		}
	}
}

// check compares the table with the reference.
func check(t *testing.T, name string, tb *cookieTable, ref map[uint64]uint16, fifo []uint64) {
	t.Helper()
	if tb.len() != len(ref) {
		t.Fatalf("%s: %d entries, want %d", name, tb.len(), len(ref))
	}
	for c, sport := range ref {
		if r, ok := tb.get(c); !ok || r.sport != sport {
			t.Fatalf("%s: cookie %d: %+v %v, want sport %d", name, c, r, ok, sport)
		}
	}
	if len(fifo) == maxCookies {
		if _, ok := tb.get(fifo[0] ^ 1<<62); ok {
			t.Fatalf("%s: a cookie never put found", name)
		}
	}
	n := 0
	for i := range tb.index {
		if e := tb.index[i]; e.ref != 0 {
			n++
			if sl := tb.slots[e.ref.slot()]; sl.cookie != e.cookie || uint32(sl.owner) != e.ref.owner() {
				t.Fatalf("%s: entry %+v, slot %+v", name, e, sl)
			}
		}
	}
	if n != len(ref) || 2*n > len(tb.index) {
		t.Fatalf("%s: %d entries in an index of %d", name, n, len(tb.index))
	}
}
