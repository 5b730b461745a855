package metrics

import (
	"strconv"
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
	descFinished    = desc("connections_finished_total", "Sockets that reached CLOSE (a connection with both ends on this host is two), by who sent the first FIN and how they ended.", "closer", "end")
	descCloses      = desc("active_closes_total", "Connections closed first by this side (holding TIME_WAIT), by owner process name and container; top K plus other.", "comm", "container")
	descFailures    = desc("connect_failures_total", "Connects that failed (refused, no local port, timed out), by errno name.", "error")
	descTimeWait    = desc("time_wait_sockets", "TIME_WAIT sockets held now toward a destination (addr:port, or local:port on a server) from a network namespace (inode); top K plus other, there from the first read of a namespace's table.", "destination", "netns")
	descFinWait2    = desc("orphan_fin_wait2_sockets", "Orphaned FIN_WAIT2 sockets held now toward a destination by timewait sockets (closed before the peer's FIN; they hold the port and become TIME_WAIT when it comes); top K plus other.", "destination", "netns")
	descForecast    = desc("port_exhaustion_forecast_seconds", "Seconds until connect() toward a destination from a network namespace is forecast to fail for lack of ephemeral ports (0: failing now); destinations at risk only, top K nearest, plus other: the nearest of the other ones, +Inf when none is at risk.", "destination", "netns")
	descPorts       = desc("ephemeral_ports", "Ports in a network namespace's ip_local_port_range (inode): how many connections toward one destination can be open or in TIME_WAIT at once; there once its settings are read.", "netns")
	descTwBuckets   = desc("max_tw_buckets", "A network namespace's tcp_max_tw_buckets (inode): the most timewait sockets it keeps; there once its settings are read.", "netns")
	descKernelLost  = desc("kernel_events_lost_total", "Events the kernel could not deliver: ring buffer full, or program runs skipped by the recursion guard.", "cause")
	descUserDrops   = desc("userspace_drops_total", "Connections dropped in userspace before they ended: evicted from the full tracked-connection table.", "cause")
	descEvents      = desc("events_total", "Kernel transition events read from the ring buffer.")
	descConns       = desc("connections_total", "Sockets first seen (a connection with both ends on this host is two).")
	descTracked     = desc("tracked_connections", "Connections in the tracked-connection table now.")
	descTrackedMax  = desc("tracked_connections_limit", "Bound of the tracked-connection table (--max-conns).")
	descRingUsed    = desc("ring_buffer_used_bytes", "Unread bytes in the kernel ring buffer.")
	descRingSize    = desc("ring_buffer_size_bytes", "Size of the kernel ring buffer.")
	descBuild       = desc("build_info", "Always 1, labelled with the tcptrace version.", "version")
)

var endLabels = [...]string{"open", "graceful", "reset", "refused", "failed", "timeout", "aborted", "closed"}

// connectErrors are the errors of failed connects, counted from 0.
var connectErrors = []string{"ECONNREFUSED", "EADDRNOTAVAIL", "ETIMEDOUT"}

// usual are the transitions TCP makes (TIME_WAIT as shown), exported from 0.
var usual = [][2]events.State{
	{events.Close, events.SynSent}, {events.Close, events.Listen}, {events.Listen, events.Close},
	{events.Listen, events.SynRecv}, {events.SynSent, events.Established}, {events.SynSent, events.Close},
	{events.SynRecv, events.Established}, {events.SynRecv, events.FinWait1}, {events.SynRecv, events.Close},
	{events.Established, events.FinWait1}, {events.Established, events.CloseWait}, {events.Established, events.Close},
	{events.FinWait1, events.FinWait2}, {events.FinWait1, events.Closing}, {events.FinWait1, events.Close},
	{events.FinWait2, events.TimeWait}, {events.FinWait2, events.Close}, {events.Closing, events.TimeWait},
	{events.Closing, events.Close}, {events.CloseWait, events.LastAck}, {events.CloseWait, events.Close},
	{events.LastAck, events.Close},
}

// isUsual reports whether from → to is one of the usual transitions.
func isUsual(from, to int) bool {
	for _, u := range usual {
		if int(u[0]) == from && int(u[1]) == to {
			return true
		}
	}
	return false
}

// Describe sends the descriptions of the tcptrace_ metrics.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descTransitions, descInferred, descFinished, descCloses, descFailures,
		descTimeWait, descFinWait2, descForecast, descPorts, descTwBuckets, descKernelLost, descUserDrops, descEvents, descConns, descTracked,
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
			if n := m.transitions[from][to].Load(); n > 0 || isUsual(from, to) {
				counter(descTransitions, float64(n), events.State(from).String(), events.State(to).String())
			}
		}
	}
	counter(descInferred, float64(m.inferred.Load()))
	for cl := range m.finished {
		for end := 1; end < len(m.finished[cl]); end++ { // every verdict from 0; none is "open"
			counter(descFinished, float64(m.finished[cl][end].Load()), events.Closer(cl).String(), endLabels[end])
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
		d, ns := v.labels()
		gauge(descTimeWait, v.value, d, ns)
	}
	for _, v := range m.finWait2 {
		d, ns := v.labels()
		gauge(descFinWait2, v.value, d, ns)
	}
	for _, v := range m.forecast {
		d, ns := v.labels()
		gauge(descForecast, v.value, d, ns)
	}
	for _, n := range m.netns {
		ns := strconv.FormatUint(uint64(n.Netns), 10)
		gauge(descPorts, float64(n.Sysctls.Ports()), ns)
		gauge(descTwBuckets, float64(n.Sysctls.MaxTwBuckets), ns)
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
