package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/pipeline"
)

// heartbeat proves that events flow: every interval it makes a loopback
// connection (closed with RST: no TIME_WAIT) to a listener of its own, and
// the event source marks it traced when one of its transitions arrives. An
// idle host stays healthy, since the heartbeat is traffic of its own.
type heartbeat struct {
	interval time.Duration
	timeout  time.Duration
	ln       *net.TCPListener
	port     uint16
	netns    uint32
	pending  atomic.Int64 // unix ns of the oldest beat not yet traced, 0 when none
	seen     atomic.Int64 // unix ns a heartbeat transition last arrived
	mu       sync.Mutex
	err      error // the latest beat's failure, or the stream's end
}

// newHeartbeat listens on a loopback port of the tracer's own namespace.
func newHeartbeat(interval, timeout time.Duration) (*heartbeat, error) {
	var lc net.ListenConfig
	lc.SetMultipathTCP(false) // an MPTCP socket's cookie is not its subflow's
	l, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("heartbeat: listening on loopback: %w", err)
	}
	var st unix.Stat_t
	_ = unix.Stat("/proc/self/ns/net", &st)
	ln := l.(*net.TCPListener)
	return &heartbeat{interval: interval, timeout: timeout, ln: ln,
		port: uint16(ln.Addr().(*net.TCPAddr).Port), netns: uint32(st.Ino)}, nil
}

// run beats until ctx is done.
func (h *heartbeat) run(ctx context.Context) {
	go func() {
		for {
			c, err := h.ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	t := time.NewTicker(h.interval)
	defer t.Stop()
	for {
		h.beat()
		select {
		case <-ctx.Done():
			h.ln.Close()
			return
		case <-t.C:
		}
	}
}

// beat makes one connection and aborts it.
func (h *heartbeat) beat() {
	h.pending.CompareAndSwap(0, time.Now().UnixNano())
	d := net.Dialer{Timeout: h.timeout}
	d.SetMultipathTCP(false)
	c, err := d.Dial("tcp4", h.ln.Addr().String())
	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil {
		h.err = fmt.Errorf("heartbeat connection failed: %w", err)
		return
	}
	h.err = nil
	_ = c.(*net.TCPConn).SetLinger(0)
	c.Close()
}

// mine reports whether ev belongs to a heartbeat connection, and notes it.
func (h *heartbeat) mine(ev *events.Event) bool {
	if ev.Kind != events.KindTransition || ev.Netns != h.netns || (ev.Sport != h.port && ev.Dport != h.port) ||
		!ev.Saddr.IsLoopback() || !(ev.Daddr.IsLoopback() || ev.Daddr.IsUnspecified()) {
		return false
	}
	h.seen.Store(time.Now().UnixNano())
	h.pending.Store(0)
	return true
}

// fail records why events stopped for good (the stream ended).
func (h *heartbeat) fail(err error) {
	h.mu.Lock()
	h.err = err
	h.mu.Unlock()
}

// check returns nil while healthy: no beat older than the timeout is
// still waiting for its transitions.
func (h *heartbeat) check(now time.Time) error {
	h.mu.Lock()
	err := h.err
	h.mu.Unlock()
	if err != nil {
		return err
	}
	sent := h.pending.Load()
	if sent != 0 && now.UnixNano()-sent > int64(h.timeout) {
		return fmt.Errorf("events stopped flowing: the heartbeat connection of %s ago was not traced within %v",
			time.Duration(now.UnixNano()-sent).Round(time.Millisecond), h.timeout)
	}
	return nil
}

// hbSource is the kernel as a source with the heartbeat's transitions
// hidden. stallAfter > 0 (testing) makes it stop delivering after that
// long, as a stuck tracer would.
type hbSource struct {
	*pipeline.Live
	hb         *heartbeat
	stallAfter time.Duration
	start      time.Time
	stop       <-chan struct{}
}

// Next returns the next event that is not the heartbeat's.
func (s *hbSource) Next(ev *events.Event) error {
	for {
		if s.stallAfter > 0 && time.Since(s.start) > s.stallAfter {
			<-s.stop
			return io.EOF
		}
		err := s.Live.Next(ev)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				s.hb.fail(fmt.Errorf("reading events: %w", err))
			}
			return err
		}
		if !s.hb.mine(ev) {
			return nil
		}
	}
}
