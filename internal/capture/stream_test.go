package capture

import (
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
)

// TestStreamPipe writes a capture into a pipe while another goroutine
// reads it: no seek either way, each flushed block readable at once (the
// reader has it before the writer goes on), the end record last.
func TestStreamPipe(t *testing.T) {
	evs := fixtures(t)["churn.jsonl"]
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	w, err := NewWriter(pw, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	half := len(evs) / 2
	for i := range evs[:half] {
		if err := w.Write(&evs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	// The writer waits here: what it flushed is readable now (the header
	// is read with the namespaces that follow it, so up to the first
	// block).
	var r *Reader
	got := make(chan []events.Event, 1)
	go func() {
		var out []events.Event
		if r, err = NewReader(pr); err != nil {
			got <- nil
			return
		}
		for len(out) < half {
			var ev events.Event
			if r.Next(&ev) != nil {
				break
			}
			out = append(out, ev)
		}
		got <- out
	}()
	select {
	case first := <-got:
		if r == nil {
			t.Fatal(err)
		}
		sameEvents(t, first, evs[:half])
	case <-time.After(10 * time.Second):
		t.Fatal("the flushed half was not readable from the pipe")
	}
	if r.Buffered() {
		t.Error("Buffered with every flushed event read")
	}
	go func() {
		for i := range evs[half:] {
			_ = w.Write(&evs[half+i])
		}
		_ = w.Close()
		pw.Close() // Close leaves a stream open: its owner closes it
	}()
	var rest []events.Event
	for {
		var ev events.Event
		err := r.Next(&ev)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		rest = append(rest, ev)
	}
	sameEvents(t, rest, evs[half:])
	if r.Trailer() == nil || r.Truncated() != nil || r.Trailer().Events != uint64(len(evs)) || w.Written() != uint64(len(evs)) {
		t.Errorf("trailer %+v, cut %v, %d written", r.Trailer(), r.Truncated(), w.Written())
	}
}

// TestStreamNoRotation: a stream cannot be rotated, and says so.
func TestStreamNoRotation(t *testing.T) {
	if _, err := NewWriter(io.Discard, Options{RotateSize: MinRotateSize}); err == nil {
		t.Fatal("a stream was set to rotate")
	}
}

// TestWrittenAcrossRotation: Written counts the events of every file,
// Events those of the current one.
func TestWrittenAcrossRotation(t *testing.T) {
	evs := fixtures(t)["churn.jsonl"]
	opts := testOptions()
	opts.RotateSize, opts.BlockSize = MinRotateSize, 4096
	w, err := Create(t.TempDir()+"/r.tcpt", opts)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for w.Written() == w.Events() {
		for i := range evs {
			if err := w.Write(&evs[i]); err != nil {
				t.Fatal(err)
			}
			n++
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if n > 1e6 {
			t.Fatal("no rotation")
		}
	}
	if w.Written() != uint64(n) || w.Events() >= w.Written() {
		t.Errorf("written %d, events of the current file %d, %d written", w.Written(), w.Events(), n)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}
