package events

// SetTimeWaitEvents tells the tracker whether the source reports timewait
// sockets (KindTimeWait). With them a connection's TIME_WAIT verdict is the
// kernel's own; without them it is inferred from how the socket closed. The
// first KindTimeWait event turns it on too.
func (t *Tracker) SetTimeWaitEvents(on bool) { t.twEvents = on }

// timeWait notes a timewait socket's step on the connection it took over,
// while the tracker still holds it (a timewait socket starts just before
// its connection's CLOSE), and stamps the connection's owner on ev. Steps
// of connections already finished are the diagnosis's to follow.
func (t *Tracker) timeWait(ev *Event) {
	t.stats.TimeWait++
	t.twEvents = true
	c := t.conns[ev.Cookie]
	if c == nil || ev.TwOp == TwFound {
		return
	}
	switch ev.TwOp {
	case TwStart:
		c.TwState = ev.New
		if ev.Old == Unknown {
			ev.Old = c.State
		}
	case TwMove:
		c.TwState = ev.New
	}
	if c.Role == RoleServer {
		ev.Flags |= FlagServer
	}
	if c.Owner.Known() && ev.PID == 0 {
		ev.PID, ev.TID, ev.Comm = c.Owner.PID, c.Owner.TID, c.Owner.Comm
		ev.Flags |= FlagResolved
		if c.Owner.Source == OwnerListener {
			ev.Flags |= FlagOwnerListener
		}
	}
}
