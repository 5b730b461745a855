package events

// Resolver finds the owner of a socket the kernel could not attribute
// (sockets that predate tracing), e.g. from /proc as ss -p does.
type Resolver interface {
	Resolve(ev *Event) (Owner, bool)
}

// DefaultMaxConns bounds the tracked-connection table.
const DefaultMaxConns = 1 << 18

// Stats are the tracker's cumulative counters.
type Stats struct {
	Events   uint64 // kernel transitions observed
	Conns    uint64 // connections first seen
	Finished uint64 // connections that reached CLOSE
	Inferred uint64 // transitions filled in from gaps (lost or skipped events)
	Evicted  uint64 // connections dropped from a full table before they ended
	TimeWait uint64 // timewait steps observed (KindTimeWait)
	Tracked  int    // connections in the table now
}

type listenKey struct {
	netns uint32
	port  uint16
}

// Tracker turns transitions into connections with verdicts. It is not safe
// for concurrent use.
type Tracker struct {
	sink      Sink
	resolver  Resolver
	max       int
	conns     map[uint64]*Conn
	listeners map[listenKey]Owner
	head      *Conn // most recently active
	tail      *Conn // least recently active
	free      []*Conn
	stats     Stats
	tr        Transition
	gap       Transition
	// twEvents: the source reports timewait sockets (KindTimeWait), so a
	// CLOSE is a TIME_WAIT handover only when one took the socket over.
	twEvents bool
}

// NewTracker returns a tracker that reports to sink and keeps at most max
// connections (DefaultMaxConns when max <= 0). resolver may be nil.
func NewTracker(sink Sink, resolver Resolver, max int) *Tracker {
	if max <= 0 {
		max = DefaultMaxConns
	}
	return &Tracker{
		sink:      sink,
		resolver:  resolver,
		max:       max,
		conns:     make(map[uint64]*Conn),
		listeners: make(map[listenKey]Owner),
	}
}

// Stats returns the tracker's counters.
func (t *Tracker) Stats() Stats {
	s := t.stats
	s.Tracked = len(t.conns)
	return s
}

// AddListener records the owner of a listening port that predates tracing,
// so its accepted children can be attributed.
func (t *Tracker) AddListener(netns uint32, port uint16, o Owner) {
	t.listeners[listenKey{netns, port}] = o
}

// Conns calls fn for every tracked connection, most recently active first.
func (t *Tracker) Conns(fn func(c *Conn)) {
	for c := t.head; c != nil; c = c.next {
		fn(c)
	}
}

// Observe feeds one record of the stream to the tracker.
func (t *Tracker) Observe(ev *Event) {
	switch ev.Kind {
	case KindLoss:
		t.sink.Loss(ev)
		return
	case KindTimeWait:
		t.timeWait(ev)
		return
	}
	t.stats.Events++
	c := t.conns[ev.Cookie]
	if c != nil && ev.Old == Close && c.State != Close {
		// The socket was reused after a CLOSE that was never delivered.
		t.fill(c, ev)
		t.finish(c)
		c = nil
	}
	first := c == nil
	if first {
		c = t.open(ev)
	} else {
		t.touch(c)
	}
	t.own(c, ev)
	if c.Sport == 0 && ev.Sport != 0 {
		c.Sport = ev.Sport
		c.Saddr = ev.Saddr
	}
	if c.Dport == 0 && ev.Dport != 0 {
		c.Dport = ev.Dport
		c.Daddr = ev.Daddr
	}
	if c.State != ev.Old {
		t.fill(c, ev)
		first = false
	}
	t.step(c, ev, first)
}

// open starts tracking a socket first seen in ev.
func (t *Tracker) open(ev *Event) *Conn {
	if len(t.conns) >= t.max {
		t.evict()
	}
	var c *Conn
	if n := len(t.free); n > 0 {
		c = t.free[n-1]
		t.free = t.free[:n-1]
		spans := c.Spans[:0]
		*c = Conn{Spans: spans}
	} else {
		c = &Conn{}
	}
	c.Cookie = ev.Cookie
	c.Family = ev.Family
	c.Saddr, c.Daddr = ev.Saddr, ev.Daddr
	c.Sport, c.Dport = ev.Sport, ev.Dport
	c.Netns = ev.Netns
	c.CgroupID = ev.CgroupID
	c.Start, c.Last = ev.Time, ev.Time
	c.State = ev.Old
	switch {
	case ev.Old == Close && ev.New == SynSent:
		c.Role = RoleClient
	case ev.Old == Close && ev.New == Listen:
		c.Role = RoleListener
	case ev.Old == Listen && ev.New == SynRecv:
		c.Role = RoleServer
	case ev.Old == SynSent:
		// Its CLOSE→SYN_SENT was lost: a handshake is short-lived.
		c.Role, c.State = RoleClient, Close
	case ev.Old == SynRecv:
		c.Role, c.State = RoleServer, Listen
	case ev.Old == Listen:
		c.Role, c.Partial = RoleListener, true
	default:
		c.Partial = true
		if _, ok := t.listeners[listenKey{ev.Netns, ev.Sport}]; ok {
			c.Role = RoleServer
		}
	}
	t.conns[ev.Cookie] = c
	t.stats.Conns++
	c.next = t.head
	if t.head != nil {
		t.head.prev = c
	}
	t.head = c
	if t.tail == nil {
		t.tail = c
	}
	return c
}

// own settles the owner of c and stamps it on ev, so every view shows the
// owner, never the interrupted task.
func (t *Tracker) own(c *Conn, ev *Event) {
	switch {
	case ev.Flags&FlagTaskOwns != 0:
		c.Owner = Owner{PID: ev.PID, TID: ev.TID, Comm: ev.Comm, Source: OwnerSyscall}
	case ev.Flags&FlagOwnerKnown != 0:
		src := OwnerSyscall
		if ev.Flags&FlagOwnerListener != 0 {
			src = OwnerListener
		}
		if c.Owner.Source != OwnerSyscall || src == OwnerSyscall {
			c.Owner = Owner{PID: ev.PID, TID: ev.TID, Comm: ev.Comm, Source: src}
		}
	case c.Owner.Known():
	case ev.Flags&FlagResolved != 0 && ev.PID != 0:
		// Resolved in userspace when recorded: a replayed capture.
		src := OwnerProc
		if ev.Flags&FlagOwnerListener != 0 {
			src = OwnerListener
		}
		c.Owner = Owner{PID: ev.PID, TID: ev.TID, Comm: ev.Comm, Source: src}
	default:
		if c.Role == RoleServer {
			if o, ok := t.listeners[listenKey{ev.Netns, ev.Sport}]; ok {
				o.Source = OwnerListener
				c.Owner = o
			}
		}
		if !c.Owner.Known() && t.resolver != nil {
			if o, ok := t.resolver.Resolve(ev); ok {
				c.Owner = o
			}
		}
	}
	if c.Owner.Known() {
		ev.PID, ev.TID, ev.Comm = c.Owner.PID, c.Owner.TID, c.Owner.Comm
		if ev.Flags&(FlagTaskOwns|FlagOwnerKnown) == 0 {
			// Recorded with the event, so a replay needs no /proc.
			ev.Flags |= FlagResolved
			if c.Owner.Source == OwnerListener {
				ev.Flags |= FlagOwnerListener
			}
		}
	}
	if ev.New == Listen && c.Owner.Known() {
		t.listeners[listenKey{ev.Netns, ev.Sport}] = c.Owner
	}
}

// fill reports the steps the kernel did not deliver (recursion guard or ring
// loss): the connection was in c.State, the event says it left ev.Old. It
// walks the shortest path of the TCP state machine between the two, one
// inferred step per missing event.
func (t *Tracker) fill(c *Conn, ev *Event) {
	var buf [8]State
	path := statePath(c.State, ev.Old, buf[:0])
	g := &t.gap
	for i, next := range path {
		*g = Transition{Event: ev, Conn: c, Old: c.State, New: next, InOld: -1, Inferred: true}
		if i == 0 && !(c.Start == ev.Time && len(c.Spans) == 0) && ev.Time >= c.Last {
			g.InOld = int64(ev.Time - c.Last)
		}
		t.stats.Inferred++
		c.Inferred++
		t.verdict(c, g)
		t.record(c, g, ev.Time)
		t.sink.Transition(g)
	}
}

// first is set when ev is the first thing seen of c.
func (t *Tracker) step(c *Conn, ev *Event, first bool) {
	tr := &t.tr
	inOld := int64(ev.Time - c.Last)
	switch {
	case first, t.gap.Event == ev:
		inOld = -1 // when Old began is unknown
	case ev.Time < c.Last:
		inOld = 0
	}
	*tr = Transition{Event: ev, Conn: c, Old: ev.Old, New: ev.New, InOld: inOld}
	t.verdict(c, tr)
	t.record(c, tr, ev.Time)
	t.sink.Transition(tr)
	if ev.New == Close {
		t.finish(c)
	}
	t.gap.Event = nil
}

// verdict updates who closed first and how the connection ended.
func (t *Tracker) verdict(c *Conn, tr *Transition) {
	switch {
	case tr.New == FinWait1 && (tr.Old == Established || tr.Old == SynRecv):
		if c.Closer == CloserNone {
			c.Closer = CloserLocal
			tr.ActiveClose = true
		}
	case tr.New == CloseWait:
		if c.Closer == CloserNone {
			c.Closer = CloserPeer
		}
	case tr.New == Closing:
		c.Closer = CloserSimultaneous
	case tr.Old == FinWait1 || tr.Old == FinWait2 || tr.Old == Closing:
		if c.Closer == CloserNone && c.Partial {
			c.Closer = CloserLocal // already closing when first seen
		}
	case tr.Old == LastAck:
		if c.Closer == CloserNone && c.Partial {
			c.Closer = CloserPeer
		}
	}
	if tr.New == Close {
		end, by, tw := endOf(c, tr.Old, tr.Event)
		if tr.Inferred {
			tw = false // the CLOSE itself was not seen
		}
		switch {
		case c.TwState != Unknown:
			// The kernel said which timewait socket took it over: in
			// TIME_WAIT, or an orphaned FIN_WAIT2 that enters TIME_WAIT
			// when the peer's FIN arrives (TwState; either holds the port).
			tw = c.TwState == TimeWait
			tr.Orphan = c.TwState == FinWait2
		case t.twEvents:
			tw = false // none did (tcp_max_tw_buckets was full, or an abort)
		}
		c.End, c.ResetBy, c.TimeWait, c.Err = end, by, tw, tr.Event.Err
		tr.TimeWait = tw
		tr.Reset = end == EndReset
	}
}

// record closes the span of the state being left.
func (t *Tracker) record(c *Conn, tr *Transition, now uint64) {
	if tr.InOld >= 0 && !(tr.Old == Close && len(c.Spans) == 0) {
		c.Spans = append(c.Spans, Span{State: tr.Old, Dur: uint64(tr.InOld)})
	}
	c.State = tr.New
	if now > c.Last {
		c.Last = now
	}
}

// finish reports c and forgets it.
func (t *Tracker) finish(c *Conn) {
	t.stats.Finished++
	t.sink.Finished(c)
	t.drop(c)
}

// evict forgets the least recently active connection of a full table.
func (t *Tracker) evict() {
	if c := t.tail; c != nil {
		t.stats.Evicted++
		t.drop(c)
	}
}

func (t *Tracker) drop(c *Conn) {
	delete(t.conns, c.Cookie)
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		t.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else {
		t.tail = c.prev
	}
	c.prev, c.next = nil, nil
	t.free = append(t.free, c)
}

// touch moves c to the front of the LRU list.
func (t *Tracker) touch(c *Conn) {
	if t.head == c {
		return
	}
	c.prev.next = c.next
	if c.next != nil {
		c.next.prev = c.prev
	} else {
		t.tail = c.prev
	}
	c.prev = nil
	c.next = t.head
	t.head.prev = c
	t.head = c
}
