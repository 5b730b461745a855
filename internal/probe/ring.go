package probe

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ring reads the kernel's BPF ring buffer in place. ringbuf.Reader copies
// each record and publishes the consumer position after every one: the
// kernel's reserve reads that position, so the cache line bounced between
// the reader's CPU and every producing CPU once per event. ring publishes
// it once per publishEvery bytes and whenever the ring drains, and hands
// out records as slices of the mapping.
//
// The data pages are mapped once, not twice in a row as the kernel offers
// (and as ringbuf.Reader maps them): both mappings would count in the
// tracer's resident memory, twice the ring's size. The few records that
// run past the end of the data pages are copied out whole.
//
// It waits for data in Go's netpoller, through a duplicate of the ring's
// fd (BPF ring buffers support poll): the goroutine parks and the other
// goroutines run, with any GOMAXPROCS. The read deadline is the poll
// period; stop wakes a wait by moving it to the past.
type ring struct {
	consPage, dataPages []byte
	consPos, prodPos    *uintptr
	data                []byte  // the data pages
	wrapped             []byte  // the latest record that ran past the end of data, copied
	mask                uintptr // ring size - 1
	pos                 uintptr // the next record's position
	published           uintptr // the consumer position the kernel sees
	publishEvery        uintptr
	wait                *os.File           // the ring's fd, duplicated, in the netpoller
	conn                syscall.RawConn    // wait's
	ready               func(uintptr) bool // data or stop: the wait is over
	stopped             atomic.Bool
	woke                int // bytes unread when the latest wait ended
}

// Kernel ring record header (include/uapi/linux/bpf.h).
const (
	ringHdrSize = 8
	ringBusy    = 1 << 31
	ringDiscard = 1 << 30
)

// errStopped: stop was called and every record has been read.
var errStopped = errors.New("ring buffer stopped")

// newRing maps the ring buffer map fd of size bytes (a power of two).
func newRing(fd, size int) (*ring, error) {
	page := os.Getpagesize()
	cons, err := unix.Mmap(fd, 0, page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mapping the ring buffer's consumer page: %w", err)
	}
	data, err := unix.Mmap(fd, int64(page), page+size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		unix.Munmap(cons)
		return nil, fmt.Errorf("mapping the ring buffer: %w", err)
	}
	r := &ring{consPage: cons, dataPages: data,
		consPos: (*uintptr)(unsafe.Pointer(&cons[0])), prodPos: (*uintptr)(unsafe.Pointer(&data[0])),
		data: data[page:], mask: uintptr(size - 1), publishEvery: uintptr(max(size/16, ringHdrSize))}
	r.pos = atomic.LoadUintptr(r.consPos)
	r.published = r.pos
	r.ready = func(uintptr) bool { return r.available() > 0 || r.stopped.Load() }
	if err := r.openWait(fd); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// openWait puts a duplicate of the ring's fd in Go's netpoller: os.NewFile
// registers a non-blocking fd, and only a registered one takes deadlines.
// O_NONBLOCK is the open file's, shared with the map's fd: the bpf system
// call ignores it.
func (r *ring) openWait(fd int) error {
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("duplicating the ring buffer's fd: %w", err)
	}
	if err := unix.SetNonblock(dup, true); err != nil {
		unix.Close(dup)
		return fmt.Errorf("polling the ring buffer: %w", err)
	}
	r.wait = os.NewFile(uintptr(dup), "ring buffer")
	if err := r.wait.SetReadDeadline(time.Time{}); err != nil {
		return fmt.Errorf("polling the ring buffer: %w", err)
	}
	if r.conn, err = r.wait.SyscallConn(); err != nil {
		return fmt.Errorf("polling the ring buffer: %w", err)
	}
	return nil
}

// available returns the bytes written by the kernel and not yet read.
func (r *ring) available() int { return int(atomic.LoadUintptr(r.prodPos) - r.pos) }

// next returns the next record's data, valid until the following call, or
// os.ErrDeadlineExceeded when nothing came by deadline, or errStopped once
// stop was called and the ring is drained.
func (r *ring) next(deadline time.Time) ([]byte, error) {
	busy := 0
	for {
		prod := atomic.LoadUintptr(r.prodPos)
		if prod == r.pos {
			r.publish()
			if r.stopped.Load() {
				return nil, errStopped
			}
			if err := r.park(deadline); err != nil {
				return nil, err
			}
			continue
		}
		if r.pos-r.published >= r.publishEvery {
			r.publish()
		}
		start := r.pos & r.mask
		hdr := atomic.LoadUint32((*uint32)(unsafe.Pointer(&r.data[start])))
		if hdr&ringBusy != 0 {
			// Reserved, not yet committed: the program is writing it.
			busy++
			waitBusy(busy)
			continue
		}
		n := uintptr(hdr &^ (ringBusy | ringDiscard))
		total := (ringHdrSize + n + 7) &^ 7
		if prod-r.pos < total || n > r.mask {
			return nil, fmt.Errorf("ring buffer record of %d bytes at %d overruns the producer at %d", n, r.pos, prod)
		}
		r.pos += total
		if hdr&ringDiscard != 0 {
			continue
		}
		// The header is 8-aligned and never crosses the end; the data may.
		from, size := start+ringHdrSize, uintptr(len(r.data))
		if from+n <= size {
			return r.data[from : from+n : from+n], nil
		}
		r.wrapped = append(r.wrapped[:0], r.data[from:]...)
		r.wrapped = append(r.wrapped, r.data[:n-(size-from)]...)
		return r.wrapped, nil
	}
}

// busySpins is how many times in a row the reader only yields to other
// goroutines for a record being written before it sleeps.
const busySpins = 3

// busySleep is the reader's sleep for a record still being written after
// busySpins yields. The program commits within a microsecond unless an
// interrupt or the hypervisor stops its CPU meanwhile; an idle Go runtime
// sleeps at least a millisecond anyway.
const busySleep = 50 * time.Microsecond

// waitBusy waits a little for a record being written, the n-th time in a
// row, without spinning on it.
func waitBusy(n int) {
	if n <= busySpins {
		runtime.Gosched()
		return
	}
	time.Sleep(busySleep)
}

// publish tells the kernel how far the reader has read, freeing the space.
func (r *ring) publish() {
	if r.published != r.pos {
		atomic.StoreUintptr(r.consPos, r.pos)
		r.published = r.pos
	}
}

// park waits until the kernel writes a record (its batched wakeup), stop is
// called, or deadline passes (os.ErrDeadlineExceeded).
func (r *ring) park(deadline time.Time) error {
	if err := r.wait.SetReadDeadline(deadline); err != nil {
		return fmt.Errorf("waiting for the ring buffer: %w", err)
	}
	// ready runs first, then after each readiness the netpoller reports.
	err := r.conn.Read(r.ready)
	r.woke = r.available()
	switch {
	case err == nil:
		return nil
	case !errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("waiting for the ring buffer: %w", err) // closed: the mapping may be gone
	case r.ready(0):
		return nil // data came at the deadline, or stop moved it
	}
	return os.ErrDeadlineExceeded
}

// stop makes next return what is left, then errStopped. It may be called
// from another goroutine.
func (r *ring) stop() {
	r.stopped.Store(true)
	// A deadline in the past wakes a wait in progress; one that park sets
	// later is followed by its check of stopped.
	if r.wait != nil {
		_ = r.wait.SetReadDeadline(time.Unix(1, 0))
	}
}

// Close unmaps the ring. next must not run concurrently.
func (r *ring) Close() error {
	var errs []error
	if r.wait != nil {
		errs = append(errs, r.wait.Close())
	}
	errs = append(errs, unix.Munmap(r.dataPages), unix.Munmap(r.consPage))
	return errors.Join(errs...)
}
