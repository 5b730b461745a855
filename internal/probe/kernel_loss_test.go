package probe_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/probe"
	"github.com/tcptrace/tcptrace/internal/testutil"
)

// churn makes n loopback connections to ln (server closes first) and closes
// ln: 10 transitions per connection plus the listener's LISTEN->CLOSE.
func loopbackChurn(t *testing.T, ln *net.TCPListener, n int) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		for i := 0; i < n; i++ {
			c, err := ln.AcceptTCP()
			if err != nil {
				errc <- err
				return
			}
			c.Close()
		}
		errc <- nil
	}()
	addr := ln.Addr().String()
	for i := 0; i < n; i++ {
		c := dialTCP(t, "tcp4", addr)
		if _, err := io.Copy(io.Discard, c); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	ln.Close()
}

func listenLoopback(t *testing.T) *net.TCPListener {
	t.Helper()
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	l, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l.(*net.TCPListener)
}

type transKey struct {
	cookie   uint64
	old, new events.State
	op       events.TwOp // timewait steps
}

// recordsOf returns how many ring records an event stands for: a timewait
// move or expiry pairs two timer records (cancel, then start or expire).
func recordsOf(e *events.Event) int {
	switch {
	case e.Kind == events.KindTransition:
		return 1
	case e.Kind != events.KindTimeWait:
		return 0
	case e.TwOp == events.TwMove || e.TwOp == events.TwExpire:
		return 2
	}
	return 1
}

// TestKernelRingLoss overflows a one-page ring with loopback churn while not
// reading, then reads everything: the stream's last loss notice must equal
// the kernel counters, and delivered + lost must account for the workload.
// A second, unfiltered probe with a large ring, read concurrently, is the
// reference for what happened meanwhile.
func TestKernelRingLoss(t *testing.T) {
	testutil.RequirePrivileged(t)
	const n = 300
	ln := listenLoopback(t)
	port := uint16(ln.Addr().(*net.TCPAddr).Port)

	// The reference: all traffic (other ports only counted), a large ring
	// polled often, as other processes may churn meanwhile.
	rp, err := probe.Open(probe.Options{RingSize: 128 << 20, PollInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ref := &recorder{p: rp, port: port, done: make(chan struct{})}
	t.Cleanup(func() { ref.stop() })
	go ref.run()
	// No self-test: the ring is one page and this test accounts for every
	// record in it.
	p, err := probe.Open(probe.Options{RingSize: os.Getpagesize(), SkipSelfTest: true, Filter: probe.Filter{Port: port}})
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{p: p, port: port, done: make(chan struct{})}
	t.Cleanup(func() { r.stop() })

	loopbackChurn(t, ln, n) // not reading meanwhile
	go r.run()              // now read everything
	// The reader emits a loss notice once the ring is empty (poll timeout).
	r.waitFor(t, "a loss notice", func(evs []events.Event) bool {
		return lastLoss(evs).Ring > 0
	})
	time.Sleep(3 * probe.DefaultPollInterval)
	// Losses shares a scratch buffer with Next: read it only once the
	// reader is done.
	r.drain()
	kernel, err := p.Losses()
	if err != nil {
		t.Fatal(err)
	}
	got := r.stop()
	r.check(t)
	refEvs := ref.stop()
	ref.check(t)
	refLost := lastLoss(refEvs).Total()
	if refLost != 0 {
		t.Logf("reference probe lost %d events: skipping the checks against it", refLost)
	}

	// The stream's last loss notice is the kernel's count (the kernel
	// filters before it reserves: nothing else can lose meanwhile).
	stream := lastLoss(got)
	if stream.Ring == 0 {
		t.Fatalf("no ring loss reported in the stream")
	}
	if stream.Ring != kernel.Ring || stream.Recursion != kernel.Recursion {
		t.Errorf("stream's last loss notice says %+v, kernel counters %+v", stream, kernel)
	}

	// What the workload generated, as the reference saw it.
	// Timewait records count too: those of the workload's timewait
	// sockets, as many as the reference saw.
	refOurs := map[transKey]bool{}
	transitions, twRecords := 0, 0
	for i := range refEvs {
		e := &refEvs[i]
		if k := recordsOf(e); k > 0 {
			refOurs[transKey{e.Cookie, e.Old, e.New, e.TwOp}] = true
			if e.Kind == events.KindTransition {
				transitions++
			} else {
				twRecords += k
			}
		}
	}
	refOther := ref.others
	// Both probes were attached after the listener's CLOSE->LISTEN.
	expected := 10*n + 1
	if refLost == 0 && transitions != expected {
		t.Errorf("reference saw %d transitions on port %d, want %d", transitions, port, expected)
	}
	expected += twRecords
	delivered := 0
	for i := range got {
		e := &got[i]
		if recordsOf(e) == 0 {
			continue
		}
		// A kill may be the cancel of a move or an expiry whose other
		// record was lost: one record either way.
		delivered += recordsOf(e)
		if refLost == 0 && e.Kind == events.KindTransition && !refOurs[transKey{e.Cookie, e.Old, e.New, 0}] {
			t.Errorf("delivered a transition the reference did not see: %d %v>%v", e.Cookie, e.Old, e.New)
		}
	}
	missing := expected - delivered
	// The kernel filters before it reserves ring space, so every ring loss
	// is a transition that passed the filter: one of ours not delivered,
	// or another port's owned by this very process (tcptrace always passes
	// its own process's sockets). The reference counted the latter.
	extra := int(stream.Ring) - missing
	t.Logf("workload %d records (%d timewait): delivered %d, ring losses %d (%d beyond the workload's); reference: %d other transitions, %d of this process",
		expected, twRecords, delivered, stream.Ring, extra, refOther, ref.othersSelf)
	if delivered == 0 || missing <= 0 {
		t.Errorf("delivered %d of %d: the one-page ring should have overflowed", delivered, expected)
	}
	if extra < 0 {
		t.Errorf("delivered %d + lost %d < %d generated: events vanished unaccounted", delivered, stream.Ring, expected)
	}
	if refLost == 0 && extra > ref.othersSelf {
		t.Errorf("delivered %d + lost %d = %d, want %d (+ at most %d of this process's other sockets): losses counted for events the filter drops?",
			delivered, stream.Ring, delivered+int(stream.Ring), expected, ref.othersSelf)
	}
	if stream.Recursion != 0 {
		t.Logf("recursion misses: %d", stream.Recursion)
	}
}

// TestKernelNextEOFAfterStopWithLoss: when losses are first noticed at the
// flush that Stop causes, Next returns the loss notice and must then return
// io.EOF (as documented), not spin on poll timeouts forever.
func TestKernelNextEOFAfterStopWithLoss(t *testing.T) {
	testutil.RequirePrivileged(t)
	ln := listenLoopback(t)
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	p, err := probe.Open(probe.Options{RingSize: os.Getpagesize(), SkipSelfTest: true, Filter: probe.Filter{Port: port}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	loopbackChurn(t, ln, 50)
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	res := make(chan string, 1)
	go func() {
		var ev events.Event
		var n, losses int
		for {
			err := p.Next(&ev)
			if err == io.EOF {
				res <- fmt.Sprintf("EOF after %d events, %d loss notices", n, losses)
				return
			}
			if err != nil {
				res <- err.Error()
				return
			}
			n++
			if ev.Kind == events.KindLoss {
				losses++
			}
		}
	}()
	select {
	case s := <-res:
		t.Log(s)
	case <-time.After(5 * time.Second):
		p.Close() // unblocks Next
		<-res
		t.Fatal("Next did not return io.EOF within 5s of Stop (loss notice at the flush)")
	}
}
