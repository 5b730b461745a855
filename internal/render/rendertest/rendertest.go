// Package rendertest holds what the renderings' tests share: the recorded
// kernel sequences replayed through a tracker, the golden files, and the
// checks every rendering must pass.
package rendertest

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/clock"
	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/events/eventstest"
	"github.com/tcptrace/tcptrace/internal/render/style"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// Clock maps kernel time 780 s to 2025-01-02T12:00:00Z.
var Clock = clock.Wall{Offset: 1735819200_000000000 - 780_000000000, Loc: time.UTC}

// Dirs are where the recorded kernel sequences are, from a package under
// internal/render: render's own, and internal/events's.
var Dirs = []string{"../testdata", "../../events/testdata"}

// Fixture returns the path of a recorded sequence by name ("client_close").
func Fixture(t testing.TB, name string) string {
	t.Helper()
	for _, d := range Dirs {
		p := filepath.Join(d, name+".jsonl")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatalf("no fixture %s", name)
	return ""
}

// Fixtures returns the paths of every recorded sequence.
func Fixtures(t testing.TB) []string {
	t.Helper()
	var paths []string
	for _, d := range Dirs {
		m, err := filepath.Glob(filepath.Join(d, "*.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, m...)
	}
	if len(paths) == 0 {
		t.Fatal("no fixtures")
	}
	return paths
}

// Name returns a fixture's name: its file name without .jsonl.
func Name(path string) string {
	return strings.TrimSuffix(filepath.Base(path), ".jsonl")
}

// Load reads a recorded sequence.
func Load(t testing.TB, path string) []events.Event {
	t.Helper()
	evs, err := eventstest.LoadJSONL(path)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// Replay feeds a fixture through a tracker into sink and returns the
// tracker's stats, the final loss totals and the time of the last event.
func Replay(t testing.TB, path string, sink events.Sink) (events.Stats, events.Losses, uint64) {
	t.Helper()
	evs := Load(t, path)
	tr := events.NewTracker(sink, nil, 0)
	var lost events.Losses
	var last uint64
	for i := range evs {
		if evs[i].Kind == events.KindLoss {
			lost = evs[i].Lost
		}
		last = max(last, evs[i].Time)
		tr.Observe(&evs[i])
	}
	return tr.Stats(), lost, last
}

// Golden compares got with testdata/name, rewriting it under -update.
func Golden(t testing.TB, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run go test -update to accept):\n--- got\n%s--- want\n%s", name, got, want)
	}
}

// CheckWidth fails when a line is wider than width cells or has escapes.
func CheckWidth(t testing.TB, out string, width int) {
	t.Helper()
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if n := style.Cells(line); n > width {
			t.Errorf("line is %d cells wide, over %d:\n%s", n, width, line)
		}
		if strings.ContainsRune(line, '\x1b') {
			t.Errorf("escape code with colour off: %q", line)
		}
	}
}

// CheckJSONLines fails unless every line is a JSON object with a type.
func CheckJSONLines(t testing.TB, out []byte) {
	t.Helper()
	for i, line := range bytes.Split(bytes.TrimSuffix(out, []byte("\n")), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("line %d: %v: %s", i+1, err, line)
		}
		if _, ok := m["type"].(string); !ok {
			t.Errorf("line %d has no type: %s", i+1, line)
		}
	}
}

// CheckXML fails unless s is well-formed XML (an SVG picture).
func CheckXML(t testing.TB, s string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(s))
	for {
		if _, err := d.Token(); err == io.EOF {
			return
		} else if err != nil {
			t.Fatalf("not well-formed: %v\n%s", err, s)
		}
	}
}
