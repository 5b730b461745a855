package events

// Sink receives what the tracker makes of the stream. Pointers passed to it
// are valid only during the call: a Conn is recycled after Finished returns.
type Sink interface {
	Transition(t *Transition)
	Finished(c *Conn)
	Loss(ev *Event)
}

// Tee fans one stream out to several sinks, in order.
type Tee []Sink

// Transition passes t to every sink.
func (s Tee) Transition(t *Transition) {
	for _, k := range s {
		k.Transition(t)
	}
}

// Finished passes c to every sink.
func (s Tee) Finished(c *Conn) {
	for _, k := range s {
		k.Finished(c)
	}
}

// Loss passes ev to every sink.
func (s Tee) Loss(ev *Event) {
	for _, k := range s {
		k.Loss(ev)
	}
}

// Gate passes on the transitions and connections Pass accepts; loss
// notices always pass.
type Gate struct {
	Pass func(*Conn) bool
	Sink Sink
}

// Transition passes t on when its connection passes.
func (g *Gate) Transition(t *Transition) {
	if t.Conn != nil && g.Pass(t.Conn) {
		g.Sink.Transition(t)
	}
}

// Finished passes c on when it passes.
func (g *Gate) Finished(c *Conn) {
	if g.Pass(c) {
		g.Sink.Finished(c)
	}
}

// Loss passes every loss notice on.
func (g *Gate) Loss(ev *Event) { g.Sink.Loss(ev) }
