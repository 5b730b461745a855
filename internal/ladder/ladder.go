// Package ladder models a connection's life as the rows of a ladder
// diagram: each socket's steps, the segments between them, and the peer's
// steps inferred when only one socket was traced. It pairs the two sockets
// of a same-host connection (Pairer) and collapses connections of one shape
// into counts and quantiles (Aggregator), for internal/render/diagram to draw.
package ladder

import (
	"net/netip"

	"github.com/tcptrace/tcptrace/internal/events"
)

// Seg is a TCP segment drawn as an arrow between the columns.
type Seg uint8

// Segments inferred from transitions.
const (
	SegNone Seg = iota
	SegSYN
	SegSYNACK
	SegACK
	SegFIN
	SegRST
)

var segNames = [...]string{"", "SYN", "SYN+ACK", "ACK", "FIN", "RST"}

// String returns the segment's name, "" for none or an unknown one.
func (s Seg) String() string {
	if int(s) < len(segNames) {
		return segNames[s]
	}
	return ""
}

// Step is one transition of one socket as a ladder keeps it.
type Step struct {
	Old, New events.State // New as shown: TIME_WAIT for a handover
	T        uint64       // kernel ns
	Filled   bool         // filled in by the tracker: its kernel event was lost
}

// Half is one socket's finished life: one column of a ladder.
type Half struct {
	Cookie        uint64         // the socket's cookie
	Role          events.Role    // client, server or unknown
	Local, Remote netip.AddrPort // IPv4-mapped addresses unmapped
	Netns         uint32         // network namespace inode
	Owner         events.Owner   // the process that owned it
	Closer        events.Closer  // who sent the first FIN
	End           events.End     // how it ended
	ResetBy       events.Side    // who sent the RST, when reset
	TimeWait      bool           // a TIME_WAIT socket took it over
	Orphan        bool           // closed in FIN_WAIT2 before the peer's FIN: a timewait socket holds it (its CLOSE is not drawn)
	Partial       bool           // open before tracing started
	Err           uint16         // sk_err at the end
	Start, Last   uint64         // kernel ns of its first and latest steps
	Steps         []Step         // its steps, at most 32 (the last replaces the 32nd)
	done          uint64         // kernel ns when it finished (pending halves)
}

// initial returns the state the socket was in before its first step.
func (h *Half) initial() events.State {
	if len(h.Steps) == 0 {
		return events.Unknown
	}
	return h.Steps[0].Old
}

// steps returns h's steps, none for nil (an inferred peer).
func (h *Half) steps() []Step {
	if h == nil {
		return nil
	}
	return h.Steps
}

// Row is one row of a ladder: one side entering a state, or (Ahead) only
// a segment crossing.
type Row struct {
	Side     int          // 0 left, 1 right
	State    events.State // state entered
	Sent     Seg          // segment sent toward the other side
	Inferred bool         // the peer, inferred
	Filled   bool         // filled in by the tracker
	Step     int          // index into the side's steps; -1 when inferred
	// Ahead: the row is only the segment Sent, sent by step Step of Side,
	// which the kernel stamped after the other side's receipt of it (a
	// child socket is made on the ACK, after its listener sent the
	// SYN+ACK); that step's own row comes later, in time order, without it.
	Ahead bool
}

// Ladder is one connection's diagram, before rendering.
type Ladder struct {
	Sides [2]*Half        // nil for an inferred peer
	Local int             // single-sided: the column of the traced socket
	Init  [2]events.State // each column's state before its first row
	Rows  []Row
	T0    uint64 // kernel ns of the first step
}

// New builds the ladder of a pair (b may be nil: single-sided).
func New(a, b *Half) *Ladder {
	l := &Ladder{}
	if b == nil {
		if a.Role == events.RoleServer {
			l.Local = 1
		}
		l.Sides[l.Local] = a
		l.single(a)
		return l
	}
	if leftOf(b, a) {
		a, b = b, a
	}
	l.Sides = [2]*Half{a, b}
	l.pair(a, b)
	return l
}

// leftOf reports whether x belongs in the left (client) column rather than y.
func leftOf(x, y *Half) bool {
	switch {
	case x.Role == events.RoleClient && y.Role != events.RoleClient:
		return true
	case y.Role == events.RoleClient && x.Role != events.RoleClient:
		return false
	case x.Role == events.RoleServer && y.Role != events.RoleServer:
		return false
	case y.Role == events.RoleServer && x.Role != events.RoleServer:
		return true
	}
	// Neither seen connecting: the connector's remote port is the service's.
	return x.Remote.Port() < y.Remote.Port() || x.Remote.Port() == y.Remote.Port() && x.Cookie < y.Cookie
}

// single lays out a traced socket with its peer inferred.
func (l *Ladder) single(h *Half) {
	me, peer := l.Local, 1-l.Local
	l.Init[me], l.Init[peer] = h.initial(), peerInitial(h)
	if len(h.Steps) > 0 {
		l.T0 = h.Steps[0].T
	}
	for i, s := range h.Steps {
		before, after := peerOf(h, s)
		for _, p := range before {
			l.Rows = append(l.Rows, Row{Side: peer, State: p.state, Sent: p.sent, Inferred: true, Step: -1})
		}
		_, sent := segsOf(h, s)
		l.Rows = append(l.Rows, Row{Side: me, State: s.New, Sent: sent, Filled: s.Filled, Step: i})
		for _, p := range after {
			l.Rows = append(l.Rows, Row{Side: peer, State: p.state, Sent: p.sent, Inferred: true, Step: -1})
		}
	}
}

// pair merges two traced sockets' steps in time order (at equal times, a
// step whose cause is drawn first). A step caused by a segment whose
// sender's step is stamped later gets that segment on an Ahead row just
// before it, so an arrow never points back in time.
func (l *Ladder) pair(a, b *Half) {
	hs := [2]*Half{a, b}
	l.Init = [2]events.State{a.initial(), b.initial()}
	var deps [2][]int
	for x := 0; x < 2; x++ {
		deps[x] = matchDeps(hs[x], hs[1-x])
	}
	l.T0 = ^uint64(0)
	for _, h := range hs {
		if len(h.Steps) > 0 && h.Steps[0].T < l.T0 {
			l.T0 = h.Steps[0].T
		}
	}
	var i [2]int
	n := [2]int{len(a.Steps), len(b.Steps)}
	ahead := [2][]bool{make([]bool, n[0]), make([]bool, n[1])} // the step's segment is drawn
	ready := func(x int) bool {
		return deps[x][i[x]] < i[1-x] || ahead[1-x][deps[x][i[x]]]
	}
	for i[0] < n[0] || i[1] < n[1] {
		pick := 0
		switch {
		case i[0] >= n[0]:
			pick = 1
		case i[1] >= n[1]:
		case b.Steps[i[1]].T < a.Steps[i[0]].T:
			pick = 1
		case b.Steps[i[1]].T == a.Steps[i[0]].T && ready(1) && !ready(0):
			pick = 1
		}
		h, k, o := hs[pick], i[pick], hs[1-pick]
		if j := deps[pick][k]; j >= i[1-pick] && !ahead[1-pick][j] {
			_, seg := segsOf(o, o.Steps[j])
			l.Rows = append(l.Rows, Row{Side: 1 - pick, State: o.Steps[j].New, Sent: seg, Step: j, Ahead: true})
			ahead[1-pick][j] = true
		}
		s := h.Steps[k]
		_, sent := segsOf(h, s)
		if ahead[pick][k] {
			sent = SegNone
		}
		l.Rows = append(l.Rows, Row{Side: pick, State: s.New, Sent: sent, Filled: s.Filled, Step: k})
		i[pick]++
	}
}

// matchDeps returns, for each step of h, the index of the step of o that
// sent the segment causing it (-1 when none).
func matchDeps(h, o *Half) []int {
	deps := make([]int, len(h.Steps))
	var next [SegRST + 1]int
	for k, s := range h.Steps {
		deps[k] = -1
		recv, _ := segsOf(h, s)
		if recv == SegNone {
			continue
		}
		for j := next[recv]; j < len(o.Steps); j++ {
			if _, sent := segsOf(o, o.Steps[j]); sent == recv {
				deps[k], next[recv] = j, j+1
				break
			}
		}
	}
	return deps
}

// At returns the time of step k of side x since the ladder's first step,
// -1 when unknown.
func (l *Ladder) At(x, k int) int64 {
	h := l.Sides[x]
	if h == nil || k < 0 || k >= len(h.Steps) {
		return -1
	}
	return DiffNs(h.Steps[k].T, l.T0)
}

// Dur returns the time side x spent in the state entered at step k: -1
// when unknown, TIME_WAIT's hold for a final TIME_WAIT.
func (l *Ladder) Dur(x, k int) int64 {
	h := l.Sides[x]
	if h == nil || k < 0 || k >= len(h.Steps) {
		return -1
	}
	if k+1 < len(h.Steps) {
		return DiffNs(h.Steps[k+1].T, h.Steps[k].T)
	}
	if h.Steps[k].New == events.TimeWait {
		return TimeWaitNs
	}
	return -1
}

// Lifetime is the time from the ladder's first step to its last.
func (l *Ladder) Lifetime() int64 {
	var end uint64
	for _, h := range l.Sides {
		for _, s := range h.steps() {
			end = max(end, s.T)
		}
	}
	return DiffNs(end, l.T0)
}

// TimeWaitNs is Linux's TCP_TIMEWAIT_LEN.
const TimeWaitNs = 60e9

// DiffNs returns a-b, 0 when b is later.
func DiffNs(a, b uint64) int64 {
	if a < b {
		return 0
	}
	return int64(a - b)
}
