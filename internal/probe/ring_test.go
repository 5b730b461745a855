package probe

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/tcptrace/tcptrace/internal/events"
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
		mask: uintptr(size - 1), publishEvery: uintptr(size / 4)}
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

// TestRingBusyRecord reads a record the kernel has reserved but not yet
// committed: the reader waits for it without spinning on a CPU.
func TestRingBusyRecord(t *testing.T) {
	f := newFakeRing(256)
	f.r.stopped.Store(true)
	rec := []byte("being written")
	f.put(rec, ringBusy)
	const writing = 100 * time.Millisecond
	go func() {
		time.Sleep(writing)
		atomic.StoreUint32((*uint32)(unsafe.Pointer(&f.r.data[0])), uint32(len(rec))) // commit
	}()
	cpu0, start := processCPU(t), time.Now()
	if left := f.expect(t, [][]byte{rec}); len(left) > 0 {
		t.Fatal("the record being written never came")
	}
	if took := time.Since(start); took < writing/2 {
		t.Fatalf("read after %v, before it was committed", took)
	}
	if cpu := processCPU(t) - cpu0; cpu > writing/4 {
		t.Errorf("waiting %v for a record being written took %v of CPU", writing, cpu)
	}
}

// processCPU returns the CPU time this process has used.
func processCPU(t *testing.T) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestProbeAnyGOMAXPROCS runs the probe with one to four Ps: the
// transitions of a few loopback connections all arrive, poll ticks come,
// other goroutines run while the reader waits, and Stop ends a wait at
// once.
func TestProbeAnyGOMAXPROCS(t *testing.T) {
	if err := checkSystem(); err != nil {
		// testutil.RequirePrivileged's rule; testutil imports probe.
		if os.Getenv("TCPTRACE_REQUIRE_PRIVILEGED") == "1" {
			t.Fatalf("privileged test cannot run: %v", err)
		}
		t.Skipf("privileged test skipped: %v", err)
	}
	for _, procs := range []int{1, 2, 4} {
		t.Run(fmt.Sprintf("GOMAXPROCS=%d", procs), func(t *testing.T) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
			testProbeProcs(t)
		})
	}
}

func testProbeProcs(t *testing.T) {
	var lc net.ListenConfig
	lc.SetMultipathTCP(false) // an MPTCP socket's cookie is not its subflow's
	l, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := l.(*net.TCPListener)
	defer ln.Close()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)

	const poll = 300 * time.Millisecond
	var ticks atomic.Int64
	p, err := Open(Options{Filter: Filter{Port: port}, PollInterval: poll, OnIdle: func() { ticks.Add(1) }})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer p.Close()
	closed := make(chan uint64, 256)
	done := make(chan error, 1)
	go func() {
		var ev events.Event
		for {
			if err := p.Next(&ev); err != nil {
				done <- err
				return
			}
			if ev.Kind == events.KindTransition && ev.New == events.Close && (ev.Sport == port || ev.Dport == port) {
				closed <- ev.Cookie
			}
		}
	}()

	want := map[uint64]bool{}
	for range 20 {
		c, err := net.DialTCP("tcp4", nil, ln.Addr().(*net.TCPAddr))
		if err != nil {
			t.Fatal(err)
		}
		s, err := ln.AcceptTCP()
		if err != nil {
			t.Fatal(err)
		}
		want[cookieOf(c)], want[cookieOf(s)] = true, true
		c.Close()
		s.Close()
	}
	for timeout := time.After(10 * time.Second); len(want) > 0; {
		select {
		case c := <-closed:
			delete(want, c)
		case err := <-done:
			t.Fatalf("Next: %v with %d sockets' close to come", err, len(want))
		case <-timeout:
			t.Fatalf("%d of 40 sockets' close did not arrive in 10s", len(want))
		}
	}

	// The reader waits for the next tick: the others run meanwhile.
	start := time.Now()
	for range 30 {
		time.Sleep(time.Millisecond)
	}
	if took := time.Since(start); took > 200*time.Millisecond {
		t.Errorf("30 sleeps of 1ms took %v while the reader waited", took)
	} else {
		t.Logf("30 sleeps of 1ms took %v while the reader waited", took)
	}

	// Stop right after a tick, the next one a poll period away.
	for n, deadline := ticks.Load(), time.Now().Add(5*poll); ticks.Load() == n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no poll tick in %v (%d before)", 5*poll, n)
		}
	}
	stopped := time.Now()
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != io.EOF {
			t.Fatalf("Next after Stop: %v, want io.EOF", err)
		}
		if took := time.Since(stopped); took > poll/3 {
			t.Errorf("Next returned %v after Stop: Stop did not end its wait", took)
		} else {
			t.Logf("Next returned io.EOF %v after Stop", took)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Next did not return 5s after Stop")
	}
	var ev events.Event
	if err := p.Next(&ev); err != io.EOF {
		t.Errorf("Next after io.EOF: %v", err)
	}
}
