package ladder

import "github.com/tcptrace/tcptrace/internal/events"

// segsOf returns the segment that caused step s of h and the one it sent.
func segsOf(h *Half, s Step) (recv, sent Seg) {
	o, n := s.Old, s.New
	switch {
	case n == events.Close && o != events.LastAck && o != events.Closing:
		switch {
		case h.End == events.EndRefused:
			return SegRST, SegNone
		case h.End == events.EndReset && h.ResetBy == events.SidePeer:
			return SegRST, SegNone
		case h.End == events.EndReset:
			return SegNone, SegRST
		}
		return SegNone, SegNone
	case o == events.Close && n == events.SynSent:
		return SegNone, SegSYN
	case n == events.SynRecv:
		return SegSYN, SegSYNACK
	case o == events.SynSent && n == events.Established:
		return SegSYNACK, SegACK
	case o == events.SynRecv && n == events.Established:
		return SegACK, SegNone
	case n == events.FinWait1, n == events.LastAck:
		return SegNone, SegFIN
	case n == events.CloseWait, n == events.Closing:
		return SegFIN, SegACK
	case o == events.FinWait1 && n == events.FinWait2:
		return SegACK, SegNone
	case n == events.TimeWait && o == events.Closing:
		return SegACK, SegNone
	case n == events.TimeWait:
		return SegFIN, SegACK
	case n == events.Close:
		return SegACK, SegNone
	}
	return SegNone, SegNone
}

// pstep is one inferred step of a peer nobody traced.
type pstep struct {
	state events.State
	sent  Seg
}

// peerOf infers what a remote peer did around local step s: the steps
// before s (sending what s received) and after s (receiving what s sent).
func peerOf(h *Half, s Step) (before, after []pstep) {
	o, n := s.Old, s.New
	switch {
	case n == events.Close && o != events.LastAck && o != events.Closing:
		recv, sent := segsOf(h, s)
		if recv == SegRST {
			return []pstep{{events.Close, SegRST}}, nil
		}
		if sent == SegRST {
			return nil, []pstep{{events.Close, SegNone}}
		}
	case o == events.SynSent && n == events.Established:
		return []pstep{{events.SynRecv, SegSYNACK}}, []pstep{{events.Established, SegNone}}
	case o == events.Listen && n == events.SynRecv:
		return []pstep{{events.SynSent, SegSYN}}, nil
	case o == events.SynRecv && n == events.Established:
		return []pstep{{events.Established, SegACK}}, nil
	case o == events.FinWait1 && n == events.FinWait2:
		return []pstep{{events.CloseWait, SegACK}}, nil
	case n == events.Closing:
		return []pstep{{events.FinWait1, SegFIN}}, nil
	case o == events.Closing && n == events.TimeWait:
		return []pstep{{events.Closing, SegACK}}, []pstep{{events.TimeWait, SegNone}}
	case n == events.TimeWait:
		return []pstep{{events.LastAck, SegFIN}}, []pstep{{events.Close, SegNone}}
	case n == events.CloseWait:
		return []pstep{{events.FinWait1, SegFIN}}, []pstep{{events.FinWait2, SegNone}}
	case o == events.LastAck && n == events.Close:
		return []pstep{{events.TimeWait, SegACK}}, nil
	}
	return nil, nil
}

// peerInitial infers the peer's state before the local socket's first step.
func peerInitial(h *Half) events.State {
	switch h.initial() {
	case events.Close:
		if h.End == events.EndRefused {
			return events.Close
		}
		return events.Listen
	case events.Listen:
		return events.Close
	case events.Established, events.FinWait1:
		return events.Established
	case events.FinWait2:
		return events.CloseWait
	case events.CloseWait, events.LastAck:
		return events.FinWait2
	case events.SynSent:
		return events.Listen
	case events.SynRecv:
		return events.SynSent
	}
	return events.Unknown
}

// peerTimeWait reports whether an untraced peer holds TIME_WAIT.
func peerTimeWait(h *Half) bool {
	if h.End != events.EndGraceful {
		return false
	}
	if h.Closer == events.CloserSimultaneous {
		return true
	}
	n := len(h.Steps)
	return n > 0 && h.Steps[n-1].Old == events.LastAck
}

// Roles says, per column, who closed first, who holds TIME_WAIT and who
// an orphaned FIN_WAIT2 (a timewait socket waiting for the peer's FIN).
type Roles struct {
	Active, TimeWait, Orphan [2]bool
}

// RolesOf reads the verdicts of a ladder's sockets into its columns.
func RolesOf(l *Ladder) Roles {
	var r Roles
	for x, h := range l.Sides {
		if h == nil {
			continue
		}
		switch h.Closer {
		case events.CloserLocal:
			r.Active[x] = true
		case events.CloserSimultaneous:
			r.Active[0], r.Active[1] = true, true
		case events.CloserPeer:
			if l.Sides[1-x] == nil {
				r.Active[1-x] = true
			}
		}
		r.TimeWait[x] = r.TimeWait[x] || h.TimeWait
		r.Orphan[x] = r.Orphan[x] || h.Orphan
		if l.Sides[1-x] == nil && peerTimeWait(h) {
			r.TimeWait[1-x] = true
		}
	}
	return r
}
