package render

import (
	"net/netip"

	"github.com/tcptrace/tcptrace/internal/events"
)

// seg is a TCP segment drawn as an arrow between the columns.
type seg uint8

// Segments inferred from transitions.
const (
	segNone seg = iota
	segSYN
	segSYNACK
	segACK
	segFIN
	segRST
)

var segNames = [...]string{"", "SYN", "SYN+ACK", "ACK", "FIN", "RST"}

// dstep is one transition of one socket as a diagram keeps it.
type dstep struct {
	Old, New events.State // New as shown: TIME_WAIT for a handover
	T        uint64       // kernel ns
	Filled   bool         // filled in by the tracker: its kernel event was lost
}

// half is one socket's finished life: one column of a diagram.
type half struct {
	cookie        uint64
	role          events.Role
	local, remote netip.AddrPort
	netns         uint32
	owner         events.Owner
	closer        events.Closer
	end           events.End
	resetBy       events.Side
	timeWait      bool
	orphan        bool // closed in FIN_WAIT2 before the peer's FIN: a timewait socket holds it (its CLOSE is not drawn)
	partial       bool
	errno         uint16 // sk_err at the end
	start, last   uint64
	steps         []dstep
	done          uint64 // kernel ns when it finished (pending halves)
}

// initial returns the state the socket was in before its first step.
func (h *half) initial() events.State {
	if len(h.steps) == 0 {
		return events.Unknown
	}
	return h.steps[0].Old
}

// segsOf returns the segment that caused step s of h and the one it sent.
func segsOf(h *half, s dstep) (recv, sent seg) {
	o, n := s.Old, s.New
	switch {
	case n == events.Close && o != events.LastAck && o != events.Closing:
		switch {
		case h.end == events.EndRefused:
			return segRST, segNone
		case h.end == events.EndReset && h.resetBy == events.SidePeer:
			return segRST, segNone
		case h.end == events.EndReset:
			return segNone, segRST
		}
		return segNone, segNone
	case o == events.Close && n == events.SynSent:
		return segNone, segSYN
	case n == events.SynRecv:
		return segSYN, segSYNACK
	case o == events.SynSent && n == events.Established:
		return segSYNACK, segACK
	case o == events.SynRecv && n == events.Established:
		return segACK, segNone
	case n == events.FinWait1, n == events.LastAck:
		return segNone, segFIN
	case n == events.CloseWait, n == events.Closing:
		return segFIN, segACK
	case o == events.FinWait1 && n == events.FinWait2:
		return segACK, segNone
	case n == events.TimeWait && o == events.Closing:
		return segACK, segNone
	case n == events.TimeWait:
		return segFIN, segACK
	case n == events.Close:
		return segACK, segNone
	}
	return segNone, segNone
}

// pstep is one inferred step of a peer nobody traced.
type pstep struct {
	state events.State
	sent  seg
}

// peerOf infers what a remote peer did around local step s: the steps
// before s (sending what s received) and after s (receiving what s sent).
func peerOf(h *half, s dstep) (before, after []pstep) {
	o, n := s.Old, s.New
	switch {
	case n == events.Close && o != events.LastAck && o != events.Closing:
		recv, sent := segsOf(h, s)
		if recv == segRST {
			return []pstep{{events.Close, segRST}}, nil
		}
		if sent == segRST {
			return nil, []pstep{{events.Close, segNone}}
		}
	case o == events.SynSent && n == events.Established:
		return []pstep{{events.SynRecv, segSYNACK}}, []pstep{{events.Established, segNone}}
	case o == events.Listen && n == events.SynRecv:
		return []pstep{{events.SynSent, segSYN}}, nil
	case o == events.SynRecv && n == events.Established:
		return []pstep{{events.Established, segACK}}, nil
	case o == events.FinWait1 && n == events.FinWait2:
		return []pstep{{events.CloseWait, segACK}}, nil
	case n == events.Closing:
		return []pstep{{events.FinWait1, segFIN}}, nil
	case o == events.Closing && n == events.TimeWait:
		return []pstep{{events.Closing, segACK}}, []pstep{{events.TimeWait, segNone}}
	case n == events.TimeWait:
		return []pstep{{events.LastAck, segFIN}}, []pstep{{events.Close, segNone}}
	case n == events.CloseWait:
		return []pstep{{events.FinWait1, segFIN}}, []pstep{{events.FinWait2, segNone}}
	case o == events.LastAck && n == events.Close:
		return []pstep{{events.TimeWait, segACK}}, nil
	}
	return nil, nil
}

// peerInitial infers the peer's state before the local socket's first step.
func peerInitial(h *half) events.State {
	switch h.initial() {
	case events.Close:
		if h.end == events.EndRefused {
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
func peerTimeWait(h *half) bool {
	if h.end != events.EndGraceful {
		return false
	}
	if h.closer == events.CloserSimultaneous {
		return true
	}
	n := len(h.steps)
	return n > 0 && h.steps[n-1].Old == events.LastAck
}

// drow is one row of a ladder: one side entering a state.
type drow struct {
	side     int          // 0 left, 1 right
	state    events.State // state entered
	sent     seg          // segment sent toward the other side
	inferred bool         // the peer, inferred
	filled   bool         // filled in by the tracker
	step     int          // index into the side's steps; -1 when inferred
}

// ladder is one connection's diagram, before rendering.
type ladder struct {
	sides [2]*half // nil for an inferred peer
	local int      // single-sided: the column of the traced socket
	init  [2]events.State
	rows  []drow
	t0    uint64
}

// newLadder builds the diagram of a pair (b may be nil: single-sided).
func newLadder(a, b *half) *ladder {
	l := &ladder{}
	if b == nil {
		if a.role == events.RoleServer {
			l.local = 1
		}
		l.sides[l.local] = a
		l.single(a)
		return l
	}
	if leftOf(b, a) {
		a, b = b, a
	}
	l.sides = [2]*half{a, b}
	l.pair(a, b)
	return l
}

// leftOf reports whether x belongs in the left (client) column rather than y.
func leftOf(x, y *half) bool {
	switch {
	case x.role == events.RoleClient && y.role != events.RoleClient:
		return true
	case y.role == events.RoleClient && x.role != events.RoleClient:
		return false
	case x.role == events.RoleServer && y.role != events.RoleServer:
		return false
	case y.role == events.RoleServer && x.role != events.RoleServer:
		return true
	}
	// Neither seen connecting: the connector's remote port is the service's.
	return x.remote.Port() < y.remote.Port() || x.remote.Port() == y.remote.Port() && x.cookie < y.cookie
}

// single lays out a traced socket with its peer inferred.
func (l *ladder) single(h *half) {
	me, peer := l.local, 1-l.local
	l.init[me], l.init[peer] = h.initial(), peerInitial(h)
	if len(h.steps) > 0 {
		l.t0 = h.steps[0].T
	}
	for i, s := range h.steps {
		before, after := peerOf(h, s)
		for _, p := range before {
			l.rows = append(l.rows, drow{side: peer, state: p.state, sent: p.sent, inferred: true, step: -1})
		}
		_, sent := segsOf(h, s)
		l.rows = append(l.rows, drow{side: me, state: s.New, sent: sent, filled: s.Filled, step: i})
		for _, p := range after {
			l.rows = append(l.rows, drow{side: peer, state: p.state, sent: p.sent, inferred: true, step: -1})
		}
	}
}

// pair merges two traced sockets' steps in time order, except that a step
// caused by a segment never comes before the step that sent it.
func (l *ladder) pair(a, b *half) {
	hs := [2]*half{a, b}
	l.init = [2]events.State{a.initial(), b.initial()}
	var deps [2][]int
	for x := 0; x < 2; x++ {
		deps[x] = matchDeps(hs[x], hs[1-x])
	}
	l.t0 = ^uint64(0)
	for _, h := range hs {
		if len(h.steps) > 0 && h.steps[0].T < l.t0 {
			l.t0 = h.steps[0].T
		}
	}
	var i [2]int
	n := [2]int{len(a.steps), len(b.steps)}
	ready := func(x int) bool {
		return i[x] < n[x] && deps[x][i[x]] < i[1-x]
	}
	for i[0] < n[0] || i[1] < n[1] {
		pick := 0
		switch {
		case i[0] >= n[0]:
			pick = 1
		case i[1] >= n[1]:
		case ready(0) != ready(1):
			if ready(1) {
				pick = 1
			}
		case b.steps[i[1]].T < a.steps[i[0]].T:
			pick = 1
		}
		h := hs[pick]
		s := h.steps[i[pick]]
		_, sent := segsOf(h, s)
		l.rows = append(l.rows, drow{side: pick, state: s.New, sent: sent, filled: s.Filled, step: i[pick]})
		i[pick]++
	}
}

// matchDeps returns, for each step of h, the index of the step of o that
// sent the segment causing it (-1 when none).
func matchDeps(h, o *half) []int {
	deps := make([]int, len(h.steps))
	var next [segRST + 1]int
	for k, s := range h.steps {
		deps[k] = -1
		recv, _ := segsOf(h, s)
		if recv == segNone {
			continue
		}
		for j := next[recv]; j < len(o.steps); j++ {
			if _, sent := segsOf(o, o.steps[j]); sent == recv {
				deps[k], next[recv] = j, j+1
				break
			}
		}
	}
	return deps
}

// durOf returns the time side x spent in the state entered at step k:
// -1 when unknown, TIME_WAIT's hold for a final TIME_WAIT.
func durOf(h *half, k int) int64 {
	if k < 0 || k >= len(h.steps) {
		return -1
	}
	if k+1 < len(h.steps) {
		return diffNs(h.steps[k+1].T, h.steps[k].T)
	}
	if h.steps[k].New == events.TimeWait {
		return timeWaitNs
	}
	return -1
}

// timeWaitNs is Linux's TCP_TIMEWAIT_LEN.
const timeWaitNs = 60e9

// diffNs returns a-b, 0 when b is later.
func diffNs(a, b uint64) int64 {
	if a < b {
		return 0
	}
	return int64(a - b)
}
