package ladder

import (
	"net/netip"
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
)

// Bounds of a Pairer and an Aggregator.
const (
	DefaultRecords = 1 << 16          // open connections whose steps are kept
	DefaultPending = 1 << 12          // finished halves awaiting their partner
	DefaultHold    = 10 * time.Second // longest wait for a partner (kernel time)
	DefaultShapes  = 256              // distinct aggregated shapes
	maxSteps       = 32               // steps kept per socket (the last replaces the 32nd)
)

// tuple keys a socket by netns and 4-tuple.
type tuple struct {
	netns    uint32
	src, dst netip.AddrPort
}

func (t tuple) reversed() tuple { return tuple{t.netns, t.dst, t.src} }

func keyOf(h *Half) tuple { return tuple{h.Netns, h.Local, h.Remote} }

func tupleOf(c *events.Conn) tuple {
	return tuple{c.Netns, netip.AddrPortFrom(c.Saddr.Unmap(), c.Sport), netip.AddrPortFrom(c.Daddr.Unmap(), c.Dport)}
}

// rec is an open socket's steps, collected from Transition.
type rec struct {
	steps []Step
	key   tuple
	keyed bool
}

// Pairer is a Sink that collects each socket's steps and, when a
// connection ends, passes its ladder to Emit: the two sockets of a
// same-host connection (the same 4-tuple, reversed) in one ladder, else
// one socket with its peer inferred. A finished socket whose partner is
// still open waits for it, at most Hold and MaxPending of them. Set the
// bounds before the first event; zero means the default.
type Pairer struct {
	MaxRecords int           // open connections whose steps are kept
	MaxPending int           // finished halves awaiting their partner
	Hold       time.Duration // longest wait for a partner, in kernel time
	Emit       func(*Ladder) // receives each connection's ladder

	recs    map[uint64]*rec
	live    map[tuple]uint64
	pending map[tuple]*Half
	queue   []*Half // pending halves, oldest first (some already gone)
	now     uint64  // the latest kernel time seen
}

// NewPairer returns a Pairer that passes each ladder to emit.
func NewPairer(emit func(*Ladder)) *Pairer {
	return &Pairer{Emit: emit, recs: make(map[uint64]*rec), live: make(map[tuple]uint64), pending: make(map[tuple]*Half)}
}

func orDefault(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

// Transition records one step of a connection.
func (p *Pairer) Transition(tr *events.Transition) {
	if tr == nil || tr.Event == nil || tr.Conn == nil {
		return
	}
	p.now = max(p.now, tr.Event.Time)
	c := tr.Conn
	if c.Role == events.RoleListener {
		return
	}
	r := p.recs[c.Cookie]
	if r == nil {
		if len(p.recs) >= orDefault(p.MaxRecords, DefaultRecords) {
			p.expire()
			return
		}
		r = &rec{}
		p.recs[c.Cookie] = r
	}
	// An orphaned FIN_WAIT2's CLOSE is not drawn: a timewait socket holds
	// the connection in FIN_WAIT2 until the peer's FIN.
	if !tr.Orphan {
		st := Step{Old: tr.Old, New: tr.Shown(), T: tr.Event.Time, Filled: tr.Inferred}
		if len(r.steps) >= maxSteps {
			r.steps[maxSteps-1] = st
		} else {
			r.steps = append(r.steps, st)
		}
	}
	if !r.keyed && c.Sport != 0 && c.Dport != 0 {
		r.key, r.keyed = tupleOf(c), true
		p.live[r.key] = c.Cookie
	}
	p.expire()
}

// Finished emits c's ladder, or holds c until the other socket of a
// same-host connection finishes.
func (p *Pairer) Finished(c *events.Conn) {
	if c == nil {
		return
	}
	p.now = max(p.now, c.Last)
	r := p.recs[c.Cookie]
	delete(p.recs, c.Cookie)
	if r != nil && r.keyed && p.live[r.key] == c.Cookie {
		delete(p.live, r.key)
	}
	if c.Role == events.RoleListener {
		return
	}
	h := halfOf(c, r)
	if len(h.Steps) == 0 {
		return
	}
	key := keyOf(h)
	if old := p.pending[key]; old != nil {
		delete(p.pending, key)
		p.Emit(New(old, nil))
	}
	rkey := key.reversed()
	if o := p.pending[rkey]; o != nil && o.Start <= h.Last && h.Start <= o.Last {
		delete(p.pending, rkey)
		p.Emit(New(o, h))
		return
	}
	if _, ok := p.live[rkey]; ok && h.Local.Port() != 0 && h.Remote.Port() != 0 {
		h.done = p.now
		p.pending[key] = h
		p.queue = append(p.queue, h)
		for len(p.pending) > orDefault(p.MaxPending, DefaultPending) {
			p.popPending()
		}
		p.expire()
		return
	}
	p.Emit(New(h, nil))
	p.expire()
}

// Loss ignores loss notices.
func (p *Pairer) Loss(*events.Event) {}

// halfOf copies what a ladder needs of c; its steps come from r, or from
// c's spans when r was not kept (bound reached).
func halfOf(c *events.Conn, r *rec) *Half {
	h := &Half{
		Cookie: c.Cookie, Role: c.Role, Netns: c.Netns, Owner: c.Owner,
		Local:  netip.AddrPortFrom(c.Saddr.Unmap(), c.Sport),
		Remote: netip.AddrPortFrom(c.Daddr.Unmap(), c.Dport),
		Closer: c.Closer, End: c.End, ResetBy: c.ResetBy, TimeWait: c.TimeWait,
		Orphan:  c.TwState == events.FinWait2,
		Partial: c.Partial, Err: c.Err, Start: c.Start, Last: c.Last,
	}
	if r != nil {
		h.Steps = r.steps
		return h
	}
	prev := events.Unknown
	switch c.Role {
	case events.RoleClient:
		prev = events.Close
	case events.RoleServer:
		prev = events.Listen
	}
	t := c.Start
	for _, sp := range c.Spans {
		if sp.State != prev {
			h.Steps = append(h.Steps, Step{Old: prev, New: sp.State, T: t})
		}
		t += sp.Dur
		prev = sp.State
		if len(h.Steps) >= maxSteps-1 {
			break
		}
	}
	end := c.State
	switch {
	case c.TimeWait:
		end = events.TimeWait
	case h.Orphan:
		end = events.FinWait2 // held by a timewait socket
	}
	if end != prev {
		h.Steps = append(h.Steps, Step{Old: prev, New: end, T: t})
	}
	return h
}

// popPending emits the oldest pending half alone.
func (p *Pairer) popPending() {
	for len(p.queue) > 0 {
		q := p.queue[0]
		p.queue[0] = nil
		p.queue = p.queue[1:]
		if k := keyOf(q); p.pending[k] == q {
			delete(p.pending, k)
			p.Emit(New(q, nil))
			return
		}
	}
}

// expire emits alone the pending halves whose partner is overdue.
func (p *Pairer) expire() {
	hold := p.Hold
	if hold <= 0 {
		hold = DefaultHold
	}
	for len(p.queue) > 0 {
		q := p.queue[0]
		if k := keyOf(q); p.pending[k] == q {
			if DiffNs(p.now, q.done) < int64(hold) {
				break
			}
			delete(p.pending, k)
			p.Emit(New(q, nil))
		}
		p.queue[0] = nil
		p.queue = p.queue[1:]
	}
	if cap(p.queue) > 64 && len(p.queue) < cap(p.queue)/4 {
		p.queue = append([]*Half(nil), p.queue...)
	}
}

// Tick emits alone the pending halves whose partner is overdue at kernel
// time now (e.g. clock.Mono()); call it periodically when idle.
func (p *Pairer) Tick(now uint64) {
	p.now = max(p.now, now)
	p.expire()
}

// Flush emits alone the halves still waiting for a partner. Call it at the
// end of a run.
func (p *Pairer) Flush() {
	for len(p.queue) > 0 {
		p.popPending()
	}
	p.queue = nil
}
