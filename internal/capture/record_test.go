package capture

import (
	"errors"
	"io"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/events/eventstest"
)

// samplePath is the capture shipped for the README's first example,
// recorded from the kernel by scripts/record-sample.
const samplePath = "testdata/sample.tcpt"

// TestSample replays the shipped capture: every event decodes, it ended
// cleanly, and it holds the churn and each close shape.
func TestSample(t *testing.T) {
	r, err := Open(samplePath)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var c eventstest.Collector
	tr := events.NewTracker(&c, nil, 0)
	var ev events.Event
	for {
		err := r.Next(&ev)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		tr.Observe(&ev)
	}
	if r.Truncated() != nil || r.Trailer() == nil || len(r.Header().Netns) == 0 || r.Header().Kernel == "" {
		t.Fatalf("truncated %v trailer %v header %+v", r.Truncated(), r.Trailer(), r.Header())
	}
	ends := map[events.End]int{}
	v6 := 0
	for _, cn := range c.Conns {
		ends[cn.End]++
		if cn.Family == unix.AF_INET6 {
			v6++
		}
	}
	if len(c.Conns) < 600 || ends[events.EndReset] == 0 || v6 == 0 {
		t.Fatalf("%d conns, ends %v, %d IPv6", len(c.Conns), ends, v6)
	}
	t.Logf("%d events, %d conns, ends %v, netns %+v", r.Events(), len(c.Conns), ends, r.Header().Netns[0])
}
