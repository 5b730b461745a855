package render

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tcptrace/tcptrace/internal/diagnosis"
	"github.com/tcptrace/tcptrace/internal/events"
)

// Limits of the per-process table, so a fork-heavy host cannot grow it without bound.
const (
	maxProcs  = 1 << 16
	topJSON   = 20 // processes listed in the JSON summary
	topText   = 5  // processes listed in the text summary
	otherComm = "(other)"
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
	TimeWaitNow  int               `json:"time_wait_now"` // TIME_WAIT sockets the kernel holds at the end (-1: unknown; SetTimeWaitNow)
	FinWait2Now  int               `json:"fin_wait2_now"` // orphaned FIN_WAIT2 timewait sockets at the end (-1: unknown)
	Lost         LostCounts        `json:"lost"`
	Inferred     uint64            `json:"inferred"`              // steps filled in from gaps
	Evicted      uint64            `json:"evicted"`               // connections dropped from a full table
	KernelRuns   uint64            `json:"kernel_runs,omitempty"` // program runs counted by bpf stats
	KernelNs     uint64            `json:"kernel_ns,omitempty"`   // total in-kernel run time (kernel.bpf_stats_enabled)
	allProcs     []ProcCloses
}

type procKey struct {
	pid  uint32
	comm events.Comm
}

// Summarizer is a Sink that counts what it sees for the exit summary.
type Summarizer struct {
	procs       map[procKey]*ProcCloses
	other       ProcCloses
	closers     Closers
	ends        [events.EndClosed + 1]uint64
	timeWait    uint64
	finWait2    uint64
	transitions uint64
	lost        events.Losses
}

// NewSummarizer returns an empty Summarizer.
func NewSummarizer() *Summarizer {
	return &Summarizer{procs: make(map[procKey]*ProcCloses), other: ProcCloses{Comm: otherComm}}
}

// Transition counts a transition.
func (s *Summarizer) Transition(*events.Transition) { s.transitions++ }

// Finished counts a connection's verdict against its owner.
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
	k := procKey{c.Owner.PID, c.Owner.Comm}
	p := s.procs[k]
	if p == nil {
		if len(s.procs) >= maxProcs {
			p = &s.other
		} else {
			p = &ProcCloses{PID: k.pid, Comm: sanitize(k.comm.String())}
			s.procs[k] = p
		}
	}
	p.Finished++
	if c.Closer == events.CloserLocal {
		p.ActiveCloses++
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
		Open: st.Tracked, Closers: s.closers, Ends: make(map[string]uint64), TimeWait: s.timeWait,
		FinWait2: s.finWait2, TimeWaitNow: -1, FinWait2Now: -1,
		Lost:     LostCounts{Ring: lost.Ring, Recursion: lost.Recursion, Total: lost.Total()},
		Inferred: st.Inferred, Evicted: st.Evicted,
	}
	for e, n := range s.ends {
		if n > 0 {
			sum.Ends[endName(events.End(e))] = n
		}
	}
	for _, p := range s.procs {
		if p.ActiveCloses > 0 {
			sum.allProcs = append(sum.allProcs, *p)
		}
	}
	if s.other.ActiveCloses > 0 {
		sum.allProcs = append(sum.allProcs, s.other)
	}
	sort.Slice(sum.allProcs, func(i, j int) bool {
		a, b := sum.allProcs[i], sum.allProcs[j]
		if a.ActiveCloses != b.ActiveCloses {
			return a.ActiveCloses > b.ActiveCloses
		}
		if a.Finished != b.Finished {
			return a.Finished > b.Finished
		}
		if a.PID != b.PID {
			return a.PID < b.PID
		}
		return a.Comm < b.Comm
	})
	sum.ActiveCloses = sum.allProcs[:min(len(sum.allProcs), topJSON)]
	if sum.ActiveCloses == nil {
		sum.ActiveCloses = []ProcCloses{}
	}
	return sum
}

// SetTimeWaitNow sets TimeWaitNow and FinWait2Now to the totals the
// diagnosis's report has for its namespaces: what the kernel holds now.
// They stay unknown (-1) when no namespace's count is known.
func (s *Summary) SetTimeWaitNow(r *diagnosis.Report) {
	if r == nil {
		return
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

// WriteText writes the short human summary printed on exit.
func (s *Summary) WriteText(w io.Writer, o Options) error {
	if s == nil {
		s = &Summary{TimeWaitNow: -1, FinWait2Now: -1}
	}
	st, l := newStyles(w, o.Color), newLayout(o)
	width := l.width
	const labelW = 14
	var lines []string
	row := func(label, text string, style *styles, emph bool) {
		text = truncRight(text, width-labelW, l.ell)
		if emph {
			text = style.paint(style.loss, text)
		}
		lines = append(lines, style.paint(style.bold, pad(label, len(label), labelW))+text)
	}
	lines = append(lines, st.paint(st.header, "tcptrace summary"))
	row("duration", formatDur(s.Elapsed.Nanoseconds(), o.ASCII), st, false)
	row("events", count(s.Events, "transition")+" observed", st, false)
	row("connections", itoa(s.Conns)+" seen, "+itoa(s.Finished)+" finished, "+strconv.Itoa(s.Open)+" open", st, false)
	c := s.Closers
	row("closer", "local "+itoa(c.Local)+", peer "+itoa(c.Peer)+", simultaneous "+itoa(c.Simultaneous)+
		", none "+itoa(c.None), st, false)
	var ends []string
	for e := events.EndOpen; e <= events.EndClosed; e++ {
		if n := s.Ends[endName(e)]; n > 0 {
			ends = append(ends, endName(e)+" "+itoa(n))
		}
	}
	if len(ends) == 0 {
		ends = append(ends, "none finished")
	}
	row("end", strings.Join(ends, ", "), st, false)
	if s.TimeWaitNow >= 0 {
		row("TIME_WAIT", strconv.Itoa(s.TimeWaitNow)+" now ("+itoa(s.TimeWait)+" handed over during the trace)", st, false)
		if s.FinWait2Now > 0 || s.FinWait2 > 0 {
			row("FIN_WAIT2", strconv.Itoa(max(s.FinWait2Now, 0))+" orphaned now ("+itoa(s.FinWait2)+" handed over during the trace)", st, false)
		}
	} else {
		row("TIME_WAIT", itoa(s.TimeWait)+" handed over (each holds its port "+TimeWaitHold+")", st, false)
		if s.FinWait2 > 0 {
			row("FIN_WAIT2", itoa(s.FinWait2)+" orphaned, handed over to timewait sockets", st, false)
		}
	}
	procs := s.allProcs
	if procs == nil {
		procs = s.ActiveCloses
	}
	if len(procs) == 0 {
		row("active close", "none", st, false)
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
		who := sanitize(p.Comm) + " (" + itoa(uint64(p.PID)) + ")"
		row(label, who+": "+itoa(p.ActiveCloses)+" of "+itoa(p.Finished)+" finished"+share, st, false)
	}
	if n := len(procs) - topText; n > 0 {
		row("", "and "+strconv.Itoa(n)+" more processes", st, false)
	}
	lo := s.Lost
	row("lost", itoa(lo.Total)+" events in the kernel (ring buffer full "+itoa(lo.Ring)+
		", recursion guard "+itoa(lo.Recursion)+")", st, lo.Total > 0)
	row("inferred", count(s.Inferred, "step")+" filled in from gaps", st, false)
	row("evicted", count(s.Evicted, "connection")+" dropped from a full table", st, false)
	_, err := io.WriteString(w, strings.Join(lines, "\n")+"\n")
	if err != nil {
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
