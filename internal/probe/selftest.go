package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcptrace/tcptrace/internal/events"
)

// SelfTestTimeout bounds how long the start-up self-test waits.
const SelfTestTimeout = 3 * time.Second

// selfTest makes one loopback connection and waits for its transitions, so a
// tracer that sees nothing fails at start instead of tracing nothing. Events
// of other sockets read meanwhile are kept for Next; the test's own are not
// shown.
func (p *Probe) selfTest() error {
	// Plain TCP: Go listens with MPTCP by default, and an MPTCP socket's
	// cookie is not its TCP subflow's.
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	l, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("self-test: listening on loopback: %w", err)
	}
	ln := l.(*net.TCPListener)
	defer ln.Close()
	p.self[cookieOf(ln)] = true
	c, err := net.DialTCP("tcp4", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		return fmt.Errorf("self-test: connecting on loopback: %w", err)
	}
	client := cookieOf(c)
	p.self[client] = true
	s, err := ln.AcceptTCP()
	if err == nil {
		p.self[cookieOf(s)] = true
		defer s.Close()
	}
	_ = c.SetLinger(0) // RST: the self-test leaves no TIME_WAIT behind
	c.Close()

	deadline := time.Now().Add(SelfTestTimeout)
	defer func() { p.deadline = time.Time{} }()
	var ev events.Event
	for {
		if time.Now().After(deadline) {
			return fmt.Errorf("self-test: the loopback connection's transitions did not arrive within %v: the program is attached but sees nothing", SelfTestTimeout)
		}
		rec, err := p.ring.next(time.Now().Add(p.opts.PollInterval))
		if errors.Is(err, os.ErrDeadlineExceeded) {
			continue
		}
		if err != nil {
			return fmt.Errorf("self-test: reading ring buffer: %w", err)
		}
		if err := Decode(rec, &ev); err != nil {
			return err
		}
		if !p.self[ev.Cookie] {
			if p.order(&ev) {
				p.pending = append(p.pending, ev)
			}
			continue
		}
		// One transition of its sockets shows the program sees them; Next
		// hides the rest. Waiting for a particular one would fail the test
		// whenever the kernel's recursion guard skips it under load.
		if ev.New == events.Close {
			delete(p.self, ev.Cookie) // nothing more comes from it
		}
		return nil
	}
}

// cookieOf returns a socket's cookie (SO_COOKIE), 0 on error.
func cookieOf(c syscall.Conn) uint64 {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0
	}
	var cookie uint64
	_ = rc.Control(func(fd uintptr) {
		cookie, _ = unix.GetsockoptUint64(int(fd), unix.SOL_SOCKET, unix.SO_COOKIE)
	})
	return cookie
}

// CookieOf returns the socket cookie of a connection or listener, the
// identity tcptrace reports for it.
func CookieOf(c syscall.Conn) uint64 { return cookieOf(c) }
