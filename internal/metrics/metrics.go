// Package metrics exports the tcptrace event stream as Prometheus metrics
// under the tcptrace_ prefix, with bounded label cardinality: state and
// verdict labels are closed sets, owners and destinations are limited to
// the top K (Options.TopK) plus an "other" series.
package metrics

import (
	"cmp"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tcptrace/tcptrace/internal/diagnosis"
	"github.com/tcptrace/tcptrace/internal/events"
)

// Defaults of Options.
const (
	DefaultTopK   = 20               // labelled owners and destinations per metric
	DefaultWindow = 10 * time.Minute // top-K owner series are re-ranked this often
	AgentMaxConns = 1 << 16          // tracked-table bound for a long-running agent (serve): RSS stays under 64 MiB
	maxErrors     = 32               // distinct errno labels of connect failures
	numStates     = int(events.NewSynRecv) + 1
)

// Kernel is what the live probe reports about the kernel side (a *probe.Probe).
type Kernel interface {
	Losses() (events.Losses, error)
	Buffered() int
	RingSize() int
}

// Options configure Metrics.
type Options struct {
	TopK       int                               // DefaultTopK if 0
	Window     time.Duration                     // DefaultWindow if 0
	Kernel     Kernel                            // nil: no kernel loss or ring metrics
	Container  func(c *events.Conn) string       // container label of a connection ("" on the host); nil: none
	MaxTracked int                               // the tracker's table bound, exported as a gauge
	Version    string                            // for tcptrace_build_info
	Extra      func(ch chan<- prometheus.Metric) // more metrics at scrape time (serve's health)
}

// Metrics is an events.Sink that counts the stream and a prometheus
// Collector that exports it. Sink methods, SetTracker and SetDiagnosis are
// called from the pipeline goroutine; Collect from the HTTP server's.
type Metrics struct {
	o           Options
	reg         *prometheus.Registry
	transitions [numStates][numStates]atomic.Uint64
	finished    [4][8]atomic.Uint64
	inferred    atomic.Uint64
	mu          sync.Mutex // guards what follows
	closes      *topCounter
	failures    *topCounter
	stats       events.Stats
	timeWait    []destValue
	finWait2    []destValue
	forecast    []destValue
	netns       []diagnosis.NetnsRow // the namespaces whose settings were read (live or recorded)
}

// destValue is a per-destination gauge's value; key is the destination's
// label and its namespace's, joined by a NUL.
type destValue struct {
	key   string
	value float64
}

// otherKey is the key of the series that counts the other destinations.
const otherKey = OtherLabel + "\x00" + OtherLabel

// labels returns the destination and netns labels of key.
func (v destValue) labels() (dest, netns string) {
	dest, netns, _ = strings.Cut(v.key, "\x00")
	return dest, netns
}

// New returns the metrics, registered with a registry of their own that
// also has the Go runtime and process collectors.
func New(o Options) *Metrics {
	if o.TopK <= 0 {
		o.TopK = DefaultTopK
	}
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	m := &Metrics{o: o, reg: prometheus.NewRegistry(),
		closes:   newTopCounter(o.TopK, uint64(o.Window)),
		failures: newTopCounter(maxErrors, 0)}
	for _, e := range connectErrors { // at 0 from the first scrape
		m.failures.slots[e] = &slot{}
	}
	m.reg.MustRegister(m, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry returns the registry to serve (promhttp.HandlerFor).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Transition counts a state change (TIME_WAIT shown as the kernel's CLOSE is handed over).
func (m *Metrics) Transition(t *events.Transition) {
	from, to := int(t.Old), int(t.Shown())
	if from < numStates && to < numStates {
		m.transitions[from][to].Add(1)
	}
	if t.Inferred {
		m.inferred.Add(1)
	}
}

// Finished counts a finished connection: its verdict, its owner when it
// closed first, and its error when a connect failed.
func (m *Metrics) Finished(c *events.Conn) {
	if int(c.Closer) < len(m.finished) && int(c.End) < len(m.finished[0]) {
		m.finished[c.Closer][c.End].Add(1)
	}
	active := c.Closer == events.CloserLocal
	failed := c.End == events.EndRefused || c.End == events.EndFailed || c.End == events.EndTimeout
	if !active && !failed {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if active {
		ctr := ""
		if m.o.Container != nil {
			ctr = m.o.Container(c)
		}
		m.closes.add(c.Owner.Comm.String()+"\x00"+ctr, 1, c.Last)
	}
	if failed {
		m.failures.add(errName(c.Err), 1, c.Last)
	}
}

// Loss ignores loss notices: the kernel's counters are read at scrape time.
func (m *Metrics) Loss(*events.Event) {}

// SetTracker records the tracker's counters (call it when the stream is idle).
func (m *Metrics) SetTracker(s events.Stats) {
	m.mu.Lock()
	m.stats = s
	m.mu.Unlock()
}

// SetDiagnosis records the diagnosis's TIME_WAIT and orphaned FIN_WAIT2 by
// destination and its port-exhaustion forecasts (call it every few seconds,
// and at once when a namespace's table has been read). Once a namespace's
// TIME_WAIT is known, the gauges have an "other" series from then on (0, or
// +Inf for the forecast, when no other destination has one).
func (m *Metrics) SetDiagnosis(r *diagnosis.Report) {
	if r == nil {
		return
	}
	held := false
	for i := range r.Namespaces {
		held = held || r.Namespaces[i].TimeWait >= 0
	}
	twRows := m.heldRows(r, func(row *diagnosis.TimeWaitRow) int { return row.Count },
		func(ns *diagnosis.NetnsRow) int { return ns.TimeWait })
	fwRows := m.heldRows(r, func(row *diagnosis.TimeWaitRow) int { return row.FinWait2 },
		func(ns *diagnosis.NetnsRow) int { return ns.FinWait2 })
	fc := map[string]float64{}
	for _, row := range r.Forecasts {
		if row.Forecast.Never {
			continue
		}
		k := destKey(row.Dest)
		if v, ok := fc[k]; !ok || row.Forecast.ETA.Seconds() < v {
			fc[k] = row.Forecast.ETA.Seconds()
		}
	}
	near := func(a, b float64) int { return cmp.Compare(a, b) }
	fcRows := topValues(fc, m.o.TopK, near)
	rest := fc
	for _, v := range fcRows {
		delete(rest, v.key)
	}
	if o := topValues(rest, 1, near); len(o) == 1 {
		fcRows = append(fcRows, destValue{otherKey, o[0].value}) // the nearest of the rest
	} else if held {
		fcRows = append(fcRows, destValue{otherKey, math.Inf(1)}) // none at risk
	}
	var netns []diagnosis.NetnsRow
	for _, n := range r.Namespaces {
		if n.From != "default" && n.Sysctls.Known {
			netns = append(netns, n)
		}
	}
	m.mu.Lock()
	m.timeWait, m.finWait2, m.forecast, m.netns = twRows, fwRows, fcRows, netns
	m.mu.Unlock()
}

// heldRows returns the sockets held per destination, as row counts them,
// top K plus "other": the rest of the namespaces' totals (ns) when they
// are known, else of the rows.
func (m *Metrics) heldRows(r *diagnosis.Report, row func(*diagnosis.TimeWaitRow) int, ns func(*diagnosis.NetnsRow) int) []destValue {
	byDest := map[string]float64{}
	var shown float64
	for i := range r.TimeWait {
		if n := row(&r.TimeWait[i]); n > 0 {
			byDest[destKey(r.TimeWait[i].Dest)] += float64(n)
			shown += float64(n)
		}
	}
	var total float64
	known := false
	for i := range r.Namespaces {
		if r.Namespaces[i].TimeWait >= 0 {
			total += float64(ns(&r.Namespaces[i]))
			known = true
		}
	}
	rows := topValues(byDest, m.o.TopK, func(a, b float64) int { return cmp.Compare(b, a) })
	var kept float64
	for _, v := range rows {
		kept += v.value
	}
	switch {
	case known:
		rows = append(rows, destValue{otherKey, max(total-kept, 0)})
	case shown > kept:
		rows = append(rows, destValue{otherKey, shown - kept})
	}
	return rows
}

// topValues returns the k first values of m in the order of less.
func topValues(m map[string]float64, k int, less func(a, b float64) int) []destValue {
	out := make([]destValue, 0, len(m))
	for k, v := range m {
		out = append(out, destValue{k, v})
	}
	slices.SortFunc(out, func(a, b destValue) int { return cmp.Or(less(a.value, b.value), strings.Compare(a.key, b.key)) })
	return out[:min(len(out), k)]
}

// destKey names a destination and its namespace: "addr:port" toward a
// server, or "local:port" for TIME_WAIT held on a server's own port; a NUL;
// the namespace's inode.
func destKey(d diagnosis.Dest) string {
	ns := strconv.FormatUint(uint64(d.Netns), 10)
	if d.Lport != 0 {
		return "local:" + strconv.Itoa(int(d.Lport)) + "\x00" + ns
	}
	return netip.AddrPortFrom(d.Daddr.Unmap(), d.Dport).String() + "\x00" + ns
}

// errName names a connect failure's errno (EADDRNOTAVAIL, ECONNREFUSED...).
func errName(e uint16) string {
	if e == 0 {
		return "none"
	}
	if n := diagnosis.ErrName(e); !strings.HasPrefix(n, "errno ") {
		return n
	}
	return "errno_" + strconv.Itoa(int(e))
}
