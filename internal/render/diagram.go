package render

import (
	"errors"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
)

// DiagramMode says which connections a Diagrams sink draws.
type DiagramMode uint8

// Diagram modes.
const (
	DiagramAll       DiagramMode = iota // every connection, as it ends
	DiagramCookie                       // only the connection of one socket cookie
	DiagramAggregate                    // one diagram per shape, at the end of the run
)

// DiagramSelect picks what a Diagrams sink draws.
type DiagramSelect struct {
	Mode   DiagramMode // which connections
	Cookie uint64      // DiagramCookie: either socket of the connection
}

// ParseDiagramFlag parses --diagram's value: "" or "all", "aggregate", or a
// socket cookie (decimal, or hex with 0x).
func ParseDiagramFlag(s string) (DiagramSelect, error) {
	switch v := strings.ToLower(strings.TrimSpace(s)); v {
	case "", "all", "true":
		return DiagramSelect{Mode: DiagramAll}, nil
	case "aggregate", "agg":
		return DiagramSelect{Mode: DiagramAggregate}, nil
	default:
		c, err := strconv.ParseUint(v, 0, 64)
		if err != nil || c == 0 {
			return DiagramSelect{}, errors.New("--diagram: want all, aggregate or a socket cookie, got " + strconv.Quote(s))
		}
		return DiagramSelect{Mode: DiagramCookie, Cookie: c}, nil
	}
}

// Bounds of a Diagrams sink.
const (
	DefaultDiagramRecords = 1 << 16          // open connections whose steps are kept
	DefaultDiagramPending = 1 << 12          // finished halves awaiting their partner
	DefaultDiagramHold    = 10 * time.Second // longest wait for a partner (kernel time)
	DefaultDiagramShapes  = 256              // distinct aggregated shapes
	maxDiagramSteps       = 32               // steps kept per socket (the last replaces the 32nd)
)

// tuple keys a socket by netns and 4-tuple.
type tuple struct {
	netns    uint32
	src, dst netip.AddrPort
}

// rec is an open socket's steps, collected from Transition.
type rec struct {
	steps []dstep
	key   tuple
	keyed bool
}

// Diagrams is a Sink that draws each connection's state ladder when it ends,
// pairing the two sockets of a same-host connection into one diagram. Set
// the exported bounds before the first event; zero means the default.
type Diagrams struct {
	MaxRecords int           // open connections whose steps are kept
	MaxPending int           // finished halves awaiting their partner
	Hold       time.Duration // longest wait for a partner, in kernel time
	MaxShapes  int           // distinct aggregated shapes; more are counted

	w       io.Writer
	d       *drawer
	sel     DiagramSelect
	recs    map[uint64]*rec
	live    map[tuple]uint64
	pending map[tuple]*half
	queue   []*half
	agg     aggregator
	now     uint64
	lost    events.Losses
	drawn   int
	err     error
}

// NewDiagrams returns a diagram sink writing to w.
func NewDiagrams(w io.Writer, o Options, sel DiagramSelect) *Diagrams {
	return &Diagrams{
		w: w, sel: sel,
		d:       &drawer{o: o, st: newDiagramStyles(w, o), g: newGeom(o)},
		recs:    make(map[uint64]*rec),
		live:    make(map[tuple]uint64),
		pending: make(map[tuple]*half),
	}
}

// Err returns the first write error, if any.
func (s *Diagrams) Err() error { return s.err }

func orDefault(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

// Transition records one step of a connection.
func (s *Diagrams) Transition(tr *events.Transition) {
	if tr == nil || tr.Event == nil || tr.Conn == nil {
		return
	}
	if tr.Event.Time > s.now {
		s.now = tr.Event.Time
	}
	c := tr.Conn
	if c.Role == events.RoleListener {
		return
	}
	r := s.recs[c.Cookie]
	if r == nil {
		if len(s.recs) >= orDefault(s.MaxRecords, DefaultDiagramRecords) {
			s.expire()
			return
		}
		r = &rec{}
		s.recs[c.Cookie] = r
	}
	// An orphaned FIN_WAIT2's CLOSE is not drawn: a timewait socket holds
	// the connection in FIN_WAIT2 until the peer's FIN.
	if !tr.Orphan {
		st := dstep{Old: tr.Old, New: tr.Shown(), T: tr.Event.Time, Filled: tr.Inferred}
		if len(r.steps) >= maxDiagramSteps {
			r.steps[maxDiagramSteps-1] = st
		} else {
			r.steps = append(r.steps, st)
		}
	}
	if !r.keyed && c.Sport != 0 && c.Dport != 0 {
		r.key, r.keyed = tupleOf(c), true
		s.live[r.key] = c.Cookie
	}
	s.expire()
}

func tupleOf(c *events.Conn) tuple {
	return tuple{c.Netns, netip.AddrPortFrom(c.Saddr.Unmap(), c.Sport), netip.AddrPortFrom(c.Daddr.Unmap(), c.Dport)}
}

func (t tuple) reversed() tuple { return tuple{t.netns, t.dst, t.src} }

func keyOf(h *half) tuple { return tuple{h.netns, h.local, h.remote} }

// Finished draws c, or holds it until the other socket of a same-host
// connection finishes.
func (s *Diagrams) Finished(c *events.Conn) {
	if c == nil {
		return
	}
	if c.Last > s.now {
		s.now = c.Last
	}
	r := s.recs[c.Cookie]
	delete(s.recs, c.Cookie)
	if r != nil && r.keyed && s.live[r.key] == c.Cookie {
		delete(s.live, r.key)
	}
	if c.Role == events.RoleListener {
		return
	}
	h := halfOf(c, r)
	if len(h.steps) == 0 {
		return
	}
	key := keyOf(h)
	if old := s.pending[key]; old != nil {
		delete(s.pending, key)
		s.emit(old, nil)
	}
	rkey := key.reversed()
	if p := s.pending[rkey]; p != nil && p.start <= h.last && h.start <= p.last {
		delete(s.pending, rkey)
		s.emit(p, h)
		return
	}
	if _, ok := s.live[rkey]; ok && h.local.Port() != 0 && h.remote.Port() != 0 {
		h.done = s.now
		s.pending[key] = h
		s.queue = append(s.queue, h)
		for len(s.pending) > orDefault(s.MaxPending, DefaultDiagramPending) {
			s.popPending()
		}
		s.expire()
		return
	}
	s.emit(h, nil)
	s.expire()
}

// halfOf copies what a diagram needs of c; its steps come from r, or from
// c's spans when r was not kept (bound reached).
func halfOf(c *events.Conn, r *rec) *half {
	h := &half{
		cookie: c.Cookie, role: c.Role, netns: c.Netns, owner: c.Owner,
		local:  netip.AddrPortFrom(c.Saddr.Unmap(), c.Sport),
		remote: netip.AddrPortFrom(c.Daddr.Unmap(), c.Dport),
		closer: c.Closer, end: c.End, resetBy: c.ResetBy, timeWait: c.TimeWait,
		orphan:  c.TwState == events.FinWait2,
		partial: c.Partial, errno: c.Err, start: c.Start, last: c.Last,
	}
	if r != nil {
		h.steps = r.steps
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
			h.steps = append(h.steps, dstep{Old: prev, New: sp.State, T: t})
		}
		t += sp.Dur
		prev = sp.State
		if len(h.steps) >= maxDiagramSteps-1 {
			break
		}
	}
	end := c.State
	switch {
	case c.TimeWait:
		end = events.TimeWait
	case h.orphan:
		end = events.FinWait2 // held by a timewait socket
	}
	if end != prev {
		h.steps = append(h.steps, dstep{Old: prev, New: end, T: t})
	}
	return h
}

// popPending draws the oldest pending half alone.
func (s *Diagrams) popPending() {
	for len(s.queue) > 0 {
		q := s.queue[0]
		s.queue[0] = nil
		s.queue = s.queue[1:]
		if k := keyOf(q); s.pending[k] == q {
			delete(s.pending, k)
			s.emit(q, nil)
			return
		}
	}
}

// expire draws alone the pending halves whose partner is overdue.
func (s *Diagrams) expire() {
	hold := s.Hold
	if hold <= 0 {
		hold = DefaultDiagramHold
	}
	for len(s.queue) > 0 {
		q := s.queue[0]
		if k := keyOf(q); s.pending[k] == q {
			if diffNs(s.now, q.done) < int64(hold) {
				break
			}
			delete(s.pending, k)
			s.emit(q, nil)
		}
		s.queue[0] = nil
		s.queue = s.queue[1:]
	}
	if cap(s.queue) > 64 && len(s.queue) < cap(s.queue)/4 {
		s.queue = append([]*half(nil), s.queue...)
	}
}

// emit draws one connection (b nil: single-sided) as selected, and counts
// its shape.
func (s *Diagrams) emit(a, b *half) {
	l := newLadder(a, b)
	s.agg.add(l, orDefault(s.MaxShapes, DefaultDiagramShapes))
	switch s.sel.Mode {
	case DiagramAll:
	case DiagramCookie:
		if a.cookie != s.sel.Cookie && (b == nil || b.cookie != s.sel.Cookie) {
			return
		}
	default:
		return
	}
	s.write(s.d.drawConn(l))
}

// write writes one diagram, a blank line before all but the first.
func (s *Diagrams) write(lines []string) {
	if s.err != nil {
		return
	}
	var b strings.Builder
	if s.drawn > 0 {
		b.WriteByte('\n')
	}
	s.drawn++
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	_, s.err = io.WriteString(s.w, b.String())
}

// Tick draws alone the pending halves whose partner is overdue at kernel
// time now (e.g. clock.Mono()); call it periodically when idle.
func (s *Diagrams) Tick(now uint64) error {
	if now > s.now {
		s.now = now
	}
	s.expire()
	return s.err
}

// Loss keeps the loss totals for the aggregate's footer.
func (s *Diagrams) Loss(ev *events.Event) {
	if ev != nil {
		s.lost = ev.Lost
	}
}

// Flush draws the halves still waiting for a partner, alone, and in
// aggregate mode the aggregate view (do not call Aggregate too). Call it at
// the end of a run.
func (s *Diagrams) Flush() error {
	for len(s.queue) > 0 {
		s.popPending()
	}
	s.queue = nil
	if s.sel.Mode == DiagramAggregate {
		return s.Aggregate()
	}
	return s.err
}

// Aggregate draws one diagram per connection shape seen so far (same
// transitions, service endpoint and owners), with counts and percentiles,
// in any mode.
func (s *Diagrams) Aggregate() error {
	for _, lines := range s.agg.draw(s.d, s.lost) {
		s.write(lines)
	}
	return s.err
}
