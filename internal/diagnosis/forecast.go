// Package diagnosis finds the TIME_WAIT incident before it happens: it
// follows the kernel's timewait sockets as events, forecasts ephemeral port
// exhaustion per destination, flags connection churn and counts failed
// connects, and aggregates what a report needs.
package diagnosis

import (
	"strconv"
	"strings"
	"time"
	"unicode"
)

// TimeWaitLen is how long Linux keeps a TIME_WAIT socket (TCP_TIMEWAIT_LEN).
const TimeWaitLen = 60 * time.Second

// DefaultFinTimeout is tcp_fin_timeout's default (TCP_FIN_TIMEOUT).
const DefaultFinTimeout = 60 * time.Second

// DefaultReuseDelay is how old a TIME_WAIT socket must be before
// tcp_tw_reuse lets connect() take its port (tcp_tw_reuse_delay, 1 s).
const DefaultReuseDelay = time.Second

// Sysctls are a network namespace's settings that decide TIME_WAIT's cost.
type Sysctls struct {
	PortLo, PortHi int           // net.ipv4.ip_local_port_range
	TwReuse        int           // net.ipv4.tcp_tw_reuse: 0 off, 1 on, 2 loopback only
	Timestamps     int           // net.ipv4.tcp_timestamps: reuse needs it non-zero
	MaxTwBuckets   int           // net.ipv4.tcp_max_tw_buckets, 0 when unknown
	ReuseDelay     time.Duration // net.ipv4.tcp_tw_reuse_delay (DefaultReuseDelay when absent)
	FinTimeout     time.Duration // net.ipv4.tcp_fin_timeout: an orphaned FIN_WAIT2's wait (DefaultFinTimeout when 0)
	Known          bool          // the port range was read
}

// DefaultSysctls are the kernel's defaults, used when a namespace's are unknown.
var DefaultSysctls = Sysctls{PortLo: 32768, PortHi: 60999, TwReuse: 2, Timestamps: 1,
	MaxTwBuckets: 0, ReuseDelay: DefaultReuseDelay, FinTimeout: DefaultFinTimeout}

// ParseSysctls reads the values of net.ipv4.<name> keyed by name, as
// captures record them; missing or unreadable values keep the defaults.
func ParseSysctls(m map[string]string) Sysctls {
	s := DefaultSysctls
	if a, b, ok := twoFields(m["ip_local_port_range"]); ok {
		lo, err1 := strconv.Atoi(a)
		hi, err2 := strconv.Atoi(b)
		if err1 == nil && err2 == nil && lo > 0 && hi >= lo && hi < 65536 {
			s.PortLo, s.PortHi, s.Known = lo, hi, true
		}
	}
	num := func(name string, dst *int) {
		if m[name] == "" {
			return // no error to allocate
		}
		if v, err := strconv.Atoi(strings.TrimSpace(m[name])); err == nil && v >= 0 {
			*dst = v
		}
	}
	num("tcp_tw_reuse", &s.TwReuse)
	num("tcp_timestamps", &s.Timestamps)
	num("tcp_max_tw_buckets", &s.MaxTwBuckets)
	if fin := 0; m["tcp_fin_timeout"] != "" {
		num("tcp_fin_timeout", &fin)
		if fin > 0 {
			s.FinTimeout = time.Duration(fin) * time.Second
		}
	}
	var ms int
	if _, ok := m["tcp_tw_reuse_delay"]; ok {
		ms = -1
		num("tcp_tw_reuse_delay", &ms)
		if ms >= 0 {
			s.ReuseDelay = time.Duration(ms) * time.Millisecond
		}
	}
	return s
}

// twoFields splits s into its two space-separated fields, without the
// allocation of strings.Fields.
func twoFields(s string) (a, b string, ok bool) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, unicode.IsSpace)
	if i < 0 {
		return "", "", false
	}
	a, b = s[:i], strings.TrimSpace(s[i:])
	return a, b, strings.IndexFunc(b, unicode.IsSpace) < 0
}

// Ports returns the size of the ephemeral range.
func (s Sysctls) Ports() int { return s.PortHi - s.PortLo + 1 }

// InRange reports whether port is an ephemeral port of the range.
func (s Sysctls) InRange(port uint16) bool {
	return int(port) >= s.PortLo && int(port) <= s.PortHi
}

// Reuses reports whether connect() may take the port of a TIME_WAIT socket
// toward a destination (loopback: both ends are loopback addresses).
func (s Sysctls) Reuses(loopback bool) bool {
	if s.Timestamps == 0 {
		return false // reuse checks the timestamp of the old connection
	}
	return s.TwReuse == 1 || (s.TwReuse == 2 && loopback)
}

// Inputs are what the forecast for one destination knows.
type Inputs struct {
	Sysctls  Sysctls
	Loopback bool    // both ends are loopback (for tcp_tw_reuse=2)
	Held     int     // timewait sockets (TIME_WAIT, orphaned FIN_WAIT2) toward the destination now
	InUse    int     // other sockets holding range ports toward it (open connections)
	Rate     float64 // new timewait sockets per second toward it
	NetnsTW  int     // timewait sockets in the whole namespace (tcp_max_tw_buckets counts both)
}

// Forecast is when connect() toward a destination starts failing.
type Forecast struct {
	Ports    int           // size of the ephemeral range
	Usable   int           // ports usable toward the destination: range minus InUse
	Blocking int           // TIME_WAIT sockets whose port connect() cannot take now
	Left     int           // ports left now
	Hold     time.Duration // how long a new TIME_WAIT blocks its port (TimeWaitLen, or the reuse delay)
	Reuse    bool          // tcp_tw_reuse applies
	Steady   float64       // TIME_WAIT pile this rate sustains: rate × TimeWaitLen
	Capped   bool          // tcp_max_tw_buckets stops the pile before the range runs out
	Never    bool          // at this rate the range never runs out
	ETA      time.Duration // time until connect() fails (0: failing now), when !Never
}

// capped reports whether the namespace's tcp_max_tw_buckets leaves fewer
// than usable TIME_WAIT sockets: the kernel stops creating them at the cap
// ("time wait bucket table overflow"), so the pile cannot grow to cover
// the range.
func capped(in *Inputs, usable int) bool {
	s := &in.Sysctls
	return s.MaxTwBuckets > 0 && s.MaxTwBuckets-max(in.NetnsTW-in.Held, 0) < usable
}

// Remedies are the fixes for a TIME_WAIT pile, safest first.
var Remedies = []string{
	"reuse connections (keep-alive, a connection pool) instead of one per request",
	"let the server close first, so the TIME_WAIT lands on its side",
	"enable net.ipv4.tcp_tw_reuse=1 (needs net.ipv4.tcp_timestamps=1)",
	"widen net.ipv4.ip_local_port_range",
	"SO_LINGER 0 on close: RST, skips TIME_WAIT, can lose in-flight data",
}
