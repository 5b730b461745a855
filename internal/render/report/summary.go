package report

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/lipgloss"

	"github.com/tcptrace/tcptrace/internal/diagnosis"
	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/render/style"
)

// Processes listed in the summary, and the destinations the diagnosis
// keeps per process.
const (
	destsKept = 4  // diagnosis: destsPerPr
	topJSON   = 20 // in the JSON summary
	topText   = 5  // in the text summary
)

// ProcCloses is a process that closed connections first: how many, of
// its established connections, toward which destinations, and its connects
// that failed (never established), which are not connections it could close.
type ProcCloses struct {
	PID            uint32      `json:"pid"`
	Comm           string      `json:"comm"`
	ActiveCloses   uint64      `json:"active_closes"`
	Established    uint64      `json:"established"`     // its finished sockets that were established
	FailedConnects uint64      `json:"failed_connects"` // its connects that never established
	Finished       uint64      `json:"finished"`        // its finished sockets, failed connects included
	Dests          []destCount `json:"destinations"`    // the busiest, with the connections closed first toward each
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

// Summary is what a run saw, reported on exit. It counts sockets and
// connections apart: a connection both ends of which are on this host is
// two sockets (a client and a server) and one connection.
type Summary struct {
	Elapsed        time.Duration     `json:"-"`
	ElapsedS       float64           `json:"elapsed_s"`
	Events         uint64            `json:"events"`          // kernel transitions observed
	Transitions    uint64            `json:"transitions"`     // transitions the summarizer saw (after filtering, with inferred)
	Sockets        uint64            `json:"sockets"`         // sockets first seen
	Finished       uint64            `json:"finished"`        // sockets that reached CLOSE
	Open           int               `json:"open"`            // sockets still tracked
	Connections    uint64            `json:"connections"`     // established connections finished, a pair of sockets on this host counted once
	Pairs          uint64            `json:"pairs"`           // of them, with their client and server sockets both on this host
	FailedConnects uint64            `json:"failed_connects"` // connects that never established (refused, no local port, timed out, aborted)
	Listeners      uint64            `json:"listeners"`       // listening sockets closed
	ActiveClosers  []ProcCloses      `json:"active_closers"`
	Closers        Closers           `json:"closers"`
	Ends           map[string]uint64 `json:"ends"`                // sockets by how they ended
	TimeWait       uint64            `json:"time_wait_handovers"` // CLOSEs handed over to a TIME_WAIT socket
	FinWait2       uint64            `json:"fin_wait2_handovers"` // CLOSEs handed over to an orphaned FIN_WAIT2 timewait socket
	TimeWaitNow    int               `json:"time_wait_now"`       // TIME_WAIT sockets the kernel holds at the end (-1: unknown; SetReport)
	FinWait2Now    int               `json:"fin_wait2_now"`       // orphaned FIN_WAIT2 timewait sockets at the end (-1: unknown)
	Lost           LostCounts        `json:"lost"`
	Inferred       uint64            `json:"inferred_steps"`        // steps filled in from gaps
	Evicted        uint64            `json:"evicted"`               // connections dropped from a full table
	KernelRuns     uint64            `json:"kernel_runs,omitempty"` // program runs counted by bpf stats
	KernelNs       uint64            `json:"kernel_ns,omitempty"`   // total in-kernel run time (kernel.bpf_stats_enabled)

	procs map[diagnosis.ProcKey]*procCount // the Summarizer's, for SetReport
}

// SetReport takes from the diagnosis's report the processes that closed
// connections first (with their established connections and failed
// connects as the Summarizer counted them), and what the kernel holds
// now: TimeWaitNow and FinWait2Now, the totals of its namespaces (they
// stay unknown, -1, when no namespace's count is known).
func (s *Summary) SetReport(r *diagnosis.Report) {
	if r == nil {
		return
	}
	s.ActiveClosers = s.ActiveClosers[:0]
	for _, c := range r.Closers[:min(len(r.Closers), topJSON)] {
		p := ProcCloses{PID: c.Owner.PID, Comm: style.Sanitize(c.Owner.Comm.String()),
			ActiveCloses: c.ActiveCloses, Finished: c.Finished, Dests: destCounts(c.Dests)}
		if n := s.procs[c.Owner]; n != nil {
			p.Established, p.FailedConnects = n.established, n.failed
		}
		s.ActiveClosers = append(s.ActiveClosers, p)
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

// WriteText writes the short human summary printed on exit, each row
// wrapped to the width (nothing is cut).
func (s *Summary) WriteText(w io.Writer, o style.Options) error {
	if s == nil {
		s = &Summary{TimeWaitNow: -1, FinWait2Now: -1}
	}
	st, width := style.New(w, o.Color), o.Columns()
	const labelW = 14
	lines := []string{st.Paint(st.Header, "tcptrace summary")}
	paint := func(label, text string, ink *lipgloss.Style) {
		for i, l := range wrapText(text, width-labelW) {
			if ink != nil {
				l = st.Paint(*ink, l)
			}
			if i > 0 {
				label = ""
			}
			lines = append(lines, st.Paint(st.Bold, style.Pad(label, len(label), labelW))+l)
		}
	}
	row := func(label, text string) { paint(label, text, nil) }
	row("duration", style.Dur(s.Elapsed.Nanoseconds(), o.ASCII))
	row("events", count(s.Events, "transition")+" observed")
	row("sockets", itoa(s.Sockets)+" seen, "+itoa(s.Finished)+" finished, "+strconv.Itoa(s.Open)+" open")
	conns := itoa(s.Connections) + " finished (" + count(s.Pairs, "client+server pair") + " on this host)"
	if s.FailedConnects > 0 {
		conns += ", " + count(s.FailedConnects, "connect") + " failed"
	}
	if s.Listeners > 0 {
		conns += ", " + count(s.Listeners, "listener") + " closed"
	}
	row("connections", conns)
	c := s.Closers
	row("closer", "local "+itoa(c.Local)+", peer "+itoa(c.Peer)+", simultaneous "+itoa(c.Simultaneous)+", none "+itoa(c.None)+" (sockets)")
	var ends []string
	for e := events.EndOpen; e <= events.EndClosed; e++ {
		if n := s.Ends[e.String()]; n > 0 {
			ends = append(ends, e.String()+" "+itoa(n))
		}
	}
	if len(ends) == 0 {
		ends = append(ends, "none finished")
	} else {
		ends[len(ends)-1] += " (sockets)"
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
	procs := s.ActiveClosers
	if len(procs) == 0 {
		row("active close", "none")
	}
	for i, p := range procs[:min(len(procs), topText)] {
		label := ""
		if i == 0 {
			label = "active close"
		}
		row(label, closerText(&p))
	}
	if n := len(procs) - topText; n > 0 {
		row("", "and "+strconv.Itoa(n)+" more processes")
	}
	lo := s.Lost
	lost := itoa(lo.Total) + " events in the kernel (ring buffer full " + itoa(lo.Ring) + ", recursion guard " + itoa(lo.Recursion) + ")"
	if lo.Total > 0 {
		paint("lost", lost, &st.Loss)
	} else {
		row("lost", lost)
	}
	row("inferred", count(s.Inferred, "step")+" filled in from gaps")
	row("evicted", count(s.Evicted, "socket")+" dropped from a full table")
	if _, err := io.WriteString(w, strings.Join(lines, "\n")+"\n"); err != nil {
		return fmt.Errorf("write summary: %w", err)
	}
	return nil
}

// closerText says how many of a process's established connections it
// closed first, toward how many destinations, and its failed connects:
// "app (42): 63 of 63 established (100%), to 1 destination; 61 connects
// failed".
func closerText(p *ProcCloses) string {
	s := style.Sanitize(p.Comm) + " (" + itoa(uint64(p.PID)) + "): " + itoa(p.ActiveCloses)
	if p.Established > 0 { // 0: not counted (more processes than the summary counts)
		s += " of " + itoa(p.Established) + " established (" + SharePct(p.ActiveCloses, p.Established) + ")"
	}
	switch n := len(p.Dests); {
	case n >= destsKept:
		s += ", to " + strconv.Itoa(n) + " or more destinations"
	case n > 0:
		s += ", to " + count(uint64(n), "destination")
	}
	if p.FailedConnects > 0 {
		s += "; " + count(p.FailedConnects, "connect") + " failed"
	}
	return s
}

// count formats n with noun, plural unless n is 1.
func count(n uint64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return itoa(n) + " " + noun + "s"
}
