package report

import (
	"strconv"
	"time"

	"github.com/tcptrace/tcptrace/internal/diagnosis"
	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/render/style"
)

// The diagnosis in words, shared by the tables, the warnings and the summary.

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

// ProcText names a process: "curl (42)", "?" when unknown.
func ProcText(k diagnosis.ProcKey) string {
	c := style.Sanitize(k.Comm.String())
	if k.PID == 0 && c == "" {
		return "?"
	}
	return c + " (" + itoa(uint64(k.PID)) + ")"
}

// DestText names a destination: its endpoint, or the local port a server's
// clients came to.
func DestText(d diagnosis.Dest) string {
	if d.Lport != 0 {
		return "clients of local :" + strconv.Itoa(int(d.Lport))
	}
	return style.Endpoint(d.Daddr, d.Dport)
}

// ETAText says when a forecast runs out of ports.
func ETAText(f *diagnosis.Forecast) string {
	switch {
	case f.Never && f.Capped:
		return "never (tcp_max_tw_buckets caps TIME_WAIT first)"
	case f.Never:
		return "never at this rate"
	case f.ETA <= 0:
		return "now: connect() fails"
	}
	return "in " + strconv.FormatFloat(f.ETA.Seconds(), 'f', 1, 64) + "s"
}

// errnoText names a failed connect's error.
func errnoText(e uint16) string {
	if n := diagnosis.ErrName(e); n != "" {
		return n
	}
	return "(no error)"
}

// round2 rounds x to two decimals.
func round2(x float64) float64 { return float64(int64(x*100+0.5)) / 100 }

// holdText formats a hold time in seconds ("60s", "1s").
func holdText(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s" }

// predatesText is the owner of a socket that predates tracing, with the
// process named as a hint when there is one (not the owner: one that holds
// sockets toward the same destination now).
func predatesText(hint diagnosis.ProcKey) string {
	if hint.PID == 0 && hint.Comm == (events.Comm{}) {
		return "predates tracing"
	}
	return "predates tracing (hint: " + style.Sanitize(hint.Comm.String()) + " pid " + itoa(uint64(hint.PID)) + ")"
}

// twOwner names the owner of a timewait socket's connection, or says it
// predates tracing (with the hint, when there is one).
func twOwner(s *diagnosis.TimeWaitStep) string {
	if s.Known {
		return ProcText(s.Owner)
	}
	return predatesText(s.Owner)
}

// twWhat says what step s did and after how long.
func twWhat(s *diagnosis.TimeWaitStep, ascii bool) string {
	after := "after " + style.Dur(s.Held.Nanoseconds(), ascii)
	if !s.Known {
		after = style.Dur(s.Held.Nanoseconds(), ascii) + " after tracing found it"
	}
	switch {
	case s.Op == events.TwMove && s.Old == s.New:
		return "timer restarted " + after + " (the peer's FIN again); holds the port " + style.TimeWaitHold + " more"
	case s.Op == events.TwMove:
		return "the peer's FIN arrived " + after + "; holds the port " + style.TimeWaitHold
	case s.Op == events.TwKill:
		return "killed early " + after + " (RST or a new SYN)"
	case s.Op == events.TwReuse:
		return "reused by connect " + after + " (tcp_tw_reuse)"
	}
	return "expired " + after
}
