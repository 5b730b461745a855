package probe

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
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
// It waits for data in epoll_pwait entered as a raw system call, which the
// Go scheduler does not see: told of a blocking call, it would hand its one
// P to another thread at every wait and wake its monitor thread, which then
// polls every 20 µs for a while; under churn that cost about 10 % of the
// tracer's CPU. Other goroutines run before each wait (Gosched) and when
// the monitor's preemption signal interrupts one: a signal or a timer is
// seen within a poll period.
type ring struct {
	consPage, dataPages []byte
	consPos, prodPos    *uintptr
	data                []byte  // the data pages
	wrapped             []byte  // the latest record that ran past the end of data, copied
	mask                uintptr // ring size - 1
	pos                 uintptr // the next record's position
	published           uintptr // the consumer position the kernel sees
	publishEvery        uintptr
	epfd, stopfd        int // epoll set of the ring and stopfd, an eventfd stop writes
	stopped             atomic.Bool
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
	r.epfd, r.stopfd = -1, -1
	if err := r.openWait(fd); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// openWait makes the epoll set next waits in: the ring (BPF ring buffers
// support poll) and an eventfd for stop.
func (r *ring) openWait(fd int) error {
	var err error
	if r.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return fmt.Errorf("epoll for the ring buffer: %w", err)
	}
	if r.stopfd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return fmt.Errorf("eventfd for the ring buffer: %w", err)
	}
	for _, f := range []int{fd, r.stopfd} {
		if err := unix.EpollCtl(r.epfd, unix.EPOLL_CTL_ADD, f, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(f)}); err != nil {
			return fmt.Errorf("epoll for the ring buffer: %w", err)
		}
	}
	return nil
}

// available returns the bytes written by the kernel and not yet read.
func (r *ring) available() int { return int(atomic.LoadUintptr(r.prodPos) - r.pos) }

// next returns the next record's data, valid until the following call, or
// os.ErrDeadlineExceeded when nothing came by deadline, or errStopped once
// stop was called and the ring is drained.
func (r *ring) next(deadline time.Time) ([]byte, error) {
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
			continue // reserved, not yet committed: the program is writing it now
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
	var ev [2]unix.EpollEvent
	// The scheduler sees this goroutine as running all along: let the
	// others (signals, timers, the ledger) run first.
	runtime.Gosched()
	for r.available() == 0 && !r.stopped.Load() {
		ms := time.Until(deadline).Milliseconds()
		if ms <= 0 {
			return os.ErrDeadlineExceeded
		}
		// Level-triggered: returns at once while unread data is there.
		_, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(r.epfd),
			uintptr(unsafe.Pointer(&ev[0])), uintptr(len(ev)), uintptr(ms), 0, 0)
		if errno == unix.EINTR {
			runtime.Gosched() // the monitor's preemption: let the others run
		} else if errno != 0 {
			return fmt.Errorf("waiting for the ring buffer: %w", errno)
		}
	}
	return nil
}

// stop makes next return what is left, then errStopped. It may be called
// from another goroutine.
func (r *ring) stop() {
	r.stopped.Store(true)
	var one = [8]byte{1}
	_, _ = unix.Write(r.stopfd, one[:]) // wakes a wait in progress
}

// Close unmaps the ring. next must not run concurrently.
func (r *ring) Close() error {
	var errs []error
	for _, fd := range []int{r.epfd, r.stopfd} {
		if fd >= 0 {
			errs = append(errs, unix.Close(fd))
		}
	}
	errs = append(errs, unix.Munmap(r.dataPages), unix.Munmap(r.consPage))
	return errors.Join(errs...)
}
