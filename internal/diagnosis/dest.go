package diagnosis

import (
	"cmp"
	"net/netip"
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
)

// window is the seconds of history kept per destination: a TIME_WAIT's life.
const window = 64

// rateWindow is the seconds over which rates are measured.
const rateWindow = 10

// Dest is where connections go, seen from one namespace and local address.
// Lport is set instead of Dport for the server side of accepted connections,
// whose TIME_WAIT holds the service port, not an ephemeral one.
type Dest struct {
	Netns uint32
	Saddr netip.Addr
	Daddr netip.Addr
	Dport uint16
	Lport uint16
}

// compare orders destinations by namespace, addresses and ports: the last
// key of every sorted table, so that rows tied on their counts come out in
// the same order on every run.
func (d *Dest) compare(o *Dest) int {
	return cmp.Or(cmp.Compare(d.Netns, o.Netns), d.Daddr.Compare(o.Daddr), cmp.Compare(d.Dport, o.Dport),
		d.Saddr.Compare(o.Saddr), cmp.Compare(d.Lport, o.Lport))
}

// same reports whether d and o are the same destination (==, written out:
// it costs less than the generated comparison).
func (d *Dest) same(o *Dest) bool {
	return d.Dport == o.Dport && d.Lport == o.Lport && d.Netns == o.Netns && d.Daddr == o.Daddr && d.Saddr == o.Saddr
}

// Loopback reports whether both ends are loopback addresses.
func (d Dest) Loopback() bool { return d.Saddr.IsLoopback() && d.Daddr.IsLoopback() }

// ProcKey names a process.
type ProcKey struct {
	PID  uint32
	Comm events.Comm
}

// series counts per second over the last window seconds.
type series struct {
	counts [window]uint32
	sec    int64 // latest second filed
}

// advance moves the series to second s, zeroing the seconds skipped.
func (r *series) advance(s int64) {
	if s <= r.sec {
		return
	}
	if s-r.sec >= window {
		r.counts = [window]uint32{}
	} else {
		for x := r.sec + 1; x <= s; x++ {
			r.counts[x%window] = 0
		}
	}
	r.sec = s
}

// add counts n at second s (late seconds within the window too).
func (r *series) add(s int64, n uint32) {
	r.advance(s)
	if r.sec-s < window && s >= 0 {
		r.counts[s%window] += n
	}
}

// sum returns the count of the last n seconds up to second now.
func (r *series) sum(now int64, n int) uint64 {
	r.advance(now)
	var t uint64
	for x := now; x > now-int64(n) && x >= 0 && now-x < window; x-- {
		t += uint64(r.counts[x%window])
	}
	return t
}

// destState is what the engine knows of one destination.
type destState struct {
	dest      Dest
	first     uint64 // ns first seen
	last      uint64 // ns of its latest activity
	tw        series // handovers to a timewait socket traced (TIME_WAIT or orphaned FIN_WAIT2), per second
	conns     series // client connections finished
	short     series // of them, those shorter than ShortLife
	owners    [4]ownerCount
	lastOwner ProcKey // of the latest client connection
	failed    uint64  // connects that failed toward it
	ns        *nsView // its namespace
	open      int     // client connections established toward it, not closed yet
	timeWait  int     // timewait sockets held toward it now: TIME_WAIT
	finWait2  int     // and orphaned FIN_WAIT2
	exp       dueRing
	rows      map[twKey]*twRow // its timewait sockets by owner
	lastRow   *twRow           // the latest row looked up: churn repeats it
	warned    bool             // port exhaustion
	churned   bool
	lastETA   Forecast
	lastIn    Inputs // the inputs of lastETA
	hasFcast  bool
	connects  uint64 // client connects: handshakes completed and connects failed
}

type ownerCount struct {
	key ProcKey
	n   uint64
}

// addOwner counts a TIME_WAIT handover by k, keeping the 4 biggest.
func (d *destState) addOwner(k ProcKey) {
	low := 0
	for i := range d.owners {
		if d.owners[i].key == k && d.owners[i].n > 0 {
			d.owners[i].n++
			return
		}
		if d.owners[i].n < d.owners[low].n {
			low = i
		}
	}
	d.owners[low] = ownerCount{key: k, n: 1}
}

// owner returns the process with the most TIME_WAIT handovers toward d.
func (d *destState) owner() (ProcKey, bool) {
	best := 0
	for i := range d.owners {
		if d.owners[i].n > d.owners[best].n {
			best = i
		}
	}
	return d.owners[best].key, d.owners[best].n > 0
}

// rate returns events per second of r over the last rateWindow seconds, or
// since first seen when that is shorter (at least one second).
func (d *destState) rate(r *series, now uint64) float64 {
	secs := rateWindow
	if now > d.first {
		if el := int(time.Duration(now-d.first) / time.Second); el+1 < secs {
			secs = el + 1
		}
	}
	return float64(r.sum(int64(now/1e9), secs)) / float64(secs)
}
