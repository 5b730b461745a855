package diagnosis

import (
	"cmp"
	"slices"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcptrace/tcptrace/internal/events"
)

// Limits of the report.
const (
	maxProcs   = 4096 // processes counted; the rest are summed as "(other)"
	topRows    = 20   // rows per table
	destsPerPr = 4    // destinations kept per process
)

type destCount struct {
	dest Dest
	n    uint64
}

type procStat struct {
	finished, closes uint64
	established      uint64 // finished sockets that were established
	failed           uint64 // connects that never established
	dests            [destsPerPr]destCount
}

// Stats aggregates finished connections for the report.
type Stats struct {
	procs    map[ProcKey]*procStat
	other    procStat
	ends     [events.EndClosed + 1]uint64
	lifetime Hist
	states   [events.NewSynRecv + 1]Hist
	twEnded  uint64        // timewait sockets of the table seen ended
	recent   [2]recentProc // the latest processes looked up, the latest first: churn repeats them
}

// recentProc is a process looked up and its counts.
type recentProc struct {
	k ProcKey
	p *procStat // nil: none yet
}

func newStats() *Stats { return &Stats{procs: map[ProcKey]*procStat{}} }

func (s *Stats) finished(c *events.Conn) {
	if int(c.End) < len(s.ends) {
		s.ends[c.End]++
	}
	if c.Role != events.RoleListener && !c.Partial && c.Last >= c.Start {
		s.lifetime.Add(time.Duration(c.Last - c.Start))
	}
	for _, sp := range c.Spans {
		if int(sp.State) < len(s.states) {
			s.states[sp.State].Add(time.Duration(sp.Dur))
		}
	}
	k := ProcKey{c.Owner.PID, c.Owner.Comm}
	p := s.proc(k)
	p.finished++
	switch {
	case c.Role == events.RoleListener:
	case c.Established():
		p.established++
	case c.Role != events.RoleServer:
		p.failed++
	}
	if c.Closer != events.CloserLocal {
		return
	}
	p.closes++
	d := Dest{Netns: c.Netns, Saddr: c.Saddr, Daddr: c.Daddr, Dport: c.Dport}
	if c.Role == events.RoleServer {
		d = Dest{Netns: c.Netns, Saddr: c.Saddr, Lport: c.Sport}
	}
	low := 0
	for i := range p.dests {
		if p.dests[i].n > 0 && p.dests[i].dest.same(&d) {
			p.dests[i].n++
			return
		}
		if p.dests[i].n < p.dests[low].n {
			low = i
		}
	}
	p.dests[low] = destCount{d, 1}
}

// proc returns the counts of process k, creating them (the "other"
// counts when maxProcs are kept).
func (s *Stats) proc(k ProcKey) *procStat {
	r := &s.recent
	if r[0].p != nil && r[0].k == k {
		return r[0].p
	}
	if r[1].p != nil && r[1].k == k {
		r[0], r[1] = r[1], r[0]
		return r[0].p
	}
	p := s.procs[k]
	if p == nil {
		if len(s.procs) >= maxProcs {
			p = &s.other
		} else {
			p = &procStat{}
			s.procs[k] = p
		}
	}
	r[1], r[0] = r[0], recentProc{k, p}
	return p
}

// Report is everything `tcptrace report` shows.
type Report struct {
	End        uint64 // CLOCK_MONOTONIC ns of the report: it covers End-Elapsed to End
	Elapsed    time.Duration
	LedgerNote string // how TIME_WAIT was counted, when not from the kernel's events
	Closers    []CloserRow
	TimeWait   []TimeWaitRow
	Failed     []FailedRow
	Ends       []EndRow
	Lifetime   Percentiles
	States     []StateRow
	Forecasts  []ForecastRow
	Namespaces []NetnsRow
	Warnings   []Warning
	Timelines  []Timeline // the destinations that matter most, over time (Engine.Timelines)
	TWEnded    uint64     // timewait sockets of the table the kernel was seen dropping (their end reported)
	TWLost     uint64     // timewait sockets dropped from the table pruneAfter past their timer with no end seen (lost events)
	TWStray    uint64     // ends of timewait sockets the table did not hold (start not seen, not read at start)
}

// CloserRow is a process that closed connections first.
type CloserRow struct {
	Owner          ProcKey
	ActiveCloses   uint64
	Finished       uint64 // its finished sockets, failed connects included
	Established    uint64 // its finished sockets that were established: what it could close
	FailedConnects uint64 // its connects that never established
	Dests          []DestCount
}

// DestCount is a destination and how many connections went to it.
type DestCount struct {
	Dest  Dest
	Count uint64
}

// TimeWaitRow is the TIME_WAIT held toward a destination by one owner.
type TimeWaitRow struct {
	Dest     Dest
	Owner    ProcKey
	Known    bool    // false: not traced (predates tracing)
	Hint     ProcKey // when not Known: a process that holds sockets toward Dest from its namespace now (a hint, not the owner)
	Count    int     // TIME_WAIT sockets
	FinWait2 int     // orphaned FIN_WAIT2 sockets held by timewait sockets (they hold the port too)
}

// FailedRow counts connects that failed, per process, destination and error.
type FailedRow struct {
	Owner ProcKey
	Dest  Dest
	Err   string
	Count uint64
}

// EndRow counts connections by how they ended.
type EndRow struct {
	End   string
	Count uint64
}

// StateRow is the time spent in one state.
type StateRow struct {
	State string
	Time  Percentiles
}

// ForecastRow is one destination's forecast with its inputs.
type ForecastRow struct {
	Dest     Dest
	Owner    ProcKey
	Inputs   Inputs
	Forecast Forecast
	Failed   uint64
	Conns    float64 // client connections finished per second, over the last 10 s
	Local    float64 // of them, the share closed first by this side (handed to a timewait socket)
}

// NetnsRow is a namespace's settings and TIME_WAIT total.
type NetnsRow struct {
	Netns    uint32
	Sysctls  Sysctls
	From     string // "live", "capture" or "default"
	TimeWait int    // TIME_WAIT sockets the kernel holds now (-1: unknown)
	FinWait2 int    // orphaned FIN_WAIT2 sockets held by timewait sockets now
	Unknown  int    // of both, those that predate tracing (owner unknown)
	Err      string
	Method   string // how they are known: MethodEvents, MethodTable (events, plus the table read at start) or MethodHandovers (inferred from traced closes)
}

// How a namespace's TIME_WAIT is known (NetnsRow.Method).
const (
	MethodEvents    = "events"       // the kernel reports each timewait socket's life
	MethodTable     = "events+table" // and its table was read at start for the sockets that predate tracing
	MethodHandovers = "handovers"    // inferred from traced closes; each assumed to last TimeWaitLen
)

// ErrName returns an errno's symbolic name ("EADDRNOTAVAIL"), "" for 0.
func ErrName(e uint16) string {
	if e == 0 {
		return ""
	}
	if n := unix.ErrnoName(syscall.Errno(e)); n != "" {
		return n
	}
	return "errno " + syscall.Errno(e).Error()
}

// Report assembles the report at time now; ledgerNote is set when TIME_WAIT
// comes from traced handovers rather than the kernel's events.
func (e *Engine) Report(now uint64, elapsed time.Duration, ledgerNote string) *Report {
	e.Tick(now)
	if e.lastRun != now { // the last step, short of evalEvery, ends at the report
		for _, d := range e.dests {
			e.evaluate(d, now)
		}
		e.sample(now, true)
	}
	r := &Report{End: now, Elapsed: elapsed, LedgerNote: ledgerNote, Warnings: e.warns, TWEnded: e.stats.twEnded,
		TWLost: e.tw.lost, TWStray: e.tw.stray}
	st := e.stats
	add := func(k ProcKey, p *procStat) {
		if p.closes == 0 {
			return
		}
		row := CloserRow{Owner: k, ActiveCloses: p.closes, Finished: p.finished, Established: p.established, FailedConnects: p.failed}
		for _, d := range p.dests {
			if d.n > 0 {
				row.Dests = append(row.Dests, DestCount{d.dest, d.n})
			}
		}
		slices.SortFunc(row.Dests, func(a, b DestCount) int {
			return cmp.Or(cmp.Compare(b.Count, a.Count), a.Dest.compare(&b.Dest))
		})
		r.Closers = append(r.Closers, row)
	}
	for k, p := range st.procs {
		add(k, p)
	}
	add(ProcKey{Comm: events.MakeComm("(other)")}, &st.other)
	slices.SortFunc(r.Closers, func(a, b CloserRow) int {
		return cmp.Or(cmp.Compare(b.ActiveCloses, a.ActiveCloses), cmp.Compare(a.Owner.PID, b.Owner.PID),
			cmp.Compare(a.Owner.Comm.String(), b.Owner.Comm.String()))
	})
	r.Closers = r.Closers[:min(len(r.Closers), topRows)]
	for end, n := range st.ends {
		if n > 0 {
			r.Ends = append(r.Ends, EndRow{events.End(end).String(), n})
		}
	}
	r.Lifetime = st.lifetime.Percentiles()
	for s := range st.states {
		if st.states[s].Count() > 0 {
			r.States = append(r.States, StateRow{events.State(s).String(), st.states[s].Percentiles()})
		}
	}
	for k, c := range e.failed.m {
		r.Failed = append(r.Failed, FailedRow{k.owner, k.dest, ErrName(k.err), c.total})
	}
	slices.SortFunc(r.Failed, func(a, b FailedRow) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Owner.PID, b.Owner.PID), cmp.Compare(a.Err, b.Err),
			a.Dest.compare(&b.Dest), cmp.Compare(a.Owner.Comm.String(), b.Owner.Comm.String()))
	})
	r.Failed = r.Failed[:min(len(r.Failed), topRows)]
	e.timeWaitRows(r, now)
	e.forecastRows(r, now)
	r.Timelines = e.Timelines()
	return r
}

// timeWaitRows fills the timewait sockets by destination and owner and
// the namespaces' totals: from the live table with timewait events, else
// inferred from traced handovers.
func (e *Engine) timeWaitRows(r *Report, now uint64) {
	for ns, v := range e.netns {
		row := NetnsRow{Netns: ns, Sysctls: e.sysctls(ns), From: "default", TimeWait: -1, Method: MethodHandovers}
		switch {
		case v.live:
			row.From = "live"
		case e.o.Sysctls != nil && e.o.Sysctls(ns) != nil:
			row.From = "capture"
		}
		if e.twEvents {
			row.TimeWait, row.FinWait2, row.Unknown, row.Method = v.tw, v.fw2, v.found, MethodEvents
			if v.tableRead {
				row.Method = MethodTable
			}
		}
		r.Namespaces = append(r.Namespaces, row)
	}
	for _, d := range e.dests {
		if e.twEvents {
			for _, x := range d.rows {
				if x.tw+x.fw2 > 0 {
					r.TimeWait = append(r.TimeWait, TimeWaitRow{Dest: d.dest, Owner: x.key.owner, Known: x.key.known,
						Hint: x.key.hint, Count: x.tw, FinWait2: x.fw2})
				}
			}
			continue
		}
		in, _ := e.forecast(d, e.sysctls(d.dest.Netns), now)
		if o, ok := d.owner(); ok && in.Held > 0 {
			r.TimeWait = append(r.TimeWait, TimeWaitRow{Dest: d.dest, Owner: o, Known: true, Count: in.Held})
		}
	}
	slices.SortFunc(r.Namespaces, func(a, b NetnsRow) int { return cmp.Compare(a.Netns, b.Netns) })
	slices.SortFunc(r.TimeWait, func(a, b TimeWaitRow) int {
		return cmp.Or(cmp.Compare(b.Count+b.FinWait2, a.Count+a.FinWait2), cmp.Compare(b.Count, a.Count),
			cmp.Compare(a.Owner.PID, b.Owner.PID), cmp.Compare(a.Hint.PID, b.Hint.PID), a.Dest.compare(&b.Dest),
			cmp.Compare(a.Owner.Comm.String(), b.Owner.Comm.String()), cmp.Compare(a.Hint.Comm.String(), b.Hint.Comm.String()))
	})
	r.TimeWait = r.TimeWait[:min(len(r.TimeWait), topRows)]
}

// forecastRows fills the forecast of every client-side destination with
// TIME_WAIT or failures, nearest exhaustion first.
func (e *Engine) forecastRows(r *Report, now uint64) {
	for _, d := range e.dests {
		if d.dest.Lport != 0 {
			continue
		}
		in, f := e.forecast(d, e.sysctls(d.dest.Netns), now)
		if in.Held == 0 && in.Rate == 0 && d.failed == 0 {
			continue
		}
		o, _ := d.owner()
		row := ForecastRow{Dest: d.dest, Owner: o, Inputs: in, Forecast: f, Failed: d.failed, Conns: d.rate(&d.conns, now)}
		if row.Conns > 0 {
			row.Local = min(in.Rate/row.Conns, 1)
		}
		r.Forecasts = append(r.Forecasts, row)
	}
	slices.SortFunc(r.Forecasts, func(a, b ForecastRow) int {
		ea, eb := a.Forecast.ETA, b.Forecast.ETA
		if a.Forecast.Never {
			ea = 1 << 62
		}
		if b.Forecast.Never {
			eb = 1 << 62
		}
		return cmp.Or(cmp.Compare(ea, eb), cmp.Compare(b.Inputs.Held, a.Inputs.Held), a.Dest.compare(&b.Dest))
	})
	r.Forecasts = r.Forecasts[:min(len(r.Forecasts), topRows)]
}
