package ledger

import (
	"fmt"
	"time"

	"github.com/tcptrace/tcptrace/internal/clock"
	"github.com/tcptrace/tcptrace/internal/events"
)

// Orphans is a read of the orphaned FIN_WAIT2 timewait sockets one
// namespace holds: the reconciliation of moves to TIME_WAIT that fired no
// timer tracepoint.
type Orphans struct {
	Netns   uint32
	Time    uint64          // CLOCK_MONOTONIC ns when the dump began
	Cookies map[uint64]bool // the timewait sockets still in FIN_WAIT2
	Took    time.Duration   // wall time of the dump
}

// orphanSink keeps the cookies of FIN_WAIT2 timewait sockets.
type orphanSink struct{ o *Orphans }

func (s orphanSink) add(m []byte) {
	if isOrphanFinWait2(m) {
		s.o.Cookies[diagCookie(m)] = true
	}
}

// ReadOrphans dumps the namespace's FIN_WAIT2 sockets (the kernel filters
// by state, so the dump passes on only those; it still walks the shared
// connection table, a few ms per 100k sockets).
func ReadOrphans(ns Netns) (Orphans, error) {
	o := Orphans{Netns: ns.Inode, Cookies: map[uint64]bool{}}
	h, err := openNetns(ns)
	if err != nil {
		return o, err
	}
	defer h.Close()
	d, err := openDiag(h)
	if err != nil {
		return o, fmt.Errorf("netns %d: %w", ns.Inode, err)
	}
	defer d.Close()
	start := time.Now()
	o.Time = clock.Mono()
	if err := d.dumpAll(make([]byte, recvBufLen), 1<<uint(events.FinWait2), orphanSink{&o}); err != nil {
		return o, fmt.Errorf("netns %d: %w", ns.Inode, err)
	}
	o.Took = time.Since(start)
	return o, nil
}
