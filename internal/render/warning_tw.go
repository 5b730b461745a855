package render

import (
	"time"

	"github.com/tcptrace/tcptrace/internal/diagnosis"
	"github.com/tcptrace/tcptrace/internal/events"
)

// TimeWaitJSON is a {"type":"time_wait_end"} line (the kernel dropped a
// timewait socket) or a {"type":"time_wait_move"} line (an orphaned
// FIN_WAIT2 got the peer's FIN and is TIME_WAIT now, or a TIME_WAIT's timer
// was restarted).
type TimeWaitJSON struct {
	Type       string  `json:"type"`
	Time       string  `json:"time"`
	Cookie     uint64  `json:"cookie"`
	PID        uint32  `json:"pid"` // the owner; 0 when the socket predates tracing
	Comm       string  `json:"comm"`
	Netns      uint32  `json:"netns"`
	Saddr      string  `json:"saddr"`
	Sport      uint16  `json:"sport"`
	Daddr      string  `json:"daddr"`
	Dport      uint16  `json:"dport"`
	HeldUs     float64 `json:"held_us"`             // since the timewait socket took over (predating: since tracing found it)
	Cause      string  `json:"cause,omitempty"`     // ends: "expire", "kill" (RST or a new SYN) or "reuse" (tcp_tw_reuse)
	State      string  `json:"state,omitempty"`     // ends: the substate dropped, "TIME_WAIT" or "FIN_WAIT2"
	Old        string  `json:"old,omitempty"`       // moves: the substate before
	New        string  `json:"new,omitempty"`       // moves: the substate after
	Restarted  bool    `json:"restarted,omitempty"` // moves: TIME_WAIT's timer restarted (a FIN again)
	OwnerKnown bool    `json:"owner_known"`         // false: the socket predates tracing
	HintPID    uint32  `json:"hint_pid,omitempty"`  // predating: a process holding sockets toward the destination now (a hint, not the owner)
	HintComm   string  `json:"hint_comm,omitempty"`
}

// TimeWait shows a step of a timewait socket after its connection's CLOSE:
// its move from FIN_WAIT2 to TIME_WAIT (or a restarted TIME_WAIT timer), or
// its end. Other steps write nothing.
func (v *Warnings) TimeWait(s *diagnosis.TimeWaitStep) {
	if s == nil || (s.Op != events.TwMove && !s.Op.Ends()) {
		return
	}
	if v.json {
		v.writeJSON(timeWaitJSON(s, v.o.Clock))
		return
	}
	change := s.Old.String() + " " + arrow(v.o) + " " + s.New.String()
	v.write(v.stamp(s.Time) + "   " + v.st.paint(v.st.timeWait, change) + "  " + twOwner(s) + " " +
		endpoint(s.Dest.Saddr, s.Sport) + " " + arrow(v.o) + " " + destText(s.Dest) + ": " + twWhat(s, v.o.ASCII) + "\n")
}

// timeWaitJSON is step s as a JSON line.
func timeWaitJSON(s *diagnosis.TimeWaitStep, c Clock) *TimeWaitJSON {
	j := &TimeWaitJSON{Type: "time_wait_end", Time: c.Wall(s.Time).Format(time.RFC3339Nano), Cookie: s.Cookie,
		Netns: s.Dest.Netns, Saddr: addrText(s.Dest.Saddr), Sport: s.Sport, Daddr: addrText(s.Dest.Daddr),
		Dport: s.Dest.Dport, HeldUs: float64(s.Held.Microseconds()), OwnerKnown: s.Known}
	if s.Known {
		j.PID, j.Comm = s.Owner.PID, sanitize(s.Owner.Comm.String())
	} else {
		j.HintPID, j.HintComm = s.Owner.PID, sanitize(s.Owner.Comm.String())
	}
	if s.Op.Ends() {
		j.Cause, j.State = s.Op.String(), s.Old.String()
	} else {
		j.Type, j.Old, j.New = "time_wait_move", s.Old.String(), s.New.String()
		j.Restarted = s.Old == s.New
	}
	return j
}

// twOwner names the owner of a timewait socket's connection, or says it
// predates tracing (with the hint, when there is one).
func twOwner(s *diagnosis.TimeWaitStep) string {
	if s.Known {
		return procText(s.Owner)
	}
	return predatesText(s.Owner)
}

// predatesText is the owner of a socket that predates tracing, with the
// process named as a hint when there is one (not the owner: one that holds
// sockets toward the same destination now).
func predatesText(hint diagnosis.ProcKey) string {
	if hint.PID == 0 && hint.Comm == (events.Comm{}) {
		return "predates tracing"
	}
	return "predates tracing (hint: " + sanitize(hint.Comm.String()) + " pid " + itoa(uint64(hint.PID)) + ")"
}

// twWhat says what step s did and after how long.
func twWhat(s *diagnosis.TimeWaitStep, ascii bool) string {
	after := "after " + formatDur(s.Held.Nanoseconds(), ascii)
	if !s.Known {
		after = formatDur(s.Held.Nanoseconds(), ascii) + " after tracing found it"
	}
	switch {
	case s.Op == events.TwMove && s.Old == s.New:
		return "timer restarted " + after + " (the peer's FIN again); holds the port " + TimeWaitHold + " more"
	case s.Op == events.TwMove:
		return "the peer's FIN arrived " + after + "; holds the port " + TimeWaitHold
	case s.Op == events.TwKill:
		return "killed early " + after + " (RST or a new SYN)"
	case s.Op == events.TwReuse:
		return "reused by connect " + after + " (tcp_tw_reuse)"
	}
	return "expired " + after
}
