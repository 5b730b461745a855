package ladder

import (
	"net/netip"

	"github.com/tcptrace/tcptrace/internal/events"
)

// maxLatest bounds the destinations whose latest connection is kept.
const maxLatest = 4096

// Dest is where a client connected from: its namespace and local address,
// and the remote end.
type Dest struct {
	Netns  uint32
	Local  netip.Addr
	Remote netip.AddrPort
}

// Collector is a sink that pairs connections into ladders and keeps them
// as shapes (Aggregator) and as each client destination's latest
// connection.
type Collector struct {
	Agg    Aggregator
	pairer *Pairer
	latest map[Dest]*Ladder
}

// NewCollector returns an empty collector.
func NewCollector() *Collector {
	c := &Collector{latest: map[Dest]*Ladder{}}
	c.pairer = NewPairer(c.add)
	return c
}

func (c *Collector) add(l *Ladder) {
	c.Agg.Add(l)
	if d, ok := ClientDest(l); ok {
		if len(c.latest) >= maxLatest {
			clear(c.latest)
		}
		c.latest[d] = l
	}
}

// ClientDest is where a ladder's client column connected to.
func ClientDest(l *Ladder) (Dest, bool) {
	for _, s := range l.Sides {
		if s != nil && s.Role == events.RoleClient {
			return Dest{Netns: s.Netns, Local: s.Local.Addr(), Remote: s.Remote}, true
		}
	}
	return Dest{}, false
}

// Latest returns the latest connection toward d, nil if none.
func (c *Collector) Latest(d Dest) *Ladder { return c.latest[d] }

// Transition passes a transition to the pairer.
func (c *Collector) Transition(t *events.Transition) { c.pairer.Transition(t) }

// Finished passes a finished connection to the pairer.
func (c *Collector) Finished(x *events.Conn) { c.pairer.Finished(x) }

// Loss ignores loss notices.
func (c *Collector) Loss(*events.Event) {}

// Tick draws the halves whose partner is overdue (see Pairer.Tick).
func (c *Collector) Tick(now uint64) { c.pairer.Tick(now) }

// Flush files the halves still pending.
func (c *Collector) Flush() { c.pairer.Flush() }
