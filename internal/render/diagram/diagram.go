// Package diagram draws connections as ladder diagrams: each socket a
// column, each step a row, the segments between them as arrows; one
// diagram per connection as it ends, or one per connection shape with
// counts and percentiles (aggregate). The ladders come from internal/ladder.
package diagram

import (
	"errors"
	"io"
	"strconv"
	"strings"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/ladder"
	"github.com/tcptrace/tcptrace/internal/render/style"
)

// Mode says which connections a Sink draws.
type Mode uint8

// Modes.
const (
	All       Mode = iota // every connection, as it ends
	Cookie                // only the connection of one socket cookie
	Aggregate             // one diagram per shape, at the end of the run
)

// Select picks what a Sink draws.
type Select struct {
	Mode   Mode   // which connections
	Cookie uint64 // Mode Cookie: either socket of the connection
}

// ParseSelect parses a selection: "" or "all", "aggregate", or a socket
// cookie (decimal, or hex with 0x).
func ParseSelect(s string) (Select, error) {
	switch v := strings.ToLower(strings.TrimSpace(s)); v {
	case "", "all", "true":
		return Select{Mode: All}, nil
	case "aggregate", "agg":
		return Select{Mode: Aggregate}, nil
	default:
		c, err := strconv.ParseUint(v, 0, 64)
		if err != nil || c == 0 {
			return Select{}, errors.New("want all, aggregate or a socket cookie, got " + strconv.Quote(s))
		}
		return Select{Mode: Cookie, Cookie: c}, nil
	}
}

// Sink is an events.Sink that draws each connection's state ladder when it
// ends, the two sockets of a same-host connection in one diagram, and
// counts every connection's shape for the aggregate view.
type Sink struct {
	w      io.Writer
	d      *drawer
	sel    Select
	pairs  *ladder.Pairer
	shapes ladder.Aggregator
	lost   events.Losses
	drawn  int
	err    error
}

// New returns a diagram sink writing to w.
func New(w io.Writer, o style.Options, sel Select) *Sink {
	s := &Sink{w: w, sel: sel, d: newDrawer(w, o)}
	s.pairs = ladder.NewPairer(s.emit)
	return s
}

// Err returns the first write error, if any.
func (s *Sink) Err() error { return s.err }

// Transition records one step of a connection.
func (s *Sink) Transition(tr *events.Transition) { s.pairs.Transition(tr) }

// Finished draws c, or holds it until the other socket of a same-host
// connection finishes.
func (s *Sink) Finished(c *events.Conn) { s.pairs.Finished(c) }

// Loss keeps the loss totals for the aggregate's footer.
func (s *Sink) Loss(ev *events.Event) {
	if ev != nil {
		s.lost = ev.Lost
	}
}

// emit counts a connection's shape and draws it when selected.
func (s *Sink) emit(l *ladder.Ladder) {
	s.shapes.Add(l)
	switch s.sel.Mode {
	case All:
	case Cookie:
		a, b := l.Sides[0], l.Sides[1]
		if (a == nil || a.Cookie != s.sel.Cookie) && (b == nil || b.Cookie != s.sel.Cookie) {
			return
		}
	default:
		return
	}
	s.write(s.d.drawConn(l))
}

// write writes one diagram, a blank line before all but the first.
func (s *Sink) write(lines []string) {
	if s.err != nil {
		return
	}
	var b strings.Builder
	if s.drawn > 0 {
		b.WriteByte('\n')
	}
	s.drawn++
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	_, s.err = io.WriteString(s.w, b.String())
}

// Tick draws alone the pending halves whose partner is overdue at kernel
// time now (e.g. clock.Mono()); call it periodically when idle.
func (s *Sink) Tick(now uint64) error {
	s.pairs.Tick(now)
	return s.err
}

// Flush draws the halves still waiting for a partner, alone, and in
// aggregate mode the aggregate view (do not call Aggregate too). Call it at
// the end of a run.
func (s *Sink) Flush() error {
	s.pairs.Flush()
	if s.sel.Mode == Aggregate {
		return s.Aggregate()
	}
	return s.err
}

// Aggregate draws one diagram per connection shape seen so far (same
// transitions, service endpoint and owners), with counts and percentiles,
// in any mode.
func (s *Sink) Aggregate() error {
	for _, lines := range s.d.drawShapes(&s.shapes, s.lost) {
		s.write(lines)
	}
	return s.err
}
