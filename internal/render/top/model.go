// Package top is `tcptrace top`: the incident live on one screen, a
// Bubble Tea model fed a Snapshot of the diagnosis once a refresh (never
// per event): destinations by time to exhaustion with their TIME_WAIT
// against the usable ports, the processes closing first, the latest
// warnings, and on Enter a destination's connection ladders.
package top

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/tcptrace/tcptrace/internal/diagnosis"
	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/render/style"
)

// Snapshot is the state top shows at one refresh, made on the pipeline's
// goroutine and not changed after it is sent.
type Snapshot struct {
	Wall     time.Time           // the source's wall clock at the refresh
	Mono     uint64              // its CLOCK_MONOTONIC ns
	Elapsed  time.Duration       // since tracing started
	Events   uint64              // kernel transitions so far
	Lost     events.Losses       // events lost in the kernel so far
	RingFill float64             // ring buffer share unread at the latest wake-up; -1: not live
	Report   *diagnosis.Report   // the diagnosis at the refresh
	Ladders  *Ladders            // the open destination's ladders, when one is open
	Open     *diagnosis.Dest     // the destination Ladders are of
	Done     bool                // the source ended (a replay played out)
	Label    func(uint32) string // a process's container, "" on the host; nil: none
}

// Ladders are a destination's connection ladders, drawn as text.
type Ladders struct {
	Aggregate []string // one ladder per shape of its connections
	Example   []string // its latest connection
}

// Options configure the model.
type Options struct {
	Style  style.Options // colour, ASCII
	Host   string
	Kernel string
	Source string // "live" or the capture's name
	// Filter parses the filter line (the flags' language: --port 8080
	// --host 10.0.0.0/8 --pid 42 --comm curl).
	Filter func(string) (events.Filter, error)
	// Open asks the pipeline for a destination's ladders (nil: closed);
	// they come with the next Snapshot. It is called from the model's
	// goroutine.
	Open func(*diagnosis.Dest)
}

// Sort orders of the destinations.
const (
	SortExhaustion = iota // nearest exhaustion, then TIME_WAIT
	SortTimeWait          // most TIME_WAIT
	SortConnects          // most connects per second
	SortFailed            // most failed connects
	numSorts
)

var sortNames = [numSorts]string{"exhaustion", "TIME_WAIT", "connects/s", "failed"}

// Model is top's Bubble Tea model.
type Model struct {
	o       Options
	st      *style.Styles
	w, h    int
	snap    *Snapshot
	prev    *Snapshot // the one before snap: process rates
	paused  bool
	sortBy  int
	cursor  int
	filter  events.Filter
	ftext   string // the filter as typed
	editing bool   // typing a filter
	edit    string
	ferr    string
	open    *diagnosis.Dest
	hist    map[diagnosis.Dest][]histPoint
	quit    bool
}

// histPoint is a destination's TIME_WAIT at a refresh.
type histPoint struct {
	mono uint64
	held int
}

// New returns the model; w and h are the terminal's size until it reports one.
func New(o Options, st *style.Styles, w, h int) *Model {
	return &Model{o: o, st: st, w: w, h: h, hist: map[diagnosis.Dest][]histPoint{}}
}

// Init starts nothing: snapshots come from the pipeline.
func (m *Model) Init() tea.Cmd { return nil }

// Quit reports whether the user asked to quit.
func (m *Model) Quit() bool { return m.quit }

// Update takes a snapshot, a key or a new window size.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case *Snapshot:
		m.take(msg)
	case tea.WindowSizeMsg:
		m.w, m.h = msg.Width, msg.Height
	case tea.KeyMsg:
		if m.key(msg) {
			m.quit = true
			return m, tea.Quit
		}
	}
	return m, nil
}

// take keeps a snapshot (unless paused) and each destination's history.
func (m *Model) take(s *Snapshot) {
	for _, f := range s.Report.Forecasts {
		h := append(m.hist[f.Dest], histPoint{s.Mono, f.Inputs.Held})
		for len(h) > 0 && s.Mono-h[0].mono > uint64(sparkSpan) {
			h = h[1:]
		}
		m.hist[f.Dest] = h
	}
	if len(m.hist) > 4*diagnosis.MaxDests {
		clear(m.hist)
	}
	if m.paused && m.snap != nil {
		if s.Ladders != nil || s.Done {
			m.snap.Ladders, m.snap.Open, m.snap.Done = s.Ladders, s.Open, s.Done
		}
		return
	}
	m.prev, m.snap = m.snap, s
}

// key handles a key; it returns true to quit.
func (m *Model) key(k tea.KeyMsg) bool {
	if m.editing {
		switch k.Type {
		case tea.KeyEnter:
			m.editing = false
			f, err := m.parse(m.edit)
			if err != nil {
				m.ferr = err.Error()
				return false
			}
			m.filter, m.ftext, m.ferr, m.cursor = f, strings.TrimSpace(m.edit), "", 0
		case tea.KeyEsc:
			m.editing = false
		case tea.KeyBackspace:
			if len(m.edit) > 0 {
				m.edit = m.edit[:len(m.edit)-1]
			}
		case tea.KeyCtrlC:
			return true
		case tea.KeyRunes, tea.KeySpace:
			m.edit += string(k.Runes)
		}
		return false
	}
	switch k.String() {
	case "q", "ctrl+c":
		return true
	case "esc":
		if m.open != nil {
			m.setOpen(nil)
		}
	case "s":
		m.sortBy = (m.sortBy + 1) % numSorts
	case "p", " ":
		m.paused = !m.paused
	case "/":
		m.editing, m.edit, m.ferr = true, m.ftext, ""
	case "up", "k":
		m.cursor = max(m.cursor-1, 0)
	case "down", "j":
		m.cursor++
	case "enter":
		if m.open != nil {
			m.setOpen(nil)
		} else if rows := m.dests(); m.cursor < len(rows) {
			d := rows[m.cursor].Dest
			m.setOpen(&d)
		}
	}
	return false
}

// parse reads a filter line; empty clears it.
func (m *Model) parse(s string) (events.Filter, error) {
	if strings.TrimSpace(s) == "" || m.o.Filter == nil {
		return events.Filter{}, nil
	}
	return m.o.Filter(s)
}

// setOpen opens a destination's ladders (nil closes them).
func (m *Model) setOpen(d *diagnosis.Dest) {
	m.open = d
	if m.o.Open != nil {
		m.o.Open(d)
	}
}

// dests returns the destinations shown: filtered and sorted.
func (m *Model) dests() []diagnosis.ForecastRow {
	if m.snap == nil {
		return nil
	}
	var rows []diagnosis.ForecastRow
	for _, f := range m.snap.Report.Forecasts {
		if m.matchDest(f.Dest, f.Owner) {
			rows = append(rows, f)
		}
	}
	eta := func(f *diagnosis.ForecastRow) time.Duration {
		if f.Forecast.Never {
			return 1 << 62
		}
		return f.Forecast.ETA
	}
	slices.SortStableFunc(rows, func(a, b diagnosis.ForecastRow) int {
		var c int
		switch m.sortBy {
		case SortExhaustion:
			c = cmp.Compare(eta(&a), eta(&b))
		case SortConnects:
			c = cmp.Compare(b.Conns, a.Conns)
		case SortFailed:
			c = cmp.Compare(b.Failed, a.Failed)
		}
		if c == 0 {
			c = b.Inputs.Held - a.Inputs.Held
		}
		return c
	})
	return rows
}

// matchDest applies the filter to a destination and its owner.
func (m *Model) matchDest(d diagnosis.Dest, owner diagnosis.ProcKey) bool {
	f := &m.filter
	if !m.matchProc(owner) {
		return false
	}
	if len(f.Ports) > 0 && !slices.Contains(f.Ports, d.Dport) && !slices.Contains(f.Ports, d.Lport) {
		return false
	}
	if len(f.Hosts) > 0 && !slices.ContainsFunc(f.Hosts, func(p netip.Prefix) bool { return p.Contains(d.Daddr) || p.Contains(d.Saddr) }) {
		return false
	}
	return true
}

// matchProc applies the filter's owner fields to a process.
func (m *Model) matchProc(k diagnosis.ProcKey) bool {
	f := &m.filter
	return (f.PID == 0 || f.PID == k.PID) && (f.Comm == "" || f.Comm == k.Comm.String())
}
