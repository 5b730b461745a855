package probe_test

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/tcptrace/tcptrace/internal/events/eventstest"
	"github.com/tcptrace/tcptrace/internal/testutil"
)

var recordFlag = flag.Bool("record", false, "record kernel event fixtures into internal/events/testdata")

// TestRecordFixtures records the raw decoded kernel events (the tracker's
// input) of each connection shape into internal/events/testdata/<shape>.jsonl.
// Re-record with:
//
//	go test ./internal/probe -run TestRecordFixtures -record
//
// (or TCPTRACE_RECORD=1).
func TestRecordFixtures(t *testing.T) {
	if !*recordFlag && os.Getenv("TCPTRACE_RECORD") != "1" {
		t.Skip("recording fixtures only with -record or TCPTRACE_RECORD=1")
	}
	testutil.RequirePrivileged(t)
	dir := filepath.Join("..", "events", "testdata")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range append(append([]string(nil), shapeNames...), "churn") {
		t.Run(name, func(t *testing.T) {
			s := runShape(t, name)
			checkShape(t, s)
			f, err := os.Create(filepath.Join(dir, name+".jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			if err := eventstest.WriteJSONL(f, s.Events); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %d events", name, len(s.Events))
		})
	}
}
