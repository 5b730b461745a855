// Package eventstest holds test helpers for the event stream: the JSON
// lines format of the recorded kernel sequences under
// internal/events/testdata, and a sink that keeps everything.
package eventstest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/tcptrace/tcptrace/internal/events"
)

// WriteJSONL writes events one JSON object per line: the format of the
// recorded kernel sequences under internal/events/testdata.
func WriteJSONL(w io.Writer, evs []events.Event) error {
	enc := json.NewEncoder(w)
	for i := range evs {
		if err := enc.Encode(&evs[i]); err != nil {
			return err
		}
	}
	return nil
}

// ReadJSONL reads events written by WriteJSONL.
func ReadJSONL(r io.Reader) ([]events.Event, error) {
	var evs []events.Event
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		var ev events.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return evs, fmt.Errorf("line %d: %w", n, err)
		}
		evs = append(evs, ev)
	}
	return evs, sc.Err()
}

// LoadJSONL reads a recorded event sequence from a file.
func LoadJSONL(path string) ([]events.Event, error) {
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

// Collector is an events.Sink that keeps copies of everything.
type Collector struct {
	Transitions []events.Transition // Event and Conn point to copies
	Conns       []events.Conn
	Losses      []events.Event
}

// Transition keeps a copy of t.
func (c *Collector) Transition(t *events.Transition) {
	cp := *t
	ev := *t.Event
	conn := t.Conn.Copy()
	cp.Event, cp.Conn = &ev, &conn
	c.Transitions = append(c.Transitions, cp)
}

// Finished keeps a copy of conn.
func (c *Collector) Finished(conn *events.Conn) { c.Conns = append(c.Conns, conn.Copy()) }

// Loss keeps a copy of the loss notice.
func (c *Collector) Loss(ev *events.Event) { c.Losses = append(c.Losses, *ev) }
