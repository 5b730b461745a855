package pipeline

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/capture"
	"github.com/tcptrace/tcptrace/internal/events"
)

// sampleEvents returns the number of events of the sample capture.
func sampleEvents(t *testing.T) uint64 {
	t.Helper()
	r, err := capture.Open(sample)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var ev events.Event
	for r.Next(&ev) == nil {
	}
	return r.Events()
}

// TestClosedOutputRecordsOn: with a recording, a closed output (`-w f |
// head -1`) does not end the run: every event is recorded, and the log
// says so when the output closes and how much the capture holds at the end.
func TestClosedOutputRecordsOn(t *testing.T) {
	pw, src := closedPipeReplay(t)
	path := filepath.Join(t.TempDir(), "rec.tcpt")
	rec, err := capture.Create(path, capture.Options{Lookup: func(ns uint32, _ ...uint32) *capture.Netns { return &capture.Netns{Inode: ns} }})
	if err != nil {
		t.Fatal(err)
	}
	out := NewOutput(pw, 64)
	c := &counter{w: out}
	var log bytes.Buffer
	p := New(src, Config{Sinks: []events.Sink{c}, Out: out, Record: rec, Log: &log})
	if err := p.Run(); err != nil {
		t.Fatalf("run: %v", err)
	}
	if out.Err() == nil {
		t.Fatal("the output did not fail")
	}
	all := sampleEvents(t)
	r, err := capture.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var ev events.Event
	for r.Next(&ev) == nil {
	}
	if r.Events() != all || r.Truncated() != nil {
		t.Errorf("the capture holds %d events of %d (cut short: %v)", r.Events(), all, r.Truncated())
	}
	want := "tcptrace: the output was closed; the capture records on until the run ends\n" +
		"tcptrace: the capture holds " + strconv.FormatUint(all, 10) + " events\n"
	if log.String() != want {
		t.Errorf("log:\n%s\nwant:\n%s", log.String(), want)
	}
}

// TestRecordingReaderGone: a capture written to a pipe whose reader quit
// ends the run quietly, and the log says after how many events.
func TestRecordingReaderGone(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	pr.Close()
	defer pw.Close()
	rec, err := capture.NewWriter(pw, capture.Options{BlockSize: 256,
		Lookup: func(ns uint32, _ ...uint32) *capture.Netns { return &capture.Netns{Inode: ns} }})
	if err == nil {
		t.Fatal("the capture's header was written to a pipe without a reader")
	}
	rec, err = capture.NewWriter(pw, capture.Options{RotateSize: 1 << 20})
	if err == nil || rec != nil {
		t.Fatalf("a stream was rotated: %v", err)
	}

	// The reader leaves after the header.
	pr, pw2, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pw2.Close()
	rec, err = capture.NewWriter(pw2, capture.Options{BlockSize: 256,
		Lookup: func(ns uint32, _ ...uint32) *capture.Netns { return &capture.Netns{Inode: ns} }})
	if err != nil {
		t.Fatal(err)
	}
	pr.Close()
	src, err := OpenReplay(sample)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	c := &counter{}
	var log bytes.Buffer
	p := New(src, Config{Sinks: []events.Sink{c}, Record: rec, Log: &log})
	if err := p.Run(); err != nil {
		t.Fatalf("a recording's reader going away ended the run with %v", err)
	}
	if !strings.HasPrefix(log.String(), "tcptrace: the capture's reader went away (broken pipe) after ") ||
		!strings.HasSuffix(log.String(), " events: stopping\n") {
		t.Errorf("log: %q", log.String())
	}
	if all := sampleEvents(t); c.transitions == 0 || uint64(c.transitions) >= all {
		t.Errorf("%d transitions passed on of %d events: the run did not stop", c.transitions, all)
	}
}

// TestReplayStream replays a capture read from a pipe as from its file,
// and flushes the output whenever the next read waits for the writer.
func TestReplayStream(t *testing.T) {
	file, pf, _ := run(t, sample, nil)
	data, err := os.ReadFile(sample)
	if err != nil {
		t.Fatal(err)
	}
	in, feed, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer outR.Close()
	half := len(data) / 2
	go func() {
		defer feed.Close()
		if _, err := feed.Write(data[:half]); err != nil {
			return
		}
		// The rest only once the first half's transitions came out.
		buf := make([]byte, 64)
		if _, err := outR.Read(buf); err != nil {
			return
		}
		_, _ = feed.Write(data[half:])
	}()
	src, err := NewReplay(in)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	out := NewOutput(outW, 1<<20) // nothing would come out before the end without the flushes
	c := &counter{w: out}
	p := New(src, Config{Sinks: []events.Sink{c}, Out: out})
	done := make(chan error, 1)
	go func() { done <- p.Run() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream's replay waited for output it had not flushed")
	}
	outW.Close()
	_, _ = io.Copy(io.Discard, outR)
	if *c != (counter{transitions: file.transitions, finished: file.finished, losses: file.losses, w: out}) {
		t.Errorf("stream replay %+v, file %+v", *c, *file)
	}
	if src.Capture().Trailer() == nil || src.Capture().Truncated() != nil {
		t.Error("the stream's end record was not read")
	}
	if p.Elapsed() != pf.Elapsed() || p.Stats() != pf.Stats() {
		t.Errorf("stream: %v %+v; file: %v %+v", p.Elapsed(), p.Stats(), pf.Elapsed(), pf.Stats())
	}
}

// TestReplayStreamCut: a stream that ends without its end record was cut
// short, as a file is.
func TestReplayStreamCut(t *testing.T) {
	data, err := os.ReadFile(sample)
	if err != nil {
		t.Fatal(err)
	}
	src, err := NewReplay(bytes.NewReader(data[:len(data)-40]))
	if err != nil {
		t.Fatal(err)
	}
	p := New(src, Config{})
	if err := p.Run(); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	if src.Capture().Truncated() == nil {
		t.Error("a stream cut short was not said to be")
	}
}
