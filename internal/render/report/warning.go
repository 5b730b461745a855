package report

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/tcptrace/tcptrace/internal/clock"
	"github.com/tcptrace/tcptrace/internal/diagnosis"
	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/render/style"
)

// Warnings shows what the diagnosis finds in the stream: forecast and churn
// warnings, failed connects and the later steps of timewait sockets (moves
// to TIME_WAIT, ends), as text lines or JSON objects. It implements
// diagnosis.Reporter.
type Warnings struct {
	w    io.Writer
	o    style.Options
	json bool
	st   *style.Styles
	err  error
}

// NewWarnings returns the stream's diagnosis view: JSON lines when asJSON.
func NewWarnings(w io.Writer, o style.Options, asJSON bool) *Warnings {
	return &Warnings{w: w, o: o, json: asJSON, st: style.New(w, o.Color)}
}

// Err returns the first write error, if any.
func (v *Warnings) Err() error { return v.err }

func (v *Warnings) write(s string) {
	if v.err == nil {
		_, v.err = io.WriteString(v.w, s)
	}
}

func (v *Warnings) writeJSON(x any) {
	b, err := json.Marshal(x)
	if err != nil {
		v.err = fmt.Errorf("encode warning: %w", err)
		return
	}
	v.write(string(b) + "\n")
}

// WarningJSON is a {"type":"warning"} line.
type WarningJSON struct {
	Type       string   `json:"type"`
	Time       string   `json:"time"`
	Kind       string   `json:"kind"`
	Netns      uint32   `json:"netns"`
	Saddr      string   `json:"saddr"`
	Daddr      string   `json:"daddr"`
	Dport      uint16   `json:"dport"`
	PID        uint32   `json:"pid"`
	Comm       string   `json:"comm"`
	Rate       float64  `json:"rate_per_s"`
	TimeWait   int      `json:"time_wait_sockets"`
	Ports      int      `json:"ports"`
	PortsLeft  int      `json:"ports_left"`
	Seconds    *float64 `json:"seconds_to_exhaustion"`
	HoldS      float64  `json:"hold_s"`
	PortRange  [2]int   `json:"ip_local_port_range"`
	TwReuse    int      `json:"tcp_tw_reuse"`
	Timestamps int      `json:"tcp_timestamps"`
	MaxTw      int      `json:"tcp_max_tw_buckets"`
	Failed     uint64   `json:"failed_connects"`
	LifetimeUs float64  `json:"short_life_us,omitempty"`
	Remedies   []string `json:"remedies,omitempty"`
}

// warningJSON is w as a JSON line, without the remedies.
func warningJSON(w *diagnosis.Warning, c clock.Wall) WarningJSON {
	f, s := &w.Forecast, &w.Sysctls
	j := WarningJSON{Type: "warning", Time: c.Time(w.Time).Format(time.RFC3339Nano), Kind: w.Kind,
		Netns: w.Dest.Netns, Saddr: style.Addr(w.Dest.Saddr), Daddr: style.Addr(w.Dest.Daddr), Dport: w.Dest.Dport,
		PID: w.Owner.PID, Comm: style.Sanitize(w.Owner.Comm.String()), Rate: round2(w.Rate), TimeWait: w.Held,
		Ports: f.Ports, PortsLeft: f.Left, HoldS: f.Hold.Seconds(),
		PortRange: [2]int{s.PortLo, s.PortHi}, TwReuse: s.TwReuse,
		Timestamps: s.Timestamps, MaxTw: s.MaxTwBuckets, Failed: w.Failed}
	if !f.Never {
		sec := round2(f.ETA.Seconds())
		j.Seconds = &sec
	}
	if w.Kind == diagnosis.KindChurn {
		j.LifetimeUs = float64(w.Lifetime.Microseconds())
	}
	return j
}

// Warning shows a forecast or churn warning.
func (v *Warnings) Warning(w *diagnosis.Warning) {
	if w == nil {
		return
	}
	if v.json {
		j := warningJSON(w, v.o.Clock)
		j.Remedies = diagnosis.Remedies
		v.writeJSON(j)
		return
	}
	f, s := &w.Forecast, &w.Sysctls
	who := ProcText(w.Owner) + " " + v.o.Arrow() + " " + style.Endpoint(w.Dest.Daddr, w.Dest.Dport)
	var lines []string
	if w.Kind == diagnosis.KindChurn {
		lines = append(lines, fmt.Sprintf("!! connection churn: %s: %.1f connects/s, each shorter than %v", who, w.Rate, w.Lifetime),
			fmt.Sprintf("   %d TIME_WAIT held, %d of %d ports left; %s", w.Held, f.Left, f.Ports, ETAText(f)))
	} else {
		lines = append(lines, fmt.Sprintf("!! ports toward %s run out %s", style.Endpoint(w.Dest.Daddr, w.Dest.Dport), ETAText(f)),
			fmt.Sprintf("   %s is the active closer: %.1f new TIME_WAIT/s, %d held %s each, %d of %d ports left",
				ProcText(w.Owner), w.Rate, w.Held, holdText(f.Hold), f.Left, f.Ports),
			fmt.Sprintf("   netns %d from %s: ip_local_port_range %d %d, tcp_tw_reuse %d, tcp_timestamps %d, tcp_max_tw_buckets %d",
				w.Dest.Netns, style.Addr(w.Dest.Saddr), s.PortLo, s.PortHi, s.TwReuse, s.Timestamps, s.MaxTwBuckets))
	}
	lines = append(lines, "   remedies, safest first:")
	for i, r := range diagnosis.Remedies {
		lines = append(lines, "     "+strconv.Itoa(i+1)+". "+r)
	}
	head := v.st.Paint(v.st.Loss, lines[0])
	v.write(v.stamp(w.Time) + head + "\n" + strings.Join(lines[1:], "\n") + "\n")
}

// Failed shows connects that failed since the last notice (text only: in
// JSON they are the connection records with "end":"failed").
func (v *Warnings) Failed(f *diagnosis.FailedNotice) {
	if f == nil || v.json {
		return
	}
	msg := fmt.Sprintf("!! connect() failed %s ×%d: %s %s %s (%d so far)", errnoText(f.Err), f.New,
		ProcText(f.Owner), v.o.Arrow(), style.Endpoint(f.Dest.Daddr, f.Dest.Dport), f.Total)
	v.write(v.stamp(f.Time) + v.st.Paint(v.st.Loss, msg) + "\n")
}

// stamp is a line's time, faint, and the space after it.
func (v *Warnings) stamp(mono uint64) string {
	return v.st.Paint(v.st.Faint, v.o.Clock.Time(mono).Format("15:04:05.000000")) + " "
}

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
	arrow := v.o.Arrow()
	change := s.Old.String() + " " + arrow + " " + s.New.String()
	v.write(v.stamp(s.Time) + "   " + v.st.Paint(v.st.TimeWait, change) + "  " + twOwner(s) + " " +
		style.Endpoint(s.Dest.Saddr, s.Sport) + " " + arrow + " " + DestText(s.Dest) + ": " + twWhat(s, v.o.ASCII) + "\n")
}

// timeWaitJSON is step s as a JSON line.
func timeWaitJSON(s *diagnosis.TimeWaitStep, c clock.Wall) *TimeWaitJSON {
	j := &TimeWaitJSON{Type: "time_wait_end", Time: c.Time(s.Time).Format(time.RFC3339Nano), Cookie: s.Cookie,
		Netns: s.Dest.Netns, Saddr: style.Addr(s.Dest.Saddr), Sport: s.Sport, Daddr: style.Addr(s.Dest.Daddr),
		Dport: s.Dest.Dport, HeldUs: float64(s.Held.Microseconds()), OwnerKnown: s.Known}
	if s.Known {
		j.PID, j.Comm = s.Owner.PID, style.Sanitize(s.Owner.Comm.String())
	} else {
		j.HintPID, j.HintComm = s.Owner.PID, style.Sanitize(s.Owner.Comm.String())
	}
	if s.Op.Ends() {
		j.Cause, j.State = s.Op.String(), s.Old.String()
	} else {
		j.Type, j.Old, j.New = "time_wait_move", s.Old.String(), s.New.String()
		j.Restarted = s.Old == s.New
	}
	return j
}
