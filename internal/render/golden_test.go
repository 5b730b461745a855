package render

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// testClock maps kernel time 780 s to 2025-01-02T12:00:00Z.
var testClock = Clock{Offset: 1735819200_000000000 - 780_000000000, Loc: time.UTC}

// fixtures returns the recorded kernel sequences: this package's and those
// under internal/events/testdata.
func fixtures(t *testing.T) []string {
	t.Helper()
	var paths []string
	for _, pat := range []string{"testdata/*.jsonl", "../events/testdata/*.jsonl"} {
		m, err := filepath.Glob(pat)
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

// replay feeds a fixture through a tracker into sink and returns the stats
// and final loss totals.
func replay(t *testing.T, path string, sink events.Sink) (events.Stats, events.Losses) {
	t.Helper()
	evs, err := events.LoadJSONL(path)
	if err != nil {
		t.Fatal(err)
	}
	tr := events.NewTracker(sink, nil, 0)
	var lost events.Losses
	for i := range evs {
		if evs[i].Kind == events.KindLoss {
			lost = evs[i].Lost
		}
		tr.Observe(&evs[i])
	}
	return tr.Stats(), lost
}

// golden compares got with testdata/name, rewriting it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
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

func fixtureName(path string) string {
	return strings.TrimSuffix(filepath.Base(path), ".jsonl")
}

func TestGoldenText(t *testing.T) {
	variants := []struct {
		name string
		o    Options
	}{
		{"text80", Options{Width: 80}},
		{"text120", Options{Width: 120}},
		{"text160", Options{Width: 160}},
		{"ascii80", Options{Width: 80, ASCII: true}},
	}
	for _, path := range fixtures(t) {
		for _, v := range variants {
			t.Run(fixtureName(path)+"/"+v.name, func(t *testing.T) {
				var buf bytes.Buffer
				o := v.o
				o.Clock = testClock
				txt := NewText(&buf, o)
				replay(t, path, txt)
				if err := txt.Err(); err != nil {
					t.Fatal(err)
				}
				checkWidth(t, buf.String(), o.width())
				golden(t, fixtureName(path)+"."+v.name+".golden", buf.Bytes())
			})
		}
	}
}

// checkWidth fails when a line is wider than width cells or has escapes.
func checkWidth(t *testing.T, out string, width int) {
	t.Helper()
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if n := cells(line); n > width {
			t.Errorf("line is %d cells wide, over %d:\n%s", n, width, line)
		}
		if strings.ContainsRune(line, '\x1b') {
			t.Errorf("escape code with colour off: %q", line)
		}
	}
}

func TestGoldenJSON(t *testing.T) {
	for _, path := range fixtures(t) {
		t.Run(fixtureName(path), func(t *testing.T) {
			var buf bytes.Buffer
			j := NewJSON(&buf, testClock)
			sum := NewSummarizer()
			st, lost := replay(t, path, events.Tee{j, sum})
			if err := j.Summary(sum.Summary(st, lost, 1500*time.Millisecond)); err != nil {
				t.Fatal(err)
			}
			checkJSONLines(t, buf.Bytes())
			golden(t, fixtureName(path)+".json.golden", buf.Bytes())
		})
	}
}

func TestGoldenSummary(t *testing.T) {
	for _, path := range fixtures(t) {
		t.Run(fixtureName(path), func(t *testing.T) {
			sum := NewSummarizer()
			st, lost := replay(t, path, sum)
			var buf bytes.Buffer
			if err := sum.Summary(st, lost, 83*time.Second).WriteText(&buf, Options{Width: 80}); err != nil {
				t.Fatal(err)
			}
			checkWidth(t, buf.String(), 80)
			golden(t, fixtureName(path)+".summary.golden", buf.Bytes())
		})
	}
}

// checkJSONLines fails unless every line is a JSON object with a type.
func checkJSONLines(t *testing.T, out []byte) {
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
