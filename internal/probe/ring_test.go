package probe

import (
	"encoding/binary"
	"testing"
	"time"
)

// fakeRing is a ring over ordinary memory.
type fakeRing struct {
	r          ring
	cons, prod uintptr
	size       int
}

func newFakeRing(size int) *fakeRing {
	f := &fakeRing{size: size}
	f.r = ring{consPos: &f.cons, prodPos: &f.prod, data: make([]byte, size),
		mask: uintptr(size - 1), publishEvery: uintptr(size / 4), epfd: -1, stopfd: -1}
	return f
}

// put writes a record as the kernel commits it.
func (f *fakeRing) put(data []byte, hdrFlags uint32) {
	size := uintptr(f.size)
	var hdr [8]byte
	binary.LittleEndian.PutUint32(hdr[:], uint32(len(data))|hdrFlags)
	rec := append(hdr[:], data...)
	for len(rec)%8 != 0 {
		rec = append(rec, 0)
	}
	for i, b := range rec {
		at := (f.prod + uintptr(i)) & (size - 1)
		f.r.data[at] = b
	}
	f.prod += uintptr(len(rec))
}

// expect reads what is available, checking it against want, and returns
// the records still to come.
func (f *fakeRing) expect(t *testing.T, want [][]byte) [][]byte {
	t.Helper()
	for len(want) > 0 && f.r.available() > 0 {
		got, err := f.r.next(time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want[0]) {
			t.Fatalf("record %q, want %q", got, want[0])
		}
		want = want[1:]
	}
	return want
}

func TestRingRecords(t *testing.T) {
	f := newFakeRing(256)
	f.r.stopped.Store(true) // drained means stopped: next never waits
	var want [][]byte
	for i := 0; i < 40; i++ { // wraps the 256-byte ring several times
		rec := make([]byte, 5+i%20)
		for j := range rec {
			rec[j] = byte(i)
		}
		f.put(rec, 0)
		want = append(want, rec)
		if i%7 == 3 {
			f.put([]byte("discarded"), ringDiscard)
		}
		if f.prod-f.cons > 128 { // read as the kernel fills
			want = f.expect(t, want)
		}
	}
	if rest := f.expect(t, want); len(rest) > 0 {
		t.Fatalf("%d records never came", len(rest))
	}
	if _, err := f.r.next(time.Time{}); err != errStopped {
		t.Fatalf("drained and stopped: %v, want errStopped", err)
	}
	if f.cons != f.prod {
		t.Errorf("consumer position %d after draining, producer %d: not published", f.cons, f.prod)
	}
}

func TestRingPublishesInBatches(t *testing.T) {
	f := newFakeRing(4096)
	for i := 0; i < 100; i++ {
		f.put(make([]byte, 24), 0) // 32 bytes each
	}
	for i := 0; i < 20; i++ {
		if _, err := f.r.next(time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	if f.cons != 0 {
		t.Errorf("published %d after 640 of 1024 bytes", f.cons)
	}
	for i := 0; i < 20; i++ {
		if _, err := f.r.next(time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	if f.cons == 0 || f.cons > 40*32 {
		t.Errorf("published %d after 1280 bytes read", f.cons)
	}
}

func TestRingOverrun(t *testing.T) {
	f := newFakeRing(256)
	f.put(make([]byte, 16), 0)
	binary.LittleEndian.PutUint32(f.r.data[0:], 200) // longer than what was produced
	if _, err := f.r.next(time.Time{}); err == nil {
		t.Fatal("a record past the producer position was read")
	}
}

// TestRingRecordAcrossEnd reads a record whose data runs past the end of
// the data pages (mapped once): it comes whole, copied.
func TestRingRecordAcrossEnd(t *testing.T) {
	f := newFakeRing(64)
	f.r.stopped.Store(true)
	f.put(make([]byte, 40), 0) // 48 bytes: the next header at 48
	f.expect(t, [][]byte{make([]byte, 40)})
	rec := []byte("0123456789abcdefghij") // data at 56..75: 8 bytes, then 12 from the start
	f.put(rec, 0)
	if left := f.expect(t, [][]byte{rec}); len(left) > 0 {
		t.Fatal("the record across the end never came")
	}
	if len(f.r.wrapped) != len(rec) {
		t.Fatalf("the record was not copied out: wrapped %q", f.r.wrapped)
	}
}
