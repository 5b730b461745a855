package report

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/tcptrace/tcptrace/internal/diagnosis"
	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/render/style"
)

// Processes listed in the summary.
const (
	topJSON = 20 // in the JSON summary
	topText = 5  // in the text summary
)

// ProcCloses counts one process's finished connections and active closes.
type ProcCloses struct {
	PID          uint32 `json:"pid"`
	Comm         string `json:"comm"`
	ActiveCloses uint64 `json:"active_closes"`
	Finished     uint64 `json:"finished"`
}

// Closers counts finished connections by who sent the first FIN.
type Closers struct {
	Local        uint64 `json:"local"`
	Peer         uint64 `json:"peer"`
	Simultaneous uint64 `json:"simultaneous"`
	None         uint64 `json:"none"`
}

// LostCounts are the events the kernel could not deliver.
type LostCounts struct {
	Ring      uint64 `json:"ring"`
	Recursion uint64 `json:"recursion"`
	Total     uint64 `json:"total"`
}

// Summary is what a run saw, reported on exit.
type Summary struct {
	Elapsed      time.Duration     `json:"-"`
	ElapsedS     float64           `json:"elapsed_s"`
	Events       uint64            `json:"events"`      // kernel transitions observed
	Transitions  uint64            `json:"transitions"` // transitions the summarizer saw (after filtering, with inferred)
	Conns        uint64            `json:"connections"` // connections first seen
	Finished     uint64            `json:"finished"`    // connections that reached CLOSE
	Open         int               `json:"open"`        // connections still tracked
	ActiveCloses []ProcCloses      `json:"active_closes"`
	Closers      Closers           `json:"closers"`
	Ends         map[string]uint64 `json:"ends"`
	TimeWait     uint64            `json:"time_wait"`     // CLOSEs handed over to a TIME_WAIT socket
	FinWait2     uint64            `json:"fin_wait2"`     // CLOSEs handed over to an orphaned FIN_WAIT2 timewait socket
	TimeWaitNow  int               `json:"time_wait_now"` // TIME_WAIT sockets the kernel holds at the end (-1: unknown; SetReport)
	FinWait2Now  int               `json:"fin_wait2_now"` // orphaned FIN_WAIT2 timewait sockets at the end (-1: unknown)
	Lost         LostCounts        `json:"lost"`
	Inferred     uint64            `json:"inferred"`              // steps filled in from gaps
	Evicted      uint64            `json:"evicted"`               // connections dropped from a full table
	KernelRuns   uint64            `json:"kernel_runs,omitempty"` // program runs counted by bpf stats
	KernelNs     uint64            `json:"kernel_ns,omitempty"`   // total in-kernel run time (kernel.bpf_stats_enabled)
}

// Summarizer is a Sink that counts what it sees for the exit summary; the
// processes that closed first come from the diagnosis (Summary.SetReport).
type Summarizer struct {
	closers     Closers
	ends        [events.EndClosed + 1]uint64
	timeWait    uint64
	finWait2    uint64
	transitions uint64
	lost        events.Losses
}

// NewSummarizer returns an empty Summarizer.
func NewSummarizer() *Summarizer { return &Summarizer{} }

// Transition counts a transition.
func (s *Summarizer) Transition(*events.Transition) { s.transitions++ }

// Finished counts a connection's verdict.
func (s *Summarizer) Finished(c *events.Conn) {
	if c == nil {
		return
	}
	switch c.Closer {
	case events.CloserLocal:
		s.closers.Local++
	case events.CloserPeer:
		s.closers.Peer++
	case events.CloserSimultaneous:
		s.closers.Simultaneous++
	default:
		s.closers.None++
	}
	if int(c.End) < len(s.ends) {
		s.ends[c.End]++
	}
	if c.TimeWait {
		s.timeWait++
	}
	if c.TwState == events.FinWait2 {
		s.finWait2++
	}
}

// Loss keeps the latest cumulative loss counters.
func (s *Summarizer) Loss(ev *events.Event) {
	if ev != nil {
		s.lost.Ring = max(s.lost.Ring, ev.Lost.Ring)
		s.lost.Recursion = max(s.lost.Recursion, ev.Lost.Recursion)
	}
}

// Summary combines what the summarizer saw with the tracker's counters and
// the final loss totals.
func (s *Summarizer) Summary(st events.Stats, lost events.Losses, elapsed time.Duration) *Summary {
	lost.Ring = max(lost.Ring, s.lost.Ring)
	lost.Recursion = max(lost.Recursion, s.lost.Recursion)
	sum := &Summary{
		Elapsed: elapsed, ElapsedS: elapsed.Seconds(),
		Events: st.Events, Transitions: s.transitions, Conns: st.Conns, Finished: st.Finished,
		Open: st.Tracked, ActiveCloses: []ProcCloses{}, Closers: s.closers, Ends: make(map[string]uint64),
		TimeWait: s.timeWait, FinWait2: s.finWait2, TimeWaitNow: -1, FinWait2Now: -1,
		Lost:     LostCounts{Ring: lost.Ring, Recursion: lost.Recursion, Total: lost.Total()},
		Inferred: st.Inferred, Evicted: st.Evicted,
	}
	for e, n := range s.ends {
		if n > 0 {
			sum.Ends[events.End(e).String()] = n
		}
	}
	return sum
}

// SetReport takes from the diagnosis's report the processes that closed
// connections first, and what the kernel holds now: TimeWaitNow and
// FinWait2Now, the totals of its namespaces (they stay unknown, -1, when
// no namespace's count is known).
func (s *Summary) SetReport(r *diagnosis.Report) {
	if r == nil {
		return
	}
	s.ActiveCloses = s.ActiveCloses[:0]
	for _, c := range r.Closers[:min(len(r.Closers), topJSON)] {
		s.ActiveCloses = append(s.ActiveCloses, ProcCloses{PID: c.Owner.PID, Comm: style.Sanitize(c.Owner.Comm.String()),
			ActiveCloses: c.ActiveCloses, Finished: c.Finished})
	}
	tw, fw, known := 0, 0, false
	for _, n := range r.Namespaces {
		if n.TimeWait >= 0 {
			tw, fw, known = tw+n.TimeWait, fw+n.FinWait2, true
		}
	}
	if known {
		s.TimeWaitNow, s.FinWait2Now = tw, fw
	}
}

// WriteJSON writes the summary as the {"type":"summary"} line.
func (s *Summary) WriteJSON(w io.Writer) error {
	if s == nil {
		s = &Summary{TimeWaitNow: -1, FinWait2Now: -1}
	}
	out, err := json.Marshal(struct {
		Type string `json:"type"`
		*Summary
	}{"summary", s})
	if err != nil {
		return fmt.Errorf("encode summary: %w", err)
	}
	if _, err := w.Write(append(out, '\n')); err != nil {
		return fmt.Errorf("write json: %w", err)
	}
	return nil
}

// WriteText writes the short human summary printed on exit.
func (s *Summary) WriteText(w io.Writer, o style.Options) error {
	if s == nil {
		s = &Summary{TimeWaitNow: -1, FinWait2Now: -1}
	}
	st, width, ell := style.New(w, o.Color), o.Columns(), "…"
	if o.ASCII {
		ell = "~"
	}
	const labelW = 14
	lines := []string{st.Paint(st.Header, "tcptrace summary")}
	row := func(label, text string) {
		lines = append(lines, st.Paint(st.Bold, style.Pad(label, len(label), labelW))+style.TruncRight(text, width-labelW, ell))
	}
	row("duration", style.Dur(s.Elapsed.Nanoseconds(), o.ASCII))
	row("events", count(s.Events, "transition")+" observed")
	row("connections", itoa(s.Conns)+" seen, "+itoa(s.Finished)+" finished, "+strconv.Itoa(s.Open)+" open")
	c := s.Closers
	row("closer", "local "+itoa(c.Local)+", peer "+itoa(c.Peer)+", simultaneous "+itoa(c.Simultaneous)+", none "+itoa(c.None))
	var ends []string
	for e := events.EndOpen; e <= events.EndClosed; e++ {
		if n := s.Ends[e.String()]; n > 0 {
			ends = append(ends, e.String()+" "+itoa(n))
		}
	}
	if len(ends) == 0 {
		ends = append(ends, "none finished")
	}
	row("end", strings.Join(ends, ", "))
	if s.TimeWaitNow >= 0 {
		row("TIME_WAIT", strconv.Itoa(s.TimeWaitNow)+" now ("+itoa(s.TimeWait)+" handed over during the trace)")
		if s.FinWait2Now > 0 || s.FinWait2 > 0 {
			row("FIN_WAIT2", strconv.Itoa(max(s.FinWait2Now, 0))+" orphaned now ("+itoa(s.FinWait2)+" handed over during the trace)")
		}
	} else {
		row("TIME_WAIT", itoa(s.TimeWait)+" handed over (each holds its port "+style.TimeWaitHold+")")
		if s.FinWait2 > 0 {
			row("FIN_WAIT2", itoa(s.FinWait2)+" orphaned, handed over to timewait sockets")
		}
	}
	procs := s.ActiveCloses
	if len(procs) == 0 {
		row("active close", "none")
	}
	for i, p := range procs[:min(len(procs), topText)] {
		label := ""
		if i == 0 {
			label = "active close"
		}
		share := ""
		if p.Finished > 0 {
			share = ", " + strconv.FormatUint((p.ActiveCloses*100+p.Finished/2)/p.Finished, 10) + "%"
		}
		who := style.Sanitize(p.Comm) + " (" + itoa(uint64(p.PID)) + ")"
		row(label, who+": "+itoa(p.ActiveCloses)+" of "+itoa(p.Finished)+" finished"+share)
	}
	if n := len(procs) - topText; n > 0 {
		row("", "and "+strconv.Itoa(n)+" more processes")
	}
	lo := s.Lost
	lost := itoa(lo.Total) + " events in the kernel (ring buffer full " + itoa(lo.Ring) + ", recursion guard " + itoa(lo.Recursion) + ")"
	if lo.Total > 0 { // cut before painting; row's cut then leaves it as it is
		lost = st.Paint(st.Loss, style.TruncRight(lost, width-labelW, ell))
	}
	row("lost", lost)
	row("inferred", count(s.Inferred, "step")+" filled in from gaps")
	row("evicted", count(s.Evicted, "connection")+" dropped from a full table")
	if _, err := io.WriteString(w, strings.Join(lines, "\n")+"\n"); err != nil {
		return fmt.Errorf("write summary: %w", err)
	}
	return nil
}

// count formats n with noun, plural unless n is 1.
func count(n uint64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return itoa(n) + " " + noun + "s"
}
