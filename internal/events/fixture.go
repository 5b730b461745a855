package events

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
)

// MarshalText returns the comm as text.
func (c Comm) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// UnmarshalText sets the comm from text.
func (c *Comm) UnmarshalText(b []byte) error { *c = MakeComm(string(b)); return nil }

// MarshalText returns the state's name.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText parses a state name.
func (s *State) UnmarshalText(b []byte) error {
	st, ok := ParseState(string(b))
	if !ok {
		return fmt.Errorf("unknown TCP state %q", b)
	}
	*s = st
	return nil
}

// WriteJSONL writes events one JSON object per line: the format of the
// recorded kernel sequences under testdata/.
func WriteJSONL(w io.Writer, evs []Event) error {
	enc := json.NewEncoder(w)
	for i := range evs {
		if err := enc.Encode(&evs[i]); err != nil {
			return err
		}
	}
	return nil
}

// ReadJSONL reads events written by WriteJSONL.
func ReadJSONL(r io.Reader) ([]Event, error) {
	var evs []Event
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		var ev Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return evs, fmt.Errorf("line %d: %w", n, err)
		}
		evs = append(evs, ev)
	}
	return evs, sc.Err()
}

// LoadJSONL reads a recorded event sequence from a file.
func LoadJSONL(path string) ([]Event, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	evs, err := ReadJSONL(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return evs, nil
}

// Collector is a Sink that keeps copies of everything, for tests and for
// views that need the whole run.
type Collector struct {
	Transitions []Transition // Event and Conn point to copies
	Conns       []Conn
	Losses      []Event
}

// Transition keeps a copy of t.
func (c *Collector) Transition(t *Transition) {
	cp := *t
	ev := *t.Event
	conn := *t.Conn
	conn.Spans = append([]Span(nil), t.Conn.Spans...)
	conn.prev, conn.next = nil, nil
	cp.Event, cp.Conn = &ev, &conn
	c.Transitions = append(c.Transitions, cp)
}

// Finished keeps a copy of conn.
func (c *Collector) Finished(conn *Conn) {
	cp := *conn
	cp.Spans = append([]Span(nil), conn.Spans...)
	cp.prev, cp.next = nil, nil
	c.Conns = append(c.Conns, cp)
}

// Loss keeps a copy of the loss notice.
func (c *Collector) Loss(ev *Event) { c.Losses = append(c.Losses, *ev) }

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
