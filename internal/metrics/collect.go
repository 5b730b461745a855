package metrics

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tcptrace/tcptrace/internal/events"
)

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("tcptrace_"+name, help, labels, nil)
}

// The exported metrics (see docs/deploy.md, "Metrics", for the list and bounds).
var (
	descTransitions = desc("transitions_total", "TCP state transitions seen, by old and new state (TIME_WAIT: the kernel's CLOSE handed to a timewait socket).", "from", "to")
	descInferred    = desc("transitions_inferred_total", "Transitions filled in from gaps (events the kernel could not deliver), included in tcptrace_transitions_total.")
	descFinished    = desc("connections_finished_total", "Connections that reached CLOSE, by who sent the first FIN and how they ended.", "closer", "end")
	descCloses      = desc("active_closes_total", "Connections closed first by this side (holding TIME_WAIT), by owner process name and container; top K plus other.", "comm", "container")
	descFailures    = desc("connect_failures_total", "Connects that failed (refused, no local port, timed out), by errno name.", "error")
	descTimeWait    = desc("time_wait_sockets", "TIME_WAIT sockets held now toward a destination (addr:port, or local:port on a server); top K plus other.", "destination")
	descFinWait2    = desc("orphan_fin_wait2_sockets", "Orphaned FIN_WAIT2 sockets held now toward a destination by timewait sockets (closed before the peer's FIN; they hold the port and become TIME_WAIT when it comes); top K plus other.", "destination")
	descForecast    = desc("port_exhaustion_forecast_seconds", "Seconds until connect() toward a destination is forecast to fail for lack of ephemeral ports (0: failing now); destinations at risk only, top K nearest plus the nearest of the other ones.", "destination")
	descKernelLost  = desc("kernel_events_lost_total", "Events the kernel could not deliver: ring buffer full, or program runs skipped by the recursion guard.", "cause")
	descUserDrops   = desc("userspace_drops_total", "Connections dropped in userspace before they ended: evicted from the full tracked-connection table.", "cause")
	descEvents      = desc("events_total", "Kernel transition events read from the ring buffer.")
	descConns       = desc("connections_total", "Connections first seen.")
	descTracked     = desc("tracked_connections", "Connections in the tracked-connection table now.")
	descTrackedMax  = desc("tracked_connections_limit", "Bound of the tracked-connection table (--max-conns).")
	descRingUsed    = desc("ring_buffer_used_bytes", "Unread bytes in the kernel ring buffer.")
	descRingSize    = desc("ring_buffer_size_bytes", "Size of the kernel ring buffer.")
	descBuild       = desc("build_info", "Always 1, labelled with the tcptrace version.", "version")
)

var endLabels = [...]string{"open", "graceful", "reset", "refused", "failed", "timeout", "aborted", "closed"}

// Describe sends the descriptions of the tcptrace_ metrics.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descTransitions, descInferred, descFinished, descCloses, descFailures,
		descTimeWait, descFinWait2, descForecast, descKernelLost, descUserDrops, descEvents, descConns, descTracked,
		descTrackedMax, descRingUsed, descRingSize, descBuild} {
		ch <- d
	}
}

// Collect sends the current values.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for from := range m.transitions {
		for to := range m.transitions[from] {
			if n := m.transitions[from][to].Load(); n > 0 {
				counter(descTransitions, float64(n), events.State(from).String(), events.State(to).String())
			}
		}
	}
	counter(descInferred, float64(m.inferred.Load()))
	for cl := range m.finished {
		for end := range m.finished[cl] {
			if n := m.finished[cl][end].Load(); n > 0 {
				counter(descFinished, float64(n), events.Closer(cl).String(), endLabels[end])
			}
		}
	}
	gauge(descBuild, 1, m.o.Version)
	if k := m.o.Kernel; k != nil {
		if l, err := k.Losses(); err == nil {
			counter(descKernelLost, float64(l.Ring), "ring_full")
			counter(descKernelLost, float64(l.Recursion), "recursion")
		}
		gauge(descRingUsed, float64(k.Buffered()))
		gauge(descRingSize, float64(k.RingSize()))
	}
	m.mu.Lock()
	m.closes.each(func(key string, n uint64) {
		comm, ctr, ok := strings.Cut(key, "\x00")
		if !ok {
			comm, ctr = OtherLabel, OtherLabel
		}
		counter(descCloses, float64(n), comm, ctr)
	})
	m.failures.each(func(key string, n uint64) { counter(descFailures, float64(n), key) })
	s := m.stats
	for _, v := range m.timeWait {
		gauge(descTimeWait, v.value, v.dest)
	}
	for _, v := range m.finWait2 {
		gauge(descFinWait2, v.value, v.dest)
	}
	for _, v := range m.forecast {
		gauge(descForecast, v.value, v.dest)
	}
	m.mu.Unlock()
	counter(descUserDrops, float64(s.Evicted), "evicted")
	counter(descEvents, float64(s.Events))
	counter(descConns, float64(s.Conns))
	gauge(descTracked, float64(s.Tracked))
	if m.o.MaxTracked > 0 {
		gauge(descTrackedMax, float64(m.o.MaxTracked))
	}
	if m.o.Extra != nil {
		m.o.Extra(ch)
	}
}
