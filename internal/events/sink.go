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
